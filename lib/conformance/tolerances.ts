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
  /** CLIP text encoder outputs and loss; the pipelines' prompt embeddings. */
  textEncoder: 1e-5,
  /** CLIP text encoder gradients. */
  textEncoderGradient: 5e-5,
  /** VAE outputs (mean, logvar, std, sample, latents) and loss. */
  vae: 2e-5,
  /** VAE gradients. */
  vaeGradient: 5e-5,
  /** Text-to-image pipeline steps, the decoder input and the decoded image. */
  pipeline: 1e-4,
} as const;
