#include "vae/autoencoder_kl.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <functional>
#include <vector>

#include "tensor/failure.h"

namespace difftune {

namespace {

void checkConfig(const VaeConfig& c) {
  size_t n = c.blockOutChannels.size();
  if (n == 0) throw InvalidArgument("block_out_channels must not be empty");
  if (c.downBlockTypes.size() != n || c.upBlockTypes.size() != n)
    throw InvalidArgument("down_block_types (" + std::to_string(c.downBlockTypes.size()) + "), up_block_types (" +
                          std::to_string(c.upBlockTypes.size()) + ") and block_out_channels (" + std::to_string(n) +
                          ") must have the same length");
  for (const auto& t : c.downBlockTypes)
    if (t != "DownEncoderBlock2D") throw InvalidArgument("unsupported VAE down block type \"" + t + "\": expected DownEncoderBlock2D");
  for (const auto& t : c.upBlockTypes)
    if (t != "UpDecoderBlock2D") throw InvalidArgument("unsupported VAE up block type \"" + t + "\": expected UpDecoderBlock2D");
}

}  // namespace

Encoder::Encoder(const VaeConfig& c) {
  checkConfig(c);
  const auto& ch = c.blockOutChannels;
  conv_in = registerModule("conv_in", std::make_shared<Conv2d>(c.inChannels, ch[0], 3, 1, 1));
  down_blocks = registerModule("down_blocks", std::make_shared<ModuleList<DownEncoderBlock2D>>());
  for (size_t i = 0; i < ch.size(); ++i) {
    VaeBlockOptions o;
    o.inChannels = i == 0 ? ch[0] : ch[i - 1];
    o.outChannels = ch[i];
    o.numLayers = c.layersPerBlock;
    o.groups = c.normNumGroups;
    o.actFn = c.actFn;
    o.addSample = i + 1 < ch.size();
    down_blocks->push(std::make_shared<DownEncoderBlock2D>(o));
  }
  mid_block = registerModule("mid_block", vaeMidBlock(ch.back(), c.normNumGroups, c.actFn, c.midBlockAddAttention));
  conv_norm_out = registerModule("conv_norm_out", std::make_shared<GroupNorm>(c.normNumGroups, ch.back(), kVaeNormEps));
  conv_out = registerModule("conv_out", std::make_shared<Conv2d>(ch.back(), 2 * c.latentChannels, 3, 1, 1));  // double_z
}

at::Tensor Encoder::forward(const at::Tensor& xIn) const {
  at::Tensor x = conv_in->forward(xIn);
  for (auto& b : *down_blocks) x = b->forward(x);
  x = mid_block->forward(x, at::Tensor(), at::Tensor());
  // conv_act is SiLU whatever act_fn says (diffusers hard-codes it).
  return conv_out->forward(at::silu(conv_norm_out->forward(x)));
}

Decoder::Decoder(const VaeConfig& c) {
  checkConfig(c);
  std::vector<int64_t> ch(c.blockOutChannels.rbegin(), c.blockOutChannels.rend());
  conv_in = registerModule("conv_in", std::make_shared<Conv2d>(c.latentChannels, ch[0], 3, 1, 1));
  // diffusers registers up_blocks (empty) before the mid block: keep its key order.
  up_blocks = registerModule("up_blocks", std::make_shared<ModuleList<UpDecoderBlock2D>>());
  mid_block = registerModule("mid_block", vaeMidBlock(ch[0], c.normNumGroups, c.actFn, c.midBlockAddAttention));
  for (size_t i = 0; i < ch.size(); ++i) {
    VaeBlockOptions o;
    o.inChannels = i == 0 ? ch[0] : ch[i - 1];
    o.outChannels = ch[i];
    o.numLayers = c.layersPerBlock + 1;
    o.groups = c.normNumGroups;
    o.actFn = c.actFn;
    o.addSample = i + 1 < ch.size();
    up_blocks->push(std::make_shared<UpDecoderBlock2D>(o));
  }
  conv_norm_out = registerModule("conv_norm_out", std::make_shared<GroupNorm>(c.normNumGroups, ch.back(), kVaeNormEps));
  conv_out = registerModule("conv_out", std::make_shared<Conv2d>(ch.back(), c.outChannels, 3, 1, 1));
}

at::Tensor Decoder::forward(const at::Tensor& z) const {
  at::Tensor x = conv_in->forward(z);
  x = mid_block->forward(x, at::Tensor(), at::Tensor());
  for (auto& b : *up_blocks) x = b->forward(x);
  return conv_out->forward(at::silu(conv_norm_out->forward(x)));
}

AutoencoderKL::AutoencoderKL(const VaeConfig& c) : config(c) {
  encoder = registerModule("encoder", std::make_shared<Encoder>(c));
  decoder = registerModule("decoder", std::make_shared<Decoder>(c));
  if (c.useQuantConv)
    quant_conv = registerModule("quant_conv", std::make_shared<Conv2d>(2 * c.latentChannels, 2 * c.latentChannels, 1, 1, 0));
  if (c.usePostQuantConv)
    post_quant_conv = registerModule("post_quant_conv", std::make_shared<Conv2d>(c.latentChannels, c.latentChannels, 1, 1, 0));
}

at::Tensor AutoencoderKL::encodeMoments(const at::Tensor& x) const {
  at::Tensor moments = encoder->forward(x);
  return quant_conv ? quant_conv->forward(moments) : moments;
}

std::pair<at::Tensor, at::Tensor> AutoencoderKL::splitMoments(const at::Tensor& moments) {
  auto parts = moments.chunk(2, 1);  // mean, logvar: [B, latent_channels, h, w] each
  return {parts[0], at::clamp(parts[1], -30.0, 20.0)};
}

std::pair<at::Tensor, at::Tensor> AutoencoderKL::encode(const at::Tensor& x) const { return splitMoments(encodeMoments(x)); }

at::Tensor AutoencoderKL::decode(const at::Tensor& z) const { return decoder->forward(post_quant_conv ? post_quant_conv->forward(z) : z); }

namespace {

// diffusers' blend_v (dim 2) and blend_h (dim 3), in place on b as there: b's first `extent` rows
// (columns) fade from a's last ones to b's own, weight y / extent. The same float32-tensor × double
// scalar arithmetic as the Python loop, row by row.
at::Tensor blend(const at::Tensor& a, at::Tensor b, int64_t extent, int64_t dim) {
  extent = std::min({a.size(dim), b.size(dim), extent});
  for (int64_t y = 0; y < extent; ++y) {
    double w = static_cast<double>(y) / static_cast<double>(extent);
    b.select(dim, y).copy_(a.select(dim, a.size(dim) - extent + y) * (1 - w) + b.select(dim, y) * w);
  }
  return b;
}

// The loop _tiled_encode and tiled_decode share: tiles of `tileIn` input pixels every `stride`, each
// through `fn`; then each tile blended with the (already blended) tile above and the one to its left,
// cropped to rowLimit × rowLimit, and the crops joined row by row.
at::Tensor tiledApply(const at::Tensor& x, int64_t tileIn, int64_t stride, int64_t blendExtent, int64_t rowLimit,
                      const std::function<at::Tensor(const at::Tensor&)>& fn) {
  std::vector<std::vector<at::Tensor>> rows;
  for (int64_t i = 0; i < x.size(2); i += stride) {
    std::vector<at::Tensor> row;
    for (int64_t j = 0; j < x.size(3); j += stride) row.push_back(fn(x.slice(2, i, i + tileIn).slice(3, j, j + tileIn)));
    rows.push_back(std::move(row));
  }
  std::vector<at::Tensor> resultRows;
  for (size_t i = 0; i < rows.size(); ++i) {
    std::vector<at::Tensor> resultRow;
    for (size_t j = 0; j < rows[i].size(); ++j) {
      at::Tensor tile = rows[i][j];
      if (i > 0) tile = blend(rows[i - 1][j], tile, blendExtent, 2);
      if (j > 0) tile = blend(rows[i][j - 1], tile, blendExtent, 3);
      resultRow.push_back(tile.slice(2, 0, rowLimit).slice(3, 0, rowLimit));
    }
    resultRows.push_back(at::cat(resultRow, 3));
  }
  return at::cat(resultRows, 2);
}

// Python's int() of a positive double: the tile arithmetic of diffusers in float64, truncated.
int64_t truncated(double v) { return static_cast<int64_t>(v); }

void checkTiling(const VaeTiling& t) {
  if (t.tileSampleSize < 1 || t.tileLatentSize < 1 || !(t.overlap >= 0 && t.overlap < 1))
    throw InvalidArgument("Expected VAE tiles of at least 1 pixel and 1 latent and an overlap in [0, 1) but received " +
                          std::to_string(t.tileSampleSize) + " pixels, " + std::to_string(t.tileLatentSize) + " latents, overlap " +
                          std::to_string(t.overlap));
}

}  // namespace

at::Tensor AutoencoderKL::tiledEncodeMoments(const at::Tensor& x, const VaeTiling& t) const {
  checkTiling(t);
  int64_t stride = truncated(static_cast<double>(t.tileSampleSize) * (1 - t.overlap));
  int64_t blendExtent = truncated(static_cast<double>(t.tileLatentSize) * t.overlap);
  if (stride < 1)
    throw InvalidArgument("VAE tiles of " + std::to_string(t.tileSampleSize) + " pixels with overlap " + std::to_string(t.overlap) +
                          " do not advance: use larger tiles or less overlap");
  return tiledApply(x, t.tileSampleSize, stride, blendExtent, t.tileLatentSize - blendExtent,
                    [this](const at::Tensor& tile) { return encodeMoments(tile); });
}

at::Tensor AutoencoderKL::tiledDecode(const at::Tensor& z, const VaeTiling& t) const {
  checkTiling(t);
  int64_t stride = truncated(static_cast<double>(t.tileLatentSize) * (1 - t.overlap));
  int64_t blendExtent = truncated(static_cast<double>(t.tileSampleSize) * t.overlap);
  if (stride < 1)
    throw InvalidArgument("VAE tiles of " + std::to_string(t.tileLatentSize) + " latents with overlap " + std::to_string(t.overlap) +
                          " do not advance: use larger tiles or less overlap");
  return tiledApply(z, t.tileLatentSize, stride, blendExtent, t.tileSampleSize - blendExtent,
                    [this](const at::Tensor& tile) { return decode(tile); });
}

}  // namespace difftune
