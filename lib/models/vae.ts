/**
 * diffusers AutoencoderKL from a `vae/` folder: `loadVae(dir)` reads config.json and the safetensors
 * weights (single file, sharded index, or a variant such as fp16) into a native model. The VAE is used
 * frozen: encode and decode run without autograd, in eval mode. `vae.save(dir)` writes a folder
 * diffusers loads back.
 */
import * as fs from 'fs';
import * as path from 'path';
import { DisposedError, expected } from '../errors';
import { formatLenientJson } from '../config/json';
import { parseVaeConfig, toNativeVaeConfig, vaeScaleFactor, type AutoencoderKLConfig } from '../config/vae';
import { loadStateDict, saveStateDict, disposeStateDict, type StateDict } from '../checkpoint/state-dict';
import { writeFileAtomically, writeAll } from '../util/atomic-write';
import { callAsync, loadNative } from '../native/load';
import type { Generator } from '../native/generator';
import { randn } from '../native/ops';
import { Tensor } from '../native/tensor';
import type { NativeAutoencoderKL, NativeParameterInfo } from '../native/types';
import { checkModelOptions, readConfigJson, refusePickles, toTensorMap, type ModelOptions } from './frozen-model';
import { DIFFUSERS_VERSION, resolveWeightFiles, UNET_WEIGHTS, type ComputeDType } from './unet';
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

export interface VaeBackwardResult {
  output: Tensor;
  loss: Tensor;
  gradLatents: Tensor;
  gradParams: Map<string, Tensor>;
}

function checkTensor(value: unknown, param: string): Tensor {
  if (!(value instanceof Tensor)) throw expected('a Tensor', param, value);
  return value;
}

export class AutoencoderKL {
  #native: NativeAutoencoderKL | undefined;
  readonly config: AutoencoderKLConfig;
  /** Keys of config.json that difftune does not know: kept and written back by save(), otherwise unused. */
  readonly unknownKeys: readonly string[];
  readonly #extra: Record<string, unknown>;
  #device: string;
  #dtype: ComputeDType;

  private constructor(native: NativeAutoencoderKL, config: AutoencoderKLConfig, extra: Record<string, unknown>, device: string, dtype: ComputeDType) {
    this.#native = native;
    this.config = config;
    this.#extra = extra;
    this.unknownKeys = Object.keys(extra);
    this.#device = device;
    this.#dtype = dtype;
  }

  /** A model from a config (raw diffusers config.json content), initialised like torch.nn from `seed`. */
  static async fromConfig(rawConfig: unknown, options: ModelOptions & { seed?: number; source?: string } = {}): Promise<AutoencoderKL> {
    const { device, dtype } = checkModelOptions(options);
    const { config, extra } = parseVaeConfig(rawConfig, options.source ?? 'config');
    const native = loadNative();
    const handle = await callAsync(() => native.NativeAutoencoderKL.create(toNativeVaeConfig(config)));
    try {
      await callAsync(() => handle.initialize(options.seed ?? 0));
      if (device !== 'cpu' || dtype !== 'float32') await callAsync(() => handle.to(device, dtype));
    } catch (error) {
      handle.dispose();
      throw error;
    }
    return new AutoencoderKL(handle, config, extra, device, dtype);
  }

  /** @internal A model from a validated config and weights (legacy attention names accepted). */
  static async fromParts(rawConfig: unknown, configSource: string, weights: StateDict, source: string, options: ModelOptions): Promise<AutoencoderKL> {
    const { device, dtype } = checkModelOptions(options);
    const { config, extra } = parseVaeConfig(rawConfig, configSource);
    const native = loadNative();
    const handle = await callAsync(() => native.NativeAutoencoderKL.create(toNativeVaeConfig(config)));
    try {
      const renamed = renameLegacyVaeKeys(weights, source);
      const names = [...renamed.keys()];
      await callAsync(() => handle.loadStateDict(names, names.map((n) => renamed.get(n)!.native), source));
      if (device !== 'cpu' || dtype !== 'float32') await callAsync(() => handle.to(device, dtype));
    } catch (error) {
      handle.dispose();
      throw error;
    }
    return new AutoencoderKL(handle, config, extra, device, dtype);
  }

  private live(): NativeAutoencoderKL {
    if (this.#native === undefined || this.#native.disposed) throw new DisposedError('AutoencoderKL');
    return this.#native;
  }

  get device(): string {
    return this.#device;
  }

  get dtype(): ComputeDType {
    return this.#dtype;
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

  async parameters(): Promise<NativeParameterInfo[]> {
    const native = this.live();
    return callAsync(() => native.parameters());
  }

  /**
   * The latent distribution of `images` [B, in_channels, H, W] (values in [−1, 1]; any float dtype,
   * converted to the model's). With `{ std: true }` also exp(0.5·logvar). The caller disposes the tensors.
   */
  async encode(images: Tensor, options: { std?: boolean } = {}): Promise<LatentDistribution> {
    checkTensor(images, 'images');
    const native = this.live();
    const r = await callAsync(() => native.encode(images.native));
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
    const native = this.live();
    const factor = options.scaled === true ? this.scalingFactor : 1;
    const drawn = options.noise === undefined ? await randn(mean.shape, { device: mean.device, generator: options.generator }) : undefined;
    try {
      const noise = drawn ?? checkTensor(options.noise, 'options.noise');
      return new Tensor(await callAsync(() => native.sample(mean.native, logvar.native, noise.native, factor)));
    } finally {
      drawn?.dispose();
    }
  }

  /** Images [B, out_channels, h·f, w·f] from latents [B, latent_channels, h, w] in the VAE's own scale (latents / scalingFactor). */
  async decode(latents: Tensor): Promise<Tensor> {
    checkTensor(latents, 'latents');
    const native = this.live();
    return new Tensor(await callAsync(() => native.decode(latents.native)));
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

  /** Copies of the weights under diffusers' keys. */
  async stateDict(): Promise<StateDict> {
    const native = this.live();
    return toTensorMap(await callAsync(() => native.stateDict()));
  }

  /** Replaces the weights (strict: every key, right shapes; legacy attention names are renamed). */
  async loadStateDict(weights: StateDict, source = 'state dict'): Promise<void> {
    const native = this.live();
    const renamed = renameLegacyVaeKeys(weights, source);
    const names = [...renamed.keys()];
    await callAsync(() => native.loadStateDict(names, names.map((n) => renamed.get(n)!.native), source));
  }

  /** Moves the weights to another device and/or dtype. */
  async to(options: ModelOptions): Promise<void> {
    const { device, dtype } = checkModelOptions({ device: this.#device, dtype: this.#dtype, ...options });
    const native = this.live();
    await callAsync(() => native.to(device, dtype));
    this.#device = device;
    this.#dtype = dtype;
  }

  /** The diffusers config.json object: every key, defaults and kept unknown keys included, sorted. */
  configJson(): Record<string, unknown> {
    const { _class_name, ...rest } = this.config;
    const all: Record<string, unknown> = { ...this.#extra, ...rest };
    const out: Record<string, unknown> = { _class_name, _diffusers_version: DIFFUSERS_VERSION };
    for (const key of Object.keys(all).sort()) out[key] = all[key];
    return out;
  }

  /** Writes config.json and diffusion_pytorch_model.safetensors (in the model's dtype), each atomically. */
  async save(dir: string): Promise<void> {
    if (typeof dir !== 'string' || dir.length === 0) throw expected('a folder path', 'dir', dir);
    fs.mkdirSync(dir, { recursive: true });
    const weights = await this.stateDict();
    try {
      await saveStateDict(path.join(dir, VAE_WEIGHTS), weights, { format: 'pt' });
    } finally {
      disposeStateDict(weights);
    }
    const text = Buffer.from(`${formatLenientJson(this.configJson(), 2)}\n`, 'utf8');
    await writeFileAtomically(path.join(dir, 'config.json'), (handle) => writeAll(handle, text));
  }

  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  get disposed(): boolean {
    return this.#native === undefined || this.#native.disposed;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Loads a diffusers AutoencoderKL folder (config.json + safetensors weights). */
export async function loadVae(dir: string, options: LoadVaeOptions = {}): Promise<AutoencoderKL> {
  checkModelOptions(options);
  const { file, raw } = readConfigJson(dir, 'diffusers AutoencoderKL (config.json + diffusion_pytorch_model.safetensors)');
  const variant = options.variant;
  const base = variant ? `diffusion_pytorch_model.${variant}.safetensors` : VAE_WEIGHTS;
  if (!fs.existsSync(path.join(dir, base)) && !fs.existsSync(path.join(dir, `${base}.index.json`))) {
    refusePickles(dir, ['diffusion_pytorch_model.bin', 'diffusion_pytorch_model.fp16.bin'], 'AutoencoderKL.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)');
  }
  const files = resolveWeightFiles(dir, variant);
  const weights: StateDict = new Map();
  try {
    for (const f of files) {
      for (const [name, t] of await loadStateDict(f)) weights.set(name, t);
    }
    return await AutoencoderKL.fromParts(raw, file, weights, files.length === 1 ? files[0]! : `${dir} (${files.length} shards)`, options);
  } finally {
    disposeStateDict(weights);
  }
}
