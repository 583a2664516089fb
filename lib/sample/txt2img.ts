/**
 * Text-to-image sampling: what diffusers' StableDiffusionPipeline.__call__ does, step for step —
 * prompts and negative prompts encoded once (no attention mask), the unconditional half first in the
 * U-Net's batch, classifier-free guidance, any scheduler, latents decoded by the VAE after dividing
 * by its scaling factor. Tensor math stays native; this sequences the calls.
 */
import { expected, InvalidArgumentError } from '../errors';
import type { StableDiffusion } from '../models/stable-diffusion';
import { Generator } from '../native/generator';
import { classifierFreeGuidance, concat, randn, scale } from '../native/ops';
import { Tensor } from '../native/tensor';

export interface Txt2ImgOptions {
  prompt: string | readonly string[];
  /** One per prompt, or one for all; null/undefined: "" (diffusers' default). */
  negativePrompt?: string | readonly string[] | null;
  /** > 1 turns classifier-free guidance on (default 7.5). */
  guidanceScale?: number;
  /** Denoising steps (default 50). */
  steps?: number;
  seed?: number;
  /** Default: from `latents` when given, else unet.sample_size × the VAE's scale factor. Multiples of the VAE scale factor. */
  height?: number;
  width?: number;
  /** Use the text encoder's layer −(clipSkip + 1), through its final LayerNorm (SD 2.x style "penultimate layer"). */
  clipSkip?: number | null;
  /** Start from these latents [batch, latent channels, h, w] (scaled by init_noise_sigma) for exact reproduction. */
  latents?: Tensor;
  /** DDIM's eta. */
  eta?: number;
  /** Called after each step with borrowed tensors (valid only during the call). */
  onStep?: (trace: StepTrace) => void | Promise<void>;
}

export interface StepTrace {
  index: number;
  total: number;
  timestep: number;
  unetInput: Tensor;
  unetOutput: Tensor;
  guidedNoisePred: Tensor;
  latents: Tensor;
}

export interface Txt2ImgResult {
  /** Decoded images [batch, 3, height, width], not clamped (about [-1, 1]). */
  images: Tensor;
  /** The final latents (before dividing by scaling_factor). */
  latents: Tensor;
  promptEmbeds: Tensor;
  negativePromptEmbeds: Tensor | undefined;
  dispose(): void;
}

function asList(value: string | readonly string[], field: string): string[] {
  if (typeof value === 'string') return [value];
  if (!Array.isArray(value) || value.length === 0 || !value.every((v) => typeof v === 'string'))
    throw expected('a string or a non-empty array of strings', field, value);
  return [...value];
}

/** Token ids [batch, max_length] (padded to max_length, truncated), as the pipeline's encode_prompt makes them. */
export function tokenizePrompts(sd: StableDiffusion, prompts: readonly string[]): Tensor {
  const rows = prompts.map((p) => sd.tokenizer.encode(p, { padding: 'max_length', truncation: true }).inputIds);
  const length = rows[0]!.length;
  const ids = new BigInt64Array(rows.length * length);
  rows.forEach((row, i) => row.forEach((id, j) => (ids[i * length + j] = BigInt(id))));
  return Tensor.from(ids, [rows.length, length]);
}

/** Text embeddings [batch, tokens, dim]: last_hidden_state, or with clipSkip k the final LayerNorm of hidden_states[−(k+1)]. */
export async function encodePrompts(sd: StableDiffusion, prompts: readonly string[], clipSkip: number | null = null): Promise<Tensor> {
  if (clipSkip !== null && (!Number.isSafeInteger(clipSkip) || clipSkip < 0)) throw expected('a non-negative integer or null', 'clipSkip', clipSkip);
  using ids = tokenizePrompts(sd, prompts);
  // Awaited so `ids` is disposed after the native call has finished with it, not when the promise is returned.
  return await sd.textEncoder.embed(ids, { clipSkip: clipSkip ?? undefined });
}

function resolveSize(sd: StableDiffusion, options: Pick<Txt2ImgOptions, 'height' | 'width'>): { height: number; width: number } {
  const sampleSize = sd.unet.sampleSize ?? 64;
  const f = sd.vae.vaeScaleFactor;
  const height = options.height ?? sampleSize * f;
  const width = options.width ?? sampleSize * f;
  for (const [name, v] of [
    ['height', height],
    ['width', width],
  ] as const) {
    if (!Number.isSafeInteger(v) || v <= 0 || v % f !== 0) throw expected(`a positive multiple of the VAE scale factor ${f}`, `options.${name}`, v);
  }
  return { height, width };
}

/** Runs the whole text-to-image pipeline. The caller disposes the result. */
export async function txt2img(sd: StableDiffusion, options: Txt2ImgOptions): Promise<Txt2ImgResult> {
  const prompts = asList(options.prompt, 'options.prompt');
  const batch = prompts.length;
  const guidance = options.guidanceScale ?? 7.5;
  if (typeof guidance !== 'number' || !Number.isFinite(guidance)) throw expected('a finite number', 'options.guidanceScale', guidance);
  const steps = options.steps ?? 50;
  if (!Number.isSafeInteger(steps) || steps < 1) throw expected('a positive integer', 'options.steps', steps);
  const cfg = guidance > 1;
  let negatives: string[] | undefined;
  if (cfg) {
    const n = options.negativePrompt;
    negatives = n === null || n === undefined ? prompts.map(() => '') : typeof n === 'string' ? prompts.map(() => n) : asList(n, 'options.negativePrompt');
    if (negatives.length !== batch)
      throw new InvalidArgumentError(`options.negativePrompt: expected ${batch} negative prompts (one per prompt) but found ${negatives.length}`);
  }
  const f = sd.vae.vaeScaleFactor;
  const given = options.latents?.shape;
  // Without a height/width the latents size the image, so a latents file needs no matching flags.
  const { height, width } = resolveSize(sd, {
    height: options.height ?? (given?.length === 4 ? given[2]! * f : undefined),
    width: options.width ?? (given?.length === 4 ? given[3]! * f : undefined),
  });
  const shape = [batch, sd.unet.config.in_channels, height / f, width / f];
  if (given && given.join() !== shape.join()) {
    const fits =
      given.length === 4 && (given[2] !== shape[2] || given[3] !== shape[3])
        ? `; height ${given[2]! * f} and width ${given[3]! * f} (--height/--width) would fit them, or leave both unset to size the image from the latents`
        : '';
    throw new InvalidArgumentError(
      `options.latents: expected shape [${shape.join(', ')}] ([prompts ${batch}, U-Net in_channels ${sd.unet.config.in_channels}, height ${height} / ${f}, width ${width} / ${f}]) but received [${given.join(', ')}]${fits}`,
    );
  }

  const scheduler = sd.scheduler;
  const promptEmbeds = await encodePrompts(sd, prompts, options.clipSkip ?? null);
  let negativeEmbeds: Tensor | undefined;
  let latents: Tensor | undefined;
  try {
    // diffusers applies clip_skip to the prompt only; the negative prompt always uses last_hidden_state.
    if (negatives) negativeEmbeds = await encodePrompts(sd, negatives, null);
    using context = negativeEmbeds ? await concat([negativeEmbeds, promptEmbeds]) : undefined;
    using generator = new Generator(options.seed ?? 0);
    await scheduler.setTimesteps(steps);
    using noise = options.latents ? undefined : await randn(shape, { generator, device: sd.device });
    latents = await scheduler.scaleInitialNoise(options.latents ?? noise!);
    const timesteps = scheduler.timesteps;
    for (const [index, t] of timesteps.entries()) {
      using doubled = cfg ? await concat([latents, latents]) : undefined;
      using input = await scheduler.scaleModelInput(doubled ?? latents, t);
      using ts = scheduler.timestepTensor(t);
      using out = await sd.unet.forward(input, ts, { encoderHiddenStates: context ?? promptEmbeds });
      using guided = cfg ? await classifierFreeGuidance(out, guidance) : undefined;
      const r = await scheduler.step(guided ?? out, t, latents, { generator, eta: options.eta });
      r.predOriginalSample?.dispose();
      latents.dispose();
      latents = r.prevSample;
      await options.onStep?.({ index, total: timesteps.length, timestep: t, unetInput: input, unetOutput: out, guidedNoisePred: guided ?? out, latents });
    }
    using decodeInput = await scale(latents, 1 / sd.vae.scalingFactor);
    const images = await sd.vae.decode(decodeInput);
    const final = latents;
    const negative = negativeEmbeds;
    return {
      images,
      latents: final,
      promptEmbeds,
      negativePromptEmbeds: negative,
      dispose() {
        for (const t of [images, final, promptEmbeds, negative]) t?.dispose();
      },
    };
  } catch (error) {
    for (const t of [promptEmbeds, negativeEmbeds, latents]) t?.dispose();
    throw error;
  }
}
