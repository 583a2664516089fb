/**
 * Distances between two training runs' tensors (weights, optimizer moments), over all tensors at once.
 * A whole-run Frobenius distance, unlike a per-element or per-tensor maximum, is not dominated by the few
 * near-zero gradient elements whose sign a last-bit difference flips (Adam turns each such flip into an
 * update of ~lr, whatever the gradient's size).
 */
import type { Tensor } from '../../lib/native/tensor';

export type Floats = ReadonlyMap<string, Float32Array>;

/** ‖a − b‖ / ‖a‖ over every tensor named in `a` (float64 sums); Infinity when b lacks a name or a shape. */
export function relativeDistance(a: Floats, b: Floats): number {
  let diff = 0;
  let norm = 0;
  for (const [name, x] of a) {
    const y = b.get(name);
    if (y === undefined || y.length !== x.length) return Infinity;
    for (let i = 0; i < x.length; i++) {
      const d = x[i]! - y[i]!;
      diff += d * d;
      norm += x[i]! * x[i]!;
    }
  }
  return norm === 0 ? Math.sqrt(diff) : Math.sqrt(diff / norm);
}

/** Float32 copies of the tensors whose names pass `keep` (CPU float32 tensors only). */
export function floatsOf(tensors: ReadonlyMap<string, Tensor>, keep: (name: string) => boolean = () => true): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, t] of tensors) if (keep(name)) out.set(name, Float32Array.from(t.toArray() as Float32Array));
  return out;
}

/**
 * The float32 rounding error of a sum of `terms` products, relative to the sum of their magnitudes, in
 * the worst case (no cancellation assumed, every partial sum rounded): terms · 2^-24. Two runs that only
 * group the same products differently (micro-batches, ranks) have gradients this close.
 */
export function float32SumBound(terms: number): number {
  return terms * 2 ** -24;
}
