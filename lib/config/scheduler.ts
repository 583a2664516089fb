/**
 * diffusers scheduler configs (`scheduler_config.json`): one zod schema per supported class, with
 * diffusers' own defaults (v0.31), `_class_name` picking the class, unknown keys reported as warnings,
 * and values difftune does not support refused with a ConfigError naming the file and key. Saving
 * writes the same form back (every key, `_class_name`, `_diffusers_version`). Pure: never loads the addon.
 */
import { z } from 'zod';
import { ConfigError, describeValue } from '../errors';
import { formatLenientJson, parseLenientJson, type JsonValue } from './json';
import { pythonFloatRepr } from './python-float';

export const SCHEDULER_CLASSES = [
  'DDPMScheduler',
  'DDIMScheduler',
  'EulerDiscreteScheduler',
  'DPMSolverMultistepScheduler',
  'PNDMScheduler',
  'EulerAncestralDiscreteScheduler',
  'LMSDiscreteScheduler',
  'HeunDiscreteScheduler',
  'KDPM2DiscreteScheduler',
  'KDPM2AncestralDiscreteScheduler',
  'UniPCMultistepScheduler',
  'DEISMultistepScheduler',
  'DPMSolverSinglestepScheduler',
] as const;
export type SchedulerClassName = (typeof SCHEDULER_CLASSES)[number];

/** Short names for `--scheduler` and recipes (every class name is accepted as well). */
export const SCHEDULER_SHORT_NAMES = {
  ddpm: 'DDPMScheduler',
  ddim: 'DDIMScheduler',
  pndm: 'PNDMScheduler',
  euler: 'EulerDiscreteScheduler',
  'euler-ancestral': 'EulerAncestralDiscreteScheduler',
  lms: 'LMSDiscreteScheduler',
  heun: 'HeunDiscreteScheduler',
  kdpm2: 'KDPM2DiscreteScheduler',
  'kdpm2-ancestral': 'KDPM2AncestralDiscreteScheduler',
  dpmpp: 'DPMSolverMultistepScheduler',
  'dpm-solver-multistep': 'DPMSolverMultistepScheduler',
  'dpm-solver-singlestep': 'DPMSolverSinglestepScheduler',
  unipc: 'UniPCMultistepScheduler',
  deis: 'DEISMultistepScheduler',
} as const satisfies Record<string, SchedulerClassName>;

/** The class a short name or class name stands for; undefined when it is neither. */
export function resolveSchedulerName(name: string): SchedulerClassName | undefined {
  if (isSchedulerClass(name)) return name;
  return Object.prototype.hasOwnProperty.call(SCHEDULER_SHORT_NAMES, name) ? SCHEDULER_SHORT_NAMES[name as keyof typeof SCHEDULER_SHORT_NAMES] : undefined;
}

/** The diffusers version written into configs difftune creates from scratch (schedulers, model folders). */
export const DEFAULT_DIFFUSERS_VERSION = '0.31.0';

const BETA_SCHEDULES = ['linear', 'scaled_linear', 'squaredcos_cap_v2'] as const;
const PREDICTION_TYPES = ['epsilon', 'v_prediction', 'sample'] as const;
const SPACINGS = ['leading', 'trailing', 'linspace'] as const;

const num = z.number().finite();
/**
 * A beta is the variance of the noise one training step adds: 0 adds none, and at 1 or above
 * 1 − beta ≤ 0 makes alphas_cumprod 0, negative or ±Infinity (diffusers accepts such values silently).
 */
const beta = num
  .gt(0, 'expected a beta in (0, 1) (the noise variance a training step adds)')
  .lt(1, 'expected a beta in (0, 1) (the noise variance a training step adds)');
const trainedBetas = z.array(beta).nullable().default(null);

/** Keys every class has: the training noise schedule and the prediction type. */
const trainingBase = {
  /** Diffusion steps the model was trained with. */
  num_train_timesteps: z.number().int().min(2).max(100000).default(1000),
  /** First beta of the linear / scaled_linear schedules. */
  beta_start: beta.default(0.0001),
  /** Last beta. */
  beta_end: beta.default(0.02),
  /** How betas go from beta_start to beta_end (squaredcos_cap_v2 ignores both). */
  beta_schedule: z.enum(BETA_SCHEDULES).default('linear'),
  /** Explicit betas, one per training timestep; overrides beta_schedule. */
  trained_betas: trainedBetas,
  /** What the model predicts: the noise, the velocity v, or the clean sample. */
  prediction_type: z.enum(PREDICTION_TYPES).default('epsilon'),
};

/** The above plus the timestep grid (every class but DPMSolverSinglestepScheduler, whose grid is fixed). */
const trainingSchedule = {
  ...trainingBase,
  /** How inference timesteps are spread over the training ones (Lin et al. 2023, table 2). */
  timestep_spacing: z.enum(SPACINGS).default('leading'),
  /** Added to every inference timestep with "leading" spacing (1 for Stable Diffusion 1.x/2.x). */
  steps_offset: z.number().int().min(0).default(0),
};

const clipping = {
  /** Clamp the predicted x0 to ±clip_sample_range. */
  clip_sample: z.boolean().default(true),
  /** Bound of clip_sample. */
  clip_sample_range: num.positive().default(1.0),
  /** Imagen's dynamic thresholding of the predicted x0 (pixel models only). */
  thresholding: z.boolean().default(false),
  /** Quantile of |x0| used by thresholding. */
  dynamic_thresholding_ratio: num.gt(0).lt(1).default(0.995),
  /** Upper bound of the thresholding quantile. */
  sample_max_value: num.positive().default(1.0),
};

/** Rescale betas to zero terminal SNR (Lin et al. 2023); needs v_prediction to make sense. */
const rescaleBetasZeroSnr = z.boolean().default(false);

export const ddpmSchedulerSchema = z.object({
  ...trainingSchedule,
  /** DDPM alone also has the sigmoid schedule. */
  beta_schedule: z.enum([...BETA_SCHEDULES, 'sigmoid']).default('linear'),
  /** Variance of each reverse step; "learned*" read it from the model's extra output channels. */
  variance_type: z.enum(['fixed_small', 'fixed_small_log', 'fixed_large', 'fixed_large_log', 'learned', 'learned_range']).default('fixed_small'),
  ...clipping,
  rescale_betas_zero_snr: rescaleBetasZeroSnr,
});

export const ddimSchedulerSchema = z.object({
  ...trainingSchedule,
  ...clipping,
  /** ᾱ before t = 0 is 1 (true) or ᾱ_0 (false, the Stable Diffusion setting). */
  set_alpha_to_one: z.boolean().default(true),
  rescale_betas_zero_snr: rescaleBetasZeroSnr,
});

export const eulerDiscreteSchedulerSchema = z.object({
  ...trainingSchedule,
  /** Euler defaults to linspace spacing. */
  timestep_spacing: z.enum(SPACINGS).default('linspace'),
  /** Sigmas between timesteps: linear in t, or log-linear. */
  interpolation_type: z.enum(['linear', 'log_linear']).default('linear'),
  /** Karras et al. (2022) noise levels instead of the training grid's. */
  use_karras_sigmas: z.boolean().nullable().default(false),
  /** Exponential noise levels (not supported by difftune). */
  use_exponential_sigmas: z.boolean().nullable().default(false),
  /** Beta-distributed noise levels (not supported by difftune). */
  use_beta_sigmas: z.boolean().nullable().default(false),
  /** Lowest sigma of the Karras schedule; null: the training schedule's. */
  sigma_min: num.positive().nullable().default(null),
  /** Highest sigma of the Karras schedule; null: the training schedule's. */
  sigma_max: num.positive().nullable().default(null),
  /** "continuous" (with v_prediction) feeds the model 0.25·log σ instead of t. */
  timestep_type: z.enum(['discrete', 'continuous']).default('discrete'),
  rescale_betas_zero_snr: rescaleBetasZeroSnr,
  /** The sigma after the last step: 0, or the training schedule's smallest. */
  final_sigmas_type: z.enum(['zero', 'sigma_min']).default('zero'),
});

export const dpmSolverMultistepSchedulerSchema = z.object({
  ...trainingSchedule,
  /** DPM-Solver defaults to linspace spacing. */
  timestep_spacing: z.enum(SPACINGS).default('linspace'),
  /** Multistep order: 2 for guided sampling, 3 for unconditional. */
  solver_order: z.number().int().min(1).max(3).default(2),
  /** Dynamic thresholding of x0 (pixel models only). */
  thresholding: z.boolean().default(false),
  /** Quantile of |x0| used by thresholding. */
  dynamic_thresholding_ratio: num.gt(0).lt(1).default(0.995),
  /** Upper bound of the thresholding quantile. */
  sample_max_value: num.positive().default(1.0),
  /** dpmsolver++ (default), dpmsolver, or their SDE forms; "deis" is treated as dpmsolver++ as in diffusers. */
  algorithm_type: z.enum(['dpmsolver++', 'dpmsolver', 'sde-dpmsolver++', 'sde-dpmsolver', 'deis']).default('dpmsolver++'),
  /** Second-order update: midpoint or heun ("logrho", "bh1", "bh2" are treated as midpoint, as in diffusers). */
  solver_type: z.enum(['midpoint', 'heun', 'logrho', 'bh1', 'bh2']).default('midpoint'),
  /** Lower orders for the last steps when there are fewer than 15 (stability). */
  lower_order_final: z.boolean().default(true),
  /** First-order last step. */
  euler_at_final: z.boolean().default(false),
  /** Karras et al. (2022) noise levels. */
  use_karras_sigmas: z.boolean().nullable().default(false),
  /** Exponential noise levels (not supported by difftune). */
  use_exponential_sigmas: z.boolean().nullable().default(false),
  /** Beta-distributed noise levels (not supported by difftune). */
  use_beta_sigmas: z.boolean().nullable().default(false),
  /** Steps uniform in log-SNR (Lu et al. 2022). */
  use_lu_lambdas: z.boolean().nullable().default(false),
  /** The sigma after the last step: 0, or the training schedule's smallest. */
  final_sigmas_type: z.enum(['zero', 'sigma_min']).nullable().default('zero'),
  /** Skip timesteps whose log-SNR is below this (−∞: none). */
  lambda_min_clipped: z.number().default(-Infinity),
  /** null, or "learned"/"learned_range" for models that also predict their variance. */
  variance_type: z.enum(['learned', 'learned_range']).nullable().default(null),
  rescale_betas_zero_snr: rescaleBetasZeroSnr,
});

export const pndmSchedulerSchema = z.object({
  ...trainingSchedule,
  /** Skip the Runge–Kutta warm-up (the Stable Diffusion 1.x setting). */
  skip_prk_steps: z.boolean().default(false),
  /** ᾱ before t = 0 is 1 (true) or ᾱ_0 (false). */
  set_alpha_to_one: z.boolean().default(false),
  /** PNDM predicts epsilon or v. */
  prediction_type: z.enum(['epsilon', 'v_prediction']).default('epsilon'),
});

/** The sigma spacings of the newer classes: Karras (supported), exponential and beta (refused). */
const sigmaSpacings = {
  /** Karras et al. (2022) noise levels. */
  use_karras_sigmas: z.boolean().nullable().default(false),
  /** Exponential noise levels (not supported by difftune). */
  use_exponential_sigmas: z.boolean().nullable().default(false),
  /** Beta-distributed noise levels (not supported by difftune). */
  use_beta_sigmas: z.boolean().nullable().default(false),
};

/** Dynamic thresholding of x0 (pixel models only), for the solvers without clip_sample. */
const thresholdingOnly = {
  thresholding: z.boolean().default(false),
  /** Quantile of |x0| used by thresholding. */
  dynamic_thresholding_ratio: num.gt(0).lt(1).default(0.995),
  /** Upper bound of the thresholding quantile. */
  sample_max_value: num.positive().default(1.0),
};

/** Multistep/singlestep order: 2 for guided sampling, 3 for unconditional. */
const solverOrder = z.number().int().min(1).max(3).default(2);

export const eulerAncestralDiscreteSchedulerSchema = z.object({
  ...trainingSchedule,
  /** Euler ancestral predicts epsilon or v (diffusers has no sample prediction for it). */
  prediction_type: z.enum(['epsilon', 'v_prediction']).default('epsilon'),
  timestep_spacing: z.enum(SPACINGS).default('linspace'),
  rescale_betas_zero_snr: rescaleBetasZeroSnr,
});

export const lmsDiscreteSchedulerSchema = z.object({
  ...trainingSchedule,
  ...sigmaSpacings,
  timestep_spacing: z.enum(SPACINGS).default('linspace'),
});

export const heunDiscreteSchedulerSchema = z.object({
  ...trainingSchedule,
  /** Heun's defaults are Stable Diffusion's betas (linear schedule). */
  beta_start: beta.default(0.00085),
  beta_end: beta.default(0.012),
  ...sigmaSpacings,
  /** Clamp the predicted x0 to ±clip_sample_range. */
  clip_sample: z.boolean().nullable().default(false),
  clip_sample_range: num.positive().default(1.0),
  timestep_spacing: z.enum(SPACINGS).default('linspace'),
});

const kdpm2Shape = {
  ...trainingSchedule,
  beta_start: beta.default(0.00085),
  beta_end: beta.default(0.012),
  ...sigmaSpacings,
  /** KDPM2 predicts epsilon or v (diffusers has no sample prediction for it). */
  prediction_type: z.enum(['epsilon', 'v_prediction']).default('epsilon'),
  timestep_spacing: z.enum(SPACINGS).default('linspace'),
};
export const kdpm2DiscreteSchedulerSchema = z.object(kdpm2Shape);
export const kdpm2AncestralDiscreteSchedulerSchema = z.object(kdpm2Shape);

export const uniPCMultistepSchedulerSchema = z.object({
  ...trainingSchedule,
  solver_order: solverOrder,
  ...thresholdingOnly,
  /** Solve for x0 (UniPC's data prediction, the default) or for the noise. */
  predict_x0: z.boolean().default(true),
  /** B(h): bh1 = h, bh2 = e^h − 1 ("midpoint", "heun", "logrho" are treated as bh2, as in diffusers). */
  solver_type: z.enum(['bh1', 'bh2', 'midpoint', 'heun', 'logrho']).default('bh2'),
  /** Lower orders for the last steps (stability with few steps). */
  lower_order_final: z.boolean().default(true),
  /** Steps (0-based) whose corrector is skipped. */
  disable_corrector: z.array(z.number().int().nonnegative()).default([]),
  /** Another scheduler as the predictor: a Python object, never in a config file. */
  solver_p: z.null().default(null),
  ...sigmaSpacings,
  timestep_spacing: z.enum(SPACINGS).default('linspace'),
  /** The sigma after the last step: 0, or the training schedule's smallest. */
  final_sigmas_type: z.enum(['zero', 'sigma_min']).nullable().default('zero'),
  rescale_betas_zero_snr: rescaleBetasZeroSnr,
});

export const deisMultistepSchedulerSchema = z.object({
  ...trainingSchedule,
  solver_order: solverOrder,
  ...thresholdingOnly,
  /** Only "deis" (diffusers maps dpmsolver and dpmsolver++ to it). */
  algorithm_type: z.enum(['deis', 'dpmsolver', 'dpmsolver++']).default('deis'),
  /** Only "logrho" (diffusers maps midpoint, heun, bh1 and bh2 to it). */
  solver_type: z.enum(['logrho', 'midpoint', 'heun', 'bh1', 'bh2']).default('logrho'),
  /** Lower orders for the last steps when there are fewer than 15. */
  lower_order_final: z.boolean().default(true),
  ...sigmaSpacings,
  timestep_spacing: z.enum(SPACINGS).default('linspace'),
});

export const dpmSolverSinglestepSchedulerSchema = z.object({
  ...trainingBase,
  solver_order: solverOrder,
  ...thresholdingOnly,
  /** dpmsolver++ (default), dpmsolver, sde-dpmsolver++; "deis" is treated as dpmsolver++ as in diffusers. */
  algorithm_type: z.enum(['dpmsolver++', 'dpmsolver', 'sde-dpmsolver++', 'deis']).default('dpmsolver++'),
  /** Second-order update: midpoint or heun ("logrho", "bh1", "bh2" are treated as midpoint, as in diffusers). */
  solver_type: z.enum(['midpoint', 'heun', 'logrho', 'bh1', 'bh2']).default('midpoint'),
  /** Lower orders at the end; diffusers turns it on when the steps are not a multiple of the order or the last sigma is 0. */
  lower_order_final: z.boolean().default(false),
  ...sigmaSpacings,
  /** The sigma after the last step: 0, or the training schedule's smallest. */
  final_sigmas_type: z.enum(['zero', 'sigma_min']).nullable().default('zero'),
  /** Skip timesteps whose log-SNR is below this (−∞: none). */
  lambda_min_clipped: z.number().default(-Infinity),
  /** null, or "learned"/"learned_range" for models that also predict their variance. */
  variance_type: z.enum(['learned', 'learned_range']).nullable().default(null),
});

export const SCHEDULER_SCHEMAS = {
  DDPMScheduler: ddpmSchedulerSchema,
  DDIMScheduler: ddimSchedulerSchema,
  EulerDiscreteScheduler: eulerDiscreteSchedulerSchema,
  DPMSolverMultistepScheduler: dpmSolverMultistepSchedulerSchema,
  PNDMScheduler: pndmSchedulerSchema,
  EulerAncestralDiscreteScheduler: eulerAncestralDiscreteSchedulerSchema,
  LMSDiscreteScheduler: lmsDiscreteSchedulerSchema,
  HeunDiscreteScheduler: heunDiscreteSchedulerSchema,
  KDPM2DiscreteScheduler: kdpm2DiscreteSchedulerSchema,
  KDPM2AncestralDiscreteScheduler: kdpm2AncestralDiscreteSchedulerSchema,
  UniPCMultistepScheduler: uniPCMultistepSchedulerSchema,
  DEISMultistepScheduler: deisMultistepSchedulerSchema,
  DPMSolverSinglestepScheduler: dpmSolverSinglestepSchedulerSchema,
} as const;

export type DDPMSchedulerConfig = z.infer<typeof ddpmSchedulerSchema>;
export type DDIMSchedulerConfig = z.infer<typeof ddimSchedulerSchema>;
export type EulerDiscreteSchedulerConfig = z.infer<typeof eulerDiscreteSchedulerSchema>;
export type DPMSolverMultistepSchedulerConfig = z.infer<typeof dpmSolverMultistepSchedulerSchema>;
export type PNDMSchedulerConfig = z.infer<typeof pndmSchedulerSchema>;
export type EulerAncestralDiscreteSchedulerConfig = z.infer<typeof eulerAncestralDiscreteSchedulerSchema>;
export type LMSDiscreteSchedulerConfig = z.infer<typeof lmsDiscreteSchedulerSchema>;
export type HeunDiscreteSchedulerConfig = z.infer<typeof heunDiscreteSchedulerSchema>;
export type KDPM2DiscreteSchedulerConfig = z.infer<typeof kdpm2DiscreteSchedulerSchema>;
export type KDPM2AncestralDiscreteSchedulerConfig = z.infer<typeof kdpm2AncestralDiscreteSchedulerSchema>;
export type UniPCMultistepSchedulerConfig = z.infer<typeof uniPCMultistepSchedulerSchema>;
export type DEISMultistepSchedulerConfig = z.infer<typeof deisMultistepSchedulerSchema>;
export type DPMSolverSinglestepSchedulerConfig = z.infer<typeof dpmSolverSinglestepSchedulerSchema>;

/** A validated config with every key filled in, tagged by its class. */
export type SchedulerConfig =
  | { className: 'DDPMScheduler'; values: DDPMSchedulerConfig }
  | { className: 'DDIMScheduler'; values: DDIMSchedulerConfig }
  | { className: 'EulerDiscreteScheduler'; values: EulerDiscreteSchedulerConfig }
  | { className: 'DPMSolverMultistepScheduler'; values: DPMSolverMultistepSchedulerConfig }
  | { className: 'PNDMScheduler'; values: PNDMSchedulerConfig }
  | { className: 'EulerAncestralDiscreteScheduler'; values: EulerAncestralDiscreteSchedulerConfig }
  | { className: 'LMSDiscreteScheduler'; values: LMSDiscreteSchedulerConfig }
  | { className: 'HeunDiscreteScheduler'; values: HeunDiscreteSchedulerConfig }
  | { className: 'KDPM2DiscreteScheduler'; values: KDPM2DiscreteSchedulerConfig }
  | { className: 'KDPM2AncestralDiscreteScheduler'; values: KDPM2AncestralDiscreteSchedulerConfig }
  | { className: 'UniPCMultistepScheduler'; values: UniPCMultistepSchedulerConfig }
  | { className: 'DEISMultistepScheduler'; values: DEISMultistepSchedulerConfig }
  | { className: 'DPMSolverSinglestepScheduler'; values: DPMSolverSinglestepSchedulerConfig };

export interface ParsedSchedulerConfig {
  config: SchedulerConfig;
  /** `_diffusers_version` of the file, when it had one. */
  diffusersVersion: string | undefined;
  /** Keys the class does not have, kept as they were so saving writes them back. */
  extraKeys: Record<string, JsonValue>;
  /** One line per unknown key; not errors, since diffusers ignores them too. */
  warnings: string[];
}

/** Keys diffusers writes as bookkeeping rather than options. */
const METADATA_KEYS = new Set(['_class_name', '_diffusers_version']);

/**
 * Keys of later diffusers releases that difftune accepts only at the value that leaves the v0.31
 * computation unchanged (so no warning, and a clear error otherwise).
 */
const LATER_KEYS: Partial<Record<SchedulerClassName, Record<string, { neutral: (v: JsonValue) => boolean; expected: string }>>> = {
  DPMSolverMultistepScheduler: {
    use_flow_sigmas: { neutral: (v) => v === false || v === null, expected: 'false (flow-matching sigmas are not supported)' },
    use_dynamic_shifting: { neutral: (v) => v === false || v === null, expected: 'false (dynamic shifting is not supported)' },
    flow_shift: { neutral: (v) => typeof v === 'number' || v === null, expected: 'a number (unused without use_flow_sigmas)' },
    time_shift_type: { neutral: (v) => typeof v === 'string' || v === null, expected: 'a string (unused without use_dynamic_shifting)' },
  },
};

type UnsupportedRule = { bad: (v: unknown) => boolean; reason: string };

const EXOTIC_SIGMAS: Record<string, UnsupportedRule> = {
  use_exponential_sigmas: { bad: (v) => v === true, reason: 'exponential sigmas are not supported by difftune' },
  use_beta_sigmas: { bad: (v) => v === true, reason: 'beta sigmas are not supported by difftune' },
};

function noSamplePrediction(className: string): UnsupportedRule {
  return {
    bad: (v) => v === 'sample',
    reason: `"sample" is not supported by ${className} (diffusers' raises NotImplementedError for it); expected "epsilon" or "v_prediction"`,
  };
}

/** Values diffusers accepts that difftune refuses, per class: key → [bad value test, reason]. */
const UNSUPPORTED: Partial<Record<SchedulerClassName, Record<string, UnsupportedRule>>> = {
  DDPMScheduler: {
    variance_type: {
      bad: (v) => v === 'fixed_large_log',
      reason: '"fixed_large_log" is not supported (diffusers takes the square root of a negative log-variance with it)',
    },
  },
  EulerDiscreteScheduler: EXOTIC_SIGMAS,
  DPMSolverMultistepScheduler: EXOTIC_SIGMAS,
  EulerAncestralDiscreteScheduler: { prediction_type: noSamplePrediction('EulerAncestralDiscreteScheduler') },
  LMSDiscreteScheduler: EXOTIC_SIGMAS,
  HeunDiscreteScheduler: {
    ...EXOTIC_SIGMAS,
    beta_schedule: { bad: (v) => v === 'exp', reason: '"exp" is not supported by difftune (linear, scaled_linear or squaredcos_cap_v2)' },
  },
  KDPM2DiscreteScheduler: { ...EXOTIC_SIGMAS, prediction_type: noSamplePrediction('KDPM2DiscreteScheduler') },
  KDPM2AncestralDiscreteScheduler: { ...EXOTIC_SIGMAS, prediction_type: noSamplePrediction('KDPM2AncestralDiscreteScheduler') },
  UniPCMultistepScheduler: {
    ...EXOTIC_SIGMAS,
    solver_p: { bad: (v) => v !== null, reason: 'a predictor scheduler object cannot come from a config file; expected null' },
  },
  DEISMultistepScheduler: EXOTIC_SIGMAS,
  DPMSolverSinglestepScheduler: EXOTIC_SIGMAS,
};

function isSchedulerClass(name: unknown): name is SchedulerClassName {
  return typeof name === 'string' && (SCHEDULER_CLASSES as readonly string[]).includes(name);
}

function keyError(file: string, className: string, key: string, message: string): ConfigError {
  return new ConfigError(`${file}: ${className} config key "${key}": ${message}`);
}

function describeIssue(issue: z.ZodIssue, received: unknown): string {
  switch (issue.code) {
    case 'invalid_enum_value':
      return `expected one of ${issue.options.map((o) => JSON.stringify(o)).join(', ')} but found ${describeValue(received)}`;
    case 'invalid_type':
      return `expected ${issue.expected} but found ${describeValue(received)}`;
    default:
      return `${issue.message.charAt(0).toLowerCase()}${issue.message.slice(1)} (found ${describeValue(received)})`;
  }
}

/** Cross-key rules diffusers enforces in its constructors. */
function checkCombinations(config: SchedulerConfig, fail: (key: string, message: string) => never): void {
  const v = config.values;
  if (v.trained_betas !== null && v.trained_betas.length !== v.num_train_timesteps) {
    fail('trained_betas', `expected ${v.num_train_timesteps} values (num_train_timesteps) but found ${v.trained_betas.length}`);
  }
  if ('use_karras_sigmas' in v) {
    if ([v.use_karras_sigmas, v.use_exponential_sigmas, v.use_beta_sigmas].filter((x) => x === true).length > 1) {
      fail('use_karras_sigmas', 'only one of use_karras_sigmas, use_exponential_sigmas and use_beta_sigmas can be true');
    }
  }
  if (config.className === 'UniPCMultistepScheduler') {
    const c = config.values;
    const zero = (c.final_sigmas_type ?? 'zero') === 'zero';
    // With a final sigma of 0 diffusers' last UniPC step divides by an infinite log-SNR step: NaN or ±Infinity out.
    if (zero && c.solver_order > 1 && !c.lower_order_final)
      fail(
        'lower_order_final',
        'false needs final_sigmas_type "sigma_min" (with a final sigma of 0, diffusers\' last higher-order UniPC step returns NaN/Infinity)',
      );
    if (zero && c.solver_type === 'bh1')
      fail('solver_type', '"bh1" needs final_sigmas_type "sigma_min" (with a final sigma of 0, diffusers\' last bh1 UniPC step returns NaN)');
    if (zero && !c.predict_x0)
      fail('predict_x0', 'false needs final_sigmas_type "sigma_min" (with a final sigma of 0, diffusers\' last noise-prediction UniPC step returns NaN)');
  }
  if (config.className === 'DPMSolverSinglestepScheduler') {
    const c = config.values;
    if (c.algorithm_type === 'dpmsolver' && (c.final_sigmas_type ?? 'zero') === 'zero') {
      fail('final_sigmas_type', '"zero" is not supported with algorithm_type "dpmsolver"; use "sigma_min" (as diffusers requires)');
    }
    if (c.algorithm_type === 'sde-dpmsolver++' && c.solver_order === 3)
      fail('solver_order', '3 is not available with algorithm_type "sde-dpmsolver++" (diffusers has no third-order SDE update)');
    if (c.algorithm_type === 'dpmsolver' && c.thresholding)
      fail('thresholding', 'true is not supported with algorithm_type "dpmsolver" (diffusers\' singlestep solver fails on it)');
  }
  if (config.className === 'DPMSolverMultistepScheduler') {
    const c = config.values;
    const sde = c.algorithm_type === 'sde-dpmsolver++' || c.algorithm_type === 'sde-dpmsolver';
    if ((c.algorithm_type === 'dpmsolver' || c.algorithm_type === 'sde-dpmsolver') && (c.final_sigmas_type ?? 'zero') === 'zero') {
      fail('final_sigmas_type', `"zero" is not supported with algorithm_type "${c.algorithm_type}"; use "sigma_min" (as diffusers requires)`);
    }
    if (sde && c.solver_order === 3)
      fail('solver_order', `3 is not available with algorithm_type "${c.algorithm_type}" (diffusers has no third-order SDE update)`);
    if (c.use_karras_sigmas === true && c.use_lu_lambdas === true) fail('use_lu_lambdas', 'cannot be true together with use_karras_sigmas');
  }
}

/**
 * Validates a parsed `scheduler_config.json` object. `file` names the source in errors and warnings;
 * `className` overrides `_class_name` (loading one scheduler's config into another class, as diffusers'
 * `from_config` does).
 */
export function parseSchedulerConfig(json: unknown, file: string, options: { className?: SchedulerClassName } = {}): ParsedSchedulerConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError(`${file}: expected a JSON object (a diffusers scheduler config) but found ${describeValue(json)}`);
  }
  const input = json as Record<string, JsonValue>;
  const declared = input._class_name;
  const className = options.className ?? declared;
  if (!isSchedulerClass(className)) {
    const found = declared === undefined ? 'no "_class_name"' : describeValue(declared);
    const hint =
      options.className === undefined && typeof declared === 'string'
        ? ` (to use this config anyway, pick a supported class: --scheduler <name>, or the className option; its common keys carry over as with diffusers' from_config)`
        : '';
    throw new ConfigError(`${file}: "_class_name": expected one of ${SCHEDULER_CLASSES.join(', ')} but found ${found}${hint}`);
  }
  const version = input._diffusers_version;
  if (version !== undefined && typeof version !== 'string') {
    throw keyError(file, className, '_diffusers_version', `expected a string but found ${describeValue(version)}`);
  }

  const schema = SCHEDULER_SCHEMAS[className];
  const known = new Set(Object.keys(schema.shape));
  const later = LATER_KEYS[className] ?? {};
  const extraKeys: Record<string, JsonValue> = {};
  const warnings: string[] = [];
  const values: Record<string, JsonValue> = {};
  for (const [key, value] of Object.entries(input)) {
    if (METADATA_KEYS.has(key)) continue;
    if (known.has(key)) {
      values[key] = value;
      continue;
    }
    extraKeys[key] = value;
    const rule = later[key];
    if (rule !== undefined) {
      if (!rule.neutral(value)) throw keyError(file, className, key, `expected ${rule.expected} but found ${describeValue(value)}`);
      continue;
    }
    warnings.push(`${file}: unknown ${className} config key "${key}" ignored`);
  }

  for (const [key, rule] of Object.entries(UNSUPPORTED[className] ?? {})) {
    if (key in values && rule.bad(values[key])) throw keyError(file, className, key, rule.reason);
  }

  const result = schema.safeParse(values);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = issue.path.map(String).join('.');
    // The offending value itself, also inside a list (trained_betas.3).
    const received = issue.path.reduce<unknown>(
      (v, k) => (v !== null && typeof v === 'object' ? (v as Record<string | number, unknown>)[k] : undefined),
      values,
    );
    throw keyError(file, className, key, describeIssue(issue, received));
  }
  const config = normalise({ className, values: result.data } as SchedulerConfig);
  checkCombinations(config, (key, message) => {
    throw keyError(file, className, key, message);
  });
  return { config, diffusersVersion: version, extraKeys, warnings };
}

/** diffusers' own rewrites at construction (register_to_config): algorithm and solver types another solver class uses. */
function normalise(config: SchedulerConfig): SchedulerConfig {
  switch (config.className) {
    case 'DPMSolverMultistepScheduler':
    case 'DPMSolverSinglestepScheduler': {
      const v = { ...config.values };
      if (v.algorithm_type === 'deis') v.algorithm_type = 'dpmsolver++';
      if (v.solver_type === 'logrho' || v.solver_type === 'bh1' || v.solver_type === 'bh2') v.solver_type = 'midpoint';
      return { ...config, values: v } as SchedulerConfig;
    }
    case 'UniPCMultistepScheduler': {
      const v = { ...config.values };
      if (v.solver_type !== 'bh1') v.solver_type = 'bh2';
      return { className: config.className, values: v };
    }
    case 'DEISMultistepScheduler': {
      const v = { ...config.values };
      v.algorithm_type = 'deis';
      v.solver_type = 'logrho';
      return { className: config.className, values: v };
    }
    default:
      return config;
  }
}

/** Reads the text of a `scheduler_config.json` (Python-style JSON: Infinity, -Infinity, NaN allowed). */
export function parseSchedulerConfigText(text: string, file: string, options: { className?: SchedulerClassName } = {}): ParsedSchedulerConfig {
  return parseSchedulerConfig(parseLenientJson(text, file), file, options);
}

/** The config with every class default filled in. */
export function defaultSchedulerConfig(className: SchedulerClassName): SchedulerConfig {
  return parseSchedulerConfig({ _class_name: className }, '<defaults>').config;
}

/**
 * The JSON object diffusers' save_config writes: every option, `_class_name`, `_diffusers_version`,
 * plus the extra keys the source had; keys sorted as diffusers sorts them.
 */
export function schedulerConfigToJson(parsed: Pick<ParsedSchedulerConfig, 'config' | 'diffusersVersion' | 'extraKeys'>): Record<string, JsonValue> {
  const all: Record<string, JsonValue> = {
    ...parsed.extraKeys,
    ...(parsed.config.values as Record<string, JsonValue>),
    _class_name: parsed.config.className,
    _diffusers_version: parsed.diffusersVersion ?? DEFAULT_DIFFUSERS_VERSION,
  };
  const sorted: Record<string, JsonValue> = {};
  for (const key of Object.keys(all).sort()) sorted[key] = all[key]!;
  return sorted;
}

/** Options whose values are Python ints; every other numeric option is a float. */
const INTEGER_KEYS = new Set(['num_train_timesteps', 'steps_offset', 'solver_order', 'disable_corrector']);

/**
 * The file text as diffusers writes it (json.dumps(indent=2, sort_keys=True) plus a newline): floats
 * in Python's repr ("1.0", "1e-05"), non-finite numbers as Python writes them.
 */
export function formatSchedulerConfig(parsed: Pick<ParsedSchedulerConfig, 'config' | 'diffusersVersion' | 'extraKeys'>): string {
  const known = new Set(Object.keys(SCHEDULER_SCHEMAS[parsed.config.className].shape));
  const floatOption = (key: string): boolean => known.has(key) && !INTEGER_KEYS.has(key);
  const format = (key: string, value: JsonValue): string => {
    if (typeof value === 'number' && floatOption(key)) return pythonFloatRepr(value);
    if (Array.isArray(value) && value.length > 0 && floatOption(key) && value.every((v) => typeof v === 'number')) {
      return `[\n${value.map((v) => `    ${pythonFloatRepr(v)}`).join(',\n')}\n  ]`;
    }
    // Nested values (extra keys only): the lenient formatter, indented one level.
    return formatLenientJson(value, 2).split('\n').join('\n  ');
  };
  const entries = Object.entries(schedulerConfigToJson(parsed)).map(([key, value]) => `  ${JSON.stringify(key)}: ${format(key, value)}`);
  return `{\n${entries.join(',\n')}\n}\n`;
}
