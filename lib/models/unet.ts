/**
 * U-Nets from diffusers folders: `loadUNet(dir)` reads config.json and the safetensors weights
 * (single file, sharded index, or a variant such as fp16) into a native model; `unet.save(dir)` writes
 * a folder diffusers loads back.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError, expected, InvalidArgumentError, UnsupportedFormatError } from '../errors';
import { parseLenientJson } from '../config/json';
import { parseUNetConfig, unetConfigForVersion, type UNetConfig } from '../config/unet';
import { toNativeUNetConfig } from '../config/unet-native';
import { DEFAULT_DIFFUSERS_VERSION } from '../config/scheduler';
import { UNET_SIZE_CAPS, unetParameterCount } from '../config/model-size';
import type { LoadStats, StateDict } from '../checkpoint/state-dict';
import type { ComputeDType } from '../native/dtype';
import { callAsync, loadNative } from '../native/load';
import { deviceProblem } from '../native/runtime';
import { checkTensor, Tensor } from '../native/tensor';
import type { NativeUNet, NativeUNetInputs } from '../native/types';
import { describeWeightFileNames, diffusersConfigJson, saveModelFolder, shardedWeightFiles, weightsSource } from './model-folder';
import { checkUNetActivationsFit, type ModelSize } from './memory-check';
import { createNativeModel, loadWeightsInto, loraCalls, NativeModel, streamWeightsInto, toTensorMap, type LoraAddOptions, type LoraEntry } from './native-model';
import { pathKind } from '../util/fs-errors';

export const UNET_WEIGHTS = 'diffusion_pytorch_model.safetensors';

/** The int64 [n] class-label tensor forward() takes as `classLabels`. */
export function classLabelTensor(labels: readonly number[]): Tensor {
  return Tensor.from(BigInt64Array.from(labels, (l) => BigInt(l)), [labels.length]);
}

export interface UNetOptions {
  /** "cpu" (default), "cuda", "cuda:1", ... */
  device?: string;
  /** Parameter dtype (default float32). float16 needs CUDA: libtorch 1.13 has no CPU fp16 convolution. */
  dtype?: ComputeDType;
}

export interface LoadUNetOptions extends UNetOptions {
  /** Weights variant: "fp16" reads diffusion_pytorch_model.fp16.safetensors or its shards, named as diffusers names them (upcast to `dtype`). */
  variant?: string;
}

export interface UNetRuntimeOptions {
  /** Recompute each block's activations during backward instead of storing them (less memory, ~30% more time). */
  gradientCheckpointing?: boolean;
  /** NHWC memory format for activations and conv weights. */
  channelsLast?: boolean;
  /** Mixed precision: compute in this dtype where safe (bfloat16 on CPU/CUDA, float16 on CUDA); weights stay as they are. */
  autocast?: 'bfloat16' | 'float16' | null;
}

export interface ForwardOptions {
  encoderHiddenStates?: Tensor;
  classLabels?: Tensor;
}

export interface BackwardResult {
  output: Tensor;
  loss: Tensor;
  gradSample: Tensor;
  gradEncoderHiddenStates?: Tensor;
  gradParams: Map<string, Tensor>;
}

function nativeInputs(sample: Tensor, timestep: Tensor, options: ForwardOptions): NativeUNetInputs {
  const optional = (value: Tensor | undefined, param: string) => (value === undefined ? undefined : checkTensor(value, param).native);
  return {
    sample: checkTensor(sample, 'sample').native,
    timestep: checkTensor(timestep, 'timestep').native,
    encoderHiddenStates: optional(options.encoderHiddenStates, 'options.encoderHiddenStates'),
    classLabels: optional(options.classLabels, 'options.classLabels'),
  };
}

/** What createNativeModel checks before allocating: the weights this config implies. */
function unetSize(config: UNetConfig, source: string): ModelSize<UNetConfig> {
  return { model: config._class_name, source, config, count: unetParameterCount, caps: UNET_SIZE_CAPS };
}

function checkOptions(options: UNetOptions): { device: string; dtype: ComputeDType } {
  const device = options.device ?? 'cpu';
  const dtype = options.dtype ?? 'float32';
  const problem = deviceProblem(device);
  if (problem !== undefined) throw new InvalidArgumentError(`options.device: ${problem}`);
  if (!['float32', 'bfloat16', 'float16'].includes(dtype)) throw expected('"float32", "bfloat16" or "float16"', 'options.dtype', dtype);
  if (dtype === 'float16' && device === 'cpu') {
    throw new InvalidArgumentError('float16 weights cannot compute on the CPU (libtorch has no CPU fp16 convolution): use dtype "float32" or "bfloat16" on CPU, or device "cuda"');
  }
  return { device, dtype };
}

/** Reads and validates `<dir>/config.json` (or a config.json path). */
export function readUNetConfig(file: string): { config: UNetConfig; unknownKeys: string[] } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read ${file}: ${(error as Error).message}`);
  }
  return parseUNetConfig(parseLenientJson(text, file), file);
}

/** The weight files of a model folder, in load order, with a clear error when there are none. */
export function resolveWeightFiles(dir: string, variant?: string): string[] {
  const files = shardedWeightFiles(dir, UNET_WEIGHTS, variant);
  if (files !== undefined) return files;
  const pickles = ['diffusion_pytorch_model.bin', 'diffusion_pytorch_model.fp16.bin'].filter((f) => pathKind(path.join(dir, f)) !== undefined);
  if (pickles.length > 0) {
    throw new UnsupportedFormatError(
      `${path.join(dir, pickles[0]!)} is a PyTorch pickle checkpoint, which difftune never loads (pickles can run arbitrary code). ` +
        'Convert it once with diffusers: UNet2DModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True).',
    );
  }
  throw new ConfigError(`${dir} has no ${describeWeightFileNames(UNET_WEIGHTS, variant)}${variant ? '' : '; for a variant pass { variant: "fp16" }'}`);
}

/**
 * The warning diffusers logs for config keys the model class does not take ("The config attributes
 * {...} were passed to UNet2DModel, but are not expected and will be ignored"), naming `file`; undefined
 * when every key is known.
 */
export function unknownConfigKeysWarning(unet: UNet, file: string): string | undefined {
  if (unet.unknownKeys.length === 0) return undefined;
  const keys = unet.unknownKeys.map((k) => JSON.stringify(k)).join(', ');
  return `${file}: ${unet.config._class_name} does not take the config key${unet.unknownKeys.length === 1 ? '' : 's'} ${keys}; ignored, as diffusers ignores ${unet.unknownKeys.length === 1 ? 'it' : 'them'}`;
}

export class UNet extends NativeModel<NativeUNet> {
  #options: Required<UNetRuntimeOptions> = { gradientCheckpointing: false, channelsLast: false, autocast: null };
  readonly config: UNetConfig;
  /** Keys of config.json that difftune does not know (ignored). */
  readonly unknownKeys: readonly string[];
  readonly device: string;
  readonly dtype: ComputeDType;

  private constructor(native: NativeUNet, config: UNetConfig, unknownKeys: string[], device: string, dtype: ComputeDType) {
    super(native, 'UNet');
    this.config = config;
    this.unknownKeys = unknownKeys;
    this.device = device;
    this.dtype = dtype;
  }

  /** A model from a config (raw diffusers config.json content), initialised like torch.nn from `seed`. */
  static async fromConfig(rawConfig: unknown, options: UNetOptions & { seed?: number; source?: string } = {}): Promise<UNet> {
    const { device, dtype } = checkOptions(options);
    const { config, unknownKeys } = parseUNetConfig(rawConfig, options.source ?? 'config');
    const native = loadNative();
    const handle = await createNativeModel(unetSize(config, options.source ?? 'config'), () => native.NativeUNet.create(toNativeUNetConfig(config)), (h) => h.initialize(options.seed ?? 0), device, dtype);
    return new UNet(handle, config, unknownKeys, device, dtype);
  }

  /** @internal */
  static async fromParts(config: UNetConfig, unknownKeys: string[], weights: StateDict, source: string, options: UNetOptions): Promise<UNet> {
    const { device, dtype } = checkOptions(options);
    const native = loadNative();
    const handle = await createNativeModel(unetSize(config, source), () => native.NativeUNet.create(toNativeUNetConfig(config)), (h) => loadWeightsInto(h, weights, source), device, dtype);
    return new UNet(handle, config, unknownKeys, device, dtype);
  }

  /** @internal A model from a validated config, its weights streamed from `files` (see streamWeightsInto). */
  static async fromFiles(config: UNetConfig, unknownKeys: string[], files: readonly string[], source: string, options: UNetOptions): Promise<UNet> {
    const { device, dtype } = checkOptions(options);
    const native = loadNative();
    let stats: LoadStats | undefined;
    const load = async (h: NativeUNet): Promise<void> => {
      stats = await streamWeightsInto(h, files, source);
    };
    const handle = await createNativeModel(unetSize(config, source), () => native.NativeUNet.create(toNativeUNetConfig(config)), load, device, dtype);
    const unet = new UNet(handle, config, unknownKeys, device, dtype);
    unet.loadStats = stats;
    return unet;
  }

  /** @internal The native handle, for the trainer. */
  get native(): NativeUNet {
    return this.live();
  }

  get isConditional(): boolean {
    return this.config._class_name === 'UNet2DConditionModel';
  }

  /** config.sample_size as one side (the first of [height, width]), or undefined when the config has none. */
  get sampleSize(): number | undefined {
    const size = this.config.sample_size;
    return typeof size === 'number' ? size : Array.isArray(size) ? size[0] : undefined;
  }

  /** Sets config.sample_size (what pipelines size samples by; the computation does not read it). */
  setSampleSize(size: number): void {
    this.config.sample_size = size;
  }

  /** True when forward() needs class labels (a class embedding: class_embed_type or num_class_embeds set). */
  get isClassConditional(): boolean {
    return this.config.class_embed_type !== null || this.config.num_class_embeds !== null;
  }

  /** Current gradient-checkpointing, memory-format and autocast settings. */
  get options(): Readonly<Required<UNetRuntimeOptions>> {
    return this.#options;
  }

  async setOptions(options: UNetRuntimeOptions): Promise<void> {
    const next = { ...this.#options, ...options };
    if (typeof next.gradientCheckpointing !== 'boolean') throw expected('a boolean', 'options.gradientCheckpointing', next.gradientCheckpointing);
    if (typeof next.channelsLast !== 'boolean') throw expected('a boolean', 'options.channelsLast', next.channelsLast);
    if (next.autocast !== null && next.autocast !== 'bfloat16' && next.autocast !== 'float16') throw expected('"bfloat16", "float16" or null', 'options.autocast', next.autocast);
    if (next.autocast === 'float16' && this.device === 'cpu') throw new InvalidArgumentError('float16 autocast needs CUDA; on the CPU use autocast "bfloat16"');
    const native = this.live();
    await callAsync(() => native.setOptions(next));
    this.#options = next;
  }

  /**
   * @internal Refuses, before any native work, a step over `sample` whose activations cannot fit in
   * memory (checked on the CPU, whose memory is the machine's); returns the operation's name for errors.
   */
  checkStepFits(param: string, sample: unknown, action: 'a forward' | 'a training step', autocast: boolean): string | undefined {
    // Not a Tensor: nativeInputs names the argument and what came instead.
    if (!(sample instanceof Tensor)) return undefined;
    const shape = sample.shape;
    if (this.device === 'cpu') {
      const half = autocast || this.dtype !== 'float32';
      const parameterBytes = unetParameterCount(this.config) * (this.dtype === 'float32' ? 4 : 2);
      checkUNetActivationsFit({ config: this.config, param, shape, activationBytes: half ? 2 : 4, parameterBytes, action });
    }
    return `${action === 'a forward' ? 'the U-Net forward' : 'the U-Net training step'} over ${param} [${shape.join(', ')}]`;
  }

  /** Predicts noise (or v / x0, per the scheduler's prediction type) for `sample` at `timestep`. */
  async forward(sample: Tensor, timestep: Tensor, options: ForwardOptions = {}): Promise<Tensor> {
    const native = this.live();
    const operation = this.checkStepFits('sample', sample, 'a forward', this.#options.autocast !== null);
    const inputs = nativeInputs(sample, timestep, options);
    return new Tensor(await callAsync(() => native.forward(inputs), operation));
  }

  /** Forward, MSE loss against `target`, backward: the loss, output and the gradients asked for. */
  async forwardBackwardMse(sample: Tensor, timestep: Tensor, target: Tensor, options: ForwardOptions & { gradNames?: string[] } = {}): Promise<BackwardResult> {
    const native = this.live();
    const operation = this.checkStepFits('sample', sample, 'a training step', this.#options.autocast !== null);
    const inputs = nativeInputs(sample, timestep, options);
    const targetHandle = checkTensor(target, 'target').native;
    const r = await callAsync(() => native.forwardBackwardMse(inputs, targetHandle, options.gradNames), operation);
    return {
      output: new Tensor(r.output),
      loss: new Tensor(r.loss),
      gradSample: new Tensor(r.gradSample),
      gradEncoderHiddenStates: r.gradEncoderHiddenStates ? new Tensor(r.gradEncoderHiddenStates) : undefined,
      gradParams: toTensorMap(r.gradParams),
    };
  }

  /** Adds LoRA adapters to `targets` (layer names such as `...attn1.to_q`). */
  async addLora(options: LoraAddOptions): Promise<void> {
    await loraCalls.add(this.live(), options);
  }

  /** Installs adapters with these weights (e.g. read from a LoRA file); replaces adapters on those layers. */
  async setLora(entries: readonly LoraEntry[], dropout = 0): Promise<void> {
    await loraCalls.set(this.live(), entries, dropout);
  }

  /** Copies of every adapter: layer, A (lora_A / lora_down), B (lora_B / lora_up), alpha. */
  async loraEntries(): Promise<LoraEntry[]> {
    return loraCalls.entries(this.live());
  }

  /** Folds the adapters into the base weights (W += alpha/rank·B·A) and removes them. */
  async mergeLora(): Promise<void> {
    const native = this.live();
    await callAsync(() => native.mergeLora());
  }

  async removeLora(): Promise<void> {
    const native = this.live();
    await callAsync(() => native.removeLora());
  }

  /**
   * The diffusers config.json object, sorted as diffusers writes it: every key the diffusers release it
   * names (DEFAULT_DIFFUSERS_VERSION) takes, defaults included, and later keys only where not at their default.
   */
  configJson(): Record<string, unknown> {
    return diffusersConfigJson(unetConfigForVersion(this.config, DEFAULT_DIFFUSERS_VERSION));
  }

  /** Writes config.json and diffusion_pytorch_model.safetensors (float32 unless asked), each atomically. */
  async save(dir: string): Promise<void> {
    await saveModelFolder(dir, UNET_WEIGHTS, () => this.stateDict(), () => this.configJson());
  }
}

/** Loads a diffusers U-Net folder (config.json + safetensors weights). */
export async function loadUNet(dir: string, options: LoadUNetOptions = {}): Promise<UNet> {
  if (typeof dir !== 'string' || dir.length === 0) throw expected('a model folder path', 'dir', dir);
  checkOptions(options);
  const configFile = path.join(dir, 'config.json');
  // pathKind, not fs.existsSync: a symlink loop is an error naming the file, not a missing config.json.
  if (pathKind(configFile) === undefined) throw new ConfigError(`${dir} has no config.json: expected a diffusers model folder (config.json + ${UNET_WEIGHTS})`);
  const { config, unknownKeys } = readUNetConfig(configFile);
  const files = resolveWeightFiles(dir, options.variant);
  return UNet.fromFiles(config, unknownKeys, files, weightsSource(dir, files), options);
}
