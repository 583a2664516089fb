/**
 * The zod schema of each supported diffusers scheduler class (v0.31's options and defaults) and the
 * typed config they parse to. scheduler.ts picks the class, reports unknown keys and refuses what
 * difftune does not support. Pure: never loads the addon.
 */
import { z } from 'zod';

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
