// The CLIP text encoder configuration as the C++ side receives it: validated by lib/config/clip-text.ts.
#pragma once

#include <cstdint>
#include <string>

namespace difftune {

struct ClipTextConfig {
  int64_t vocabSize = 49408;
  int64_t hiddenSize = 512;
  int64_t intermediateSize = 2048;
  int64_t numHiddenLayers = 12;
  int64_t numAttentionHeads = 8;
  int64_t maxPositionEmbeddings = 77;
  std::string hiddenAct = "quick_gelu";  // quick_gelu | gelu | gelu_new | gelu_pytorch_tanh | relu | silu
  double layerNormEps = 1e-5;
  // 2 (the legacy value of SD 1.x/2.x configs): pool at the largest id; otherwise at the first eos_token_id.
  int64_t eosTokenId = 2;
};

}  // namespace difftune
