/**
 * Analytic FLOP counts of a U-Net step, from its layer shapes (diffusers parameter names and shapes) and
 * the input size. Counted: convolutions (2·Cout·Cin·kh·kw per output pixel), linears (2·out·in per
 * token) and attention's two matmuls (QKᵀ and attention·V: 2·2·N·M·inner). Norms, activations, softmax
 * and the optimizer are element-wise and left out (a few percent). Pure: no addon.
 */

export interface LayerShape {
  name: string;
  shape: readonly number[];
}

export interface FlopInput {
  /** Number of levels (block_out_channels.length). */
  levels: number;
  height: number;
  width: number;
  batch: number;
  /** Text tokens of encoder_hidden_states (cross-attention keys/values); 0 when unconditional. */
  encoderSeqLen: number;
}

export interface FlopCount {
  /** One forward pass over the batch. */
  forward: number;
  conv: number;
  linear: number;
  attention: number;
  /** Per layer (weight name → forward FLOPs), for the backward estimate. */
  perWeight: Map<string, number>;
}

/** The spatial size the layer's output has, from its place in the U-Net (diffusers' block naming). */
function outputPixels(name: string, input: FlopInput): number {
  const at = (level: number): number => Math.max(1, Math.floor(input.height / 2 ** level)) * Math.max(1, Math.floor(input.width / 2 ** level));
  const last = input.levels - 1;
  let m = /^down_blocks\.(\d+)\./.exec(name);
  if (m) {
    const level = Number(m[1]);
    return name.includes('.downsamplers.') ? at(level + 1) : at(level);
  }
  m = /^up_blocks\.(\d+)\./.exec(name);
  if (m) {
    const level = last - Number(m[1]);
    return name.includes('.upsamplers.') ? at(level - 1) : at(level);
  }
  if (name.startsWith('mid_block.')) return at(last);
  return at(0); // conv_in, conv_norm_out, conv_out
}

/** Rows a linear layer sees per sample: 1 for embeddings, text tokens for cross-attention K/V, else pixels. */
function linearTokens(name: string, input: FlopInput): number {
  const module = hostModule(name);
  if (/^(time_embedding|class_embedding|add_embedding|encoder_hid_proj)\./.test(module) || /\.time_emb_proj$/.test(module)) return 1;
  if (/\.attn2\.(to_k|to_v)$/.test(module)) return input.encoderSeqLen;
  return outputPixels(name, input);
}

/** "a.b.to_q" for "a.b.to_q.weight" and for its LoRA factors "a.b.to_q.lora_A.weight". */
function hostModule(name: string): string {
  return name.replace(/\.weight$/, '').replace(/\.lora_[AB]$/, '');
}

/** Forward FLOPs of one batch, split by kind. Only `.weight` tensors of rank ≥ 2 count (biases are adds). */
export function countFlops(layers: readonly LayerShape[], input: FlopInput): FlopCount {
  let conv = 0;
  let linear = 0;
  let attention = 0;
  const perWeight = new Map<string, number>();
  for (const { name, shape } of layers) {
    if (!name.endsWith('.weight') || shape.length < 2) continue;
    const macs = shape.reduce((a, b) => a * b, 1);
    let f: number;
    if (shape.length === 4) {
      // A LoRA factor of a conv: lora_A is a kh×kw conv, lora_B a 1×1 — both at the host's output size.
      f = 2 * macs * outputPixels(name, input) * input.batch;
      conv += f;
    } else if (shape.length === 2) {
      f = 2 * macs * linearTokens(name, input) * input.batch;
      linear += f;
    } else continue;
    perWeight.set(name, f);
    if (/\.to_q\.weight$/.test(name)) {
      // scores = Q·Kᵀ [N, M] and out = softmax(scores)·V, over all heads: inner = to_q's output width.
      const n = outputPixels(name, input);
      const m = /\.attn2\.to_q\.weight$/.test(name) ? input.encoderSeqLen : n;
      attention += 2 * 2 * n * m * shape[0]! * input.batch;
    }
  }
  return { forward: conv + linear + attention, conv, linear, attention, perWeight };
}

/**
 * FLOPs of forward + backward: the input gradient of every layer (as much as its forward, except
 * conv_in, whose input needs none), the weight gradient of each trainable weight (as much again), and
 * both operands of attention's matmuls. An upper bound when a frozen prefix needs no input gradient.
 */
export function backwardFlops(count: FlopCount, isTrainable: (weightName: string) => boolean): number {
  let total = 2 * count.attention;
  for (const [name, f] of count.perWeight) {
    if (!name.startsWith('conv_in.')) total += f;
    if (isTrainable(name)) total += f;
  }
  return total;
}
