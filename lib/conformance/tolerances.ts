/**
 * The comparison bounds of test/fixtures/diffusers/README.md ("Tolerances"): each tensor passes when
 * relError(got, expected) = max|got − expected| / max|expected| is at most its bound. Pure.
 */
export const TOLERANCES = {
  /** Integer timesteps, token ids: exact. */
  exact: 0,
  /** Scheduler tables: float timesteps, sigmas, betas, alphas_cumprod, init_noise_sigma. */
  schedulerTable: 1e-5,
  /** Scheduler add_noise and get_velocity. */
  schedulerNoise: 1e-5,
  /** Every step of a scheduler_loop. */
  schedulerLoop: 1e-4,
  /** U-Net forward output, loss, backward sample. */
  forward: 1e-5,
  /** U-Net gradients (grad_*). */
  gradient: 5e-5,
  /** Every step of a unet_sampling_loop. */
  samplingLoop: 1e-4,
} as const;
