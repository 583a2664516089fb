#include "unet/unet_2d_blocks.h"

#include <ATen/ATen.h>

#include "nn/checkpoint.h"
#include "tensor/failure.h"

namespace difftune {

namespace {

ResnetOptions resnetOptions(const BlockOptions& o, int64_t in, int64_t out, int64_t groups) {
  ResnetOptions r;
  r.inChannels = in;
  r.outChannels = out;
  r.tembChannels = o.tembChannels;
  r.groups = groups;
  r.eps = o.resnetEps;
  r.dropout = o.dropout;
  r.nonLinearity = o.actFn;
  r.timeEmbeddingNorm = o.resnetTimeScaleShift;
  r.outputScaleFactor = o.outputScaleFactor;
  r.skipTimeAct = o.resnetSkipTimeAct;
  return r;
}

// UNet2DModel's attention blocks: heads = channels / attention_head_dim, a GroupNorm in front, residual.
std::shared_ptr<Attention> spatialAttention(const BlockOptions& o, int64_t channels, int64_t normGroups) {
  int64_t headDim = o.attentionHeadDim > 0 ? o.attentionHeadDim : channels;
  if (channels % headDim != 0)
    throw InvalidArgument("attention_head_dim " + std::to_string(headDim) + " does not divide the block's " + std::to_string(channels) +
                          " channels");
  AttentionOptions a;
  a.queryDim = channels;
  a.heads = channels / headDim;
  a.dimHead = headDim;
  a.rescaleOutputFactor = o.outputScaleFactor;
  a.eps = o.resnetEps;
  a.normNumGroups = normGroups;
  a.residualConnection = true;
  a.bias = true;
  a.upcastSoftmax = true;
  return std::make_shared<Attention>(a);
}

// Stable Diffusion's blocks: a Transformer2DModel with num_attention_heads heads of channels/heads each,
// o.transformerLayers[layer] deep.
std::shared_ptr<Transformer2DModel> transformer(const BlockOptions& o, int64_t channels, bool onlyCross, int64_t layer) {
  if (layer >= static_cast<int64_t>(o.transformerLayers.size()))
    throw InvalidArgument("the " + o.type + " block has " + std::to_string(o.transformerLayers.size()) + " transformer depths for " +
                          std::to_string(o.numLayers) + " layers");
  if (o.numAttentionHeads <= 0 || channels % o.numAttentionHeads != 0)
    throw InvalidArgument("num_attention_heads " + std::to_string(o.numAttentionHeads) + " does not divide the block's " +
                          std::to_string(channels) + " channels");
  Transformer2DOptions t;
  t.heads = o.numAttentionHeads;
  t.dimHead = channels / o.numAttentionHeads;
  t.inChannels = channels;
  t.numLayers = o.transformerLayers[layer];
  t.normNumGroups = o.groups;
  t.crossAttentionDim = o.crossAttentionDim;
  t.useLinearProjection = o.useLinearProjection;
  t.onlyCrossAttention = onlyCross;
  t.upcastAttention = o.upcastAttention;
  t.dropout = o.dropout;
  return std::make_shared<Transformer2DModel>(t);
}

// resnet(x, temb), recomputed in backward when `recompute`. `skip`, where given, is concatenated to x
// inside the recomputation (an up block's skip connection), so the concatenation is not kept either.
at::Tensor resnetLayer(bool recompute, ResnetBlock2D& resnet, const at::Tensor& x, const at::Tensor& temb,
                       const at::Tensor& skip = at::Tensor()) {
  ResnetBlock2D* r = &resnet;
  return checkpointLayer(
      recompute,
      [r](const std::vector<at::Tensor>& in) {
        return r->forward(in[2].defined() ? at::cat({in[0], in[2]}, 1) : in[0], in[1]);
      },
      {x, temb, skip}, resnet);
}

}  // namespace

bool isCrossAttentionBlock(const std::string& type) {
  return type == "CrossAttnDownBlock2D" || type == "CrossAttnUpBlock2D" || type == "UNetMidBlock2DCrossAttn";
}

void BlockAttentions::add(std::shared_ptr<Attention> a) {
  registerModule(std::to_string(size()), a);
  plain_.push_back(std::move(a));
}

void BlockAttentions::add(std::shared_ptr<Transformer2DModel> t) {
  registerModule(std::to_string(size()), t);
  transformers_.push_back(std::move(t));
}

at::Tensor BlockAttentions::forward(size_t i, const at::Tensor& x, const at::Tensor& context, bool recompute) const {
  if (plain_.empty()) {
    Transformer2DModel* t = transformers_.at(i).get();
    return checkpointLayer(
        recompute, [t](const std::vector<at::Tensor>& in) { return t->forward(in[0], in[1]); }, {x, context}, *t);
  }
  Attention* a = plain_.at(i).get();
  return checkpointLayer(
      recompute, [a](const std::vector<at::Tensor>& in) { return a->forward(in[0]); }, {x}, *a);
}

DownBlock::DownBlock(const BlockOptions& o) : options(o) {
  bool attn = o.type == "AttnDownBlock2D", cross = o.type == "CrossAttnDownBlock2D";
  if (!attn && !cross && o.type != "DownBlock2D")
    throw InvalidArgument("unsupported down block type \"" + o.type + "\": expected DownBlock2D, AttnDownBlock2D or CrossAttnDownBlock2D");
  resnets = registerModule("resnets", std::make_shared<ModuleList<ResnetBlock2D>>());
  if (attn || cross) attentions = registerModule("attentions", std::make_shared<BlockAttentions>());
  for (int64_t i = 0; i < o.numLayers; ++i) {
    int64_t in = i == 0 ? o.inChannels : o.outChannels;
    resnets->push(std::make_shared<ResnetBlock2D>(resnetOptions(o, in, o.outChannels, o.groups)));
    if (attn) attentions->add(spatialAttention(o, o.outChannels, o.groups));
    if (cross) attentions->add(transformer(o, o.outChannels, o.onlyCrossAttention, i));
  }
  if (o.addSample) {
    downsamplers = registerModule("downsamplers", std::make_shared<ModuleList<Downsample2D>>());
    downsamplers->push(std::make_shared<Downsample2D>(o.outChannels, true, o.outChannels, o.downsamplePadding));
  }
}

at::Tensor DownBlock::forward(const at::Tensor& xIn, const at::Tensor& temb, const at::Tensor& context, std::vector<at::Tensor>& skips,
                              bool recompute) const {
  at::Tensor x = xIn;
  for (size_t i = 0; i < resnets->size(); ++i) {
    x = resnetLayer(recompute, (*resnets)[i], x, temb);
    if (attentions) x = attentions->forward(i, x, context, recompute);
    skips.push_back(x);
  }
  if (downsamplers) {
    x = (*downsamplers)[0].forward(x);
    skips.push_back(x);
  }
  return x;
}

MidBlock::MidBlock(const BlockOptions& o) : options(o) {
  bool cross = o.type == "UNetMidBlock2DCrossAttn";
  if (!cross && o.type != "UNetMidBlock2D")
    throw InvalidArgument("unsupported mid_block_type \"" + o.type + "\": expected UNetMidBlock2D, UNetMidBlock2DCrossAttn or null");
  int64_t c = o.inChannels;
  int64_t groups = o.groups > 0 ? o.groups : std::min<int64_t>(c / 4, 32);
  resnets = registerModule("resnets", std::make_shared<ModuleList<ResnetBlock2D>>());
  resnets->push(std::make_shared<ResnetBlock2D>(resnetOptions(o, c, c, groups)));
  if (cross || o.addAttention) attentions = registerModule("attentions", std::make_shared<BlockAttentions>());
  for (int64_t i = 0; i < o.numLayers; ++i) {
    if (cross) {
      BlockOptions t = o;
      t.groups = groups;
      attentions->add(transformer(t, c, false, i));
    } else if (o.addAttention) {
      // attn_norm_num_groups, else the resnet groups ("default" time scale shift).
      int64_t attnGroups = o.attnGroups > 0 ? o.attnGroups : (o.resnetTimeScaleShift == "default" ? groups : -1);
      attentions->add(spatialAttention(o, c, attnGroups));
    }
    resnets->push(std::make_shared<ResnetBlock2D>(resnetOptions(o, c, c, groups)));
  }
}

at::Tensor MidBlock::forward(const at::Tensor& xIn, const at::Tensor& temb, const at::Tensor& context, bool recompute) const {
  at::Tensor x = resnetLayer(recompute, (*resnets)[0], xIn, temb);
  for (size_t i = 1; i < resnets->size(); ++i) {
    if (attentions) x = attentions->forward(i - 1, x, context, recompute);
    x = resnetLayer(recompute, (*resnets)[i], x, temb);
  }
  return x;
}

UpBlock::UpBlock(const BlockOptions& o) : options(o) {
  bool attn = o.type == "AttnUpBlock2D", cross = o.type == "CrossAttnUpBlock2D";
  if (!attn && !cross && o.type != "UpBlock2D")
    throw InvalidArgument("unsupported up block type \"" + o.type + "\": expected UpBlock2D, AttnUpBlock2D or CrossAttnUpBlock2D");
  resnets = registerModule("resnets", std::make_shared<ModuleList<ResnetBlock2D>>());
  if (attn || cross) attentions = registerModule("attentions", std::make_shared<BlockAttentions>());
  for (int64_t i = 0; i < o.numLayers; ++i) {
    int64_t skip = i == o.numLayers - 1 ? o.inChannels : o.outChannels;
    int64_t in = i == 0 ? o.prevOutputChannels : o.outChannels;
    resnets->push(std::make_shared<ResnetBlock2D>(resnetOptions(o, in + skip, o.outChannels, o.groups)));
    if (attn) attentions->add(spatialAttention(o, o.outChannels, o.groups));
    if (cross) attentions->add(transformer(o, o.outChannels, o.onlyCrossAttention, i));
  }
  if (o.addSample) {
    upsamplers = registerModule("upsamplers", std::make_shared<ModuleList<Upsample2D>>());
    upsamplers->push(std::make_shared<Upsample2D>(o.outChannels, true, o.outChannels));
  }
}

at::Tensor UpBlock::forward(const at::Tensor& xIn, const at::Tensor& temb, const at::Tensor& context, const std::vector<at::Tensor>& skips,
                            const std::optional<std::vector<int64_t>>& upsampleSize, bool recompute) const {
  at::Tensor x = xIn;
  for (size_t i = 0; i < resnets->size(); ++i) {
    x = resnetLayer(recompute, (*resnets)[i], x, temb, skips.at(i));
    if (attentions) x = attentions->forward(i, x, context, recompute);
  }
  if (upsamplers) x = (*upsamplers)[0].forward(x, upsampleSize);
  return x;
}

}  // namespace difftune
