// diffusers' KDPM2DiscreteScheduler and KDPM2AncestralDiscreteScheduler (k-diffusion's sample_dpm_2
// and sample_dpm_2_ancestral): each step evaluates the model at σ_i and at the geometric midpoint
// σ_interpol = exp(lerp(log σ_i, log σ_{i+1} (σ_down for the ancestral one), 1/2)), so the schedule
// alternates full and midpoint timesteps. The ancestral variant adds σ_up-scaled noise after each
// second evaluation (and draws nothing in the first). The sigma tables are computed with the same
// torch operations as diffusers, so they match to the bit.
#include <ATen/ATen.h>

#include <cmath>

#include "schedulers/families.h"
#include "schedulers/sigma_schedule.h"
#include "schedulers/sigma_scheduler_base.h"
#include "tensor/failure.h"
#include "tensor/tensor_data.h"

namespace difftune {

namespace {

// cat([a[:1], a[1:].repeat_interleave(2), a[-1:]]).
at::Tensor interleave(const at::Tensor& a) { return at::cat({a.slice(0, 0, 1), a.slice(0, 1).repeat_interleave(2), a.slice(0, -1)}); }

std::vector<float> hostFloats(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

class KDPM2Scheduler final : public SigmaScheduler {
 public:
  KDPM2Scheduler(const SchedulerConfig& config, bool ancestral)
      : SigmaScheduler(config, ancestral ? "KDPM2AncestralDiscreteScheduler" : "KDPM2DiscreteScheduler"), ancestral_(ancestral) {
    if (config.predictionType == PredictionType::Sample) {
      throw InvalidArgument("prediction_type \"sample\" is not supported by " + name_ + " (nor by diffusers')");
    }
    setTimesteps(config.numTrainTimesteps);
    numInferenceSteps_ = 0;
  }

  void setTimesteps(int64_t n) override {
    checkStepCount(n);
    Grid grid = inferenceGrid(n, true);
    const std::vector<float> logSigmas = logOfFloat32(trainingSigmas());

    std::vector<float> base;
    for (double s : grid.sigmas) base.push_back(static_cast<float>(s));
    base.push_back(0.0f);
    at::Tensor sigmas = at::tensor(base, at::kFloat);
    at::Tensor interpol;
    if (ancestral_) {
      at::Tensor next = sigmas.roll(-1);
      next[-1] = 0.0;
      at::Tensor up = at::pow(at::pow(next, 2) * (at::pow(sigmas, 2) - at::pow(next, 2)) / at::pow(sigmas, 2), 0.5);
      at::Tensor down = at::pow(at::pow(next, 2) - at::pow(up, 2), 0.5);
      down[-1] = 0.0;
      interpol = sigmas.log().lerp(down.log(), 0.5).exp();
      interpol.slice(0, -2).fill_(0.0);
      sigmasUp_ = hostFloats(interleave(up));
      sigmasDown_ = hostFloats(interleave(down));
    } else {
      interpol = sigmas.log().lerp(sigmas.roll(1).log(), 0.5).exp();
    }
    sigmas_ = hostFloats(interleave(sigmas));
    sigmasInterpol_ = hostFloats(interleave(interpol));

    // The midpoints' timesteps (float32 through torch), interleaved with the full steps':
    // KDPM2 takes midpoints 1 … n−1, the ancestral one 0 … n−2.
    const std::vector<float> mid = hostFloats(interpol);
    timesteps_.assign(1, grid.timesteps.front());
    for (int64_t k = 1; k < n; ++k) {
      timesteps_.push_back(static_cast<double>(sigmaToTFloat32(mid[static_cast<size_t>(ancestral_ ? k - 1 : k)], logSigmas)));
      timesteps_.push_back(grid.timesteps[static_cast<size_t>(k)]);
    }
    float64Timesteps_ = grid.float64Timesteps;
    numInferenceSteps_ = n;
    stepIndex_.reset();
    sample_ = at::Tensor();
  }

  Tensor scaleModelInput(const Tensor& sampleArg, double timestep) override {
    const at::Tensor& sample = floatTensorArg(sampleArg, "sample");
    const int64_t i = currentIndex(timestep);
    const float sigma = !sample_.defined() ? sigmaAt(i) : interpolAt(ancestral_ ? i - 1 : i);
    return wrap(sample / std::sqrt(sigma * sigma + 1));
  }

  StepResult step(const Tensor& modelOutputArg, double timestep, const Tensor& sampleArg, const StepOptions& options) override {
    const at::Tensor& modelOutput = floatTensorArg(modelOutputArg, "modelOutput");
    at::Tensor sample = floatTensorArg(sampleArg, "sample");
    expectSameShape(sample, "sample", modelOutput, "modelOutput");
    const int64_t i = currentIndex(timestep);
    const bool firstOrder = !sample_.defined();
    at::Tensor prev, x0;
    if (!ancestral_) {
      const float sigma = firstOrder ? sigmaAt(i) : sigmaAt(i - 1);
      const float sigmaInterpol = firstOrder ? interpolAt(i + 1) : interpolAt(i);
      const float sigmaNext = firstOrder ? sigmaAt(i + 1) : sigmaAt(i);
      x0 = predictOriginal(modelOutput, sample, firstOrder ? sigma : sigmaInterpol);
      at::Tensor derivative;
      float dt;
      if (firstOrder) {
        derivative = (sample - x0) / sigma;
        dt = sigmaInterpol - sigma;
        sample_ = sample;
      } else {
        derivative = (sample - x0) / sigmaInterpol;
        dt = sigmaNext - sigma;
        sample = sample_;
        sample_ = at::Tensor();
      }
      prev = sample + derivative * dt;
    } else {
      const float sigma = firstOrder ? sigmaAt(i) : sigmaAt(i - 1);
      const float sigmaInterpol = firstOrder ? interpolAt(i) : interpolAt(i - 1);
      const float sigmaUp = tableAt(sigmasUp_, firstOrder ? i : i - 1);
      const float sigmaDown = tableAt(sigmasDown_, i - 1);
      x0 = predictOriginal(modelOutput, sample, firstOrder ? sigma : sigmaInterpol);
      if (firstOrder) {
        at::Tensor derivative = (sample - x0) / sigma;
        const float dt = sigmaInterpol - sigma;
        sample_ = sample;
        prev = sample + derivative * dt;
      } else {
        at::Tensor derivative = (sample - x0) / sigmaInterpol;
        const float dt = sigmaDown - sigma;
        sample = sample_;
        sample_ = at::Tensor();
        prev = sample + derivative * dt;
        at::Tensor noise = stepNoise(modelOutput, options, "KDPM2AncestralDiscreteScheduler.step");
        prev = prev + noise * sigmaUp;
      }
    }
    stepIndex_ = i + 1;
    return {wrap(prev), wrap(x0)};
  }

 private:
  float interpolAt(int64_t i) const { return tableAt(sigmasInterpol_, i); }

  // Python indexing: −1 is the last entry (diffusers reads sigmas_down[step_index − 1] at step 0).
  float tableAt(const std::vector<float>& table, int64_t i) const {
    const int64_t n = static_cast<int64_t>(table.size());
    if (i < -n || i >= n) throw InvalidArgument(name_ + ".step: the schedule is finished; call setTimesteps() again");
    return table[static_cast<size_t>(i < 0 ? i + n : i)];
  }

  const bool ancestral_;
  std::vector<float> sigmasInterpol_;
  std::vector<float> sigmasUp_;
  std::vector<float> sigmasDown_;
  at::Tensor sample_;
};

}  // namespace

std::unique_ptr<Scheduler> makeKDPM2DiscreteScheduler(const SchedulerConfig& config) {
  return std::make_unique<KDPM2Scheduler>(config, false);
}

std::unique_ptr<Scheduler> makeKDPM2AncestralDiscreteScheduler(const SchedulerConfig& config) {
  return std::make_unique<KDPM2Scheduler>(config, true);
}

}  // namespace difftune
