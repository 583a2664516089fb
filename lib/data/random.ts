/**
 * Seeded randomness for the data pipeline. Every random choice is a pure function of integers
 * (seed, epoch, sample index, ...), so a run depends neither on batch boundaries nor on the order in
 * which decodes finish, and a resumed run makes the same choices.
 */

/** A 32-bit hash of a list of unsigned 32-bit integers (murmur3's finaliser between rounds). */
export function hashInts(...values: readonly number[]): number {
  let h = 0x9e3779b9;
  for (const v of values) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** A small, fast PRNG (mulberry32); deterministic for a given seed. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** A uniform 32-bit unsigned integer. */
  uint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform in [0, 1). */
  float(): number {
    return this.uint32() / 0x100000000;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }
}

/** Named streams, so adding a new random choice never shifts an existing one. */
export const STREAM = { order: 1, crop: 2, flip: 3, caption: 4, dropout: 5, shuffle: 6, bucketBatches: 7 } as const;

/** The generator for one choice of one sample: (seed, stream, epoch, index). */
export function sampleRng(seed: number, stream: number, epoch: number, index: number): Rng {
  return new Rng(hashInts(seed, stream, epoch, index));
}

/** A Fisher–Yates permutation of 0..n−1 from the given generator. */
export function permutation(n: number, rng: Rng): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}
