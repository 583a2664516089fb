#include "binding/data_wrap.h"

#include <vector>

#include "binding/addon_state.h"
#include "binding/args.h"
#include "binding/errors.h"
#include "binding/tensor_wrap.h"
#include "data/images.h"

namespace difftune {

namespace {

Napi::Value tensorResult(Napi::Env env, Tensor& t) { return TensorWrap::create(env, t); }

// imagesToTensor(pixels: Uint8Array, shape: [N, H, W, C]): the bytes are copied here, on the main
// thread (JS memory may not be read from the compute thread); the conversion runs there.
Napi::Value imagesToTensorJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return boundary(env, [&]() -> Napi::Value {
    ByteView bytes = expectBytes(argAt(info, 0), "pixels");
    Napi::Value shapeArg = argAt(info, 1);
    std::vector<int64_t> shape = expectShape(shapeArg, "shape");
    if (shape.size() != 4 || shape[3] < 1 || shape[3] > 4) failArg("a shape [N, H, W, C] with 1 to 4 channels", "shape", shapeArg);
    size_t expectedBytes = 1;
    for (int64_t d : shape) expectedBytes *= static_cast<size_t>(d);
    if (expectedBytes != bytes.length)
      failArg("a Uint8Array of " + std::to_string(expectedBytes) + " bytes (N·H·W·C of shape)", "pixels", argAt(info, 0));
    Tensor images = Tensor::fromHost(bytes.data, bytes.length, DType::UInt8, shape);
    return addonState(env).compute->run(env, [images] { return imagesToFloat(images); }, tensorResult);
  });
}

}  // namespace

void registerData(Napi::Env env, Napi::Object exports) {
  exports.Set("imagesToTensor", Napi::Function::New<imagesToTensorJs>(env, "imagesToTensor"));
}

}  // namespace difftune
