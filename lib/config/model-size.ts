/**
 * Parameter counts of a model from its config alone, before anything is allocated, and the config keys
 * that make a model that large. Each count is a lower bound: only the weight matrices and convolution
 * kernels of diffusers' / transformers' architecture (biases, norms and small projections are left
 * out, well under 1% of a real model), so a model refused for its size is certainly at least that
 * large. Pure: never loads the addon.
 */
import type { CLIPTextConfig } from './clip-text';
import { transformerDepths, type UNetConfig } from './unet';
import type { AutoencoderKLConfig } from './vae';

const list = (value: number | readonly number[], n: number): number[] => (typeof value === 'number' ? new Array<number>(n).fill(value) : [...value]);

/** A ResnetBlock2D's conv1, conv2, time_emb_proj and 1×1 shortcut. */
function resnet(inCh: number, outCh: number, temb: number): number {
  return 9 * inCh * outCh + 9 * outCh * outCh + temb * outCh + (inCh === outCh ? 0 : inCh * outCh);
}

/** A Transformer2DModel of `layers` BasicTransformerBlocks (inner width heads·⌊ch/heads⌋, GEGLU feed-forward). */
function transformer(ch: number, heads: number, layers: number, cross: number, onlyCross: boolean): number {
  const d = heads * Math.floor(ch / heads);
  const attn1 = onlyCross ? 2 * d * d + 2 * cross * d : 4 * d * d;
  const attn2 = 2 * d * d + 2 * cross * d;
  return 2 * ch * d + layers * (attn1 + attn2 + 12 * d * d);
}

/** Lower bound on the parameters of a UNet2DModel or UNet2DConditionModel with this config. */
export function unetParameterCount(config: UNetConfig): number {
  const c = config.block_out_channels;
  const n = c.length;
  const c0 = c[0];
  const cond = config._class_name === 'UNet2DConditionModel' ? config : null;
  const fourier = config.time_embedding_type === 'fourier';
  const temb = cond ? (cond.time_embedding_dim ?? (fourier ? 2 * c0 : 4 * c0)) : 4 * c0;
  const tin = fourier ? 2 * c0 : c0;
  const tembResnet = config.resnet_time_scale_shift === 'scale_shift' ? 2 * temb : temb;
  const layers = list(config.layers_per_block, n);
  const kIn = cond ? cond.conv_in_kernel : 3;
  const kOut = cond ? cond.conv_out_kernel : 3;

  let total = config.in_channels * c0 * kIn * kIn + c0 * config.out_channels * kOut * kOut;
  total += tin * temb + temb * temb;
  if (config.num_class_embeds !== null && config.class_embed_type === null) total += config.num_class_embeds * temb;
  if (config.class_embed_type === 'timestep') total += tin * temb + temb * temb;

  // The attention after each resnet of block `i` (its channels `ch`), per block type.
  const heads = cond ? list(cond.attention_head_dim, n) : [];
  const depths = cond ? transformerDepths(cond, 'config') : undefined;
  const cross = cond ? list(cond.cross_attention_dim, n) : [];
  const only = cond?.only_cross_attention ?? false;
  const onlyCross = typeof only === 'boolean' ? new Array<boolean>(n).fill(only) : [...only];
  const attnBlock = (ch: number): number => {
    const headDim = config._class_name === 'UNet2DModel' ? config.attention_head_dim : null;
    const inner = headDim === null ? ch : headDim * Math.floor(ch / headDim);
    return 4 * ch * inner;
  };
  const attention = (type: string, ch: number, i: number, transformerLayers: number): number => {
    if (type.startsWith('CrossAttn')) return transformer(ch, heads[i]!, transformerLayers, cross[i]!, onlyCross[i]!);
    if (type.startsWith('Attn')) return attnBlock(ch);
    return 0;
  };

  let out = c0;
  config.down_block_types.forEach((type, i) => {
    const inCh = out;
    out = c[i]!;
    for (let j = 0; j < layers[i]!; j++) total += resnet(j === 0 ? inCh : out, out, tembResnet) + attention(type, out, i, depths?.down[i]![j] ?? 1);
    if (i < n - 1) total += 9 * out * out;
  });

  const last = c[n - 1]!;
  if (config.mid_block_type === 'UNetMidBlock2DCrossAttn') total += 2 * resnet(last, last, tembResnet) + attention('CrossAttn', last, n - 1, depths?.mid ?? 1);
  else if (config.mid_block_type === 'UNetMidBlock2D')
    total += 2 * resnet(last, last, tembResnet) + (config._class_name === 'UNet2DModel' && config.add_attention ? attnBlock(last) : 0);

  const rev = [...c].reverse();
  const revLayers = [...layers].reverse();
  out = rev[0]!;
  config.up_block_types.forEach((type, i) => {
    const prev = out;
    out = rev[i]!;
    const inCh = rev[Math.min(i + 1, n - 1)]!;
    const resnets = revLayers[i]! + 1;
    const level = n - 1 - i;
    for (let j = 0; j < resnets; j++) {
      const skip = j === resnets - 1 ? inCh : out;
      total += resnet((j === 0 ? prev : out) + skip, out, tembResnet) + attention(type, out, level, depths?.up[i]![j] ?? 1);
    }
    if (i < n - 1) total += 9 * out * out;
  });
  return total;
}

/** Lower bound on the parameters of an AutoencoderKL with this config (encoder, decoder, quant convs). */
export function vaeParameterCount(config: AutoencoderKLConfig): number {
  const c = config.block_out_channels;
  const n = c.length;
  const lat = config.latent_channels;
  const last = c[n - 1]!;
  const mid = 2 * resnet(last, last, 0) + (config.mid_block_add_attention ? 4 * last * last : 0);
  let total = 9 * config.in_channels * c[0] + 9 * last * 2 * lat + 9 * lat * last + 9 * c[0] * config.out_channels + 2 * mid;
  if (config.use_quant_conv) total += 4 * lat * lat;
  if (config.use_post_quant_conv) total += lat * lat;
  let out = c[0];
  for (let i = 0; i < n; i++) {
    const inCh = out;
    out = c[i]!;
    for (let j = 0; j < config.layers_per_block; j++) total += resnet(j === 0 ? inCh : out, out, 0);
    if (i < n - 1) total += 9 * out * out;
  }
  const rev = [...c].reverse();
  out = rev[0]!;
  for (let i = 0; i < n; i++) {
    const prev = out;
    out = rev[i]!;
    for (let j = 0; j <= config.layers_per_block; j++) total += resnet(j === 0 ? prev : out, out, 0);
    if (i < n - 1) total += 9 * out * out;
  }
  return total;
}

/** Lower bound on the parameters of a CLIPTextModel with this config (embeddings, attention, MLPs). */
export function clipTextParameterCount(config: CLIPTextConfig): number {
  const d = config.hidden_size;
  return (config.vocab_size + config.max_position_embeddings) * d + config.num_hidden_layers * (4 * d * d + 2 * d * config.intermediate_size);
}

/**
 * The keys of `config` that make `count(config)` large, largest effect first: each key in `caps` is
 * lowered (every entry of a list) to its cap — about the largest value a released model uses — and
 * keeps its place when that alone shrinks the count. Empty when no key is above its cap.
 */
export function sizeDrivers<C extends object>(config: C, count: (config: C) => number, caps: Readonly<Partial<Record<keyof C & string, number>>>): string[] {
  const full = count(config);
  const effects: Array<{ key: string; rest: number }> = [];
  for (const [key, cap] of Object.entries(caps) as Array<[keyof C & string, number]>) {
    const value: unknown = config[key];
    let capped: unknown;
    if (typeof value === 'number') capped = Math.min(value, cap);
    else if (Array.isArray(value) && value.every((v) => typeof v === 'number')) capped = value.map((v: number) => Math.min(v, cap));
    // Nested per-layer lists (transformer_layers_per_block): every depth.
    else if (Array.isArray(value) && value.every((v) => typeof v === 'number' || (Array.isArray(v) && v.every((d) => typeof d === 'number')))) {
      capped = value.map((v: number | number[]) => (typeof v === 'number' ? Math.min(v, cap) : v.map((d) => Math.min(d, cap))));
    } else continue;
    const rest = count({ ...config, [key]: capped });
    if (rest < full) effects.push({ key, rest });
  }
  return effects.sort((a, b) => a.rest - b.rest).map((e) => e.key);
}

/** About the largest values released models use (SD 1.x/2.x/XL U-Nets, their VAEs, OpenCLIP bigG). */
export const UNET_SIZE_CAPS: Readonly<Record<string, number>> = {
  block_out_channels: 1280,
  layers_per_block: 3,
  transformer_layers_per_block: 10,
  reverse_transformer_layers_per_block: 10,
  cross_attention_dim: 2048,
  time_embedding_dim: 5120,
  num_class_embeds: 10000,
  in_channels: 16,
  out_channels: 16,
  conv_in_kernel: 7,
  conv_out_kernel: 7,
};

export const VAE_SIZE_CAPS: Readonly<Record<string, number>> = {
  block_out_channels: 512,
  layers_per_block: 3,
  latent_channels: 32,
  in_channels: 16,
  out_channels: 16,
};

export const CLIP_TEXT_SIZE_CAPS: Readonly<Record<string, number>> = {
  hidden_size: 1280,
  intermediate_size: 5120,
  num_hidden_layers: 32,
  vocab_size: 50000,
  max_position_embeddings: 512,
};

/**
 * Lower bound on the activation elements a U-Net forward over `sample` [N, C, H, W] holds at once: the
 * skip connections of the first level (conv_in's output and each of its resnets' outputs, N·c0·H·W
 * each) stay alive from the down path until the up path takes them back, whatever else is freed.
 */
export function unetSkipElements(config: UNetConfig, sample: readonly number[]): { elements: number; maps: number; channels: number } {
  const [n = 0, , h = 0, w = 0] = sample;
  const channels = config.block_out_channels[0];
  const maps = 1 + list(config.layers_per_block, config.block_out_channels.length)[0]!;
  return { elements: maps * n * channels * h * w, maps, channels };
}

/**
 * About the activation elements a VAE decode of latents [N, C, h, w] holds at its peak, without autograd,
 * for `outputSize` pixels per image side pair [H, W] (h·f, w·f; a tile's size when tiled). Two peaks
 * compete: each up block's first resnet, which holds its input, the normalised and activated copies and
 * the convolution outputs together (about 5 maps of the wider of its two channel counts at its
 * resolution); and the mid block's attention over the h·w latents (scores and softmax, about 3 maps of
 * (h·w)²). Measured on the SD VAE at 256² and 512² (batch 1, float32): 0.41 and 1.22 GB against the
 * 0.34 and 1.34 GB this gives.
 */
export function vaeDecodeElements(config: AutoencoderKLConfig, latentHW: readonly [number, number], batch: number): number {
  const c = [...config.block_out_channels].reverse();
  const n = c.length;
  const [h, w] = latentHW;
  let peak = 0;
  for (let i = 0; i < n; i++) {
    const scale = 2 ** i;
    const widest = Math.max(c[Math.max(0, i - 1)]!, c[i]!);
    peak = Math.max(peak, 5 * widest * h * scale * w * scale);
  }
  if (config.mid_block_add_attention) peak = Math.max(peak, 3 * (h * w) ** 2);
  return batch * peak;
}
