/**
 * Image-to-image sampling: what diffusers' StableDiffusionImg2ImgPipeline.__call__ (v0.31) does, step for
 * step — the image preprocessed as VaeImageProcessor does (cut to a multiple of the VAE's scale factor,
 * [0, 1] → [−1, 1]), encoded by the VAE and drawn from its latent distribution with the generator (as
 * `retrieve_latents` in its default "sample" mode), times scaling_factor; the schedule cut by `strength`
 * (get_timesteps); those latents noised to the first kept timestep by scheduler.add_noise; then the same
 * guided loop and decode as text-to-image (txt2img.ts). Tensor math stays native; the input pixels are
 * rearranged here, like the output pixels in image.ts.
 */
import { expected, InvalidArgumentError } from '../errors';
import type { LatentDistribution } from '../models/vae';
import type { StableDiffusion } from '../models/stable-diffusion';
import { Generator } from '../native/generator';
import { concat, randn } from '../native/ops';
import { Tensor } from '../native/tensor';
import type { Images } from './image';
import { denoise, embedPrompts, pipelineResult, promptBatch, type Txt2ImgOptions, type Txt2ImgResult } from './txt2img';

export interface Img2ImgOptions extends Omit<Txt2ImgOptions, 'latents' | 'height' | 'width'> {
  /**
   * The starting image(s): a Tensor [B, 3, H, W] or [3, H, W] with values in [0, 1] (diffusers' convention for
   * tensors; one with values below 0 is taken as already in [−1, 1], as diffusers does), or 8-bit pixels
   * (`Images`, e.g. a decoded PNG). One image for every prompt, or one per prompt (a divisor of the number of
   * prompts repeats them, as diffusers does). A size that is not a multiple of the VAE's scale factor is cut
   * to the multiple below by nearest-neighbour resizing (what VaeImageProcessor does to tensors).
   */
  image: Tensor | Images;
  /** How far the image is noised, in [0, 1]: the last ⌊steps · strength⌋ of the schedule run (default 0.8). */
  strength?: number;
  /**
   * Exact reproduction: the draw of the VAE's latent distribution [images, latent channels, h, w] and the
   * noise added at the first timestep [prompts, latent channels, h, w]. Otherwise both come from the seed's
   * generator, in diffusers' order (the VAE's draw first), before any noise a scheduler step draws.
   */
  encoderNoise?: Tensor;
  noise?: Tensor;
  /** Called once the starting latents are ready, with borrowed tensors (valid only during the call). */
  onStart?: (trace: Img2ImgStart) => void | Promise<void>;
}

export interface Img2ImgStart {
  /** The preprocessed image [images, 3, H, W] in [−1, 1], as the VAE sees it. */
  image: Tensor;
  /** The VAE's latent distribution of it (mean, logvar and std). */
  latentDist: Required<LatentDistribution>;
  /** The drawn latents times scaling_factor, repeated to one per prompt. */
  initLatents: Tensor;
  noise: Tensor;
  /** The timestep the latents were noised to: the first of `timesteps`. */
  latentTimestep: number;
  /** The noised latents the loop starts from. */
  latents: Tensor;
  timesteps: readonly number[];
}

export interface Img2ImgResult extends Txt2ImgResult {
  /** The timesteps that ran: the scheduler's, from the one strength chose. */
  timesteps: readonly number[];
}

/**
 * get_timesteps: the scheduler's timesteps from index (steps − min(⌊steps · strength⌋, steps)) · order on, where
 * order is diffusers' scheduler.order (2 for Heun and KDPM2, which evaluate the model twice per step).
 */
export function img2imgTimesteps(timesteps: readonly number[], steps: number, strength: number, order: number = 1): number[] {
  const initTimestep = Math.min(Math.trunc(steps * strength), steps);
  const tStart = Math.max(steps - initTimestep, 0);
  return timesteps.slice(tStart * order);
}

/** Image values as float32 NCHW, with the batch size and the image size. */
async function imageValues(image: Tensor | Images): Promise<{ data: Float32Array; count: number; height: number; width: number }> {
  if (image instanceof Tensor) {
    const shape = image.shape.length === 3 ? [1, ...image.shape] : image.shape;
    if (shape.length !== 4 || shape[1] !== 3)
      throw new InvalidArgumentError(
        `options.image: expected a Tensor of shape [B, 3, H, W] or [3, H, W] (RGB) but received shape [${image.shape.join(', ')}]`,
      );
    using cpu = await image.to('cpu', 'float32');
    return { data: (await cpu.data()) as Float32Array, count: shape[0]!, height: shape[2]!, width: shape[3]! };
  }
  const ok =
    image !== null &&
    typeof image === 'object' &&
    image.pixels instanceof Uint8Array &&
    (image.channels === 1 || image.channels === 3) &&
    [image.count, image.height, image.width].every((v) => Number.isSafeInteger(v) && v > 0) &&
    image.pixels.length === image.count * image.height * image.width * image.channels;
  if (!ok) throw expected('a Tensor or 8-bit images { count, height, width, channels: 1 or 3, pixels: uint8 HWC per image }', 'options.image', image);
  const { count, height, width, channels, pixels } = image;
  const plane = height * width;
  const data = new Float32Array(count * 3 * plane);
  // As diffusers' pil_to_numpy: x / 255 in float32 (a grayscale image becomes RGB, as PIL's convert("RGB")).
  for (let i = 0; i < count; i++)
    for (let p = 0; p < plane; p++)
      for (let c = 0; c < 3; c++) data[(i * 3 + c) * plane + p] = Math.fround(pixels[(i * plane + p) * channels + (channels === 1 ? 0 : c)]! / 255);
  return { data, count, height, width };
}

/** torch's legacy "nearest" source index: min(⌊dst · (in / out)⌋, in − 1), in float32 as upsample_nearest2d computes it. */
function nearestIndex(dst: number, inSize: number, outSize: number): number {
  if (inSize === outSize) return dst;
  const scale = Math.fround(inSize / outSize);
  return Math.min(Math.floor(Math.fround(Math.fround(dst) * scale)), inSize - 1);
}

/**
 * VaeImageProcessor.preprocess for a tensor: the size cut to the multiple of `factor` below (nearest-neighbour
 * interpolate, torch's default), then 2x − 1 unless a value is below 0 (taken as already in [−1, 1]).
 */
export async function preprocessImage(image: Tensor | Images, factor: number): Promise<Tensor> {
  const { data, count, height, width } = await imageValues(image);
  const h = height - (height % factor);
  const w = width - (width % factor);
  if (h === 0 || w === 0) throw expected(`an image at least ${factor}×${factor} pixels (the VAE's scale factor)`, 'options.image', `${width}×${height}`);
  let out = data;
  if (h !== height || w !== width) {
    out = new Float32Array(count * 3 * h * w);
    const rows = Array.from({ length: h }, (_, y) => nearestIndex(y, height, h));
    const cols = Array.from({ length: w }, (_, x) => nearestIndex(x, width, w));
    for (let plane = 0; plane < count * 3; plane++)
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[(plane * h + y) * w + x] = data[(plane * height + rows[y]!) * width + cols[x]!]!;
  }
  let min = Infinity;
  for (const v of out) if (v < min) min = v;
  // Copied into a Float32Array of this realm either way (the native one from data() is not one under jest).
  const normalized = min < 0 ? Float32Array.from(out) : Float32Array.from(out, (v) => Math.fround(2 * v - 1));
  return Tensor.from(normalized, [count, 3, h, w]);
}

function checkStrength(strength: unknown): number {
  if (typeof strength !== 'number' || !(strength >= 0 && strength <= 1)) throw expected('a number in [0, 1]', 'options.strength', strength);
  return strength;
}

function checkNoise(noise: Tensor | undefined, shape: readonly number[], name: string, what: string): void {
  if (noise === undefined) return;
  if (!(noise instanceof Tensor)) throw expected('a Tensor', name, noise);
  if (noise.shape.join() !== shape.join())
    throw new InvalidArgumentError(`${name}: expected shape [${shape.join(', ')}] (${what}) but received [${noise.shape.join(', ')}]`);
}

/** Runs the whole image-to-image pipeline. The caller disposes the result. */
export async function img2img(sd: StableDiffusion, options: Img2ImgOptions): Promise<Img2ImgResult> {
  if (options === null || typeof options !== 'object') throw expected('an options object', 'options', options);
  const call = promptBatch(options);
  const strength = checkStrength(options.strength ?? 0.8);
  const batch = call.prompts.length;
  const scheduler = sd.scheduler;
  await scheduler.setTimesteps(call.steps);
  // Where a scheduler keeps a step index, the slice's first timestep finds it as diffusers' set_begin_index
  // does: a repeated timestep's later position, which is where index_for_timestep looks.
  const timesteps = img2imgTimesteps(scheduler.timesteps, call.steps, strength, scheduler.order);
  if (timesteps.length === 0)
    throw new InvalidArgumentError(
      `options.strength: ${strength} × ${call.steps} steps leaves no denoising step (⌊steps · strength⌋ is 0); raise strength or steps`,
    );

  using cpuImage = await preprocessImage(options.image, sd.vae.vaeScaleFactor);
  const images = cpuImage.shape[0]!;
  if (batch % images !== 0)
    throw new InvalidArgumentError(`options.image: expected 1 image, or one per prompt (${batch}), or a divisor of ${batch}, but found ${images}`);
  using deviceImage = sd.device === 'cpu' ? undefined : await cpuImage.to(sd.device);
  const image = deviceImage ?? cpuImage;

  const embeddings = await embedPrompts(sd, call, options.clipSkip ?? null);
  let latents: Tensor | undefined;
  using generator = new Generator(options.seed ?? 0);
  try {
    const dist = (await sd.vae.encode(image, { std: true })) as Required<LatentDistribution>;
    using mean = dist.mean;
    using logvar = dist.logvar;
    using std = dist.std;
    checkNoise(options.encoderNoise, mean.shape, 'options.encoderNoise', "the VAE's latent distribution of the images");
    using drawn = await sd.vae.sampleLatents(dist, { ...(options.encoderNoise ? { noise: options.encoderNoise } : { generator }), scaled: true });
    // More prompts than images: the encoded images repeat as a whole (torch.cat([init_latents] * k)), as diffusers does.
    using repeated = images < batch ? await concat(Array.from({ length: batch / images }, () => drawn)) : undefined;
    const initLatents = repeated ?? drawn;
    checkNoise(options.noise, initLatents.shape, 'options.noise', 'one per prompt, the latents’ shape');
    using drawnNoise = options.noise ? undefined : await randn(initLatents.shape, { generator, device: sd.device });
    const noise = options.noise ?? drawnNoise!;
    latents = await scheduler.addNoise(
      initLatents,
      noise,
      Array.from({ length: batch }, () => timesteps[0]!),
    );
    await options.onStart?.({ image, latentDist: { mean, logvar, std }, initLatents, noise, latentTimestep: timesteps[0]!, latents, timesteps });
  } catch (error) {
    latents?.dispose();
    embeddings.dispose();
    throw error;
  }
  let final: Tensor;
  try {
    final = await denoise(sd, embeddings, latents, { timesteps, guidance: call.guidance, generator, eta: options.eta, onStep: options.onStep });
  } catch (error) {
    embeddings.dispose();
    throw error;
  }
  return { ...(await pipelineResult(sd, final, embeddings, options)), timesteps };
}
