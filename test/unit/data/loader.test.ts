// The loader: seeded order, augmentations independent of batching, exact resume, caches, thread budget.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseDataOptions } from '../../../lib/config/data';
import { createDataset, type Dataset } from '../../../lib/data/dataset';
import { DataLoader, type RawBatch } from '../../../lib/data/loader';
import { planThreads } from '../../../lib/data/threads';
import { ConfigError, DatasetError } from '../../../lib/errors';
import { tempDir, writeImage, writeText } from './folders';

const quiet = { onWarning: () => undefined };
let dir: string;

beforeAll(async () => {
  dir = tempDir();
  for (let i = 0; i < 10; i++) {
    await writeImage(path.join(dir, `${i}.png`), 20 + i, 24, i * 20);
    writeText(path.join(dir, `${i}.txt`), `img${i}, a, b, c`);
  }
});

const augmented = { resolution: 16, centerCrop: false, randomFlip: true, captionDropout: 0.3, shuffleCaption: true, keepTokens: 1, repeats: 2 };

async function take(loader: DataLoader, n: number): Promise<RawBatch[]> {
  const out: RawBatch[] = [];
  for (let i = 0; i < n; i++) out.push(await loader.nextRaw());
  return out;
}

/** sample index → (pixels, caption) over the given batches. */
function bySample(batches: RawBatch[], sampleBytes: number): Map<string, string> {
  const map = new Map<string, string>();
  for (const b of batches)
    b.indices.forEach((index, k) =>
      map.set(`${b.epoch}:${index}`, Buffer.from(b.pixels.subarray(k * sampleBytes, (k + 1) * sampleBytes)).toString('hex') + '|' + String(b.captions![k])),
    );
  return map;
}

async function dataset(extra: Record<string, unknown> = {}): Promise<Dataset> {
  return createDataset({ path: dir, ...augmented, ...extra }, quiet);
}

test('same seed: same order and same augmentations; another seed: another order', async () => {
  const ds = await dataset();
  const a = await take(new DataLoader(ds, { batchSize: 3, prefetch: 3 }), 12);
  const b = await take(new DataLoader(ds, { batchSize: 3, prefetch: 0 }), 12);
  expect(b.map((x) => x.indices)).toEqual(a.map((x) => x.indices));
  expect(Buffer.from(b[5]!.pixels).equals(Buffer.from(a[5]!.pixels))).toBe(true);
  expect(b.map((x) => x.captions)).toEqual(a.map((x) => x.captions));
  const c = await take(new DataLoader(ds, { batchSize: 3, seed: 1 }), 2);
  expect(c[0]!.indices).not.toEqual(a[0]!.indices);
});

test('each epoch visits every sample once, in a new order', async () => {
  const ds = await dataset();
  const loader = new DataLoader(ds, { batchSize: 3 });
  expect(loader.batchesPerEpoch).toBe(7); // 20 samples, last batch of 2
  const batches = await take(loader, 14);
  const epoch0 = batches.filter((b) => b.epoch === 0).flatMap((b) => b.indices);
  const epoch1 = batches.filter((b) => b.epoch === 1).flatMap((b) => b.indices);
  expect([...epoch0].sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  expect([...epoch1].sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  expect(epoch1).not.toEqual(epoch0);
  expect(batches.map((b) => b.step)).toEqual(Array.from({ length: 14 }, (_, i) => i));
  const dropLast = new DataLoader(ds, { batchSize: 3, dropLast: true });
  expect(dropLast.batchesPerEpoch).toBe(6);
});

test('a batch size larger than the dataset is warned about (it was accepted silently)', async () => {
  const ds = await dataset();
  const warnings: string[] = [];
  const loader = new DataLoader(ds, { batchSize: 32, onWarning: (w) => warnings.push(w) });
  expect(warnings.filter((w) => w.startsWith('batchSize'))).toEqual(['batchSize 32 is larger than the dataset (20 samples): each batch holds only those 20']);
  expect((await loader.nextRaw()).indices).toHaveLength(20);
  await loader.close();
  warnings.length = 0;
  await new DataLoader(ds, { batchSize: 20, onWarning: (w) => warnings.push(w) }).close();
  expect(warnings.filter((w) => w.startsWith('batchSize'))).toEqual([]);
});

test('a sample gets the same crop, flip and caption whatever the batch size', async () => {
  const ds = await dataset();
  const two = bySample(await take(new DataLoader(ds, { batchSize: 2 }), 10), ds.sampleBytes);
  const five = bySample(await take(new DataLoader(ds, { batchSize: 5 }), 4), ds.sampleBytes);
  expect(two.size).toBe(20);
  expect(five).toEqual(two);
  // and the augmentations differ between the two repeats of one image
  const values = [...two.values()];
  expect(new Set(values).size).toBeGreaterThan(10);
});

test('resume from a saved state continues with the exact next batch, mid-epoch and across epochs', async () => {
  const ds = await dataset();
  const full = await take(new DataLoader(ds, { batchSize: 3, prefetch: 2 }), 12);
  const first = new DataLoader(ds, { batchSize: 3, prefetch: 2 });
  await take(first, 5);
  const saved = JSON.parse(JSON.stringify(first.state())) as ReturnType<DataLoader['state']>;
  expect(saved).toMatchObject({ epoch: 0, batch: 5 });
  const resumed = new DataLoader(ds, { batchSize: 3, state: saved });
  const rest = await take(resumed, 7);
  rest.forEach((b, i) => {
    const expected = full[5 + i]!;
    expect([b.epoch, b.batch, b.indices]).toEqual([expected.epoch, expected.batch, expected.indices]);
    expect(Buffer.from(b.pixels).equals(Buffer.from(expected.pixels))).toBe(true);
    expect(b.captions).toEqual(expected.captions);
  });
});

test('a state from another dataset or batching is refused, naming the field', async () => {
  const ds = await dataset();
  const state = new DataLoader(ds, { batchSize: 3 }).state();
  expect(() => new DataLoader(ds, { batchSize: 4, state })).toThrow(/"batchSize" is 3 in the saved state but 4 here/);
  expect(() => new DataLoader(ds, { batchSize: 3, state: { ...state, size: 99 } })).toThrow(DatasetError);
  expect(() => new DataLoader(ds, { batchSize: 3, state: { ...state, batch: 7 } })).toThrow(/batch in \[0, 7\)/);
});

test('memory and disk caches give the same pixels as no cache', async () => {
  const plain = bySample(await take(new DataLoader(await dataset(), { batchSize: 4 }), 10), 16 * 16 * 3);
  const memory = await dataset({ cache: 'memory' });
  const cacheDir = path.join(tempDir(), 'cache');
  const disk = await dataset({ cache: { dir: cacheDir } });
  expect(bySample(await take(new DataLoader(memory, { batchSize: 4 }), 10), 16 * 16 * 3)).toEqual(plain);
  expect(bySample(await take(new DataLoader(disk, { batchSize: 4 }), 10), 16 * 16 * 3)).toEqual(plain);
  expect(fs.readdirSync(cacheDir).filter((f) => f.endsWith('.raw')).length).toBe(10);
  // a second run reads the disk entries (still the same pixels)
  const again = await dataset({ cache: { dir: cacheDir } });
  expect(bySample(await take(new DataLoader(again, { batchSize: 4 }), 10), 16 * 16 * 3)).toEqual(plain);
});

test('progress is reported during the first scan', async () => {
  const seen: string[] = [];
  await createDataset({ path: dir, resolution: 16 }, { ...quiet, onProgress: (p) => seen.push(`${p.phase}:${p.done}/${p.total}`) });
  expect(seen[0]).toBe('validating:0/10');
  expect(seen.at(-1)).toBe('validating:10/10');
});

describe('thread budget', () => {
  const env = {};
  test.each([
    [1, 1, 1],
    [2, 1, 1],
    [4, 3, 1],
    [16, 12, 4],
  ])('%i cores → %i torch threads + %i decoders', (cores, torch, decode) => {
    expect(planThreads({ cores, env })).toMatchObject({ torchThreads: torch, decodeConcurrency: decode, warnings: [] });
  });
  test('OMP_NUM_THREADS fixes torch; the rest decode', () => {
    expect(planThreads({ cores: 8, env: { OMP_NUM_THREADS: '6' } })).toMatchObject({ torchThreads: 6, decodeConcurrency: 2 });
  });
  test('an oversubscribed request is kept but warned about; the libuv pool caps decoders', () => {
    const plan = planThreads({ cores: 2, torchThreads: 2, decodeConcurrency: 8, env: { UV_THREADPOOL_SIZE: '4' } });
    expect(plan.torchThreads).toBe(2);
    expect(plan.decodeConcurrency).toBe(4);
    expect(plan.warnings.join('\n')).toMatch(/exceed the 2 cores/);
  });
});

describe('dataOptionsSchema', () => {
  test('defaults', () => {
    const o = parseDataOptions({ path: 'x' });
    expect(o).toMatchObject({
      source: 'imagefolder',
      resolution: 512,
      centerCrop: true,
      randomFlip: false,
      captionColumn: 'text',
      captionDropout: 0,
      repeats: 1,
      split: 'train',
      channels: 3,
    });
  });
  test('errors name the field under data.', () => {
    expect(() => parseDataOptions({ path: 'x', captionDropout: 2 })).toThrow(/data\.captionDropout: Number must be less than or equal to 1/);
    expect(() => parseDataOptions({ source: 'imagefolder' })).toThrow(/data\.path: required when source is "imagefolder"/);
    expect(() => parseDataOptions({ source: 'mnist', resoluton: 32 })).toThrow(ConfigError);
  });
});
