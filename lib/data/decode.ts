/**
 * Decoding with sharp (libvips): the first stage of every sample — decode, orient, composite alpha,
 * convert to the model's channels, resize to cover the training size (the shorter side to the resolution,
 * or an aspect-ratio bucket) — into raw uint8 HWC. Cropping and flipping happen later (crop.ts), so this
 * stage is deterministic and cacheable.
 */
import sharp from 'sharp';
import type { Interpolation } from '../config/data';
import { DatasetError } from '../errors';
import type { BucketSize } from './buckets';
import type { ImageSource } from './item';

/** The formats difftune reads; others are skipped (or fail) as unsupported. */
export const SUPPORTED_FORMATS: ReadonlySet<string> = new Set(['png', 'jpeg', 'webp']);

/** File extensions the scan treats as images (those sharp cannot read become "unsupported format"). */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(['.png', '.jpg', '.jpeg', '.webp', '.gif', '.bmp', '.tif', '.tiff', '.avif', '.heic', '.svg']);

const KERNELS: Record<Interpolation, keyof sharp.KernelEnum> = { nearest: 'nearest', bilinear: 'linear', bicubic: 'cubic', lanczos: 'lanczos3' };

export interface DecodeSpec {
  readonly resolution: number;
  readonly channels: 1 | 3;
  readonly interpolation: Interpolation;
  readonly background: readonly [number, number, number];
}

/** Raw pixels, row-major HWC. */
export interface DecodedImage {
  readonly pixels: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: number;
}

/** A stable string of everything that changes stage one's output (part of the cache key). */
export function specKey(spec: DecodeSpec): string {
  return `r${spec.resolution}c${spec.channels}${spec.interpolation}b${spec.background.join(',')}`;
}

/** Checks the header (format, size): cheap, so the first scan can run it on every file. */
export async function probeImage(bytesOrPath: Buffer | string): Promise<string | null> {
  try {
    const meta = await sharp(bytesOrPath).metadata();
    if (meta.format === undefined || !SUPPORTED_FORMATS.has(meta.format)) return `unsupported format ${meta.format ?? 'unknown'} (expected PNG, JPEG or WebP)`;
    if (!meta.width || !meta.height) return 'image has no size';
    return null;
  } catch (error) {
    return firstLine(error);
  }
}

export function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
}

/** An image's width and height as it will be decoded (EXIF orientation applied: orientations 5–8 swap them). */
export async function imageSize(source: ImageSource): Promise<BucketSize> {
  if (source.kind === 'pixels') return { width: source.width, height: source.height };
  const meta = await sharp(source.path).metadata();
  if (!meta.width || !meta.height) throw new DatasetError(`${source.path}: image has no size`);
  return (meta.orientation ?? 1) >= 5 ? { width: meta.height, height: meta.width } : { width: meta.width, height: meta.height };
}

function input(source: ImageSource, bytes: Buffer | undefined): sharp.Sharp {
  // failOn "truncated": a file cut short is an error, not a silently grey bottom half.
  if (source.kind === 'file') return sharp(bytes ?? source.path, { failOn: 'truncated' });
  return sharp(source.pixels, { raw: { width: source.width, height: source.height, channels: source.channels } });
}

/**
 * Stage one, resized to cover `target` (default resolution × resolution): as small as possible with both
 * sides at least the target's. `bytes` (the file's content, when already read for hashing) saves a second read.
 */
export async function decodeResized(source: ImageSource, spec: DecodeSpec, bytes?: Buffer, target?: BucketSize): Promise<DecodedImage> {
  const cover = target ?? { width: spec.resolution, height: spec.resolution };
  const [r, g, b] = spec.background;
  let image = input(source, bytes);
  // The format was checked by the scan's probe; a second header read here cost ~30% of a small image's decode.
  if (source.kind === 'file') image = image.rotate(); // EXIF orientation, as diffusers' scripts apply exif_transpose
  image = image
    .flatten({ background: { r, g, b } })
    .resize({ width: cover.width, height: cover.height, fit: 'outside', kernel: KERNELS[spec.interpolation] })
    .toColourspace(spec.channels === 1 ? 'b-w' : 'srgb');
  const { data, info } = await image.raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== spec.channels) throw new DatasetError(`expected ${spec.channels} channel(s) after decoding but found ${info.channels}`);
  if (info.width < cover.width || info.height < cover.height || (info.width !== cover.width && info.height !== cover.height))
    throw new DatasetError(`expected ${cover.width}×${cover.height} covered (one side equal) after resizing but found ${info.width}×${info.height}`);
  return { pixels: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height, channels: info.channels };
}
