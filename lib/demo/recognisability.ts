/**
 * "Do the samples look like digits?" as a number: a k-nearest-neighbour classifier on the MNIST train
 * split (raw pixels scaled to unit length, Euclidean distance between them). A sample
 * counts as a recognisable digit when its k nearest training digits agree on one class (at least
 * minVotes of k) and its nearest one is no farther than real held-out digits' nearest ones are (their
 * 95th percentile). A scribble fails one way or the other: its neighbours disagree, or every real digit
 * is far from it (a blank, a blob, noise). Pure TypeScript: never loads the addon.
 */
import { loadBuiltin } from '../data/builtin';
import { parseDataOptions } from '../config/data';
import { expected } from '../errors';
import type { Images } from '../sample/image';

const SIDE = 28;
const PIXELS = SIDE * SIDE;

/** Labelled 28×28 grayscale digits, concatenated. */
export interface DigitSet {
  count: number;
  /** uint8, row-major 28×28 per image. */
  pixels: Uint8Array;
  labels: Uint8Array;
}

export interface RecognisabilityOptions {
  /** Neighbours that vote (default 10). */
  k?: number;
  /** Votes the winning class needs (default 8 of 10). */
  minVotes?: number;
  /** The farthest a sample's nearest training digit may be (Euclidean between unit-length images, 0–2); default: no limit. */
  maxDistance?: number;
}

export interface Recognisability {
  /** Images measured. */
  count: number;
  /** Fraction of them that are recognisable digits (agreed on, and near a real digit). */
  recognisable: number;
  /** Recognisable images per digit 0–9: whether the samples cover every digit. */
  perDigit: number[];
  /** The class the neighbours voted for, per image (-1: not recognisable). */
  predicted: number[];
  k: number;
  minVotes: number;
  maxDistance: number;
}

/** The MNIST digits the `mnist` package ships, one split (difftune's 6/7 : 1/7 split), `limit` balanced across digits. */
export async function loadDigits(split: 'train' | 'test', limit?: number): Promise<DigitSet> {
  const options = parseDataOptions({ source: 'mnist', resolution: SIDE, channels: 1, split, ...(limit === undefined ? {} : { limit }) });
  const { items } = await loadBuiltin(options);
  const pixels = new Uint8Array(items.length * PIXELS);
  const labels = new Uint8Array(items.length);
  items.forEach((item, i) => {
    // Built-in sets are always in-memory 28×28 pixels.
    if (item.image.kind === 'pixels') pixels.set(item.image.pixels, i * PIXELS);
    labels[i] = item.label ?? 0;
  });
  return { count: items.length, pixels, labels };
}

// Unit-length copies of a reference's images, made once per reference.
const unitCache = new WeakMap<DigitSet, Float32Array>();

/** The image scaled to unit length (all zeros for a blank one, which is near nothing). */
function toUnit(pixels: Uint8Array, out: Float32Array = new Float32Array(pixels.length)): Float32Array {
  let norm = 0;
  for (const v of pixels) norm += v * v;
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  for (let i = 0; i < pixels.length; i++) out[i] = pixels[i]! * scale;
  return out;
}

function unitReference(reference: DigitSet): Float32Array {
  let unit = unitCache.get(reference);
  if (unit === undefined) {
    unit = new Float32Array(reference.count * PIXELS);
    for (let r = 0; r < reference.count; r++) toUnit(reference.pixels.subarray(r * PIXELS, (r + 1) * PIXELS), unit.subarray(r * PIXELS, (r + 1) * PIXELS));
    unitCache.set(reference, unit);
  }
  return unit;
}

/**
 * The k nearest reference digits of one 784-pixel image, both scaled to unit length (so ink intensity
 * does not matter, only shape): squared distances ascending (0…2), with labels. A blank image has none.
 */
function nearest(reference: DigitSet, image: Uint8Array, k: number): { d2: Float64Array; labels: Int32Array } {
  const d2 = new Float64Array(k).fill(Infinity);
  const labels = new Int32Array(k).fill(-1);
  if (image.every((v) => v === 0)) return { d2, labels };
  const ref = unitReference(reference);
  const q = toUnit(image);
  for (let r = 0; r < reference.count; r++) {
    const base = r * PIXELS;
    const worst = d2[k - 1]!;
    let sum = 0;
    // Row by row, giving up once this digit is already farther than the k-th best (most are).
    for (let row = 0; row < SIDE && sum < worst; row++) {
      const o = row * SIDE;
      for (let x = o; x < o + SIDE; x++) {
        const diff = q[x]! - ref[base + x]!;
        sum += diff * diff;
      }
    }
    if (sum >= worst) continue;
    let j = k - 1;
    for (; j > 0 && d2[j - 1]! > sum; j--) {
      d2[j] = d2[j - 1]!;
      labels[j] = labels[j - 1]!;
    }
    d2[j] = sum;
    labels[j] = reference.labels[r]!;
  }
  return { d2, labels };
}

function checkImages(images: Pick<Images, 'count' | 'width' | 'height' | 'channels' | 'pixels'>, param: string): void {
  if (images.width !== SIDE || images.height !== SIDE || images.channels !== 1 || images.pixels.length !== images.count * PIXELS)
    throw expected('28×28 single-channel images (MNIST-sized samples)', param, `${images.count} of ${images.width}×${images.height}×${images.channels}`);
}

/** Each image's distance to its nearest reference digit. */
export function nearestDistances(images: Pick<Images, 'count' | 'width' | 'height' | 'channels' | 'pixels'>, reference: DigitSet): number[] {
  checkImages(images, 'images');
  const out: number[] = [];
  for (let i = 0; i < images.count; i++) out.push(Math.sqrt(nearest(reference, images.pixels.subarray(i * PIXELS, (i + 1) * PIXELS), 1).d2[0]!));
  return out;
}

/** The q-quantile (0–1) of real held-out digits' distance to their nearest reference digit: the "near a real digit" bound. */
export function distanceBound(heldOut: DigitSet, reference: DigitSet, q = 0.95): number {
  const d = nearestDistances({ count: heldOut.count, width: SIDE, height: SIDE, channels: 1, pixels: heldOut.pixels }, reference).sort((a, b) => a - b);
  return d[Math.min(d.length - 1, Math.floor(q * d.length))]!;
}

/** How many of `images` (uint8, as toImages gives them) a k-NN classifier on `reference` recognises as digits. */
export function recognisability(
  images: Pick<Images, 'count' | 'width' | 'height' | 'channels' | 'pixels'>,
  reference: DigitSet,
  options: RecognisabilityOptions = {},
): Recognisability {
  checkImages(images, 'images');
  const k = options.k ?? 10;
  const minVotes = options.minVotes ?? Math.ceil(0.8 * k);
  const maxDistance = options.maxDistance ?? Infinity;
  if (!Number.isInteger(k) || k < 1 || k > reference.count) throw expected(`an integer k in 1…${reference.count}`, 'options.k', k);
  if (!Number.isInteger(minVotes) || minVotes < 1 || minVotes > k) throw expected(`an integer minVotes in 1…${k}`, 'options.minVotes', minVotes);
  const perDigit = new Array<number>(10).fill(0);
  const predicted: number[] = [];
  for (let i = 0; i < images.count; i++) {
    const { d2, labels } = nearest(reference, images.pixels.subarray(i * PIXELS, (i + 1) * PIXELS), k);
    const votes = new Array<number>(10).fill(0);
    for (const l of labels) if (l >= 0) votes[l]!++;
    const best = votes.indexOf(Math.max(...votes));
    const ok = votes[best]! >= minVotes && Math.sqrt(d2[0]!) <= maxDistance;
    predicted.push(ok ? best : -1);
    if (ok) perDigit[best]!++;
  }
  const recognised = perDigit.reduce((a, b) => a + b, 0);
  return { count: images.count, recognisable: images.count ? recognised / images.count : 0, perDigit, predicted, k, minVotes, maxDistance };
}

export interface DigitMeasure {
  /** Digits of the train split (the classifier's reference) and of the whole test split. */
  trainDigits: number;
  testDigits: number;
  /** The samples' score. */
  samples: Recognisability;
  /** The same measure on real held-out MNIST digits: the ceiling, and how often its votes are right. */
  realDigits: { count: number; recognisable: number; correct: number };
}

/**
 * The samples' recognisability with the distance bound calibrated on `heldOut` real test digits (balanced
 * across digits), and the score those real digits get: a sample score next to its ceiling.
 */
export async function measureDigits(
  images: Pick<Images, 'count' | 'width' | 'height' | 'channels' | 'pixels'>,
  options: { heldOut?: number; k?: number; minVotes?: number } = {},
): Promise<DigitMeasure> {
  checkImages(images, 'images');
  const reference = await loadDigits('train');
  const real = await loadDigits('test', options.heldOut ?? 300);
  const testDigits = (await loadDigits('test')).count;
  const maxDistance = distanceBound(real, reference);
  const settings = { k: options.k, minVotes: options.minVotes, maxDistance };
  const onReal = recognisability({ count: real.count, width: SIDE, height: SIDE, channels: 1, pixels: real.pixels }, reference, settings);
  const correct = onReal.predicted.filter((p, i) => p === real.labels[i]).length;
  return {
    trainDigits: reference.count,
    testDigits,
    samples: recognisability(images, reference, settings),
    realDigits: { count: real.count, recognisable: onReal.recognisable, correct: real.count ? correct / real.count : 0 },
  };
}
