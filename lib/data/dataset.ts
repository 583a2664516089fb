/**
 * A dataset: its items (from a folder scan or a built-in set) and how one sample is made from an item —
 * stage one (decode + resize, cacheable), stage two (crop, flip) into the caller's buffer, and the caption.
 * Every random choice derives from (seed, epoch, sample index), never from call order. With data.buckets
 * each item has its aspect-ratio bucket (buckets.ts), the size it is resized to cover and cropped to.
 */
import { promises as fs } from 'node:fs';
import { parseDataOptions, type DataOptions } from '../config/data';
import { bucketSettings, planBuckets, type BucketPlan, type BucketSize } from './buckets';
import { loadBuiltin } from './builtin';
import { cacheKey, DiskCache, MemoryCache, type DecodeCache } from './cache';
import { sampleCaption } from './captions';
import { planCrop, writeCrop } from './crop';
import { decodeResized, imageSize, specKey, type DecodeSpec, type DecodedImage } from './decode';
import { scanImageFolder, type ScanHooks } from './imagefolder';
import type { DatasetItem, SkippedFile } from './item';
import { mapLimit } from './limit';
import { sampleRng, STREAM } from './random';

export interface SampleInfo {
  readonly caption: string | null;
  readonly label: number | null;
}

export class Dataset {
  readonly spec: DecodeSpec;
  private readonly cache: DecodeCache | null;
  private readonly specText: string;

  constructor(
    readonly options: DataOptions,
    readonly items: readonly DatasetItem[],
    /** Class names by label id (sorted folder names, or a built-in set's names); null without classes. */
    readonly classNames: readonly string[] | null,
    /** Files the scan left out, and why. */
    readonly skipped: readonly SkippedFile[],
    readonly layout: 'metadata' | 'sidecar' | 'classes' | 'plain' | 'builtin',
    /** With data.buckets: the buckets and each item's; null: every sample is resolution × resolution. */
    readonly buckets: BucketPlan | null = null,
  ) {
    this.spec = { resolution: options.resolution, channels: options.channels, interpolation: options.interpolation, background: options.background };
    this.specText = specKey(this.spec);
    this.cache = options.cache === 'none' ? null : options.cache === 'memory' ? new MemoryCache() : new DiskCache(options.cache.dir);
  }

  /** Samples per epoch: items × repeats (each repeat gets its own augmentations). */
  get size(): number {
    return this.items.length * this.options.repeats;
  }

  /** [H, W, C] of every sample: resolution × resolution (with buckets, the nominal size; sampleShapeOf gives each one's). */
  get sampleShape(): [number, number, number] {
    return [this.options.resolution, this.options.resolution, this.options.channels];
  }

  get sampleBytes(): number {
    return this.options.resolution * this.options.resolution * this.options.channels;
  }

  /** The width × height sample `index` is cropped to: its item's bucket, or resolution × resolution. */
  sampleSize(index: number): BucketSize {
    if (this.buckets === null) return { width: this.options.resolution, height: this.options.resolution };
    return this.buckets.sizes[this.buckets.ofItem[index % this.items.length]!]!;
  }

  /** [H, W, C] of sample `index`. */
  sampleShapeOf(index: number): [number, number, number] {
    const { width, height } = this.sampleSize(index);
    return [height, width, this.options.channels];
  }

  item(index: number): DatasetItem {
    return this.items[index % this.items.length]!;
  }

  private async stageOne(item: DatasetItem, target: BucketSize): Promise<DecodedImage> {
    const size = this.buckets === null ? undefined : target;
    if (this.cache === null) return decodeResized(item.image, this.spec, undefined, size);
    const bytes = item.image.kind === 'file' ? await fs.readFile(item.image.path) : undefined;
    // A bucket is part of the transform: each bucket size has its own entry.
    const key = cacheKey(bytes ?? item.id, size ? `${this.specText}@${size.width}x${size.height}` : this.specText);
    const hit = await this.cache.get(key);
    if (hit) return hit;
    const image = await decodeResized(item.image, this.spec, bytes, size);
    await this.cache.set(key, image);
    return image;
  }

  /**
   * Writes sample `index` of `epoch` (HWC uint8, its sampleShapeOf's bytes) into `out`; throws when the image
   * cannot be decoded (the loader decides whether that skips or fails).
   */
  async loadSample(index: number, epoch: number, out: Uint8Array): Promise<SampleInfo> {
    const item = this.item(index);
    const o = this.options;
    const target = this.sampleSize(index);
    const image = await this.stageOne(item, target);
    const flip = o.randomFlip && sampleRng(o.seed, STREAM.flip, epoch, index).float() < 0.5;
    const plan = planCrop(image, target, o.centerCrop, sampleRng(o.seed, STREAM.crop, epoch, index), flip);
    writeCrop(image, target, plan, out);
    const caption =
      item.captions === null
        ? null
        : sampleCaption(
            item.captions,
            o,
            sampleRng(o.seed, STREAM.caption, epoch, index),
            sampleRng(o.seed, STREAM.shuffle, epoch, index),
            sampleRng(o.seed, STREAM.dropout, epoch, index),
          );
    return { caption, label: item.label };
  }
}

export interface CreateDatasetHooks extends ScanHooks {
  /** data.buckets.step when the options leave it out: the model's downsampling factor in pixels (default 64, Stable Diffusion's). */
  readonly bucketStep?: number;
}

/** With data.buckets: every item's size (a header read per file), then the buckets and each item's. */
async function itemBuckets(options: DataOptions, items: readonly DatasetItem[], bucketStep: number | undefined): Promise<BucketPlan | null> {
  const settings = bucketSettings(options, bucketStep);
  if (settings === null) return null;
  const sizes = await mapLimit(items, 8, (item) => imageSize(item.image));
  return planBuckets(options.resolution, settings, sizes);
}

/**
 * Validates the options (zod; errors name `data.<field>`), scans the folder or loads the built-in set.
 * Unreadable images are skipped with a warning (default: console.warn) or fail, per data.onBadImage.
 */
export async function createDataset(input: unknown, hooks: CreateDatasetHooks = {}): Promise<Dataset> {
  const options = parseDataOptions(input);
  const onWarning = hooks.onWarning ?? ((message: string) => console.warn(`difftune: ${message}`));
  if (options.source === 'imagefolder') {
    const spec: DecodeSpec = {
      resolution: options.resolution,
      channels: options.channels,
      interpolation: options.interpolation,
      background: options.background,
    };
    const scan = await scanImageFolder(options, spec, { onProgress: hooks.onProgress, onWarning });
    return new Dataset(options, scan.items, scan.classNames, scan.skipped, scan.layout, await itemBuckets(options, scan.items, hooks.bucketStep));
  }
  const builtin = await loadBuiltin(options);
  return new Dataset(options, builtin.items, builtin.classNames, [], 'builtin', await itemBuckets(options, builtin.items, hooks.bucketStep));
}
