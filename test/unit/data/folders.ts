// Builds small real dataset folders in a temp dir: PNG/JPEG/WebP written by sharp, captions, bad files.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';

export function tempDir(prefix = 'difftune-data-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A width×height image whose pixel (x, y) is (x·8, y·8, value) — positions are recoverable after a crop. */
export function gradient(width: number, height: number, value: number, channels: 3 | 4 = 3, alpha = 255): Buffer {
  const out = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * channels;
      out[o] = (x * 8) & 255;
      out[o + 1] = (y * 8) & 255;
      out[o + 2] = value;
      if (channels === 4) out[o + 3] = alpha;
    }
  return out;
}

export async function writeImage(
  file: string,
  width: number,
  height: number,
  value: number,
  format: 'png' | 'jpeg' | 'webp' = 'png',
  channels: 3 | 4 = 3,
  alpha = 255,
): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const img = sharp(gradient(width, height, value, channels, alpha), { raw: { width, height, channels } });
  await (format === 'png' ? img.png() : format === 'jpeg' ? img.jpeg({ quality: 95 }) : img.webp({ lossless: true })).toFile(file);
}

export async function writeGray(file: string, width: number, height: number, value: number): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp(Buffer.alloc(width * height, value), { raw: { width, height, channels: 1 } })
    .png()
    .toFile(file);
}

export function writeText(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

/** A PNG cut in half: its header reads, its pixels do not. */
export async function writeTruncatedPng(file: string): Promise<void> {
  const full = await sharp(gradient(64, 64, 77), { raw: { width: 64, height: 64, channels: 3 } })
    .png({ compressionLevel: 0 })
    .toBuffer();
  fs.writeFileSync(file, full.subarray(0, Math.floor(full.length / 2)));
}
