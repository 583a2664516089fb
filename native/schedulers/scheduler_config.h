// The options of every scheduler family as one plain struct (the "baton"): filled on the main thread
// from a config TypeScript already validated, then only read by the compute thread. Field names are
// diffusers' config keys in camelCase; each family reads the ones it has.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

namespace difftune {

enum class SchedulerKind {
  DDPM,
  DDIM,
  EulerDiscrete,
  DPMSolverMultistep,
  PNDM,
  EulerAncestralDiscrete,
  LMSDiscrete,
  HeunDiscrete,
  KDPM2Discrete,
  KDPM2AncestralDiscrete,
  UniPCMultistep,
  DEISMultistep,
  DPMSolverSinglestep,
};

enum class BetaSchedule { Linear, ScaledLinear, SquaredCosCapV2, Sigmoid };
enum class PredictionType { Epsilon, VPrediction, Sample };
enum class TimestepSpacing { Leading, Trailing, Linspace };
enum class DDPMVarianceType { FixedSmall, FixedSmallLog, FixedLarge, Learned, LearnedRange };
// DPM-Solver's variance_type: null, or a model that also predicts its variance (extra channels).
enum class DPMVarianceType { None, Learned, LearnedRange };
enum class InterpolationType { Linear, LogLinear };
enum class TimestepType { Discrete, Continuous };
enum class FinalSigmasType { Zero, SigmaMin };
enum class DPMAlgorithm { DPMSolverPP, DPMSolver, SDEDPMSolverPP, SDEDPMSolver };
enum class DPMSolverType { Midpoint, Heun };
// UniPC's B(h): bh1 = h, bh2 = e^h − 1.
enum class UniPCSolverType { BH1, BH2 };

struct SchedulerConfig {
  SchedulerKind kind = SchedulerKind::DDPM;

  // Training schedule (all families).
  int64_t numTrainTimesteps = 1000;
  double betaStart = 0.0001;
  double betaEnd = 0.02;
  BetaSchedule betaSchedule = BetaSchedule::Linear;
  std::optional<std::vector<double>> trainedBetas;
  bool rescaleBetasZeroSnr = false;

  PredictionType predictionType = PredictionType::Epsilon;
  TimestepSpacing timestepSpacing = TimestepSpacing::Leading;
  int64_t stepsOffset = 0;

  // DDPM, DDIM: clipping and dynamic thresholding of the predicted x0 (also DPM-Solver's thresholding).
  bool clipSample = true;
  double clipSampleRange = 1.0;
  bool thresholding = false;
  double dynamicThresholdingRatio = 0.995;
  double sampleMaxValue = 1.0;

  // DDIM, PNDM: alpha_cumprod "before" t = 0.
  bool setAlphaToOne = true;

  DDPMVarianceType ddpmVarianceType = DDPMVarianceType::FixedSmall;

  bool skipPrkSteps = false;  // PNDM

  // Euler and DPM-Solver sigma schedules.
  InterpolationType interpolationType = InterpolationType::Linear;
  bool useKarrasSigmas = false;
  bool useExponentialSigmas = false;
  bool useLuLambdas = false;
  std::optional<double> sigmaMin;
  std::optional<double> sigmaMax;
  TimestepType timestepType = TimestepType::Discrete;
  FinalSigmasType finalSigmasType = FinalSigmasType::Zero;

  // DPM-Solver (multistep and singlestep), UniPC, DEIS.
  int64_t solverOrder = 2;
  DPMAlgorithm algorithmType = DPMAlgorithm::DPMSolverPP;
  DPMSolverType solverType = DPMSolverType::Midpoint;
  bool lowerOrderFinal = true;
  bool eulerAtFinal = false;
  double lambdaMinClipped = -std::numeric_limits<double>::infinity();
  DPMVarianceType dpmVarianceType = DPMVarianceType::None;

  // Heun: clipSample / clipSampleRange above.

  // UniPC: solve for x0 (true) or for the noise; B(h); steps (0-based) whose corrector is skipped.
  bool predictX0 = true;
  UniPCSolverType uniPCSolverType = UniPCSolverType::BH2;
  std::vector<int64_t> disableCorrector;
};

}  // namespace difftune
