/**
 * diffusers AutoencoderKL configs (`vae/config.json`): a zod schema with diffusers' defaults (v0.31),
 * and the flat form the native model takes. Keys this schema does not know are kept (written back by
 * save) and reported, never silently dropped. Pure: never loads the addon.
 */
import { z } from 'zod';
import { ConfigError } from '../errors';
import { expectConfigObject, parseConfigObject, unknownConfigKeys } from './schema-object';

const posInt = z.number().int().positive();

/** Keys diffusers writes that carry no meaning for the model's computation. */
const BOOKKEEPING_KEYS = new Set(['_class_name', '_diffusers_version', '_name_or_path', '_use_default_values']);

export const autoencoderKLSchema = z.object({
  /** Image channels in. */
  in_channels: posInt.default(3),
  /** Image channels out. */
  out_channels: posInt.default(3),
  /** One DownEncoderBlock2D per level. */
  down_block_types: z.array(z.literal('DownEncoderBlock2D')).nonempty().default(['DownEncoderBlock2D']),
  /** One UpDecoderBlock2D per level. */
  up_block_types: z.array(z.literal('UpDecoderBlock2D')).nonempty().default(['UpDecoderBlock2D']),
  /** Channels per level; 2^(levels − 1) is the image-to-latent scale factor. */
  block_out_channels: z.array(posInt).nonempty().default([64]),
  /** Resnets per encoder level (the decoder has one more). */
  layers_per_block: posInt.default(1),
  /** Activation of the resnets (the final conv_act is always SiLU). */
  act_fn: z.enum(['silu', 'swish', 'mish', 'gelu', 'relu']).default('silu'),
  /** Channels of the latent space. */
  latent_channels: posInt.default(4),
  /** GroupNorm groups (eps is 1e-6, fixed). */
  norm_num_groups: posInt.default(32),
  /** Image size the model was trained on (informational). */
  sample_size: z.union([posInt, z.array(posInt)]).default(32),
  /** Latents fed to the U-Net are encoded · scaling_factor (0.18215 for SD 1.x/2.x). */
  scaling_factor: z.number().positive().default(0.18215),
  /** SD3/Flux-style shift applied with scaling_factor by pipelines; null: none. */
  shift_factor: z.number().nullable().default(null),
  /** Per-channel latent statistics of some VAEs (pipelines use them); null: none. */
  latents_mean: z.array(z.number()).nullable().default(null),
  latents_std: z.array(z.number()).nullable().default(null),
  /** Pipelines run this VAE in float32 even when the rest is half precision. */
  force_upcast: z.boolean().default(true),
  /** A 1×1 conv on the moments after the encoder. */
  use_quant_conv: z.boolean().default(true),
  /** A 1×1 conv on the latents before the decoder. */
  use_post_quant_conv: z.boolean().default(true),
  /** Attention in the encoder's and decoder's mid blocks. */
  mid_block_add_attention: z.boolean().default(true),
});

export type AutoencoderKLConfig = { _class_name: 'AutoencoderKL' } & z.infer<typeof autoencoderKLSchema>;

/** The flat config the native AutoencoderKL takes (native/vae/vae_config.h). */
export interface NativeVaeConfig {
  inChannels: number;
  outChannels: number;
  latentChannels: number;
  downBlockTypes: string[];
  upBlockTypes: string[];
  blockOutChannels: number[];
  layersPerBlock: number;
  actFn: string;
  normNumGroups: number;
  midBlockAddAttention: boolean;
  useQuantConv: boolean;
  usePostQuantConv: boolean;
}

export interface ParsedVaeConfig {
  config: AutoencoderKLConfig;
  /** Keys in the file that this schema does not know: kept (saved back), not used. */
  unknownKeys: string[];
  /** Their values, in file order. */
  extra: Record<string, unknown>;
}

/** Validates a parsed vae/config.json; an unsupported value is a ConfigError naming the file and key. */
export function parseVaeConfig(raw: unknown, file: string): ParsedVaeConfig {
  const obj = expectConfigObject(raw, file);
  if (obj._class_name !== undefined && obj._class_name !== 'AutoencoderKL') {
    throw new ConfigError(`${file}: "_class_name" must be "AutoencoderKL" but is ${JSON.stringify(obj._class_name)}`);
  }
  const parsed = parseConfigObject(autoencoderKLSchema, obj, file);
  const config: AutoencoderKLConfig = { _class_name: 'AutoencoderKL', ...parsed };
  const n = config.block_out_channels.length;
  if (config.down_block_types.length !== n || config.up_block_types.length !== n) {
    throw new ConfigError(
      `${file}: "down_block_types" (${config.down_block_types.length}), "up_block_types" (${config.up_block_types.length}) and "block_out_channels" (${n}) must have the same length`,
    );
  }
  config.block_out_channels.forEach((c, i) => {
    if (c % config.norm_num_groups !== 0)
      throw new ConfigError(`${file}: "norm_num_groups" ${config.norm_num_groups} does not divide "block_out_channels[${i}]" ${c}`);
  });
  for (const key of ['latents_mean', 'latents_std'] as const) {
    const v = config[key];
    if (v !== null && v.length !== config.latent_channels)
      throw new ConfigError(`${file}: "${key}" has ${v.length} entries but latent_channels is ${config.latent_channels}`);
  }
  return { config, ...unknownConfigKeys(autoencoderKLSchema, obj, BOOKKEEPING_KEYS) };
}

export function toNativeVaeConfig(config: AutoencoderKLConfig): NativeVaeConfig {
  return {
    inChannels: config.in_channels,
    outChannels: config.out_channels,
    latentChannels: config.latent_channels,
    downBlockTypes: [...config.down_block_types],
    upBlockTypes: [...config.up_block_types],
    blockOutChannels: [...config.block_out_channels],
    layersPerBlock: config.layers_per_block,
    actFn: config.act_fn,
    normNumGroups: config.norm_num_groups,
    midBlockAddAttention: config.mid_block_add_attention,
    useQuantConv: config.use_quant_conv,
    usePostQuantConv: config.use_post_quant_conv,
  };
}

/** 2^(levels − 1): image height / latent height. */
export function vaeScaleFactor(config: AutoencoderKLConfig): number {
  return 2 ** (config.block_out_channels.length - 1);
}
