/**
 * npm run bench:data: the loader's throughput alone — PNG files it writes to a temp folder, decoded,
 * resized, randomly cropped and flipped, batched and converted natively to float32 NCHW — for batch 32
 * at resolution 32 and 64, with the default thread budget. Prints batches/s and images/s.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import sharp from 'sharp';
import { createDataset, DataLoader, planThreads } from '../lib/index';

const IMAGES = 512;
const BATCH = 32;
const BATCHES = 48;

/** IMAGES noisy RGB PNGs, about 1.5× the resolution with mixed aspect ratios, so every one is resized and cropped. */
async function writeFolder(dir: string, resolution: number): Promise<void> {
  let s = 12345;
  for (let i = 0; i < IMAGES; i++) {
    const width = Math.round(resolution * (1.5 + (i % 3) * 0.25));
    const height = Math.round(resolution * 1.5);
    const px = Buffer.alloc(width * height * 3);
    for (let k = 0; k < px.length; k++) {
      s = (s * 1664525 + 1013904223) >>> 0;
      px[k] = (s >>> 24) & 0xff;
    }
    await sharp(px, { raw: { width, height, channels: 3 } }).png().toFile(path.join(dir, `${String(i).padStart(4, '0')}.png`));
  }
}

async function bench(resolution: number): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `difftune-bench-${resolution}-`));
  try {
    await writeFolder(dir, resolution);
    const dataset = await createDataset({ path: dir, resolution, centerCrop: false, randomFlip: true, batchSize: BATCH });
    const loader = new DataLoader(dataset);
    (await loader.next()).dispose(); // warm-up: thread budget applied, first decodes
    const t0 = performance.now();
    for (let i = 0; i < BATCHES; i++) (await loader.next()).dispose();
    const seconds = (performance.now() - t0) / 1000;
    await loader.close();
    const bps = BATCHES / seconds;
    console.log(
      `resolution ${resolution}: ${bps.toFixed(1)} batches/s, ${(bps * BATCH).toFixed(0)} images/s, ${((1000 * seconds) / BATCHES).toFixed(1)} ms/batch ` +
        `(batch ${BATCH}, ${loader.threads.decodeConcurrency} decoder(s), torch ${loader.threads.torchThreads} thread(s), prefetch ${loader.prefetch})`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const plan = planThreads();
  console.log(`${plan.cores} cores: ${plan.torchThreads} torch thread(s) + ${plan.decodeConcurrency} decoder(s)${plan.warnings.length ? ` (${plan.warnings.join('; ')})` : ''}`);
  for (const resolution of [32, 64]) await bench(resolution);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
