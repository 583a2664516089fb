/**
 * Aspect-ratio bucketing (kohya's sd-scripts, SimpleTuner): instead of one square crop, each image trains at
 * the bucket — a width × height, both multiples of the model's downsampling factor, with a pixel count near
 * resolution² — whose aspect ratio is nearest its own, resized to cover it and cropped. Every batch holds one
 * bucket. Pure: sizes in, buckets and assignments out.
 */
import type { DataOptions } from '../config/data';
import { DatasetError } from '../errors';
import { hashInts } from './random';

export interface BucketSize {
  readonly width: number;
  readonly height: number;
}

/** The buckets of a dataset and which one each item trains in. */
export interface BucketPlan {
  /** Sides are multiples of this (pixels). */
  readonly step: number;
  /** Sorted by width, then height. */
  readonly sizes: readonly BucketSize[];
  /** Per item (dataset order): its index in `sizes`. */
  readonly ofItem: Uint16Array;
  /** Items per bucket. */
  readonly counts: readonly number[];
}

/** Stable Diffusion's factor: the VAE's 8 × the U-Net's 2³ (four levels). Training runs replace it with their model's. */
export const DEFAULT_BUCKET_STEP = 64;

export interface BucketSettings {
  step: number;
  minSide: number;
  maxSide: number;
}

/** data.buckets with its defaults filled in: step (else `defaultStep`), sides from resolution / 2 to resolution · 2. */
export function bucketSettings(options: DataOptions, defaultStep = DEFAULT_BUCKET_STEP): BucketSettings | null {
  const b = options.buckets;
  if (b === false) return null;
  const given = b === true ? {} : b;
  const step = given.step ?? defaultStep;
  const r = options.resolution;
  const fail = (field: string, message: string) => new DatasetError(`data.buckets.${field}: ${message}`);
  if (r < step) throw fail('step', `expected at most data.resolution (${r}) but found ${step}: no bucket would fit resolution²`);
  const minSide = given.minSide ?? Math.max(step, Math.ceil(r / 2 / step) * step);
  const maxSide = given.maxSide ?? Math.floor((2 * r) / step) * step;
  for (const [field, v] of [
    ['minSide', minSide],
    ['maxSide', maxSide],
  ] as const)
    if (v % step !== 0) throw fail(field, `expected a multiple of the bucket step ${step} but found ${v}`);
  if (minSide > maxSide) throw fail('minSide', `expected at most maxSide (${maxSide}) but found ${minSide}`);
  return { step, minSide, maxSide };
}

/**
 * kohya's make_bucket_resolutions: the square of side ⌊resolution / step⌋·step, and for each width from
 * minSide to maxSide (by step) the largest height within maxSide whose area stays at most resolution²,
 * with its transpose; sides below minSide are left out.
 */
export function generateBuckets(resolution: number, s: BucketSettings): BucketSize[] {
  const area = resolution * resolution;
  const seen = new Map<string, BucketSize>();
  const add = (width: number, height: number) => seen.set(`${width}x${height}`, { width, height });
  const square = Math.floor(resolution / s.step) * s.step;
  add(square, square);
  for (let width = s.minSide; width <= s.maxSide; width += s.step) {
    const height = Math.min(s.maxSide, Math.floor(Math.floor(area / width) / s.step) * s.step);
    if (height < s.minSide) continue;
    add(width, height);
    add(height, width);
  }
  return [...seen.values()].sort((a, b) => a.width - b.width || a.height - b.height);
}

/** The bucket whose aspect ratio is nearest `width / height` (distance of log ratios: 2:1 and 1:2 alike); the first on a tie. */
export function nearestBucket(sizes: readonly BucketSize[], width: number, height: number): number {
  const target = Math.log(width / height);
  let best = 0;
  let bestError = Infinity;
  sizes.forEach((b, i) => {
    const error = Math.abs(Math.log(b.width / b.height) - target);
    if (error < bestError) {
      best = i;
      bestError = error;
    }
  });
  return best;
}

/** Buckets for items of the given (oriented) sizes; buckets no item falls in are dropped. */
export function planBuckets(resolution: number, settings: BucketSettings, itemSizes: readonly BucketSize[]): BucketPlan {
  const all = generateBuckets(resolution, settings);
  const chosen = itemSizes.map((s) => nearestBucket(all, s.width, s.height));
  const used = [...new Set(chosen)].sort((a, b) => a - b);
  const renumber = new Map(used.map((b, i) => [b, i]));
  const ofItem = Uint16Array.from(chosen, (b) => renumber.get(b)!);
  const counts = used.map(() => 0);
  for (const b of ofItem) counts[b]!++;
  return { step: settings.step, sizes: used.map((b) => all[b]!), ofItem, counts };
}

/** "32×32: 6, 40×24: 4" — items per bucket, for the run's plan. */
export function describeBuckets(plan: BucketPlan): string {
  return plan.sizes.map((s, i) => `${s.width}×${s.height}: ${plan.counts[i]}`).join(', ');
}

/** A stable text of the buckets, their counts and the items' assignment: a saved loader position resumes only onto the same plan. */
export function bucketSignature(plan: BucketPlan): string {
  const sizes = plan.sizes.map((s, i) => `${s.width}x${s.height}:${plan.counts[i]}`).join(',');
  let h = hashInts(plan.ofItem.length);
  for (const b of plan.ofItem) h = hashInts(h, b);
  return `${sizes}#${h.toString(16).padStart(8, '0')}`;
}
