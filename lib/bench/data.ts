/**
 * Synthetic image folders for the data side of the benchmarks (also `npm run bench:data`): noisy PNGs
 * about 1.5× the resolution with mixed aspect ratios, so every one is decoded, resized, cropped and
 * flipped like real data; and the loader's throughput alone.
 */
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { createDataset } from '../data/dataset';
import { DataLoader } from '../data/loader';

/** Writes `count` PNGs with `channels` (1 or 3) into `dir` (created). */
export async function writeImageFolder(dir: string, count: number, resolution: number, channels: 1 | 3): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  let s = 12345;
  for (let i = 0; i < count; i++) {
    const width = Math.round(resolution * (1.5 + (i % 3) * 0.25));
    const height = Math.round(resolution * 1.5);
    const px = Buffer.alloc(width * height * channels);
    for (let k = 0; k < px.length; k++) {
      s = (s * 1664525 + 1013904223) >>> 0;
      px[k] = (s >>> 24) & 0xff;
    }
    await sharp(px, { raw: { width, height, channels } })
      .png()
      .toFile(path.join(dir, `${String(i).padStart(4, '0')}.png`));
  }
  return dir;
}

/** Opens a loader over a folder: random crops and flips, the given torch-thread budget left untouched. */
export async function openLoader(dir: string, resolution: number, channels: 1 | 3, batchSize: number, torchThreads?: number): Promise<DataLoader> {
  const dataset = await createDataset({ path: dir, resolution, channels, centerCrop: false, randomFlip: true, batchSize });
  return new DataLoader(dataset, { torchThreads, applyTorchThreads: torchThreads === undefined, onWarning: () => undefined });
}

export interface LoaderThroughput {
  resolution: number;
  batch: number;
  batches: number;
  seconds: number;
  batchesPerS: number;
  imagesPerS: number;
  decoders: number;
  torchThreads: number;
  prefetch: number;
}

/** Batches per second of the loader alone (after one warm-up batch), with the default thread budget. */
export async function loaderThroughput(dir: string, resolution: number, batch: number, batches: number): Promise<LoaderThroughput> {
  const loader = await openLoader(dir, resolution, 3, batch);
  try {
    (await loader.next()).dispose();
    const t0 = performance.now();
    for (let i = 0; i < batches; i++) (await loader.next()).dispose();
    const seconds = (performance.now() - t0) / 1000;
    return {
      resolution,
      batch,
      batches,
      seconds,
      batchesPerS: batches / seconds,
      imagesPerS: (batches * batch) / seconds,
      decoders: loader.threads.decodeConcurrency,
      torchThreads: loader.threads.torchThreads,
      prefetch: loader.prefetch,
    };
  } finally {
    await loader.close();
  }
}
