#include "unet/resnet.h"

#include <ATen/ATen.h>

#include "tensor/failure.h"

namespace difftune {

ResnetBlock2D::ResnetBlock2D(const ResnetOptions& o) : options(o), act(parseActivation(o.nonLinearity, "act_fn")) {
  if (o.timeEmbeddingNorm != "default" && o.timeEmbeddingNorm != "scale_shift")
    throw InvalidArgument("Expected \"default\" or \"scale_shift\" for resnet_time_scale_shift but received \"" + o.timeEmbeddingNorm +
                          "\"");
  int64_t groupsOut = o.groupsOut > 0 ? o.groupsOut : o.groups;
  norm1 = registerModule("norm1", std::make_shared<GroupNorm>(o.groups, o.inChannels, o.eps));
  conv1 = registerModule("conv1", std::make_shared<Conv2d>(o.inChannels, o.outChannels, 3, 1, 1));
  if (o.tembChannels > 0) {
    int64_t projOut = o.timeEmbeddingNorm == "scale_shift" ? 2 * o.outChannels : o.outChannels;
    time_emb_proj = registerModule("time_emb_proj", std::make_shared<Linear>(o.tembChannels, projOut));
  }
  norm2 = registerModule("norm2", std::make_shared<GroupNorm>(groupsOut, o.outChannels, o.eps));
  conv2 = registerModule("conv2", std::make_shared<Conv2d>(o.outChannels, o.outChannels, 3, 1, 1));
  if (o.inChannels != o.outChannels)
    conv_shortcut = registerModule("conv_shortcut", std::make_shared<Conv2d>(o.inChannels, o.outChannels, 1, 1, 0));
}

at::Tensor ResnetBlock2D::forward(const at::Tensor& x, const at::Tensor& tembIn) const {
  at::Tensor h = conv1->forward(activate(act, norm1->forward(x)));
  at::Tensor temb;
  if (time_emb_proj && tembIn.defined()) {
    temb = options.skipTimeAct ? tembIn : activate(act, tembIn);
    temb = time_emb_proj->forward(temb).unsqueeze(-1).unsqueeze(-1);  // [B, C, 1, 1]
  }
  if (options.timeEmbeddingNorm == "default") {
    if (temb.defined()) h = h + temb;
    h = norm2->forward(h);
  } else {
    auto parts = temb.chunk(2, 1);
    h = norm2->forward(h);
    h = h * (1 + parts[0]) + parts[1];
  }
  h = conv2->forward(trainDropout(activate(act, h), options.dropout, training()));
  at::Tensor shortcut = conv_shortcut ? conv_shortcut->forward(x) : x;
  at::Tensor out = shortcut + h;
  return options.outputScaleFactor == 1.0 ? out : out / options.outputScaleFactor;
}

Downsample2D::Downsample2D(int64_t channels, bool useConv, int64_t outChannels, int64_t padding) : padding(padding) {
  if (useConv) conv = registerModule("conv", std::make_shared<Conv2d>(channels, outChannels, 3, 2, padding));
}

at::Tensor Downsample2D::forward(const at::Tensor& x) const {
  if (!conv) return at::avg_pool2d(x, {2, 2}, {2, 2});
  // padding 0 (the DDPM layout) pads right and bottom only, so the stride-2 conv sees every pixel.
  at::Tensor in = padding == 0 ? at::constant_pad_nd(x, {0, 1, 0, 1}, 0) : x;
  return conv->forward(in);
}

Upsample2D::Upsample2D(int64_t channels, bool useConv, int64_t outChannels) {
  if (useConv) conv = registerModule("conv", std::make_shared<Conv2d>(channels, outChannels, 3, 1, 1));
}

at::Tensor Upsample2D::forward(const at::Tensor& x, const std::optional<std::vector<int64_t>>& outputSize) const {
  // Nearest upsampling has no bf16 kernel in older torch: diffusers upcasts to float32 around it.
  at::Tensor in = x.scalar_type() == at::kBFloat16 ? x.to(at::kFloat) : x;
  at::Tensor up = outputSize ? at::upsample_nearest2d(in, *outputSize) : at::upsample_nearest2d(in, {in.size(2) * 2, in.size(3) * 2});
  if (x.scalar_type() == at::kBFloat16) up = up.to(at::kBFloat16);
  return conv ? conv->forward(up) : up;
}

}  // namespace difftune
