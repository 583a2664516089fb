#include "binding/scheduler_config_args.h"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "binding/args.h"

namespace difftune {

namespace {

template <typename E>
using Choices = std::vector<std::pair<const char*, E>>;

class ConfigReader {
 public:
  ConfigReader(Napi::Object object, std::string param) : object_(object), param_(std::move(param)) {}

  Napi::Value get(const char* key) const { return object_.Get(key); }
  std::string name(const char* key) const { return param_ + "." + key; }

  double number(const char* key) const {
    Napi::Value v = get(key);
    if (!v.IsNumber() || std::isnan(v.As<Napi::Number>().DoubleValue())) failArg("a number", name(key), v);
    return v.As<Napi::Number>().DoubleValue();
  }
  double finite(const char* key) const {
    double d = number(key);
    if (!std::isfinite(d)) failArg("a finite number", name(key), get(key));
    return d;
  }
  std::optional<double> optionalFinite(const char* key) const {
    if (get(key).IsNull()) return std::nullopt;
    return finite(key);
  }
  int64_t integer(const char* key, int64_t min, int64_t max) const { return expectInt(get(key), name(key), min, max); }
  bool boolean(const char* key) const { return expectBool(get(key), name(key)); }

  template <typename E>
  E choice(const char* key, const Choices<E>& choices) const {
    Napi::Value v = get(key);
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + std::string("\"") + c.first + "\"";
    if (v.IsString()) {
      std::string s = v.As<Napi::String>().Utf8Value();
      for (const auto& c : choices)
        if (s == c.first) return c.second;
    }
    failArg("one of " + list, name(key), v);
  }

  std::optional<std::vector<double>> optionalNumbers(const char* key) const {
    Napi::Value v = get(key);
    if (v.IsNull()) return std::nullopt;
    if (!v.IsArray()) failArg("null or an array of numbers", name(key), v);
    Napi::Array a = v.As<Napi::Array>();
    std::vector<double> out;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value item = a.Get(i);
      if (!item.IsNumber() || !std::isfinite(item.As<Napi::Number>().DoubleValue()))
        failArg("a finite number", name(key) + "[" + std::to_string(i) + "]", item);
      out.push_back(item.As<Napi::Number>().DoubleValue());
    }
    return out;
  }

  std::vector<int64_t> integers(const char* key, int64_t min, int64_t max) const {
    Napi::Value v = get(key);
    if (!v.IsArray()) failArg("an array of integers", name(key), v);
    Napi::Array a = v.As<Napi::Array>();
    std::vector<int64_t> out;
    for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(expectInt(a.Get(i), name(key) + "[" + std::to_string(i) + "]", min, max));
    return out;
  }

 private:
  Napi::Object object_;
  std::string param_;
};

}  // namespace

SchedulerConfig readSchedulerConfig(const Napi::Value& value, const std::string& param) {
  ConfigReader r(expectObject(value, param), param);
  SchedulerConfig c;
  c.kind = r.choice<SchedulerKind>("className", {{"DDPMScheduler", SchedulerKind::DDPM},
                                                 {"DDIMScheduler", SchedulerKind::DDIM},
                                                 {"EulerDiscreteScheduler", SchedulerKind::EulerDiscrete},
                                                 {"DPMSolverMultistepScheduler", SchedulerKind::DPMSolverMultistep},
                                                 {"PNDMScheduler", SchedulerKind::PNDM},
                                                 {"EulerAncestralDiscreteScheduler", SchedulerKind::EulerAncestralDiscrete},
                                                 {"LMSDiscreteScheduler", SchedulerKind::LMSDiscrete},
                                                 {"HeunDiscreteScheduler", SchedulerKind::HeunDiscrete},
                                                 {"KDPM2DiscreteScheduler", SchedulerKind::KDPM2Discrete},
                                                 {"KDPM2AncestralDiscreteScheduler", SchedulerKind::KDPM2AncestralDiscrete},
                                                 {"UniPCMultistepScheduler", SchedulerKind::UniPCMultistep},
                                                 {"DEISMultistepScheduler", SchedulerKind::DEISMultistep},
                                                 {"DPMSolverSinglestepScheduler", SchedulerKind::DPMSolverSinglestep}});
  c.numTrainTimesteps = r.integer("numTrainTimesteps", 2, 100000);
  c.betaStart = r.finite("betaStart");
  c.betaEnd = r.finite("betaEnd");
  c.betaSchedule = r.choice<BetaSchedule>("betaSchedule", {{"linear", BetaSchedule::Linear},
                                                           {"scaled_linear", BetaSchedule::ScaledLinear},
                                                           {"squaredcos_cap_v2", BetaSchedule::SquaredCosCapV2},
                                                           {"sigmoid", BetaSchedule::Sigmoid}});
  c.trainedBetas = r.optionalNumbers("trainedBetas");
  c.rescaleBetasZeroSnr = r.boolean("rescaleBetasZeroSnr");
  c.predictionType = r.choice<PredictionType>(
      "predictionType",
      {{"epsilon", PredictionType::Epsilon}, {"v_prediction", PredictionType::VPrediction}, {"sample", PredictionType::Sample}});
  c.timestepSpacing = r.choice<TimestepSpacing>(
      "timestepSpacing",
      {{"leading", TimestepSpacing::Leading}, {"trailing", TimestepSpacing::Trailing}, {"linspace", TimestepSpacing::Linspace}});
  c.stepsOffset = r.integer("stepsOffset", 0, 100000);
  c.clipSample = r.boolean("clipSample");
  c.clipSampleRange = r.finite("clipSampleRange");
  c.thresholding = r.boolean("thresholding");
  c.dynamicThresholdingRatio = r.finite("dynamicThresholdingRatio");
  c.sampleMaxValue = r.finite("sampleMaxValue");
  c.setAlphaToOne = r.boolean("setAlphaToOne");
  c.ddpmVarianceType = r.choice<DDPMVarianceType>("ddpmVarianceType", {{"fixed_small", DDPMVarianceType::FixedSmall},
                                                                       {"fixed_small_log", DDPMVarianceType::FixedSmallLog},
                                                                       {"fixed_large", DDPMVarianceType::FixedLarge},
                                                                       {"learned", DDPMVarianceType::Learned},
                                                                       {"learned_range", DDPMVarianceType::LearnedRange}});
  c.skipPrkSteps = r.boolean("skipPrkSteps");
  c.interpolationType = r.choice<InterpolationType>("interpolationType",
                                                    {{"linear", InterpolationType::Linear}, {"log_linear", InterpolationType::LogLinear}});
  c.useKarrasSigmas = r.boolean("useKarrasSigmas");
  c.useExponentialSigmas = r.boolean("useExponentialSigmas");
  c.useLuLambdas = r.boolean("useLuLambdas");
  c.sigmaMin = r.optionalFinite("sigmaMin");
  c.sigmaMax = r.optionalFinite("sigmaMax");
  c.timestepType = r.choice<TimestepType>("timestepType", {{"discrete", TimestepType::Discrete}, {"continuous", TimestepType::Continuous}});
  c.finalSigmasType =
      r.choice<FinalSigmasType>("finalSigmasType", {{"zero", FinalSigmasType::Zero}, {"sigma_min", FinalSigmasType::SigmaMin}});
  c.solverOrder = r.integer("solverOrder", 1, 3);
  c.algorithmType = r.choice<DPMAlgorithm>("algorithmType", {{"dpmsolver++", DPMAlgorithm::DPMSolverPP},
                                                             {"dpmsolver", DPMAlgorithm::DPMSolver},
                                                             {"sde-dpmsolver++", DPMAlgorithm::SDEDPMSolverPP},
                                                             {"sde-dpmsolver", DPMAlgorithm::SDEDPMSolver}});
  c.solverType = r.choice<DPMSolverType>("solverType", {{"midpoint", DPMSolverType::Midpoint}, {"heun", DPMSolverType::Heun}});
  c.lowerOrderFinal = r.boolean("lowerOrderFinal");
  c.eulerAtFinal = r.boolean("eulerAtFinal");
  c.lambdaMinClipped = r.number("lambdaMinClipped");
  c.dpmVarianceType = r.choice<DPMVarianceType>(
      "dpmVarianceType",
      {{"none", DPMVarianceType::None}, {"learned", DPMVarianceType::Learned}, {"learned_range", DPMVarianceType::LearnedRange}});
  c.predictX0 = r.boolean("predictX0");
  c.uniPCSolverType = r.choice<UniPCSolverType>("uniPCSolverType", {{"bh1", UniPCSolverType::BH1}, {"bh2", UniPCSolverType::BH2}});
  c.disableCorrector = r.integers("disableCorrector", -1000000, 1000000);
  return c;
}

}  // namespace difftune
