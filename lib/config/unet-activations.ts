/**
 * The activation memory of a U-Net training step, modelled from the architecture: for each block, the
 * tensors autograd keeps for backward, counted op by op as difftune's native model computes them
 * (native/unet: resnet.cc, attention.cc, attention_processor.cc, transformer_2d.cc, unet.cc). Counts are
 * elements per batch item; multiply by the batch and the bytes per element. Pure: never loads the addon.
 *
 * What each op keeps (P = pixels of the level, C channels, D the transformer width, h heads, M text tokens):
 * - ResnetBlock2D(Ci → Co): its input, norm1's output (SiLU's input) and SiLU's output (conv1's input):
 *   3·Ci·P; the same three after conv1 (h + temb, norm2's output, SiLU's output): 3·Co·P. The 1×1
 *   shortcut reuses the input.
 * - Transformer2DModel: GroupNorm's input and output (2·C·P), proj_out's input (D·P), and per
 *   BasicTransformerBlock: self-attention 6·D·P (norm1's input and output, q, k, v copied into
 *   [B·h, N, d] for the batched matmuls, the heads joined again for to_out) plus the softmax output h·P²;
 *   cross-attention 4·D·P (norm2's input and output, q, the joined heads) plus h·P·M; the GEGLU
 *   feed-forward 18·D·P (norm3's input and output, the 8·D projection whose halves GELU and the product
 *   keep, GELU's 4·D output, the 4·D product). 28·D·P + h·P² + h·P·M in all.
 * - Attention (UNet2DModel's AttnDownBlock2D): 6·C·P + h·P².
 * - Downsample2D and Upsample2D: their convolution's input (the upsampled map for Upsample2D).
 * - conv_norm_out → SiLU → conv_out: 3·c0·P.
 *
 * With gradient checkpointing (difftune's, as diffusers': each resnet and each attention / Transformer2DModel,
 * an up block's skip concatenation inside its resnet's) only the layers' inputs stay — the skip
 * connections, every resnet's and attention's output, the samplers' inputs and outputs, which are not
 * recomputed — and backward recomputes one layer at a time: the peak is those boundaries plus the
 * largest layer's own activations.
 */
import { transformerDepths, type UNetConfig } from './unet';

/** Tensors of one size (elements per batch item) and how many of them. */
export type TensorCount = readonly [elements: number, count: number];

/** One block's activations for backward, per batch item. */
export interface BlockActivations {
  /** "down_blocks.0", "mid_block", "up_blocks.3", "conv_out". */
  name: string;
  /** The tensors its ops keep for backward, by size. */
  tensors: TensorCount[];
  /** Elements in them. */
  elements: number;
  /** The largest single tensor among them (what one op's backward allocates about twice of). */
  largest: number;
  /** With gradient checkpointing: the tensors of its largest recomputed layer (all of `tensors` for a block that is not recomputed). */
  recomputed: TensorCount[];
}

export interface UNetActivationShape {
  /** Latent (or pixel) height and width of the U-Net's input. */
  height: number;
  width: number;
  /** Text tokens of encoder_hidden_states (77 for CLIP); 0 without cross-attention. */
  textTokens: number;
}

export interface UNetActivations {
  blocks: BlockActivations[];
  /** The tensors checkpointing keeps between layers: every skip connection, every layer's output, the samplers'. */
  boundaryTensors: TensorCount[];
  /** Elements in them. */
  boundaries: number;
  /** Peak elements held for backward without gradient checkpointing (all blocks, and one op's backward on top). */
  plain: number;
  /** Peak elements with gradient checkpointing (boundaries, the largest layer recomputed, one op's backward). */
  checkpointed: number;
}

const list = <T>(value: T | readonly T[], n: number): T[] => (Array.isArray(value) ? [...(value as readonly T[])] : new Array<T>(n).fill(value as T));

const elementsOf = (tensors: readonly TensorCount[]): number => tensors.reduce((a, [size, count]) => a + size * count, 0);

function block(tensors: TensorCount[], name = '', recomputed?: TensorCount[]): BlockActivations {
  const kept = tensors.filter(([size, count]) => size > 0 && count > 0);
  return { name, tensors: kept, elements: elementsOf(kept), largest: Math.max(0, ...kept.map(([size]) => size)), recomputed: recomputed ?? kept };
}

/** Elements held in tensors smaller than `limit` elements each. */
export function elementsBelow(tensors: readonly TensorCount[], limit: number): number {
  return tensors.reduce((a, [size, count]) => (size < limit ? a + size * count : a), 0);
}

function resnet(inCh: number, outCh: number, p: number): BlockActivations {
  return block([
    [inCh * p, 3],
    [outCh * p, 3],
  ]);
}

/**
 * The attention probabilities of `heads` heads over n queries and m keys, as difftune keeps them: in
 * groups of (batch item, head) pairs of about 1 MB each, one pair per group when a pair alone is larger
 * (native/unet/attention_processor.cc), so that backward's temporaries are per group, not per layer.
 */
function scores(heads: number, n: number, m: number): TensorCount {
  const perPair = n * m;
  const pairs = Math.min(heads, Math.max(1, Math.floor(2 ** 18 / Math.max(perPair, 1))));
  return [pairs * perPair, Math.ceil(heads / pairs)];
}

/** With only_cross_attention the first attention attends to the text too: h·P·M instead of h·P². */
function transformer(c: number, p: number, heads: number, depth: number, textTokens: number, onlyCross: boolean): BlockActivations {
  const d = c;
  const [selfSize, selfCount] = scores(heads, p, onlyCross ? textTokens : p);
  const [crossSize, crossCount] = scores(heads, p, textTokens);
  return block([
    // GroupNorm's input and output, proj_out's input.
    [c * p, 3],
    // Per block: 11 maps of the width (norms' inputs and outputs, q/k/v and the joined heads), GEGLU's
    // 8·D projection, GELU's output and the product (4·D each), and the attention probabilities.
    [d * p, 11 * depth],
    [8 * d * p, depth],
    [4 * d * p, 2 * depth],
    [selfSize, selfCount * depth],
    [crossSize, crossCount * depth],
  ]);
}

function attention(c: number, p: number, heads: number): BlockActivations {
  const [size, count] = scores(heads, p, p);
  return block([
    [c * p, 6],
    [size, count],
  ]);
}

/** A block of layers (each recomputed on its own with checkpointing) and ops that are not recomputed (samplers). */
function sum(name: string, layers: readonly BlockActivations[], kept: readonly BlockActivations[] = []): BlockActivations {
  const widest = layers.reduce<BlockActivations | undefined>((w, l) => (w === undefined || l.elements > w.elements ? l : w), undefined);
  return block(
    [...layers, ...kept].flatMap((b) => b.tensors),
    name,
    widest ? [...widest.tensors] : [],
  );
}

/** The activations a training step of `config` over one sample of `shape` keeps, block by block. */
export function unetActivations(config: UNetConfig, shape: UNetActivationShape): UNetActivations {
  const c = config.block_out_channels;
  const n = c.length;
  const layers = list(config.layers_per_block, n);
  const cond = config._class_name === 'UNet2DConditionModel' ? config : null;
  const depths = cond ? transformerDepths(cond, 'config') : undefined;
  // UNet2DConditionModel: attention_head_dim is the number of heads (diffusers' naming); UNet2DModel: channels per head.
  const headsAt = (i: number, ch: number): number => {
    if (cond) return list(cond.attention_head_dim, n)[i]!;
    const headDim = config._class_name === 'UNet2DModel' ? config.attention_head_dim : null;
    return headDim === null ? 1 : Math.max(1, Math.floor(ch / headDim));
  };
  const onlyCross = cond ? list(cond.only_cross_attention, n) : [];
  const tokens = cond ? shape.textTokens : 0;
  const attentionOf = (type: string, ch: number, p: number, i: number, depth: number): BlockActivations[] => {
    if (type.startsWith('CrossAttn')) return [transformer(ch, p, headsAt(i, ch), depth, tokens, onlyCross[i] ?? false)];
    if (type.startsWith('Attn')) return [attention(ch, p, headsAt(i, ch))];
    return [];
  };

  const p0 = shape.height * shape.width;
  const blocks: BlockActivations[] = [];
  const skips: number[] = [c[0] * p0];
  let out = c[0];
  let p = p0;
  // Layer outputs that are not skips (a resnet's output before its attention, the mid and up paths).
  const between: TensorCount[] = [];
  config.down_block_types.forEach((type, i) => {
    const parts: BlockActivations[] = [];
    const kept: BlockActivations[] = [];
    const inCh = out;
    out = c[i]!;
    for (let j = 0; j < layers[i]!; j++) {
      const attn = attentionOf(type, out, p, i, depths?.down[i]![j] ?? 1);
      parts.push(resnet(j === 0 ? inCh : out, out, p), ...attn);
      if (attn.length > 0) between.push([out * p, 1]);
      skips.push(out * p);
    }
    if (i < n - 1) {
      // The downsampler's input is the last skip.
      kept.push(block([[out * p, 1]]));
      p = Math.ceil(p / 4);
      skips.push(out * p);
    }
    blocks.push(sum(`down_blocks.${i}`, parts, kept));
  });

  const last = c[n - 1]!;
  const boundaryTensors: TensorCount[] = skips.map((size) => [size, 1] as const);
  if (config.mid_block_type !== null) {
    const midAttention =
      config.mid_block_type === 'UNetMidBlock2DCrossAttn' ? [transformer(last, p, headsAt(n - 1, last), depths?.mid ?? 1, tokens, false)] : [];
    const addAttention = config._class_name === 'UNet2DModel' && config.add_attention ? [attention(last, p, headsAt(n - 1, last))] : [];
    const parts = [resnet(last, last, p), ...midAttention, ...addAttention, resnet(last, last, p)];
    blocks.push(sum('mid_block', parts));
    between.push([last * p, parts.length]);
  }

  const rev = [...c].reverse();
  const revLayers = [...layers].reverse();
  out = rev[0]!;
  config.up_block_types.forEach((type, i) => {
    const parts: BlockActivations[] = [];
    const kept: BlockActivations[] = [];
    const prev = out;
    out = rev[i]!;
    const level = n - 1 - i;
    for (let j = 0; j <= revLayers[i]!; j++) {
      const skip = (skips.pop() ?? 0) / p;
      const attn = attentionOf(type, out, p, level, depths?.up[i]![j] ?? 1);
      parts.push(resnet((j === 0 ? prev : out) + skip, out, p), ...attn);
      between.push([out * p, 1 + attn.length]);
    }
    if (i < n - 1) {
      p = p * 4;
      // The upsampler's convolution keeps its (upsampled) input; its output is the next block's input.
      kept.push(block([[out * p, 1]]));
      between.push([out * p, 2]);
    }
    blocks.push(sum(`up_blocks.${i}`, parts, kept));
  });
  boundaryTensors.push(...between);
  blocks.push(block([[c[0] * p0, 3]], 'conv_out'));

  const boundaries = boundaryTensors.reduce((a, [size, count]) => a + size * count, 0);
  const total = blocks.reduce((a, b) => a + b.elements, 0);
  const largestOp = Math.max(...blocks.map((b) => b.largest));
  const widestLayer = Math.max(...blocks.filter((b) => b.name !== 'conv_out').map((b) => elementsOf(b.recomputed)));
  const convOut = blocks[blocks.length - 1]!.elements;
  return {
    blocks,
    boundaryTensors,
    boundaries,
    plain: total + 2 * largestOp,
    checkpointed: boundaries + convOut + widestLayer + 2 * largestOp,
  };
}
