#include "unet/unet.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "nn/autocast.h"
#include "tensor/failure.h"
#include "tensor/shape_text.h"

namespace difftune {

namespace {

template <typename T>
T at_(const std::vector<T>& v, size_t i, const char* what) {
  if (i >= v.size()) throw InvalidArgument(std::string("config list ") + what + " is shorter than the number of blocks");
  return v[i];
}

// The next `count` per-layer entries of `v` from `*next`, which moves past them.
std::vector<int64_t> take(const std::vector<int64_t>& v, size_t* next, int64_t count, const char* what) {
  size_t n = static_cast<size_t>(count);
  if (*next + n > v.size()) throw InvalidArgument(std::string("config list ") + what + " has fewer entries than the blocks have layers");
  std::vector<int64_t> out(v.begin() + static_cast<std::ptrdiff_t>(*next), v.begin() + static_cast<std::ptrdiff_t>(*next + n));
  *next += n;
  return out;
}

}  // namespace

UNet::UNet(const UNetConfig& c) : config(c) {
  const auto& boc = c.blockOutChannels;
  size_t n = c.downBlockTypes.size();
  if (n == 0 || boc.size() != n || c.upBlockTypes.size() != n)
    throw InvalidArgument("block_out_channels, down_block_types and up_block_types must have the same non-zero length");

  conv_in = registerModule("conv_in", std::make_shared<Conv2d>(c.inChannels, boc[0], c.convInKernel, 1, (c.convInKernel - 1) / 2));

  int64_t timestepInputDim;
  if (c.timeEmbeddingType == "fourier") {
    if (c.conditional) {
      timeEmbedDim = c.timeEmbeddingDim > 0 ? c.timeEmbeddingDim : boc[0] * 2;
      time_proj_fourier =
          registerModule("time_proj", std::make_shared<GaussianFourierProjection>(timeEmbedDim / 2, 1.0, false, c.flipSinToCos));
      timestepInputDim = timeEmbedDim;
    } else {
      timeEmbedDim = boc[0] * 4;
      time_proj_fourier = registerModule("time_proj", std::make_shared<GaussianFourierProjection>(boc[0], 16.0));
      timestepInputDim = 2 * boc[0];
    }
  } else if (c.timeEmbeddingType == "positional") {
    timeEmbedDim = c.conditional && c.timeEmbeddingDim > 0 ? c.timeEmbeddingDim : boc[0] * 4;
    time_proj_sinusoidal = registerModule("time_proj", std::make_shared<Timesteps>(boc[0], c.flipSinToCos, c.freqShift));
    timestepInputDim = boc[0];
  } else {
    throw InvalidArgument("unsupported time_embedding_type \"" + c.timeEmbeddingType + "\": expected \"positional\" or \"fourier\"");
  }
  // UNet2DModel's MLPs always use SiLU; UNet2DConditionModel's follow act_fn.
  std::string mlpAct = c.conditional ? c.actFn : "silu";
  time_embedding = registerModule("time_embedding", std::make_shared<TimestepEmbedding>(timestepInputDim, timeEmbedDim, mlpAct, -1,
                                                                                        c.conditional ? c.timestepPostAct : ""));
  if (c.classEmbedType.empty() && c.numClassEmbeds > 0) {
    class_embedding_table = registerModule("class_embedding", std::make_shared<Embedding>(c.numClassEmbeds, timeEmbedDim));
  } else if (c.classEmbedType == "timestep") {
    class_embedding_mlp = registerModule("class_embedding", std::make_shared<TimestepEmbedding>(timestepInputDim, timeEmbedDim, mlpAct));
  } else if (!c.classEmbedType.empty() && c.classEmbedType != "identity") {
    throw InvalidArgument("unsupported class_embed_type \"" + c.classEmbedType + "\": expected null, \"timestep\" or \"identity\"");
  }
  if (c.conditional && !c.timeEmbeddingActFn.empty()) timeEmbedAct = parseActivation(c.timeEmbeddingActFn, "time_embedding_act_fn");

  auto blockBase = [&](size_t i) {
    BlockOptions o;
    o.tembChannels = timeEmbedDim;
    o.resnetEps = c.normEps;
    o.actFn = c.actFn;
    o.groups = c.normNumGroups;
    o.downsamplePadding = c.downsamplePadding;
    o.resnetTimeScaleShift = c.resnetTimeScaleShift;
    o.dropout = c.dropout;
    o.useLinearProjection = c.useLinearProjection;
    o.upcastAttention = c.upcastAttention;
    o.crossAttentionDim = at_(c.crossAttentionDim, i, "cross_attention_dim");
    o.numAttentionHeads = at_(c.numAttentionHeads, i, "num_attention_heads");
    o.onlyCrossAttention = at_(c.onlyCrossAttention, i, "only_cross_attention");
    return o;
  };

  down_blocks = registerModule("down_blocks", std::make_shared<ModuleList<DownBlock>>());
  int64_t outputChannel = boc[0];
  size_t downDepth = 0;
  for (size_t i = 0; i < n; ++i) {
    BlockOptions o = blockBase(i);
    o.type = c.downBlockTypes[i];
    o.inChannels = outputChannel;
    outputChannel = boc[i];
    o.outChannels = outputChannel;
    o.numLayers = at_(c.layersPerBlock, i, "layers_per_block");
    o.transformerLayers = take(c.downTransformerLayers, &downDepth, o.numLayers, "downTransformerLayers");
    o.addSample = i + 1 < n;
    int64_t headDim = at_(c.attentionHeadDim, i, "attention_head_dim");
    o.attentionHeadDim = headDim > 0 ? headDim : outputChannel;
    down_blocks->push(std::make_shared<DownBlock>(o));
  }

  if (!c.midBlockType.empty()) {
    BlockOptions o = blockBase(n - 1);
    o.type = c.midBlockType;
    o.inChannels = boc.back();
    o.outChannels = boc.back();
    o.numLayers = 1;
    o.transformerLayers = {c.midTransformerLayers};
    o.outputScaleFactor = c.midBlockScaleFactor;
    o.attnGroups = c.attnNormNumGroups;
    o.addAttention = c.addAttention;
    int64_t headDim = c.attentionHeadDim.back();
    o.attentionHeadDim = headDim > 0 ? headDim : boc.back();
    mid_block = registerModule("mid_block", std::make_shared<MidBlock>(o));
  }

  up_blocks = registerModule("up_blocks", std::make_shared<ModuleList<UpBlock>>());
  outputChannel = boc[n - 1];
  size_t upDepth = 0;
  for (size_t i = 0; i < n; ++i) {
    size_t r = n - 1 - i;  // the matching down level
    BlockOptions o = blockBase(r);
    o.type = c.upBlockTypes[i];
    int64_t prevOutput = outputChannel;
    outputChannel = boc[r];
    o.prevOutputChannels = prevOutput;
    o.outChannels = outputChannel;
    o.inChannels = boc[r == 0 ? 0 : r - 1];
    o.numLayers = at_(c.layersPerBlock, r, "layers_per_block") + 1;
    o.transformerLayers = take(c.upTransformerLayers, &upDepth, o.numLayers, "upTransformerLayers");
    o.addSample = i + 1 < n;
    int64_t headDim = at_(c.attentionHeadDim, r, "attention_head_dim");
    o.attentionHeadDim = headDim > 0 ? headDim : outputChannel;
    up_blocks->push(std::make_shared<UpBlock>(o));
  }
  if (downDepth != c.downTransformerLayers.size() || upDepth != c.upTransformerLayers.size())
    throw InvalidArgument("config lists downTransformerLayers / upTransformerLayers have more entries than the blocks have layers");

  int64_t groupsOut = c.normNumGroups > 0 ? c.normNumGroups : std::min<int64_t>(boc[0] / 4, 32);
  conv_norm_out = registerModule("conv_norm_out", std::make_shared<GroupNorm>(groupsOut, boc[0], c.normEps));
  convAct = c.conditional ? parseActivation(c.actFn, "act_fn") : Activation::SiLU;
  conv_out = registerModule("conv_out", std::make_shared<Conv2d>(boc[0], c.outChannels, c.convOutKernel, 1, (c.convOutKernel - 1) / 2));
}

at::Tensor UNet::timeProjection(const at::Tensor& t) const {
  return time_proj_fourier ? time_proj_fourier->forward(t) : time_proj_sinusoidal->forward(t);
}

at::Tensor UNet::forward(const at::Tensor& sampleIn, const at::Tensor& timestep, const at::Tensor& context,
                         const at::Tensor& classLabels) const {
  if (sampleIn.dim() != 4 || sampleIn.size(1) != config.inChannels)
    throw InvalidArgument("Expected a sample of shape [batch, " + std::to_string(config.inChannels) + ", height, width] but received " +
                          shapeText(sampleIn));
  int64_t batch = sampleIn.size(0);
  if (!timestep.defined() || timestep.dim() > 1 || (timestep.dim() == 1 && timestep.size(0) != batch && timestep.size(0) != 1))
    throw InvalidArgument("Expected a timestep that is 0-d, [1] or [" + std::to_string(batch) + "] but received " +
                          (timestep.defined() ? shapeText(timestep) : std::string("nothing")));
  if (config.conditional) {
    if (!context.defined() || context.dim() != 3 || context.size(0) != batch || context.size(2) != config.crossAttentionDim.back())
      throw InvalidArgument("Expected encoder_hidden_states of shape [" + std::to_string(batch) + ", tokens, " +
                            std::to_string(config.crossAttentionDim.back()) + "] but received " +
                            (context.defined() ? shapeText(context) : std::string("none")));
  }
  bool classConditional = class_embedding_table || class_embedding_mlp || config.classEmbedType == "identity";
  if (classConditional && !classLabels.defined())
    throw InvalidArgument("class_labels should be provided when doing class conditioning (this model has a class embedding)");
  if (!classConditional && classLabels.defined())
    throw InvalidArgument("class_labels were given but this model has no class embedding (num_class_embeds / class_embed_type)");
  if (classLabels.defined() && (classLabels.dim() != 1 || classLabels.size(0) != batch))
    throw InvalidArgument("Expected class_labels of shape [" + std::to_string(batch) + "] but received " + shapeText(classLabels));

  at::ScalarType dtype = conv_in->weight.scalar_type();
  // Inputs follow the weights' dtype (a bf16 model takes float32 data as diffusers users pass it),
  // except under autocast, which picks the compute dtype op by op.
  bool castInputs = !autocastEnabled(conv_in->weight.device().type());
  at::Tensor sample = castInputs && sampleIn.is_floating_point() ? sampleIn.to(dtype) : sampleIn;
  at::Tensor ctx = castInputs && context.defined() && context.is_floating_point() ? context.to(dtype) : context;
  if (config.centerInputSample) sample = sample * 2.0 - 1.0;
  if (channelsLast) sample = sample.contiguous(at::MemoryFormat::ChannelsLast);
  bool recompute = gradientCheckpointing && at::GradMode::is_enabled();

  // As diffusers, timesteps and class labels may come from the host (a scheduler's timestep, a label list)
  // for a model on a GPU: they follow the sample.
  at::Tensor timesteps = (timestep.dim() == 0 ? timestep.unsqueeze(0) : timestep).to(sample.device()).expand({batch});
  at::Tensor emb = time_embedding->forward(timeProjection(timesteps).to(dtype));
  if (classLabels.defined()) {
    at::Tensor classEmb;
    at::Tensor labels = classLabels.to(sample.device());
    if (class_embedding_table)
      classEmb = class_embedding_table->forward(labels);
    else if (class_embedding_mlp)
      classEmb = class_embedding_mlp->forward(timeProjection(labels).to(dtype));
    else
      classEmb = labels;
    emb = emb + classEmb.to(dtype);
  }
  if (timeEmbedAct) emb = activate(*timeEmbedAct, emb);

  at::Tensor x = conv_in->forward(sample);
  std::vector<at::Tensor> skips{x};
  // Gradient checkpointing is per resnet and per attention inside the blocks, as diffusers' (whole
  // blocks would hold a whole block's activations while one is recomputed: 2.2 GB in SD 1.5 at 64²).
  for (auto& block : *down_blocks) x = block->forward(x, emb, ctx, skips, recompute);
  if (mid_block) x = mid_block->forward(x, emb, ctx, recompute);

  // Sizes that are not multiples of 2^upsamplers: each upsampler matches the next skip's size.
  int64_t factor = int64_t{1} << (up_blocks->size() - 1);
  bool matchSkipSize = sample.size(2) % factor != 0 || sample.size(3) % factor != 0;
  for (auto& block : *up_blocks) {
    std::vector<at::Tensor> mine;
    for (size_t i = 0; i < block->numResnets(); ++i) {
      mine.push_back(skips.back());
      skips.pop_back();
    }
    std::optional<std::vector<int64_t>> size;
    if (matchSkipSize && !skips.empty()) size = std::vector<int64_t>{skips.back().size(2), skips.back().size(3)};
    x = block->forward(x, emb, ctx, mine, size, recompute);
  }

  x = conv_out->forward(activate(convAct, conv_norm_out->forward(x)));
  if (time_proj_fourier && !config.conditional) x = x / timesteps.reshape({batch, 1, 1, 1});
  return x;
}

}  // namespace difftune
