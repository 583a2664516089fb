/**
 * Growing a U-Net to twice its resolution (docs/grow-unet.md): a new outermost level is prepended
 * (DownBlock2D / UpBlock2D with block_out_channels[0] channels), every old tensor keeps its shape under
 * its shifted name, and the new tensors are set so that at initialisation
 *   avgpool2×2(g(up2(x), t, ...)) = f(x, t, ...)
 * up to float rounding. Config and weights in, config and weights out; the kernels are plain
 * TypeScript (grow-kernels.ts).
 */
import { ConfigError } from '../errors';
import { Rng } from '../data/random';
import { parseUNetConfig, unetConfigForVersion, type UNetConfig } from '../config/unet';
import { DEFAULT_DIFFUSERS_VERSION } from '../config/scheduler';
import { disposeStateDict, type StateDict } from '../checkpoint/state-dict';
import { Tensor } from '../native/tensor';
import type { DType } from '../native/dtype';
import { UNet } from './unet';
import { convOutForUpsampled, defaultInitUniform, downsamplerFromConvIn, identityConv3x3, passThroughShortcut, shiftedCopiesConvIn } from './grow-kernels';

export interface GrowOptions {
  /** Seed of the default (torch.nn-style) init of the new resnets' norm1/conv1/time_emb_proj (default 0). */
  seed?: number;
  /** Names the config in errors (a file path). */
  source?: string;
  /** The old model's resolution, for configs without sample_size: the grown sample_size is twice it. */
  resolution?: number;
}

export interface GrownUNet {
  /** The grown config.json object (every key, defaults included; sample_size doubled). */
  config: Record<string, unknown>;
  weights: StateDict;
}

/** Config fields that may hold one entry per level (UNet2DConditionModel), in down-block order. */
const PER_LEVEL_KEYS = ['layers_per_block', 'attention_head_dim', 'num_attention_heads', 'cross_attention_dim', 'transformer_layers_per_block', 'only_cross_attention'] as const;

function refuse(source: string, field: string, why: string): ConfigError {
  return new ConfigError(`${source}: cannot grow this U-Net: "${field}" ${why}`);
}

/** The parsed config, refused with a ConfigError naming the field where the construction does not apply. */
export function checkGrowable(raw: unknown, source = 'config'): UNetConfig {
  const { config } = parseUNetConfig(raw, source);
  if (config.downsample_padding !== 1) {
    throw refuse(source, 'downsample_padding', `is ${config.downsample_padding}; the construction needs 1 (3×3 stride-2 convs padded by 1 on every side)`);
  }
  if (config._class_name === 'UNet2DConditionModel') {
    if (config.conv_in_kernel !== 3) throw refuse(source, 'conv_in_kernel', `is ${config.conv_in_kernel}; the construction needs 3`);
    if (config.conv_out_kernel !== 3) throw refuse(source, 'conv_out_kernel', `is ${config.conv_out_kernel}; the construction needs 3`);
  }
  const c0 = config.block_out_channels[0];
  if (4 * config.in_channels > c0) {
    throw refuse(source, 'in_channels', `is ${config.in_channels}: the new conv_in holds four shifted copies of the input, so 4 × in_channels (${4 * config.in_channels}) must be at most block_out_channels[0] (${c0})`);
  }
  config.down_block_types.forEach((t, i) => {
    if (!['DownBlock2D', 'AttnDownBlock2D', 'CrossAttnDownBlock2D'].includes(t)) throw refuse(source, `down_block_types[${i}]`, `is "${t}"; only DownBlock2D, AttnDownBlock2D and CrossAttnDownBlock2D are covered`);
  });
  config.up_block_types.forEach((t, i) => {
    if (!['UpBlock2D', 'AttnUpBlock2D', 'CrossAttnUpBlock2D'].includes(t)) throw refuse(source, `up_block_types[${i}]`, `is "${t}"; only UpBlock2D, AttnUpBlock2D and CrossAttnUpBlock2D are covered`);
  });
  return config;
}

function doubled(size: number | number[] | null): number | number[] | null {
  if (size === null) return null;
  return typeof size === 'number' ? 2 * size : size.map((s) => 2 * s);
}

/**
 * The grown config.json object: a new first level (DownBlock2D / UpBlock2D, block_out_channels[0]
 * channels), per-level lists extended, sample_size doubled. It is validated by our config schema.
 */
export function growUNetConfig(raw: unknown, options: Pick<GrowOptions, 'source' | 'resolution'> = {}): Record<string, unknown> {
  const source = options.source ?? 'config';
  return grownConfigOf(checkGrowable(raw, source), raw as Record<string, unknown>, source, options.resolution);
}

/** growUNetConfig for the already checked `config` parsed from `rawObject`. */
function grownConfigOf(config: UNetConfig, rawObject: Record<string, unknown>, source: string, resolution: number | undefined): Record<string, unknown> {
  const version = typeof rawObject._diffusers_version === 'string' ? rawObject._diffusers_version : undefined;
  // Only keys the release the file names knows (mid_block_type of a UNet2DModel only when needed).
  const grown: Record<string, unknown> = unetConfigForVersion(config, version ?? DEFAULT_DIFFUSERS_VERSION);
  grown.down_block_types = ['DownBlock2D', ...config.down_block_types];
  grown.up_block_types = [...config.up_block_types, 'UpBlock2D'];
  grown.block_out_channels = [config.block_out_channels[0], ...config.block_out_channels];
  for (const key of PER_LEVEL_KEYS) {
    const value = grown[key];
    if (Array.isArray(value)) {
      const list: unknown[] = value;
      grown[key] = [list[0], ...list];
    }
  }
  // Indexed by up block: the new up block is the last.
  const reverse = grown.reverse_transformer_layers_per_block;
  if (Array.isArray(reverse)) {
    const list: unknown[] = reverse;
    grown.reverse_transformer_layers_per_block = [...list, list[list.length - 1]];
  }
  const oldSize = config.sample_size ?? resolution ?? null;
  grown.sample_size = doubled(oldSize);
  const { _class_name, ...rest } = grown;
  const ordered: Record<string, unknown> = { _class_name };
  if (version !== undefined) ordered._diffusers_version = version;
  for (const key of Object.keys(rest).sort()) ordered[key] = rest[key];
  parseUNetConfig(ordered, `${source} (grown)`);
  return ordered;
}

// ---- weights ----

async function floats(t: Tensor): Promise<Float32Array> {
  const dtype = t.dtype;
  if (!['float32', 'bfloat16', 'float16', 'float64'].includes(dtype)) throw new ConfigError(`cannot grow: expected floating-point weights but found dtype ${dtype}`);
  // float16/bfloat16 read back as float32 values; float64 is narrowed (the grown kernels are float32 arithmetic).
  return Float32Array.from((await t.data()) as ArrayLike<number>);
}

/** A tensor of `values` with the dtype and device of `like`. */
async function tensorLike(values: Float32Array, shape: readonly number[], like: Tensor): Promise<Tensor> {
  const cpu = Tensor.from(values, shape);
  const dtype: DType = like.dtype;
  const device = like.device;
  if (dtype === 'float32' && device === 'cpu') return cpu;
  try {
    return await cpu.to(device, dtype);
  } finally {
    cpu.dispose();
  }
}

function need(weights: StateDict, name: string, shape: readonly number[]): Tensor {
  const t = weights.get(name);
  if (t === undefined) throw new ConfigError(`cannot grow: the weights have no "${name}"`);
  const found = t.shape;
  if (found.length !== shape.length || found.some((d, i) => d !== shape[i])) {
    throw new ConfigError(`cannot grow: "${name}" has shape [${found.join(', ')}], expected [${shape.join(', ')}]`);
  }
  return t;
}

/** Tensors under `prefix` (a resnet), keyed by their suffix. */
function moduleTensors(weights: StateDict, prefix: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, t] of weights) if (name.startsWith(prefix)) out.set(name.slice(prefix.length), t);
  if (out.size === 0) throw new ConfigError(`cannot grow: the weights have no tensors under "${prefix}"`);
  return out;
}

const product = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * A new resnet shaped like `template` (same in/out channels): norms 1/0, conv1 and time_emb_proj
 * torch.nn-initialised, conv2 zero (so the residual branch adds nothing), conv_shortcut passing the
 * first `out` channels through. Its output equals the first `out` channels of its input.
 */
async function newResnet(template: Map<string, Tensor>, prefix: string, rng: Rng, out: StateDict): Promise<void> {
  const fanIn = (name: string): number => product(template.get(name)!.shape.slice(1));
  for (const suffix of [...template.keys()].sort()) {
    const like = template.get(suffix)!;
    const shape = like.shape;
    const n = product(shape);
    let values: Float32Array;
    if (/^norm\d\.weight$/.test(suffix)) values = new Float32Array(n).fill(1);
    else if (/^norm\d\.bias$/.test(suffix)) values = new Float32Array(n);
    else if (/^(conv1|time_emb_proj)\.weight$/.test(suffix)) values = defaultInitUniform(n, fanIn(suffix), rng);
    else if (/^(conv1|time_emb_proj)\.bias$/.test(suffix)) values = defaultInitUniform(n, fanIn(suffix.replace(/bias$/, 'weight')), rng);
    else if (/^conv2\.(weight|bias)$/.test(suffix) || suffix === 'conv_shortcut.bias') values = new Float32Array(n);
    else if (suffix === 'conv_shortcut.weight') values = passThroughShortcut(shape[0]!, shape[1]!);
    else throw new ConfigError(`cannot grow: resnet tensor "${prefix}${suffix}" is not one the construction knows (norm1/2, conv1/2, time_emb_proj, conv_shortcut)`);
    out.set(prefix + suffix, await tensorLike(values, shape, like));
  }
}

/**
 * The grown weights for `config` (the old model's config) and its `weights` (untouched; the result holds
 * new tensors, the caller disposes both).
 */
export async function growUNetWeights(config: UNetConfig, weights: StateDict, options: Pick<GrowOptions, 'seed'> = {}): Promise<StateDict> {
  const n = config.block_out_channels.length;
  const c0 = config.block_out_channels[0];
  const cin = config.in_channels;
  const cout = config.out_channels;
  const layers0 = Array.isArray(config.layers_per_block) ? (config.layers_per_block[0]) : (config.layers_per_block);
  const rng = new Rng(options.seed ?? 0);
  const out: StateDict = new Map();
  try {
    const convInW = need(weights, 'conv_in.weight', [c0, cin, 3, 3]);
    const convInB = need(weights, 'conv_in.bias', [c0]);
    const convOutW = need(weights, 'conv_out.weight', [cout, c0, 3, 3]);
    const downTemplate = moduleTensors(weights, 'down_blocks.0.resnets.0.');
    // The old last up block's second resnet takes C0 + C0 channels to C0, like every resnet of the new up block.
    const upTemplate = moduleTensors(weights, `up_blocks.${n - 1}.resnets.1.`);
    const inShape = upTemplate.get('conv_shortcut.weight')?.shape;
    if (inShape === undefined || inShape[0] !== c0 || inShape[1] !== 2 * c0) {
      throw new ConfigError(`cannot grow: "up_blocks.${n - 1}.resnets.1.conv_shortcut.weight" should be [${c0}, ${2 * c0}, 1, 1] but is ${inShape ? `[${inShape.join(', ')}]` : 'missing'}`);
    }

    // Old tensors under their new names: down blocks move one level deeper; up blocks keep their index.
    for (const [name, t] of weights) {
      if (name.startsWith('conv_in.')) continue;
      if (name === 'conv_out.weight') continue;
      const down = /^down_blocks\.(\d+)\.(.*)$/.exec(name);
      const target = down ? `down_blocks.${Number(down[1]) + 1}.${down[2]}` : name;
      out.set(target, await t.to(t.device));
    }

    out.set('conv_in.weight', await tensorLike(shiftedCopiesConvIn(c0, cin), [c0, cin, 3, 3], convInW));
    out.set('conv_in.bias', await tensorLike(new Float32Array(c0), [c0], convInB));
    for (let j = 0; j < layers0; j++) await newResnet(downTemplate, `down_blocks.0.resnets.${j}.`, rng, out);
    out.set('down_blocks.0.downsamplers.0.conv.weight', await tensorLike(downsamplerFromConvIn(await floats(convInW), c0, cin), [c0, c0, 3, 3], convInW));
    out.set('down_blocks.0.downsamplers.0.conv.bias', await convInB.to(convInB.device));
    out.set(`up_blocks.${n - 1}.upsamplers.0.conv.weight`, await tensorLike(identityConv3x3(c0), [c0, c0, 3, 3], convInW));
    out.set(`up_blocks.${n - 1}.upsamplers.0.conv.bias`, await tensorLike(new Float32Array(c0), [c0], convInB));
    for (let j = 0; j < layers0 + 1; j++) await newResnet(upTemplate, `up_blocks.${n}.resnets.${j}.`, rng, out);
    out.set('conv_out.weight', await tensorLike(convOutForUpsampled(await floats(convOutW), cout, c0), [cout, c0, 3, 3], convOutW));
    return out;
  } catch (error) {
    for (const t of out.values()) t.dispose();
    throw error;
  }
}

/** Config and weights of the grown model (see the module comment); `weights` stay the caller's. */
export async function growUNetParts(rawConfig: unknown, weights: StateDict, options: GrowOptions = {}): Promise<GrownUNet> {
  const source = options.source ?? 'config';
  const old = checkGrowable(rawConfig, source);
  return { config: grownConfigOf(old, rawConfig as Record<string, unknown>, source, options.resolution), weights: await growUNetWeights(old, weights, options) };
}

/**
 * A new U-Net at twice `unet`'s resolution (same device and dtype), built from the grown config and
 * weights: a real model that saves as a diffusers folder of its own.
 */
export async function growUNet(unet: UNet, options: Pick<GrowOptions, 'seed'> = {}): Promise<UNet> {
  const weights = await unet.stateDict();
  try {
    const grown = await growUNetParts(unet.configJson(), weights, { ...options, source: 'unet.config' });
    try {
      const { config, unknownKeys } = parseUNetConfig(grown.config, 'grown config');
      return await UNet.fromParts(config, unknownKeys, grown.weights, 'grown weights', { device: unet.device, dtype: unet.dtype });
    } finally {
      disposeStateDict(grown.weights);
    }
  } finally {
    disposeStateDict(weights);
  }
}
