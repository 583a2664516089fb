// diffusers' PNDMScheduler (Liu et al. 2022, pseudo numerical methods): Runge–Kutta warm-up steps
// (PRK), then linear multistep (PLMS); with skip_prk_steps (the Stable Diffusion 1.x default) PLMS
// starts at once, evaluating the first timestep twice.
#include <ATen/ATen.h>

#include <cmath>

#include "schedulers/families.h"
#include "schedulers/scheduler_base.h"
#include "schedulers/timestep_spacing.h"
#include "tensor/failure.h"
#include "tensor/tensor_data.h"

namespace difftune {

namespace {

constexpr int64_t kPndmOrder = 4;

class PNDMScheduler final : public SchedulerBase {
 public:
  explicit PNDMScheduler(const SchedulerConfig& config)
      : SchedulerBase(config), finalAlphaCumprod_(config.setAlphaToOne ? 1.0f : alphaProd(0)) {
    if (config.predictionType == PredictionType::Sample) {
      throw InvalidArgument("prediction_type \"sample\" is not supported by PNDMScheduler (diffusers supports epsilon and v_prediction)");
    }
  }

  void setTimesteps(int64_t n) override {
    if (n < 1 || n > config_.numTrainTimesteps) {
      throw InvalidArgument("Expected an integer in [1, " + std::to_string(config_.numTrainTimesteps) +
                            "] (num_train_timesteps) for numInferenceSteps but received " + std::to_string(n));
    }
    const std::vector<int64_t> base = pndmBaseTimesteps(config_.timestepSpacing, config_.numTrainTimesteps, n, config_.stepsOffset);
    const int64_t count = static_cast<int64_t>(base.size());
    prkTimesteps_.clear();
    std::vector<int64_t> plms;
    if (config_.skipPrkSteps) {
      // [:-1] + [-2:-1] + [-1:], reversed: the second-to-last base timestep appears twice.
      plms.assign(base.begin(), base.end() - (count > 0 ? 1 : 0));
      if (count >= 2) plms.push_back(base[static_cast<size_t>(count - 2)]);
      if (count >= 1) plms.push_back(base.back());
      std::reverse(plms.begin(), plms.end());
    } else {
      if (count < kPndmOrder) {
        throw InvalidArgument("Expected at least 4 for numInferenceSteps with PRK warm-up steps (skip_prk_steps false) but received " +
                              std::to_string(n));
      }
      // The last 4 base timesteps, each followed by its half step, as diffusers builds them.
      const int64_t half = config_.numTrainTimesteps / n / 2;
      std::vector<int64_t> prk;
      for (int64_t k = count - kPndmOrder; k < count; ++k) {
        prk.push_back(base[static_cast<size_t>(k)]);
        prk.push_back(base[static_cast<size_t>(k)] + half);
      }
      // prk[:-1].repeat(2)[1:-1][::-1]
      std::vector<int64_t> repeated;
      for (size_t k = 0; k + 1 < prk.size(); ++k) {
        repeated.push_back(prk[k]);
        repeated.push_back(prk[k]);
      }
      prkTimesteps_.assign(repeated.begin() + 1, repeated.end() - 1);
      std::reverse(prkTimesteps_.begin(), prkTimesteps_.end());
      plms.assign(base.begin(), base.end() - 3);
      std::reverse(plms.begin(), plms.end());
    }
    timesteps_ = prkTimesteps_;
    timesteps_.insert(timesteps_.end(), plms.begin(), plms.end());
    numInferenceSteps_ = n;
    ets_.clear();
    counter_ = 0;
    curModelOutput_ = at::Tensor();
    curSample_ = at::Tensor();
  }

  ScheduleInfo schedule() const override { return {wrap(at::tensor(timesteps_, at::kLong)), Tensor(), 1.0, numInferenceSteps_}; }

  Tensor scaleModelInput(const Tensor& sample, double) override {
    floatTensorArg(sample, "sample");
    return sample;
  }

  StepResult step(const Tensor& modelOutputArg, double timestep, const Tensor& sampleArg, const StepOptions&) override {
    if (numInferenceSteps_ == 0) throw InvalidArgument("PNDMScheduler.step: call setTimesteps() first");
    const at::Tensor& modelOutput = floatTensorArg(modelOutputArg, "modelOutput");
    const at::Tensor& sample = floatTensorArg(sampleArg, "sample");
    expectSameShape(sample, "sample", modelOutput, "modelOutput");
    const int64_t t = integerTimestep(timestep);
    const bool prk = counter_ < static_cast<int64_t>(prkTimesteps_.size()) && !config_.skipPrkSteps;
    at::Tensor prev = prk ? stepPrk(modelOutput, t, sample) : stepPlms(modelOutput, t, sample);
    return {wrap(prev), Tensor()};
  }

  Tensor addNoise(const Tensor& original, const Tensor& noise, const Tensor& timesteps) override {
    const at::Tensor& x0 = floatTensorArg(original, "originalSamples");
    const at::Tensor& n = floatTensorArg(noise, "noise");
    expectSameShape(x0, "originalSamples", n, "noise");
    return wrap(addNoiseAt(x0, n, trainingTimesteps(timesteps, x0)));
  }

  Tensor getVelocity(const Tensor&, const Tensor&, const Tensor&) override {
    throw InvalidArgument(
        "PNDMScheduler has no getVelocity (nor does diffusers'); compute v-prediction targets with a DDPM or DDIM scheduler");
  }

 private:
  // Runge–Kutta: four model evaluations per step, combined with weights 1/6, 1/3, 1/3, 1/6.
  at::Tensor stepPrk(const at::Tensor& modelOutputIn, int64_t timestep, const at::Tensor& sample) {
    const int64_t diffToPrev = counter_ % 2 ? 0 : config_.numTrainTimesteps / numInferenceSteps_ / 2;
    const int64_t prevTimestep = timestep - diffToPrev;
    const int64_t t = prkTimesteps_[static_cast<size_t>(counter_ / 4 * 4)];
    at::Tensor modelOutput = modelOutputIn;
    auto accumulate = [&](double weight) {
      at::Tensor term = weight * modelOutput;
      curModelOutput_ = curModelOutput_.defined() ? curModelOutput_ + term : term;
    };
    switch (counter_ % 4) {
      case 0:
        accumulate(1.0 / 6);
        ets_.push_back(modelOutput);
        curSample_ = sample;
        break;
      case 1:
      case 2: accumulate(1.0 / 3); break;
      case 3: {
        at::Tensor term = 1.0 / 6 * modelOutput;
        modelOutput = curModelOutput_.defined() ? curModelOutput_ + term : term;
        curModelOutput_ = at::Tensor();
        break;
      }
    }
    const at::Tensor& cur = curSample_.defined() ? curSample_ : sample;
    at::Tensor prev = prevSample(cur, t, prevTimestep, modelOutput);
    ++counter_;
    return prev;
  }

  // Adams–Bashforth with up to four previous model outputs.
  at::Tensor stepPlms(const at::Tensor& modelOutputIn, int64_t timestepIn, const at::Tensor& sampleIn) {
    if (!config_.skipPrkSteps && ets_.size() < 3) {
      throw InvalidArgument(
          "PNDMScheduler.step: PLMS steps need the 12 PRK warm-up steps first; iterate scheduler.timesteps from the start");
    }
    int64_t timestep = timestepIn;
    int64_t prevTimestep = timestep - config_.numTrainTimesteps / numInferenceSteps_;
    if (counter_ != 1) {
      if (ets_.size() > 3) ets_.erase(ets_.begin(), ets_.end() - 3);
      ets_.push_back(modelOutputIn);
    } else {
      prevTimestep = timestep;
      timestep = timestep + config_.numTrainTimesteps / numInferenceSteps_;
    }

    at::Tensor modelOutput = modelOutputIn;
    at::Tensor sample = sampleIn;
    const size_t n = ets_.size();
    if (n == 1 && counter_ == 0) {
      curSample_ = sample;
    } else if (n == 1 && counter_ == 1) {
      modelOutput = (modelOutput + ets_[0]) / 2;
      sample = curSample_;
      curSample_ = at::Tensor();
    } else if (n == 2) {
      modelOutput = (3 * ets_[n - 1] - ets_[n - 2]) / 2;
    } else if (n == 3) {
      modelOutput = (23 * ets_[n - 1] - 16 * ets_[n - 2] + 5 * ets_[n - 3]) / 12;
    } else {
      modelOutput = (1.0 / 24) * (55 * ets_[n - 1] - 59 * ets_[n - 2] + 37 * ets_[n - 3] - 9 * ets_[n - 4]);
    }
    if (!sample.defined()) throw InvalidArgument("PNDMScheduler.step: steps must follow scheduler.timesteps in order");
    at::Tensor prev = prevSample(sample, timestep, prevTimestep, modelOutput);
    ++counter_;
    return prev;
  }

  // Eq. 9 of the PNDM paper: x_{t−δ} from x_t and epsilon.
  at::Tensor prevSample(const at::Tensor& sample, int64_t timestep, int64_t prevTimestep, at::Tensor modelOutput) const {
    const float alphaProdT = alphaProd(timestep);
    const float alphaProdTPrev = prevTimestep >= 0 ? alphaProd(prevTimestep) : finalAlphaCumprod_;
    const float betaProdT = 1 - alphaProdT;
    const float betaProdTPrev = 1 - alphaProdTPrev;
    if (config_.predictionType == PredictionType::VPrediction) {
      modelOutput = std::sqrt(alphaProdT) * modelOutput + std::sqrt(betaProdT) * sample;
    }
    const float sampleCoeff = std::sqrt(alphaProdTPrev / alphaProdT);
    const float denom = alphaProdT * std::sqrt(betaProdTPrev) + std::sqrt(alphaProdT * betaProdT * alphaProdTPrev);
    return sampleCoeff * sample - (alphaProdTPrev - alphaProdT) * modelOutput / denom;
  }

  const float finalAlphaCumprod_;
  std::vector<int64_t> prkTimesteps_;
  std::vector<int64_t> timesteps_;
  int64_t numInferenceSteps_ = 0;
  std::vector<at::Tensor> ets_;
  int64_t counter_ = 0;
  at::Tensor curModelOutput_;  // undefined stands for diffusers' initial 0
  at::Tensor curSample_;
};

}  // namespace

std::unique_ptr<Scheduler> makePNDMScheduler(const SchedulerConfig& config) { return std::make_unique<PNDMScheduler>(config); }

}  // namespace difftune
