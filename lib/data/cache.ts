/**
 * Caches of stage one (decoded, colour-converted, resized images), keyed by the file's content hash
 * and the transform, so an edited file or a changed resolution never hits a stale entry. Crops and
 * flips are applied after the cache, so augmentations stay per sample.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { tempPathFor } from '../util/atomic-write';
import { withFileErrors } from '../util/fs-errors';
import { createFolder } from '../util/output-folder';
import type { DecodedImage } from './decode';

export interface DecodeCache {
  get(key: string): Promise<DecodedImage | undefined>;
  set(key: string, image: DecodedImage): Promise<void>;
}

export function cacheKey(content: Uint8Array | string, spec: string): string {
  return createHash('sha256').update(content).update('\0').update(spec).digest('hex');
}

export class MemoryCache implements DecodeCache {
  private readonly entries = new Map<string, DecodedImage>();
  get size(): number {
    return this.entries.size;
  }
  async get(key: string): Promise<DecodedImage | undefined> {
    return this.entries.get(key);
  }
  async set(key: string, image: DecodedImage): Promise<void> {
    this.entries.set(key, image);
  }
}

const HEADER = 12; // width, height, channels: uint32 little-endian

/** One file per entry: a 12-byte header then the raw pixels; written to a temp file and renamed. */
export class DiskCache implements DecodeCache {
  constructor(readonly dir: string) {}
  private file(key: string): string {
    return path.join(this.dir, `${key}.raw`);
  }
  async get(key: string): Promise<DecodedImage | undefined> {
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(this.file(key));
    } catch {
      return undefined;
    }
    if (bytes.length < HEADER) return undefined;
    const width = bytes.readUInt32LE(0);
    const height = bytes.readUInt32LE(4);
    const channels = bytes.readUInt32LE(8);
    // A short or foreign file is a miss, not an error: the entry is rebuilt.
    if (bytes.length !== HEADER + width * height * channels) return undefined;
    return { pixels: new Uint8Array(bytes.buffer, bytes.byteOffset + HEADER, width * height * channels), width, height, channels };
  }
  async set(key: string, image: DecodedImage): Promise<void> {
    await createFolder(this.dir);
    const header = Buffer.alloc(HEADER);
    header.writeUInt32LE(image.width, 0);
    header.writeUInt32LE(image.height, 4);
    header.writeUInt32LE(image.channels, 8);
    const target = this.file(key);
    const temp = tempPathFor(target);
    // Errors name the cache file, not its temp file.
    await withFileErrors(target, 'write', async () => {
      try {
        await fs.writeFile(temp, Buffer.concat([header, image.pixels]));
        await fs.rename(temp, target);
      } catch (error) {
        await fs.rm(temp, { force: true }).catch(() => undefined);
        throw error;
      }
    });
  }
}
