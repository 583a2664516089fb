/**
 * A validated diffusers scheduler config → the flat object the native scheduler reads. Options a class
 * lacks get the value that leaves the computation unchanged. Pure: never loads the addon.
 */
import type { SchedulerConfig } from '../config/scheduler';
import { ConfigError } from '../errors';
import type { NativeSchedulerConfig } from '../native/types';

const NEUTRAL: Omit<
  NativeSchedulerConfig,
  'className' | 'numTrainTimesteps' | 'betaStart' | 'betaEnd' | 'betaSchedule' | 'trainedBetas' | 'predictionType' | 'timestepSpacing' | 'stepsOffset'
> = {
  rescaleBetasZeroSnr: false,
  clipSample: false,
  clipSampleRange: 1,
  thresholding: false,
  dynamicThresholdingRatio: 0.995,
  sampleMaxValue: 1,
  setAlphaToOne: true,
  ddpmVarianceType: 'fixed_small',
  skipPrkSteps: false,
  interpolationType: 'linear',
  useKarrasSigmas: false,
  useExponentialSigmas: false,
  useLuLambdas: false,
  sigmaMin: null,
  sigmaMax: null,
  timestepType: 'discrete',
  finalSigmasType: 'zero',
  solverOrder: 2,
  algorithmType: 'dpmsolver++',
  solverType: 'midpoint',
  lowerOrderFinal: true,
  eulerAtFinal: false,
  lambdaMinClipped: -Infinity,
  dpmVarianceType: 'none',
  predictX0: true,
  uniPCSolverType: 'bh2',
  disableCorrector: [],
};

function sigmaSpacing(c: {
  use_karras_sigmas: boolean | null;
  use_exponential_sigmas: boolean | null;
}): Pick<NativeSchedulerConfig, 'useKarrasSigmas' | 'useExponentialSigmas'> {
  return { useKarrasSigmas: c.use_karras_sigmas === true, useExponentialSigmas: c.use_exponential_sigmas === true };
}

function thresholding(c: {
  thresholding: boolean;
  dynamic_thresholding_ratio: number;
  sample_max_value: number;
}): Pick<NativeSchedulerConfig, 'thresholding' | 'dynamicThresholdingRatio' | 'sampleMaxValue'> {
  return { thresholding: c.thresholding, dynamicThresholdingRatio: c.dynamic_thresholding_ratio, sampleMaxValue: c.sample_max_value };
}

export function toNativeSchedulerConfig(config: SchedulerConfig): NativeSchedulerConfig {
  const v = config.values;
  const base: NativeSchedulerConfig = {
    ...NEUTRAL,
    className: config.className,
    numTrainTimesteps: v.num_train_timesteps,
    betaStart: v.beta_start,
    betaEnd: v.beta_end,
    betaSchedule: v.beta_schedule,
    trainedBetas: v.trained_betas,
    predictionType: v.prediction_type,
    // DPMSolverSinglestepScheduler has no grid options: its timesteps are always linspace-spaced.
    timestepSpacing: 'timestep_spacing' in v ? v.timestep_spacing : 'linspace',
    stepsOffset: 'steps_offset' in v ? v.steps_offset : 0,
  };
  switch (config.className) {
    case 'DDPMScheduler': {
      const c = config.values;
      if (c.variance_type === 'fixed_large_log')
        throw new ConfigError(
          'DDPMScheduler variance_type: expected fixed_small, fixed_small_log, fixed_large, learned or learned_range but found "fixed_large_log" (a config from parseSchedulerConfig never carries it: diffusers takes the square root of a negative log-variance with it)',
        );
      return {
        ...base,
        ddpmVarianceType: c.variance_type,
        clipSample: c.clip_sample,
        clipSampleRange: c.clip_sample_range,
        thresholding: c.thresholding,
        dynamicThresholdingRatio: c.dynamic_thresholding_ratio,
        sampleMaxValue: c.sample_max_value,
        rescaleBetasZeroSnr: c.rescale_betas_zero_snr,
      };
    }
    case 'DDIMScheduler': {
      const c = config.values;
      return {
        ...base,
        clipSample: c.clip_sample,
        clipSampleRange: c.clip_sample_range,
        thresholding: c.thresholding,
        dynamicThresholdingRatio: c.dynamic_thresholding_ratio,
        sampleMaxValue: c.sample_max_value,
        setAlphaToOne: c.set_alpha_to_one,
        rescaleBetasZeroSnr: c.rescale_betas_zero_snr,
      };
    }
    case 'EulerDiscreteScheduler': {
      const c = config.values;
      return {
        ...base,
        interpolationType: c.interpolation_type,
        useKarrasSigmas: c.use_karras_sigmas === true,
        useExponentialSigmas: c.use_exponential_sigmas === true,
        sigmaMin: c.sigma_min,
        sigmaMax: c.sigma_max,
        timestepType: c.timestep_type,
        finalSigmasType: c.final_sigmas_type,
        rescaleBetasZeroSnr: c.rescale_betas_zero_snr,
      };
    }
    case 'DPMSolverMultistepScheduler': {
      const c = config.values;
      if (c.algorithm_type === 'deis' || (c.solver_type !== 'midpoint' && c.solver_type !== 'heun')) {
        throw new ConfigError(
          `DPMSolverMultistepScheduler: expected algorithm_type other than "deis" and solver_type midpoint or heun but found algorithm_type "${c.algorithm_type}", solver_type "${c.solver_type}" (parseSchedulerConfig maps these deprecated types as diffusers does)`,
        );
      }
      return {
        ...base,
        solverOrder: c.solver_order,
        thresholding: c.thresholding,
        dynamicThresholdingRatio: c.dynamic_thresholding_ratio,
        sampleMaxValue: c.sample_max_value,
        algorithmType: c.algorithm_type,
        solverType: c.solver_type,
        lowerOrderFinal: c.lower_order_final,
        eulerAtFinal: c.euler_at_final,
        useKarrasSigmas: c.use_karras_sigmas === true,
        useExponentialSigmas: c.use_exponential_sigmas === true,
        useLuLambdas: c.use_lu_lambdas === true,
        finalSigmasType: c.final_sigmas_type ?? 'zero',
        lambdaMinClipped: c.lambda_min_clipped,
        dpmVarianceType: c.variance_type ?? 'none',
        rescaleBetasZeroSnr: c.rescale_betas_zero_snr,
      };
    }
    case 'PNDMScheduler': {
      const c = config.values;
      return { ...base, skipPrkSteps: c.skip_prk_steps, setAlphaToOne: c.set_alpha_to_one };
    }
    case 'EulerAncestralDiscreteScheduler':
      return { ...base, rescaleBetasZeroSnr: config.values.rescale_betas_zero_snr };
    case 'LMSDiscreteScheduler':
    case 'KDPM2DiscreteScheduler':
    case 'KDPM2AncestralDiscreteScheduler':
      return { ...base, ...sigmaSpacing(config.values) };
    case 'HeunDiscreteScheduler': {
      const c = config.values;
      return { ...base, ...sigmaSpacing(c), clipSample: c.clip_sample === true, clipSampleRange: c.clip_sample_range };
    }
    case 'UniPCMultistepScheduler': {
      const c = config.values;
      return {
        ...base,
        ...sigmaSpacing(c),
        ...thresholding(c),
        solverOrder: c.solver_order,
        predictX0: c.predict_x0,
        uniPCSolverType: c.solver_type === 'bh1' ? 'bh1' : 'bh2',
        lowerOrderFinal: c.lower_order_final,
        disableCorrector: c.disable_corrector,
        finalSigmasType: c.final_sigmas_type ?? 'zero',
        rescaleBetasZeroSnr: c.rescale_betas_zero_snr,
      };
    }
    case 'DEISMultistepScheduler': {
      const c = config.values;
      return { ...base, ...sigmaSpacing(c), ...thresholding(c), solverOrder: c.solver_order, lowerOrderFinal: c.lower_order_final };
    }
    case 'DPMSolverSinglestepScheduler': {
      const c = config.values;
      if (c.algorithm_type === 'deis' || (c.solver_type !== 'midpoint' && c.solver_type !== 'heun')) {
        throw new ConfigError(
          `DPMSolverSinglestepScheduler: expected algorithm_type other than "deis" and solver_type midpoint or heun but found algorithm_type "${c.algorithm_type}", solver_type "${c.solver_type}" (parseSchedulerConfig maps these deprecated types as diffusers does)`,
        );
      }
      return {
        ...base,
        ...sigmaSpacing(c),
        ...thresholding(c),
        solverOrder: c.solver_order,
        algorithmType: c.algorithm_type,
        solverType: c.solver_type,
        lowerOrderFinal: c.lower_order_final,
        finalSigmasType: c.final_sigmas_type ?? 'zero',
        lambdaMinClipped: c.lambda_min_clipped,
        dpmVarianceType: c.variance_type ?? 'none',
      };
    }
  }
}
