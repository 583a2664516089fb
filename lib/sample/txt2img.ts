/**
 * Text-to-image sampling: what diffusers' StableDiffusionPipeline.__call__ does, step for step —
 * prompts and negative prompts encoded once (no attention mask), the unconditional half first in the
 * U-Net's batch, classifier-free guidance, any scheduler, latents decoded by the VAE after dividing
 * by its scaling factor. Tensor math stays native; this sequences the calls.
 */
import { expected, InvalidArgumentError } from '../errors';
import { planVaeDecode } from '../models/memory-check';
import type { StableDiffusion } from '../models/stable-diffusion';
import type { VaeMemoryOptions, VaeTileSizes } from '../models/vae';
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
  /**
   * Decode the batch one image at a time (diffusers' enable_vae_slicing: the same images). "auto" (the
   * default): when decoding the whole batch at once would not fit in memory (planVaeDecode).
   */
  vaeSlicing?: boolean | 'auto';
  /**
   * Decode in overlapping tiles (diffusers' enable_vae_tiling: tile seams blended, so slightly different
   * images); `true` or tile sizes of one's own. "auto" (the default): only when one image would not fit.
   */
  vaeTiling?: boolean | VaeTileSizes | 'auto';
  /** Informational lines: the VAE memory savers turned on automatically, and why. */
  onLog?: (line: string) => void;
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

/**
 * Token ids [batch, max_length] (padded to max_length, truncated), as the pipeline's encode_prompt makes them,
 * a multi-vector textual inversion token spread over its vectors first (maybe_convert_prompt).
 */
export function tokenizePrompts(sd: StableDiffusion, prompts: readonly string[]): Tensor {
  const rows = prompts.map((p) => sd.tokenizer.encode(sd.tokenizer.expandMultiVectorTokens(p), { padding: 'max_length', truncation: true }).inputIds);
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

/** The prompt side of a pipeline call, checked: prompts, negative prompts (when guidance is on), guidance, steps. */
export interface PromptBatch {
  prompts: string[];
  /** undefined when guidance is off (guidanceScale ≤ 1). */
  negatives: string[] | undefined;
  guidance: number;
  steps: number;
}

/** Validates the options every Stable Diffusion pipeline call shares; errors name the option. */
export function promptBatch(options: Pick<Txt2ImgOptions, 'prompt' | 'negativePrompt' | 'guidanceScale' | 'steps'>): PromptBatch {
  const prompts = asList(options.prompt, 'options.prompt');
  const guidance = options.guidanceScale ?? 7.5;
  if (typeof guidance !== 'number' || !Number.isFinite(guidance)) throw expected('a finite number', 'options.guidanceScale', guidance);
  const steps = options.steps ?? 50;
  if (!Number.isSafeInteger(steps) || steps < 1) throw expected('a positive integer', 'options.steps', steps);
  let negatives: string[] | undefined;
  if (guidance > 1) {
    const n = options.negativePrompt;
    negatives = n === null || n === undefined ? prompts.map(() => '') : typeof n === 'string' ? prompts.map(() => n) : asList(n, 'options.negativePrompt');
    if (negatives.length !== prompts.length)
      throw new InvalidArgumentError(`options.negativePrompt: expected ${prompts.length} negative prompts (one per prompt) but found ${negatives.length}`);
  }
  return { prompts, negatives, guidance, steps };
}

/** The prompts' embeddings and, with guidance, the negative prompts' (the U-Net's context is [negative; prompt]). */
export interface PromptEmbeddings {
  promptEmbeds: Tensor;
  negativeEmbeds: Tensor | undefined;
  dispose(): void;
}

export async function embedPrompts(sd: StableDiffusion, batch: PromptBatch, clipSkip: number | null): Promise<PromptEmbeddings> {
  const promptEmbeds = await encodePrompts(sd, batch.prompts, clipSkip);
  try {
    // diffusers applies clip_skip to the prompt only; the negative prompt always uses last_hidden_state.
    const negativeEmbeds = batch.negatives ? await encodePrompts(sd, batch.negatives, null) : undefined;
    return {
      promptEmbeds,
      negativeEmbeds,
      dispose() {
        promptEmbeds.dispose();
        negativeEmbeds?.dispose();
      },
    };
  } catch (error) {
    promptEmbeds.dispose();
    throw error;
  }
}

/**
 * The guided denoising loop every Stable Diffusion pipeline runs from its starting latents over
 * `timesteps` (all of the scheduler's, or img2img's tail of them): the latents doubled for the
 * unconditional half, scaled for the scheduler, the U-Net, guidance, a scheduler step. Takes ownership
 * of `latents` and returns the final ones.
 */
export async function denoise(
  sd: StableDiffusion,
  embeddings: PromptEmbeddings,
  latents: Tensor,
  loop: { timesteps: readonly number[]; guidance: number; generator: Generator; eta?: number; onStep?: Txt2ImgOptions['onStep'] },
): Promise<Tensor> {
  const scheduler = sd.scheduler;
  const { promptEmbeds, negativeEmbeds } = embeddings;
  try {
    using context = negativeEmbeds ? await concat([negativeEmbeds, promptEmbeds]) : undefined;
    for (const [index, t] of loop.timesteps.entries()) {
      using doubled = context ? await concat([latents, latents]) : undefined;
      using input = await scheduler.scaleModelInput(doubled ?? latents, t);
      using ts = scheduler.timestepTensor(t);
      using out = await sd.unet.forward(input, ts, { encoderHiddenStates: context ?? promptEmbeds });
      using guided = context ? await classifierFreeGuidance(out, loop.guidance) : undefined;
      const r = await scheduler.step(guided ?? out, t, latents, { generator: loop.generator, eta: loop.eta });
      r.predOriginalSample?.dispose();
      latents.dispose();
      latents = r.prevSample;
      await loop.onStep?.({ index, total: loop.timesteps.length, timestep: t, unetInput: input, unetOutput: out, guidedNoisePred: guided ?? out, latents });
    }
    return latents;
  } catch (error) {
    latents.dispose();
    throw error;
  }
}

/** The options that choose how the VAE decodes (Txt2ImgOptions' vaeSlicing, vaeTiling, onLog). */
export type VaeMemoryChoice = Pick<Txt2ImgOptions, 'vaeSlicing' | 'vaeTiling' | 'onLog'>;

/**
 * The VAE savers a decode of `latents` uses: the ones asked for, and for each left at "auto" (the
 * default) planVaeDecode's choice, logged through onLog when it turns one on.
 */
export function vaeMemory(sd: Pick<StableDiffusion, 'vae'>, latents: readonly number[], options: VaeMemoryChoice): VaeMemoryOptions {
  const slicing = options.vaeSlicing ?? 'auto';
  const tiling = options.vaeTiling ?? 'auto';
  if (slicing !== 'auto' && typeof slicing !== 'boolean') throw expected('true, false or "auto"', 'options.vaeSlicing', slicing);
  if (tiling !== 'auto' && typeof tiling !== 'boolean' && (tiling === null || typeof tiling !== 'object'))
    throw expected('true, false, "auto" or tile sizes { tileSampleSize, tileLatentSize, overlap }', 'options.vaeTiling', tiling);
  if (slicing !== 'auto' && tiling !== 'auto') return { slicing, tiling };
  const plan = planVaeDecode(sd.vae.config, latents, sd.vae.tiling(typeof tiling === 'object' ? tiling : {}));
  if (plan.note !== undefined && ((slicing === 'auto' && plan.slicing) || (tiling === 'auto' && plan.tiling))) options.onLog?.(plan.note);
  return { slicing: slicing === 'auto' ? plan.slicing : slicing, tiling: tiling === 'auto' ? plan.tiling : tiling };
}

/** Images from final latents: divided by the VAE's scaling_factor, then decoded (sliced or tiled as `memory` says, see vaeMemory). */
export async function decodeLatents(sd: StableDiffusion, latents: Tensor, memory: VaeMemoryChoice = {}): Promise<Tensor> {
  using decodeInput = await scale(latents, 1 / sd.vae.scalingFactor);
  return await sd.vae.decode(decodeInput, vaeMemory(sd, decodeInput.shape, memory));
}

/** A pipeline result from the final latents: decodes them; on failure frees what it was given. */
export async function pipelineResult(sd: StableDiffusion, latents: Tensor, embeddings: PromptEmbeddings, memory: VaeMemoryChoice = {}): Promise<Txt2ImgResult> {
  try {
    const images = await decodeLatents(sd, latents, memory);
    return {
      images,
      latents,
      promptEmbeds: embeddings.promptEmbeds,
      negativePromptEmbeds: embeddings.negativeEmbeds,
      dispose() {
        images.dispose();
        latents.dispose();
        embeddings.dispose();
      },
    };
  } catch (error) {
    latents.dispose();
    embeddings.dispose();
    throw error;
  }
}

/** Runs the whole text-to-image pipeline. The caller disposes the result. */
export async function txt2img(sd: StableDiffusion, options: Txt2ImgOptions): Promise<Txt2ImgResult> {
  const call = promptBatch(options);
  const batch = call.prompts.length;
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
  const embeddings = await embedPrompts(sd, call, options.clipSkip ?? null);
  let latents: Tensor;
  using generator = new Generator(options.seed ?? 0);
  try {
    await scheduler.setTimesteps(call.steps);
    using noise = options.latents ? undefined : await randn(shape, { generator, device: sd.device });
    latents = await scheduler.scaleInitialNoise(options.latents ?? noise!);
  } catch (error) {
    embeddings.dispose();
    throw error;
  }
  try {
    latents = await denoise(sd, embeddings, latents, {
      timesteps: scheduler.timesteps,
      guidance: call.guidance,
      generator,
      eta: options.eta,
      onStep: options.onStep,
    });
  } catch (error) {
    embeddings.dispose();
    throw error;
  }
  return await pipelineResult(sd, latents, embeddings, options);
}
