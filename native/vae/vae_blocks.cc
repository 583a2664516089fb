#include "vae/vae_blocks.h"

#include <ATen/ATen.h>

namespace difftune {

namespace {

ResnetOptions resnet(int64_t in, int64_t out, const VaeBlockOptions& o) {
  ResnetOptions r;
  r.inChannels = in;
  r.outChannels = out;
  r.tembChannels = 0;  // temb_channels=None: no time_emb_proj
  r.groups = o.groups;
  r.eps = kVaeNormEps;
  r.nonLinearity = o.actFn;
  return r;
}

}  // namespace

DownEncoderBlock2D::DownEncoderBlock2D(const VaeBlockOptions& o) {
  resnets = registerModule("resnets", std::make_shared<ModuleList<ResnetBlock2D>>());
  for (int64_t i = 0; i < o.numLayers; ++i)
    resnets->push(std::make_shared<ResnetBlock2D>(resnet(i == 0 ? o.inChannels : o.outChannels, o.outChannels, o)));
  if (o.addSample) {
    downsamplers = registerModule("downsamplers", std::make_shared<ModuleList<Downsample2D>>());
    downsamplers->push(std::make_shared<Downsample2D>(o.outChannels, true, o.outChannels, /*padding=*/0));
  }
}

at::Tensor DownEncoderBlock2D::forward(const at::Tensor& xIn) const {
  at::Tensor x = xIn;
  for (auto& r : *resnets) x = r->forward(x, at::Tensor());
  if (downsamplers) x = (*downsamplers)[0].forward(x);  // [B, C, floor(H/2), floor(W/2)]
  return x;
}

UpDecoderBlock2D::UpDecoderBlock2D(const VaeBlockOptions& o) {
  resnets = registerModule("resnets", std::make_shared<ModuleList<ResnetBlock2D>>());
  for (int64_t i = 0; i < o.numLayers; ++i)
    resnets->push(std::make_shared<ResnetBlock2D>(resnet(i == 0 ? o.inChannels : o.outChannels, o.outChannels, o)));
  if (o.addSample) {
    upsamplers = registerModule("upsamplers", std::make_shared<ModuleList<Upsample2D>>());
    upsamplers->push(std::make_shared<Upsample2D>(o.outChannels, true, o.outChannels));
  }
}

at::Tensor UpDecoderBlock2D::forward(const at::Tensor& xIn) const {
  at::Tensor x = xIn;
  for (auto& r : *resnets) x = r->forward(x, at::Tensor());
  if (upsamplers) x = (*upsamplers)[0].forward(x, std::nullopt);  // [B, C, 2H, 2W]
  return x;
}

std::shared_ptr<MidBlock> vaeMidBlock(int64_t channels, int64_t groups, const std::string& actFn, bool addAttention) {
  BlockOptions b;
  b.type = "UNetMidBlock2D";
  b.numLayers = 1;
  b.inChannels = channels;
  b.outChannels = channels;
  b.tembChannels = 0;
  b.resnetEps = kVaeNormEps;
  b.actFn = actFn;
  b.groups = groups;
  b.attnGroups = groups;
  b.attentionHeadDim = channels;  // one head spanning every channel
  b.addAttention = addAttention;
  return std::make_shared<MidBlock>(b);
}

}  // namespace difftune
