/**
 * diffusers U-Net configs (`config.json` of a UNet2DModel or UNet2DConditionModel folder): zod schemas
 * with diffusers' own defaults (v0.31), the list of keys we ignore or refuse, and the normalisation
 * into the flat, per-block form the native model takes. Pure: never loads the addon.
 */
import { z } from 'zod';
import { ConfigError } from '../errors';

const int = z.number().int();
const posInt = int.positive();
const intOrList = z.union([posInt, z.array(posInt).nonempty()]);
/** A Transformer2DModel depth for every layer of a block, or one per layer (diffusers' nested form). */
const blockDepth = z.union([posInt, z.array(posInt).nonempty()]);

/** Keys diffusers writes that carry no meaning for the model's computation. */
const BOOKKEEPING_KEYS = new Set(['_class_name', '_diffusers_version', '_name_or_path', '_use_default_values']);

/** The default height and width of samples (pipelines read it; the computation does not): kept through load and save. */
const sampleSize = z
  .union([posInt, z.array(posInt).length(2)])
  .nullable()
  .default(null);

export const unet2DSchema = z.object({
  /** Input image channels. */
  in_channels: posInt.default(3),
  /** Output channels. */
  out_channels: posInt.default(3),
  /** Maps inputs from [0, 1] to [-1, 1] first. */
  center_input_sample: z.boolean().default(false),
  /** "positional" sinusoids or "fourier" features ("learned" is not supported). */
  time_embedding_type: z.enum(['positional', 'fourier']).default('positional'),
  /** Shift of the sinusoid frequencies' denominator. */
  freq_shift: z.number().default(0),
  /** Cos before sin in the sinusoidal embedding. */
  flip_sin_to_cos: z.boolean().default(true),
  down_block_types: z.array(z.string()).nonempty().default(['DownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D']),
  /** null: no mid block. */
  mid_block_type: z.string().nullable().default('UNetMidBlock2D'),
  up_block_types: z.array(z.string()).nonempty().default(['AttnUpBlock2D', 'AttnUpBlock2D', 'AttnUpBlock2D', 'UpBlock2D']),
  block_out_channels: z.array(posInt).nonempty().default([224, 448, 672, 896]),
  layers_per_block: posInt.default(2),
  /** Output scale of the mid block's resnets and attention. */
  mid_block_scale_factor: z.number().default(1),
  /** 0 pads right/bottom by one before each stride-2 conv (the DDPM layout). */
  downsample_padding: int.nonnegative().default(1),
  downsample_type: z.literal('conv').default('conv'),
  upsample_type: z.literal('conv').default('conv'),
  dropout: z.number().min(0).max(1).default(0),
  act_fn: z.enum(['silu', 'swish', 'mish', 'gelu', 'relu']).default('silu'),
  /** Channels per attention head; null: one head. */
  attention_head_dim: posInt.nullable().default(8),
  /** null: min(block_out_channels[0] / 4, 32). */
  norm_num_groups: posInt.nullable().default(32),
  attn_norm_num_groups: posInt.nullable().default(null),
  norm_eps: z.number().positive().default(1e-5),
  resnet_time_scale_shift: z.enum(['default', 'scale_shift']).default('default'),
  add_attention: z.boolean().default(true),
  /** null with num_class_embeds: an embedding table; "timestep": sinusoid + MLP; "identity". */
  class_embed_type: z.enum(['timestep', 'identity']).nullable().default(null),
  num_class_embeds: posInt.nullable().default(null),
  /** Only for time_embedding_type "learned", which is not supported. */
  num_train_timesteps: posInt.nullable().default(null),
  sample_size: sampleSize,
});

export const unet2DConditionSchema = z.object({
  in_channels: posInt.default(4),
  out_channels: posInt.default(4),
  center_input_sample: z.boolean().default(false),
  flip_sin_to_cos: z.boolean().default(true),
  freq_shift: z.number().default(0),
  down_block_types: z.array(z.string()).nonempty().default(['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D']),
  mid_block_type: z.string().nullable().default('UNetMidBlock2DCrossAttn'),
  up_block_types: z.array(z.string()).nonempty().default(['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D']),
  /** Cross-attention queries the text only (no self-attention), per block or for all. */
  only_cross_attention: z.union([z.boolean(), z.array(z.boolean()).nonempty()]).default(false),
  block_out_channels: z.array(posInt).nonempty().default([320, 640, 1280, 1280]),
  layers_per_block: intOrList.default(2),
  downsample_padding: int.nonnegative().default(1),
  mid_block_scale_factor: z.number().default(1),
  dropout: z.number().min(0).max(1).default(0),
  act_fn: z.enum(['silu', 'swish', 'mish', 'gelu', 'relu']).default('silu'),
  norm_num_groups: posInt.default(32),
  norm_eps: z.number().positive().default(1e-5),
  /** Width of encoder_hidden_states (768 for SD 1.x, 1024 for SD 2.x). */
  cross_attention_dim: intOrList.default(1280),
  /** Transformer2DModel depth per down block (or for all); a nested entry gives each layer its own (an asymmetrical U-Net). */
  transformer_layers_per_block: z.union([posInt, z.array(blockDepth).nonempty()]).default(1),
  /** Depths of the up blocks, in up-block order, flat or nested; null: transformer_layers_per_block reversed. */
  reverse_transformer_layers_per_block: z.array(blockDepth).nonempty().nullable().default(null),
  /** Despite its name, the number of attention heads per block (a diffusers naming quirk kept for compatibility). */
  attention_head_dim: intOrList.default(8),
  /** diffusers refuses it too (v0.31): heads come from attention_head_dim. */
  num_attention_heads: z.null().default(null),
  /** Linear instead of 1×1-conv proj_in/proj_out (SD 2.x). */
  use_linear_projection: z.boolean().default(false),
  class_embed_type: z.enum(['timestep', 'identity']).nullable().default(null),
  num_class_embeds: posInt.nullable().default(null),
  /** Attention scores in float32 (SD 2.x). */
  upcast_attention: z.boolean().default(false),
  resnet_time_scale_shift: z.enum(['default', 'scale_shift']).default('default'),
  /** Used only by block types difftune does not build; accepted and ignored. */
  resnet_skip_time_act: z.boolean().default(false),
  resnet_out_scale_factor: z.number().default(1),
  time_embedding_type: z.enum(['positional', 'fourier']).default('positional'),
  time_embedding_dim: posInt.nullable().default(null),
  time_embedding_act_fn: z.enum(['silu', 'swish', 'mish', 'gelu', 'relu']).nullable().default(null),
  timestep_post_act: z.enum(['silu', 'swish', 'mish', 'gelu', 'relu']).nullable().default(null),
  conv_in_kernel: posInt.default(3),
  conv_out_kernel: posInt.default(3),
  mid_block_only_cross_attention: z.boolean().nullable().default(null),
  // Options of SDXL/Kandinsky/UnCLIP-style models: only their off values are supported.
  encoder_hid_dim: z.null().default(null),
  encoder_hid_dim_type: z.null().default(null),
  dual_cross_attention: z.literal(false).default(false),
  addition_embed_type: z.null().default(null),
  addition_time_embed_dim: z.null().default(null),
  addition_embed_type_num_heads: z.number().default(64),
  time_cond_proj_dim: z.null().default(null),
  projection_class_embeddings_input_dim: z.null().default(null),
  attention_type: z.literal('default').default('default'),
  class_embeddings_concat: z.literal(false).default(false),
  cross_attention_norm: z.null().default(null),
  sample_size: sampleSize,
});

export type UNet2DConfig = z.infer<typeof unet2DSchema>;
export type UNet2DConditionConfig = z.infer<typeof unet2DConditionSchema>;

export type UNetConfig = ({ _class_name: 'UNet2DModel' } & UNet2DConfig) | ({ _class_name: 'UNet2DConditionModel' } & UNet2DConditionConfig);

/**
 * Keys the schemas take that diffusers added to the class after v0.31, with the release that added
 * them. Reading accepts them; writing leaves them out of a config.json whose `_diffusers_version` is
 * older at their default value, since that release would warn about each ("The config attributes
 * {...} were passed to UNet2DModel, but are not expected and will be ignored") on every load.
 */
const LATER_KEYS: Record<UNetConfig['_class_name'], Readonly<Record<string, string>>> = {
  // UNet2DModel(mid_block_type=...) is new in v0.33.0 (models/unets/unet_2d.py); before, its mid
  // block was always a UNetMidBlock2D.
  UNet2DModel: { mid_block_type: '0.33.0' },
  UNet2DConditionModel: {},
};

/** a < b for dotted release numbers ("0.31.0", "0.33.0.dev0": the numeric parts only). */
function olderRelease(a: string, b: string): boolean {
  const parts = (v: string) =>
    v
      .split('.')
      .map((p) => Number.parseInt(p, 10))
      .map((n) => (Number.isNaN(n) ? 0 : n));
  const x = parts(a);
  const y = parts(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d < 0;
  }
  return false;
}

/**
 * The keys of `config` a config.json naming diffusers `diffusersVersion` holds: every key that
 * release's class takes, and a later key only at a value other than its default (the file would be
 * wrong without it; that release warns about it and ignores it).
 */
export function unetConfigForVersion(config: UNetConfig, diffusersVersion: string): { _class_name: UNetConfig['_class_name'] } & Record<string, unknown> {
  const later = LATER_KEYS[config._class_name];
  const shape: Record<string, z.ZodTypeAny> = config._class_name === 'UNet2DModel' ? unet2DSchema.shape : unet2DConditionSchema.shape;
  const out: { _class_name: UNetConfig['_class_name'] } & Record<string, unknown> = { ...config };
  for (const [key, since] of Object.entries(later)) {
    if (!olderRelease(diffusersVersion, since)) continue;
    const fallback: unknown = shape[key]!.parse(undefined);
    // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- `out` is a plain config record; dropping a key the release doesn't know is the point
    if (JSON.stringify(out[key]) === JSON.stringify(fallback)) delete out[key];
  }
  return out;
}

export interface ParsedUNetConfig {
  config: UNetConfig;
  /** Keys in the file that this schema does not know (ignored, reported). */
  unknownKeys: string[];
}

const DOWN_TYPES = new Set(['DownBlock2D', 'AttnDownBlock2D', 'CrossAttnDownBlock2D']);
const UP_TYPES = new Set(['UpBlock2D', 'AttnUpBlock2D', 'CrossAttnUpBlock2D']);

function formatIssue(file: string, issue: z.ZodIssue, raw: Record<string, unknown>): string {
  const key = issue.path.join('.');
  const value = issue.path.reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<string | number, unknown>)[k] : undefined), raw);
  return `${file}: "${key}": ${issue.message} (found ${JSON.stringify(value)})`;
}

/**
 * The factor a U-Net's sample height and width must divide by: 2^(levels − 1), one 2× downsampler per level
 * but the last (8 for Stable Diffusion's four levels; times the VAE's scale factor in image pixels).
 */
export function unetDownsampling(config: Pick<UNetConfig, 'block_out_channels'>): number {
  return 2 ** (config.block_out_channels.length - 1);
}

/** A per-block setting as a list of n: a scalar repeated, or a list checked to have n entries. */
export function perBlock<T>(value: T | readonly T[], n: number, key: string, file: string): T[] {
  if (!Array.isArray(value)) return Array.from({ length: n }, () => value as T);
  if (value.length !== n) throw new ConfigError(`${file}: "${key}" has ${value.length} entries but there are ${n} down blocks`);
  return [...(value as T[])];
}

/** Validates a parsed config.json; unsupported values are a ConfigError naming the file and key. */
export function parseUNetConfig(raw: unknown, file: string): ParsedUNetConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${file}: expected a JSON object`);
  const obj = raw as Record<string, unknown>;
  const className = obj._class_name;
  let schema: typeof unet2DSchema | typeof unet2DConditionSchema;
  if (className === 'UNet2DModel') schema = unet2DSchema;
  else if (className === 'UNet2DConditionModel') schema = unet2DConditionSchema;
  else {
    throw new ConfigError(`${file}: "_class_name" must be "UNet2DModel" or "UNet2DConditionModel" but is ${JSON.stringify(className)}`);
  }
  const result = schema.safeParse(obj);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((i) => formatIssue(file, i, obj)).join('\n'));
  }
  const known = new Set(Object.keys(schema.shape));
  const unknownKeys = Object.keys(obj).filter((k) => !known.has(k) && !BOOKKEEPING_KEYS.has(k));
  const config = { _class_name: className, ...result.data } as UNetConfig;

  const n = config.block_out_channels.length;
  if (config.down_block_types.length !== n || config.up_block_types.length !== n) {
    throw new ConfigError(
      `${file}: "down_block_types" (${config.down_block_types.length}), "up_block_types" (${config.up_block_types.length}) and "block_out_channels" (${n}) must have the same length`,
    );
  }
  config.down_block_types.forEach((t, i) => {
    const ok = DOWN_TYPES.has(t) && (config._class_name === 'UNet2DConditionModel' || t !== 'CrossAttnDownBlock2D');
    if (!ok) throw new ConfigError(`${file}: "down_block_types[${i}]" is "${t}", which difftune does not support (supported: ${[...DOWN_TYPES].join(', ')})`);
  });
  config.up_block_types.forEach((t, i) => {
    const ok = UP_TYPES.has(t) && (config._class_name === 'UNet2DConditionModel' || t !== 'CrossAttnUpBlock2D');
    if (!ok) throw new ConfigError(`${file}: "up_block_types[${i}]" is "${t}", which difftune does not support (supported: ${[...UP_TYPES].join(', ')})`);
  });
  const mids = config._class_name === 'UNet2DModel' ? ['UNetMidBlock2D'] : ['UNetMidBlock2DCrossAttn', 'UNetMidBlock2D'];
  if (config.mid_block_type !== null && !mids.includes(config.mid_block_type)) {
    throw new ConfigError(`${file}: "mid_block_type" is "${config.mid_block_type}", which difftune does not support (supported: ${mids.join(', ')} or null)`);
  }
  const groups = config.norm_num_groups;
  if (groups !== null) {
    config.block_out_channels.forEach((c, i) => {
      if (c % groups !== 0) throw new ConfigError(`${file}: "norm_num_groups" ${groups} does not divide "block_out_channels[${i}]" ${c}`);
    });
  }
  if (config._class_name === 'UNet2DConditionModel') {
    for (const key of ['layers_per_block', 'cross_attention_dim', 'transformer_layers_per_block', 'attention_head_dim', 'only_cross_attention'] as const) {
      perBlock(config[key] as unknown, n, key, file);
    }
    transformerDepths(config, file);
  }
  return { config, unknownKeys };
}

/** The Transformer2DModel depth of every layer of every block, as UNet2DConditionModel v0.31 builds them. */
export interface TransformerDepths {
  /** Per down block, one depth per layer (layers_per_block). */
  down: number[][];
  mid: number;
  /** Per up block, in up-block order, one depth per layer (layers_per_block of the matching level + 1). */
  up: number[][];
}

/**
 * diffusers' reading of transformer_layers_per_block and reverse_transformer_layers_per_block
 * (models/unets/unet_2d_condition.py, get_down_block / get_up_block, the blocks in unet_2d_blocks.py): an
 * entry is a block's depth, or nested, one depth per layer (extra ones unused); the mid block takes the
 * last down entry (its first depth when nested); the up blocks take the reverse list, else the down
 * entries reversed, which diffusers refuses when they are nested.
 */
export function transformerDepths(config: UNet2DConditionConfig, file: string): TransformerDepths {
  const n = config.block_out_channels.length;
  const layers = perBlock(config.layers_per_block, n, 'layers_per_block', file);
  const entries = perBlock(config.transformer_layers_per_block, n, 'transformer_layers_per_block', file);
  const reverse = config.reverse_transformer_layers_per_block;
  if (reverse === null && entries.some(Array.isArray)) {
    throw new ConfigError(
      `${file}: "transformer_layers_per_block" gives per-layer depths (a nested list), which needs "reverse_transformer_layers_per_block" for the up blocks, as diffusers requires (found null)`,
    );
  }
  if (reverse !== null && reverse.length < n) {
    throw new ConfigError(`${file}: "reverse_transformer_layers_per_block" has ${reverse.length} entries but there are ${n} up blocks`);
  }
  const upEntries = reverse ?? [...entries].reverse();
  const expand = (entry: number | readonly number[], count: number, key: string, what: string): number[] => {
    if (!Array.isArray(entry)) return Array.from({ length: count }, () => entry as number);
    if (entry.length < count) throw new ConfigError(`${file}: "${key}" has ${entry.length} depths but ${what} has ${count} layers`);
    return (entry as readonly number[]).slice(0, count);
  };
  const last = entries[n - 1]!;
  return {
    down: entries.map((e, i) => expand(e, layers[i]!, `transformer_layers_per_block[${i}]`, `down block ${i}`)),
    mid: Array.isArray(last) ? last[0] : last,
    up: upEntries.slice(0, n).map((e, i) => expand(e, layers[n - 1 - i]! + 1, `reverse_transformer_layers_per_block[${i}]`, `up block ${i}`)),
  };
}
