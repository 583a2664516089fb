/**
 * What a diffusers parameter is, read from its name (and shape): a bias, a normalisation layer's
 * scale/shift, an embedding table, which top-level block owns it. The presets and the weight-decay
 * choice share these so that "norm" means the same thing everywhere.
 */

/**
 * A module name that is a normalisation layer in diffusers' U-Nets: `norm`, `norm1`..`norm3` (resnets,
 * transformer blocks), `group_norm` (UNet2DModel attention), `conv_norm_out`, `norm_out`, `norm_cross`,
 * `norm_q`/`norm_k`. `normalize` or `spatial_norm.conv_y` are not: the segment must end in `norm`,
 * `norm<digits>` or `norm_<word>`.
 */
const NORM_SEGMENT = '(?:[A-Za-z0-9]+_)*norm(?:[0-9]+|_[A-Za-z0-9_]+)?';

/**
 * The parameters a normalisation module owns directly (its scale `weight` and shift `bias`), as an
 * anchored regular expression over the whole name. AdaGroupNorm's inner `norm1.linear.weight` is a
 * Linear, not a norm scale, and does not match.
 */
export const NORM_PARAMETER_REGEX_SOURCE = `(?:.*\\.)?${NORM_SEGMENT}\\.(?:weight|bias)`;
const NORM_PARAMETER = new RegExp(`^${NORM_PARAMETER_REGEX_SOURCE}$`);

/** `nn.Embedding` tables of diffusers' U-Nets: `class_embedding.weight` (num_class_embeds). */
const EMBEDDING_TABLE = /^(?:.*\.)?[A-Za-z0-9_]*(?:embedding|embeddings|embed)\.weight$/;

export function isBias(name: string): boolean {
  return name === 'bias' || name.endsWith('.bias');
}

export function isNormParameter(name: string): boolean {
  return NORM_PARAMETER.test(name);
}

export function isEmbeddingTable(name: string): boolean {
  return EMBEDDING_TABLE.test(name);
}

/**
 * Whether AdamW's weight decay applies by default. Not to biases, norm scales/shifts or embedding
 * tables, nor to any tensor of at most one dimension (the practice of minGPT, timm and kohya's
 * scripts): decaying them pulls shifts and scales toward 0, which regularises nothing useful and
 * measurably hurts fine-tuning of norms.
 */
export function defaultWeightDecay(name: string, shape: readonly number[]): boolean {
  return !(shape.length <= 1 || isBias(name) || isNormParameter(name) || isEmbeddingTable(name));
}

/**
 * The top-level block a parameter belongs to, as the plan reports it: `down_blocks.<i>` and
 * `up_blocks.<i>` per block, otherwise the first segment (`conv_in`, `time_embedding`,
 * `class_embedding`, `mid_block`, `conv_norm_out`, `conv_out`, ...).
 */
export function topLevelBlock(name: string): string {
  const segments = name.split('.');
  const first = segments[0] ?? name;
  if ((first === 'down_blocks' || first === 'up_blocks') && segments.length > 1) return `${first}.${segments[1]}`;
  return first;
}
