/**
 * Decoding with sharp (libvips): the first stage of every sample — decode, orient, composite alpha,
 * convert to the model's channels, resize the shorter side to the resolution — into raw uint8 HWC.
 * Cropping and flipping happen later (crop.ts), so this stage is deterministic and cacheable.
 */
import sharp from 'sharp';
import type { Interpolation } from '../config/data';
import { DatasetError } from '../errors';
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

function input(source: ImageSource, bytes: Buffer | undefined): sharp.Sharp {
  // failOn "truncated": a file cut short is an error, not a silently grey bottom half.
  if (source.kind === 'file') return sharp(bytes ?? source.path, { failOn: 'truncated' });
  return sharp(source.pixels, { raw: { width: source.width, height: source.height, channels: source.channels } });
}

/** Stage one; `bytes` (the file's content, when already read for hashing) saves a second read. */
export async function decodeResized(source: ImageSource, spec: DecodeSpec, bytes?: Buffer): Promise<DecodedImage> {
  const [r, g, b] = spec.background;
  let image = input(source, bytes);
  // The format was checked by the scan's probe; a second header read here cost ~30% of a small image's decode.
  if (source.kind === 'file') image = image.rotate(); // EXIF orientation, as diffusers' scripts apply exif_transpose
  image = image
    .flatten({ background: { r, g, b } })
    .resize({ width: spec.resolution, height: spec.resolution, fit: 'outside', kernel: KERNELS[spec.interpolation] })
    .toColourspace(spec.channels === 1 ? 'b-w' : 'srgb');
  const { data, info } = await image.raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== spec.channels) throw new DatasetError(`expected ${spec.channels} channel(s) after decoding but found ${info.channels}`);
  if (Math.min(info.width, info.height) !== spec.resolution)
    throw new DatasetError(`expected the shorter side to be ${spec.resolution} after resizing but found ${info.width}×${info.height}`);
  return { pixels: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height, channels: info.channels };
}
