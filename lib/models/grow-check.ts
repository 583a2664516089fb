/**
 * Measures the property growing claims (docs/grow-unet.md) on random inputs:
 *   max |avgpool2×2(g(up2(x), t, c)) − f(x, t, c)| / max |f(x, t, c)|
 * for the old model f and the grown model g, at several timesteps, with random class labels and
 * encoder hidden states where the model takes them.
 */
import { Rng } from '../data/random';
import { Tensor } from '../native/tensor';
import type { ForwardOptions, UNet } from './unet';

export interface GrowthCheck {
  timestep: number;
  /** max |avgpool(g(up x)) − f(x)| / max |f(x)|. */
  relativeError: number;
  /** The same for g(up x) against up2(f(x)) pixel by pixel (the stronger property, which does not hold). */
  pixelwiseRelativeError: number;
}

function gaussian(n: number, rng: Rng): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rng.float()));
    const phi = 2 * Math.PI * rng.float();
    out[i] = r * Math.cos(phi);
    if (i + 1 < n) out[i + 1] = r * Math.sin(phi);
  }
  return out;
}

/** Nearest-neighbour ×2 of [planes, h, w]. */
export function upsample2(x: Float32Array, planes: number, h: number, w: number): Float32Array {
  const out = new Float32Array(planes * h * w * 4);
  for (let p = 0; p < planes; p++) {
    for (let i = 0; i < 2 * h; i++) for (let j = 0; j < 2 * w; j++) out[(p * 2 * h + i) * 2 * w + j] = x[(p * h + (i >> 1)) * w + (j >> 1)]!;
  }
  return out;
}

/** 2×2 average pooling of [planes, 2h, 2w] to [planes, h, w]. */
export function avgpool2(x: Float32Array, planes: number, h: number, w: number): Float32Array {
  const out = new Float32Array(planes * h * w);
  const W = 2 * w;
  for (let p = 0; p < planes; p++) {
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        const at = (a: number, b: number): number => x[(p * 2 * h + 2 * i + a) * W + 2 * j + b]!;
        out[(p * h + i) * w + j] = (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4;
      }
    }
  }
  return out;
}

/** Random conditioning inputs the model takes (class labels, encoder hidden states), or none. */
function conditioning(unet: UNet, batch: number, rng: Rng): ForwardOptions {
  const c = unet.config;
  const options: ForwardOptions = {};
  if (c.num_class_embeds !== null || c.class_embed_type === 'timestep') {
    const n = c.num_class_embeds ?? 1000;
    options.classLabels = Tensor.from(BigInt64Array.from({ length: batch }, () => BigInt(rng.int(n))), [batch]);
  } else if (c.class_embed_type === 'identity') {
    const dim = (c._class_name === 'UNet2DConditionModel' ? c.time_embedding_dim : null) ?? 4 * c.block_out_channels[0];
    options.classLabels = Tensor.from(gaussian(batch * dim, rng), [batch, dim]);
  }
  if (c._class_name === 'UNet2DConditionModel') {
    const dim = Array.isArray(c.cross_attention_dim) ? (c.cross_attention_dim[0]) : (c.cross_attention_dim);
    options.encoderHiddenStates = Tensor.from(gaussian(batch * 8 * dim, rng), [batch, 8, dim]);
  }
  return options;
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** The property's error of `grown` against `old` at `resolution` (the old model's input size). */
export async function checkGrowth(
  old: UNet,
  grown: UNet,
  options: { resolution: number; batch?: number; timesteps?: readonly number[]; seed?: number },
): Promise<GrowthCheck[]> {
  const batch = options.batch ?? 2;
  const r = options.resolution;
  const rng = new Rng(options.seed ?? 0);
  const cin = old.config.in_channels;
  const cout = old.config.out_channels;
  const results: GrowthCheck[] = [];
  for (const timestep of options.timesteps ?? [0, 10, 500, 999]) {
    const x = gaussian(batch * cin * r * r, rng);
    const cond = conditioning(old, batch, rng);
    using small = Tensor.from(x, [batch, cin, r, r]);
    using large = Tensor.from(upsample2(x, batch * cin, r, r), [batch, cin, 2 * r, 2 * r]);
    using t = Tensor.from(new Float32Array(batch).fill(timestep), [batch]);
    try {
      using f = await old.forward(small, t, cond);
      using g = await grown.forward(large, t, cond);
      const fx = (await f.data()) as Float32Array;
      const gx = (await g.data()) as Float32Array;
      const scale = maxAbs(fx);
      results.push({
        timestep,
        relativeError: maxAbsDiff(avgpool2(gx, batch * cout, r, r), fx) / scale,
        pixelwiseRelativeError: maxAbsDiff(gx, upsample2(fx, batch * cout, r, r)) / scale,
      });
    } finally {
      cond.classLabels?.dispose();
      cond.encoderHiddenStates?.dispose();
    }
  }
  return results;
}
