// Aspect-ratio buckets: kohya's bucket list, assignment by aspect ratio, one shape per batch, every sample
// once per epoch, an order from (seed, epoch) that resumes exactly, per-bucket caches and partial batches.
import * as path from 'node:path';
import { parseDataOptions } from '../../../lib/config/data';
import { bucketSettings, bucketSignature, generateBuckets, nearestBucket, planBuckets } from '../../../lib/data/buckets';
import { createDataset, type Dataset } from '../../../lib/data/dataset';
import { DataLoader, type RawBatch } from '../../../lib/data/loader';
import { ConfigError, DatasetError } from '../../../lib/errors';
import { tempDir, writeImage, writeText } from './folders';

const quiet = { onWarning: () => undefined };
let dir: string;
/** File name → its aspect: 6 wide (2:1), 5 tall (1:2), 4 square, 3 slightly wide (3:2). */
const shapes: Record<string, [number, number]> = {};

beforeAll(async () => {
  dir = tempDir();
  const kinds: Array<[string, number, number, number]> = [
    ['wide', 6, 64, 32],
    ['tall', 5, 30, 60],
    ['square', 4, 40, 40],
    ['slight', 3, 60, 40],
  ];
  let v = 0;
  for (const [kind, n, w, h] of kinds)
    for (let i = 0; i < n; i++) {
      const name = `${kind}-${i}.png`;
      shapes[name] = [w, h];
      await writeImage(path.join(dir, name), w, h, (v += 13));
      writeText(path.join(dir, `${kind}-${i}.txt`), `${kind} ${i}`);
    }
});

async function dataset(extra: Record<string, unknown> = {}): Promise<Dataset> {
  return createDataset({ path: dir, resolution: 32, buckets: { step: 8 }, centerCrop: false, randomFlip: true, repeats: 2, ...extra }, quiet);
}

async function take(loader: DataLoader, n: number): Promise<RawBatch[]> {
  const out: RawBatch[] = [];
  for (let i = 0; i < n; i++) out.push(await loader.nextRaw());
  return out;
}

test("the buckets are kohya's make_bucket_resolutions: multiples of the step, area at most resolution²", () => {
  const settings = bucketSettings(parseDataOptions({ path: 'x', resolution: 512, buckets: true }))!;
  expect(settings).toEqual({ step: 64, minSide: 256, maxSide: 1024 });
  const sizes = generateBuckets(512, settings).map((b) => `${b.width}x${b.height}`);
  // From kohya's formula: for each width 256…1024, height = min(1024, ⌊⌊512² / width⌋ / 64⌋ · 64), and the transposes.
  expect(sizes).toEqual(
    [
      '256x1024',
      '256x832',
      '256x896',
      '256x960',
      '320x704',
      '320x768',
      '384x640',
      '448x576',
      '512x512',
      '576x448',
      '640x384',
      '704x320',
      '768x320',
      '832x256',
      '896x256',
      '960x256',
      '1024x256',
    ].sort((a, b) => parseInt(a) - parseInt(b) || parseInt(a.split('x')[1]!) - parseInt(b.split('x')[1]!)),
  );
  expect(bucketSettings(parseDataOptions({ path: 'x', resolution: 32, buckets: true }), 4)).toEqual({ step: 4, minSide: 16, maxSide: 64 });
  expect(bucketSettings(parseDataOptions({ path: 'x', resolution: 512 }))).toBeNull();
  expect(() => bucketSettings(parseDataOptions({ path: 'x', resolution: 512, buckets: { minSide: 100 } }))).toThrow(
    /data.buckets.minSide: expected a multiple of the bucket step 64 but found 100/,
  );
  expect(() => bucketSettings(parseDataOptions({ path: 'x', resolution: 32, buckets: true }))).toThrow(
    /data.buckets.step: expected at most data.resolution \(32\)/,
  );
  expect(() => parseDataOptions({ path: 'x', buckets: { size: 3 } })).toThrow(ConfigError);
});

test('an image goes to the bucket of the nearest aspect ratio (log ratio: 2:1 and 1:2 alike)', () => {
  const sizes = generateBuckets(512, { step: 64, minSide: 256, maxSide: 1024 });
  const of = (w: number, h: number) => sizes[nearestBucket(sizes, w, h)]!;
  expect(of(1000, 1000)).toEqual({ width: 512, height: 512 });
  expect(of(2000, 1000)).toEqual({ width: 704, height: 320 }); // 2.2 is nearer 2 than 1.67 in log ratio
  expect(of(1000, 2000)).toEqual({ width: 320, height: 704 });
  expect(of(4000, 500)).toEqual({ width: 1024, height: 256 });
  const plan = planBuckets(512, { step: 64, minSide: 256, maxSide: 1024 }, [
    { width: 10, height: 10 },
    { width: 30, height: 10 },
    { width: 11, height: 10 },
  ]);
  expect(plan.sizes).toEqual([
    { width: 512, height: 512 },
    { width: 832, height: 256 },
  ]); // only the buckets in use, in size order
  expect([...plan.ofItem]).toEqual([0, 1, 0]);
  expect(plan.counts).toEqual([2, 1]);
});

test('every batch holds one bucket, at that bucket’s size; each image trains in the bucket of its aspect ratio', async () => {
  const ds = await dataset();
  const plan = ds.buckets!;
  const loader = new DataLoader(ds, { batchSize: 4 });
  const batches = await take(loader, loader.batchesPerEpoch);
  for (const b of batches) {
    const sizes = new Set(b.indices.map((i) => `${ds.sampleSize(i).width}x${ds.sampleSize(i).height}`));
    expect(sizes.size).toBe(1);
    const [n, h, w, c] = b.shape;
    expect([`${w}x${h}`, c, n, b.pixels.length]).toEqual([[...sizes][0], 3, b.indices.length, n * h * w * c]);
  }
  const bucketOf = (name: string) => {
    const s = plan.sizes[plan.ofItem[ds.items.findIndex((it) => it.id.endsWith(`/${name}`))]!]!;
    return s.width / s.height;
  };
  expect(bucketOf('wide-0.png')).toBeCloseTo(2, 0);
  expect(bucketOf('tall-3.png')).toBeCloseTo(0.5, 0);
  expect(bucketOf('square-1.png')).toBe(1);
  expect(bucketOf('slight-2.png')).toBe(40 / 24); // 1.67 is nearer 1.5 than 1 is, in log ratio
  for (const s of plan.sizes) {
    expect([s.width % 8, s.height % 8]).toEqual([0, 0]);
    expect(s.width * s.height).toBeLessThanOrEqual(32 * 32);
  }
  expect(plan.counts.reduce((a, b) => a + b)).toBe(18);
});

test('each epoch serves every sample once; the order comes from (seed, epoch) alone; partial batches per bucket', async () => {
  const ds = await dataset();
  const counts = ds.buckets!.counts.map((c) => c * 2); // repeats 2
  const loader = new DataLoader(ds, { batchSize: 4 });
  expect(loader.batchesPerEpoch).toBe(counts.reduce((n, c) => n + Math.ceil(c / 4), 0));
  const two = await take(loader, 2 * loader.batchesPerEpoch);
  for (const epoch of [0, 1]) {
    const seen = two.filter((b) => b.epoch === epoch).flatMap((b) => b.indices);
    expect([...seen].sort((x, y) => x - y)).toEqual(Array.from({ length: 36 }, (_, i) => i));
  }
  expect(two.filter((b) => b.epoch === 1).map((b) => b.indices)).not.toEqual(two.filter((b) => b.epoch === 0).map((b) => b.indices));
  // The same seed gives the same batches whatever the prefetch; another seed another order.
  const again = await take(new DataLoader(ds, { batchSize: 4, prefetch: 0 }), 2 * loader.batchesPerEpoch);
  expect(again.map((b) => b.indices)).toEqual(two.map((b) => b.indices));
  expect(Buffer.from(again[3]!.pixels).equals(Buffer.from(two[3]!.pixels))).toBe(true);
  const other = await take(new DataLoader(ds, { batchSize: 4, seed: 9 }), loader.batchesPerEpoch);
  expect(other.map((b) => b.indices)).not.toEqual(two.slice(0, loader.batchesPerEpoch).map((b) => b.indices));
  // dropLast drops each bucket's short batch; without shuffle, the buckets come in order.
  const dropLast = new DataLoader(ds, { batchSize: 4, dropLast: true });
  expect(dropLast.batchesPerEpoch).toBe(counts.reduce((n, c) => n + Math.floor(c / 4), 0));
  const dropped = await take(dropLast, dropLast.batchesPerEpoch);
  expect(dropped.every((b) => b.indices.length === 4)).toBe(true);
  const ordered = await take(new DataLoader(ds, { batchSize: 4, shuffle: false }), loader.batchesPerEpoch);
  const bucketIndex = (b: RawBatch) => ds.buckets!.ofItem[b.indices[0]! % ds.items.length]!;
  expect(ordered.map(bucketIndex)).toEqual([...ordered.map(bucketIndex)].sort((x, y) => x - y));
});

test('interrupted and resumed from the saved state, the loader serves exactly the uninterrupted batches', async () => {
  const ds = await dataset();
  const full = await take(new DataLoader(ds, { batchSize: 3, prefetch: 2 }), 20);
  const first = new DataLoader(ds, { batchSize: 3, prefetch: 2 });
  await take(first, 7);
  const saved = JSON.parse(JSON.stringify(first.state())) as ReturnType<DataLoader['state']>;
  expect(saved.buckets).toBe(bucketSignature(ds.buckets!));
  await first.close();
  const rest = await take(new DataLoader(await dataset(), { batchSize: 3, state: saved }), 13);
  rest.forEach((b, i) => {
    const expected = full[7 + i]!;
    expect([b.epoch, b.batch, b.indices, b.shape, b.captions]).toEqual([expected.epoch, expected.batch, expected.indices, expected.shape, expected.captions]);
    expect(Buffer.from(b.pixels).equals(Buffer.from(expected.pixels))).toBe(true);
  });
  // Another bucket plan (or none) cannot resume from it.
  const square = await createDataset({ path: dir, resolution: 32, repeats: 2 }, quiet);
  expect(() => new DataLoader(square, { batchSize: 3, state: saved })).toThrow(/"buckets" is "[^"]+" in the saved state but undefined here/);
  const coarser = await dataset({ buckets: { step: 16 } });
  expect(() => new DataLoader(coarser, { batchSize: 3, state: saved })).toThrow(DatasetError);
});

test('memory and disk caches hold one entry per bucket size and give the pixels of no cache', async () => {
  const plain = await take(new DataLoader(await dataset({ randomFlip: false }), { batchSize: 4 }), 6);
  const cached = await dataset({ randomFlip: false, cache: { dir: path.join(tempDir(), 'cache') } });
  for (const round of [0, 1]) {
    const got = await take(new DataLoader(cached, { batchSize: 4 }), 6);
    got.forEach((b, i) => expect([round, Buffer.from(b.pixels).equals(Buffer.from(plain[i]!.pixels))]).toEqual([round, true]));
  }
});
