#include "binding/data_wrap.h"

#include <optional>
#include <vector>

#include "binding/args.h"
#include "binding/errors.h"
#include "binding/tensor_wrap.h"
#include "data/images.h"

namespace difftune {

namespace {

// The conversion runs on a libuv worker, not on the compute thread: a prefetched batch becomes a
// tensor while the previous training step still runs, so the loop never waits for it.
class ImagesWorker : public Napi::AsyncWorker {
 public:
  ImagesWorker(Napi::Env env, std::vector<uint8_t> pixels, std::vector<int64_t> shape)
      : Napi::AsyncWorker(env, "difftune:imagesToTensor"),
        deferred_(Napi::Promise::Deferred::New(env)),
        pixels_(std::move(pixels)),
        shape_(std::move(shape)) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      result_ = imagesToFloat(pixels_, shape_);
    } catch (...) {
      failure_ = classifyCurrentException();
      SetError(failure_->message);
    }
    pixels_ = {};
  }

  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(TensorWrap::create(env, *result_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(toJsError(env, classifyCurrentException()).Value());
    }
  }

  void OnError(const Napi::Error&) override {
    deferred_.Reject(toJsError(Env(), failure_.value_or(Failure{"ERR_NATIVE", "image conversion failed"})).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<uint8_t> pixels_;
  std::vector<int64_t> shape_;
  std::optional<Tensor> result_;
  std::optional<Failure> failure_;
};

// imagesToTensor(pixels: Uint8Array, shape: [N, H, W, C]): the bytes are copied here, on the main
// thread (JS memory may be moved or freed once this call returns).
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
    const uint8_t* begin = static_cast<const uint8_t*>(bytes.data);
    auto* worker = new ImagesWorker(env, std::vector<uint8_t>(begin, begin + bytes.length), std::move(shape));  // deletes itself when done
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

}  // namespace

void registerData(Napi::Env env, Napi::Object exports) {
  exports.Set("imagesToTensor", Napi::Function::New<imagesToTensorJs>(env, "imagesToTensor"));
}

}  // namespace difftune
