/**
 * diffusers AutoencoderKL from a `vae/` folder: `loadVae(dir)` reads config.json and the safetensors
 * weights (single file, sharded index, or a variant such as fp16) into a native model. encode and decode
 * run without autograd, in eval mode (train/vae-training.ts trains one). `vae.save(dir)` writes a folder
 * diffusers loads back.
 */
import { expected } from '../errors';
import { parseVaeConfig, toNativeVaeConfig, vaeScaleFactor, type AutoencoderKLConfig } from '../config/vae';
import type { LoadStats, StateDict } from '../checkpoint/state-dict';
import { VAE_SIZE_CAPS, vaeParameterCount } from '../config/model-size';
import type { ComputeDType } from '../native/dtype';
import { callAsync, loadNative } from '../native/load';
import type { Generator } from '../native/generator';
import { gaussianSample, randn } from '../native/ops';
import { Tensor } from '../native/tensor';
import type { NativeAutoencoderKL, NativeVaeTiling } from '../native/types';
import { checkModelOptions, FrozenModel, readConfigJson, refusePickles, type ModelOptions } from './frozen-model';
import { diffusersConfigJson, hasWeightFiles, saveModelFolder, weightsSource } from './model-folder';
import { checkTensor, createNativeModel, streamWeightsInto, toTensorMap } from './native-model';
import { resolveWeightFiles, UNET_WEIGHTS } from './unet';
import { renameLegacyVaeKeys } from './vae-keys';

export const VAE_WEIGHTS = UNET_WEIGHTS;

export interface LoadVaeOptions extends ModelOptions {
  /** Weights variant: "fp16" reads diffusion_pytorch_model.fp16.safetensors (converted to `dtype`). */
  variant?: string;
}

/** An encoded batch: DiagonalGaussianDistribution's mean and logvar (clamped to [−30, 20]), [B, latent_channels, H/f, W/f]. */
export interface LatentDistribution {
  mean: Tensor;
  logvar: Tensor;
  /** exp(0.5·logvar), when asked for. */
  std?: Tensor;
}

/** Tile sizes of tiled encoding/decoding; each defaults to diffusers' (see AutoencoderKL.tiling). */
export interface VaeTileSizes {
  /** tile_sample_min_size: a tile's side in pixels (default: the config's sample_size). */
  tileSampleSize?: number;
  /** tile_latent_min_size: a tile's side in latents (default: tileSampleSize ÷ the VAE scale factor, truncated). */
  tileLatentSize?: number;
  /** tile_overlap_factor: the share of a tile that overlaps the next one and is blended (default 0.25). */
  overlap?: number;
}

/**
 * diffusers' memory savers for large images and batches: `slicing` (enable_vae_slicing) encodes or
 * decodes a batch one image at a time; `tiling` (enable_vae_tiling) encodes or decodes an image larger
 * than a tile in overlapping tiles, blended linearly where they overlap — the same arithmetic as
 * diffusers, so the same (slightly tile-dependent) images. `true` takes diffusers' tile sizes.
 */
export interface VaeMemoryOptions {
  slicing?: boolean;
  tiling?: boolean | VaeTileSizes;
}

export interface VaeBackwardResult {
  output: Tensor;
  loss: Tensor;
  gradLatents: Tensor;
  gradParams: Map<string, Tensor>;
}

export class AutoencoderKL extends FrozenModel<NativeAutoencoderKL> {
  readonly config: AutoencoderKLConfig;
  /** Keys of config.json that difftune does not know: kept and written back by save(), otherwise unused. */
  readonly unknownKeys: readonly string[];
  readonly #extra: Record<string, unknown>;

  private constructor(native: NativeAutoencoderKL, config: AutoencoderKLConfig, extra: Record<string, unknown>, device: string, dtype: ComputeDType) {
    super(native, 'AutoencoderKL', device, dtype);
    this.config = config;
    this.#extra = extra;
    this.unknownKeys = Object.keys(extra);
  }

  /** A model from a config (raw diffusers config.json content), initialised like torch.nn from `seed`. */
  static async fromConfig(rawConfig: unknown, options: ModelOptions & { seed?: number; source?: string } = {}): Promise<AutoencoderKL> {
    const { device, dtype } = checkModelOptions(options);
    const { config, extra } = parseVaeConfig(rawConfig, options.source ?? 'config');
    const native = loadNative();
    const handle = await createNativeModel({ model: 'AutoencoderKL', source: options.source ?? 'config', config, count: vaeParameterCount, caps: VAE_SIZE_CAPS }, () => native.NativeAutoencoderKL.create(toNativeVaeConfig(config)), (h) => h.initialize(options.seed ?? 0), device, dtype);
    return new AutoencoderKL(handle, config, extra, device, dtype);
  }

  /** @internal A model from a validated config, its weights streamed from `files` (legacy attention names accepted). */
  static async fromFiles(rawConfig: unknown, configSource: string, files: readonly string[], source: string, options: ModelOptions): Promise<AutoencoderKL> {
    const { device, dtype } = checkModelOptions(options);
    const { config, extra } = parseVaeConfig(rawConfig, configSource);
    const native = loadNative();
    let stats: LoadStats | undefined;
    const load = async (h: NativeAutoencoderKL): Promise<void> => {
      stats = await streamWeightsInto(h, files, source, renameLegacyVaeKeys);
    };
    const handle = await createNativeModel({ model: 'AutoencoderKL', source: configSource, config, count: vaeParameterCount, caps: VAE_SIZE_CAPS }, () => native.NativeAutoencoderKL.create(toNativeVaeConfig(config)), load, device, dtype);
    const vae = new AutoencoderKL(handle, config, extra, device, dtype);
    vae.loadStats = stats;
    return vae;
  }

  /** Legacy attention names (query/key/value/proj_attn) become diffusers' current ones. */
  protected override prepareWeights(weights: StateDict, source: string): StateDict {
    return renameLegacyVaeKeys(weights, source);
  }

  /** @internal The native handle, for the VAE trainer. */
  get native(): NativeAutoencoderKL {
    return this.live();
  }

  /** Multiply encoded latents by it for the U-Net; divide U-Net latents by it before decode(). */
  get scalingFactor(): number {
    return this.config.scaling_factor;
  }

  /** null for SD 1.x/2.x VAEs. */
  get shiftFactor(): number | null {
    return this.config.shift_factor;
  }

  /** 2^(levels − 1): image size / latent size (8 for Stable Diffusion's VAE). */
  get vaeScaleFactor(): number {
    return vaeScaleFactor(this.config);
  }

  get latentChannels(): number {
    return this.config.latent_channels;
  }

  /**
   * The latent distribution of `images` [B, in_channels, H, W] (values in [−1, 1]; any float dtype,
   * converted to the model's). With `{ std: true }` also exp(0.5·logvar). The caller disposes the tensors.
   */
  async encode(images: Tensor, options: { std?: boolean } & VaeMemoryOptions = {}): Promise<LatentDistribution> {
    checkTensor(images, 'images');
    const native = this.live();
    const tiling = this.nativeTiling(options);
    const r = await callAsync(() => native.encode(images.native, tiling));
    const dist: LatentDistribution = { mean: new Tensor(r.mean), logvar: new Tensor(r.logvar) };
    if (options.std === true) dist.std = new Tensor(r.std);
    else r.std.dispose();
    return dist;
  }

  /**
   * A draw from the latent distribution, mean + exp(0.5·logvar)·noise, with `noise` given or drawn from
   * `generator` (N(0, 1) on the CPU, reproducible on every device). `scaled: true` multiplies by
   * scaling_factor: the latents a U-Net trains on.
   */
  async sampleLatents(dist: LatentDistribution, options: { noise?: Tensor; generator?: Generator; scaled?: boolean } = {}): Promise<Tensor> {
    if (dist === null || typeof dist !== 'object') throw expected('a LatentDistribution { mean, logvar }', 'dist', dist);
    const mean = checkTensor(dist.mean, 'dist.mean');
    const logvar = checkTensor(dist.logvar, 'dist.logvar');
    if (options.noise !== undefined && options.generator !== undefined) throw expected('either noise or generator, not both', 'options', options);
    this.live();
    const factor = options.scaled === true ? this.scalingFactor : 1;
    const drawn = options.noise === undefined ? await randn(mean.shape, { device: mean.device, generator: options.generator }) : undefined;
    try {
      const noise = drawn ?? checkTensor(options.noise, 'options.noise');
      return await gaussianSample(mean, logvar, noise, factor);
    } finally {
      drawn?.dispose();
    }
  }

  /** Images [B, out_channels, h·f, w·f] from latents [B, latent_channels, h, w] in the VAE's own scale (latents / scalingFactor). */
  async decode(latents: Tensor, options: VaeMemoryOptions = {}): Promise<Tensor> {
    checkTensor(latents, 'latents');
    const native = this.live();
    const tiling = this.nativeTiling(options);
    return new Tensor(await callAsync(() => native.decode(latents.native, tiling)));
  }

  /**
   * The tile sizes `tiling` resolves to: diffusers' tile_sample_min_size (the config's sample_size, its
   * first entry for a list), tile_latent_min_size = int(sample_size / 2^(levels − 1)) and overlap 0.25,
   * each replaced where given.
   */
  tiling(sizes: VaeTileSizes = {}): Required<VaeTileSizes> {
    if (sizes === null || typeof sizes !== 'object') throw expected('an object { tileSampleSize, tileLatentSize, overlap }', 'options.tiling', sizes);
    const configured = this.config.sample_size;
    const tileSampleSize = sizes.tileSampleSize ?? (typeof configured === 'number' ? configured : configured[0]!);
    const tileLatentSize = sizes.tileLatentSize ?? Math.trunc(tileSampleSize / this.vaeScaleFactor);
    const overlap = sizes.overlap ?? 0.25;
    if (!Number.isSafeInteger(tileSampleSize) || tileSampleSize < 1) throw expected('a positive integer', 'options.tiling.tileSampleSize', tileSampleSize);
    if (!Number.isSafeInteger(tileLatentSize) || tileLatentSize < 1) throw expected('a positive integer', 'options.tiling.tileLatentSize', tileLatentSize);
    if (typeof overlap !== 'number' || !(overlap >= 0 && overlap < 1)) throw expected('a number in [0, 1)', 'options.tiling.overlap', overlap);
    return { tileSampleSize, tileLatentSize, overlap };
  }

  private nativeTiling(options: VaeMemoryOptions): NativeVaeTiling {
    if (options === null || typeof options !== 'object') throw expected('an options object', 'options', options);
    const slicing = options.slicing ?? false;
    if (typeof slicing !== 'boolean') throw expected('a boolean', 'options.slicing', slicing);
    const tiling = options.tiling ?? false;
    if (tiling === false) return { slicing, tiling: false };
    return { slicing, tiling: true, ...this.tiling(tiling === true ? {} : tiling) };
  }

  /** diffusers' vae(images).sample: decode(encode(images).mean). */
  async forward(images: Tensor): Promise<Tensor> {
    checkTensor(images, 'images');
    const native = this.live();
    return new Tensor(await callAsync(() => native.forward(images.native)));
  }

  /** decode(latents), MSE loss against `target`, backward: the loss, output, gradient of the latents and of the parameters asked for. */
  async decodeBackwardMse(latents: Tensor, target: Tensor, options: { gradNames?: string[] } = {}): Promise<VaeBackwardResult> {
    checkTensor(latents, 'latents');
    checkTensor(target, 'target');
    const native = this.live();
    const r = await callAsync(() => native.decodeBackwardMse(latents.native, target.native, options.gradNames));
    return { output: new Tensor(r.output), loss: new Tensor(r.loss), gradLatents: new Tensor(r.gradLatents), gradParams: toTensorMap(r.gradParams) };
  }

  /** The diffusers config.json object: every key, defaults and kept unknown keys included, sorted. */
  configJson(): Record<string, unknown> {
    return diffusersConfigJson(this.config, this.#extra);
  }

  /** Writes config.json and diffusion_pytorch_model.safetensors (in the model's dtype), each atomically. */
  async save(dir: string): Promise<void> {
    if (typeof dir !== 'string' || dir.length === 0) throw expected('a folder path', 'dir', dir);
    await saveModelFolder(dir, VAE_WEIGHTS, () => this.stateDict(), () => this.configJson());
  }
}

/** Loads a diffusers AutoencoderKL folder (config.json + safetensors weights). */
export async function loadVae(dir: string, options: LoadVaeOptions = {}): Promise<AutoencoderKL> {
  checkModelOptions(options);
  const { file, raw } = readConfigJson(dir, 'diffusers AutoencoderKL (config.json + diffusion_pytorch_model.safetensors)');
  const variant = options.variant;
  if (!hasWeightFiles(dir, VAE_WEIGHTS, variant)) {
    refusePickles(dir, ['diffusion_pytorch_model.bin', 'diffusion_pytorch_model.fp16.bin'], 'AutoencoderKL.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)');
  }
  const files = resolveWeightFiles(dir, variant);
  return AutoencoderKL.fromFiles(raw, file, files, weightsSource(dir, files), options);
}
