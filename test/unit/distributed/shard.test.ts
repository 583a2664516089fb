// The data side of data parallelism: ranks read disjoint shards of every global batch, together each
// sample once per epoch, with the same pixels (flips included) as one process reading the doubled
// batch; a saved position resumes under another world size.
import { createDataset } from '../../../lib/data/dataset';
import { DataLoader, type RawBatch } from '../../../lib/data/loader';

const data = { source: 'mnist', limit: 20, resolution: 8, channels: 1, randomFlip: true, seed: 3 } as const;

async function take(loader: DataLoader, n: number): Promise<RawBatch[]> {
  const out: RawBatch[] = [];
  for (let i = 0; i < n; i++) out.push(await loader.nextRaw());
  return out;
}

test('2 ranks × batch 2 = 1 process × batch 4: same samples, same pixels, disjoint, every sample once per epoch', async () => {
  const ds = await createDataset(data);
  const single = new DataLoader(ds, { batchSize: 4 });
  const ranks = [0, 1].map((rank) => new DataLoader(ds, { batchSize: 2, shard: { rank, worldSize: 2 } }));
  try {
    const whole = await take(single, 10); // two epochs of 5 batches
    const shards = await Promise.all(ranks.map((r) => take(r, 10)));
    for (let s = 0; s < 10; s++) {
      const [a, b] = [shards[0]![s]!, shards[1]![s]!];
      expect([...a.indices, ...b.indices]).toEqual(whole[s]!.indices);
      expect(Buffer.concat([a.pixels, b.pixels]).equals(Buffer.from(whole[s]!.pixels))).toBe(true);
      expect(a.epoch).toBe(whole[s]!.epoch);
    }
    for (const epoch of [0, 1]) {
      const seen = shards.flatMap((batches) => batches.filter((b) => b.epoch === epoch).flatMap((b) => b.indices));
      expect(seen.sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    }
  } finally {
    await Promise.all([single, ...ranks].map((l) => l.close()));
  }
});

test('the saved position is global: 2 ranks resume as 1 process and 1 process as 3 ranks', async () => {
  const ds = await createDataset(data);
  const reference = new DataLoader(ds, { batchSize: 2 });
  const rank0 = new DataLoader(ds, { batchSize: 2, shard: { rank: 0, worldSize: 2 } });
  const rank1 = new DataLoader(ds, { batchSize: 2, shard: { rank: 1, worldSize: 2 } });
  const all = await take(reference, 30);
  await take(rank0, 3);
  await take(rank1, 3);
  // 3 steps of 2 ranks = 6 batches of 2, whichever rank saved it.
  expect(rank0.state()).toEqual(rank1.state());
  const alone = new DataLoader(ds, { batchSize: 2, state: rank0.state() });
  expect((await take(alone, 2)).map((b) => b.indices)).toEqual(all.slice(6, 8).map((b) => b.indices));
  const three = [0, 1, 2].map((rank) => new DataLoader(ds, { batchSize: 2, shard: { rank, worldSize: 3 }, state: alone.state() }));
  const next = await Promise.all(three.map((l) => l.nextRaw()));
  expect(next.map((b) => b.indices)).toEqual(all.slice(8, 11).map((b) => b.indices));
  await Promise.all([reference, rank0, rank1, alone, ...three].map((l) => l.close()));
});

test('a bad shard is refused naming the field', async () => {
  const ds = await createDataset(data);
  expect(() => new DataLoader(ds, { batchSize: 2, shard: { rank: 2, worldSize: 2 } })).toThrow(
    /shard: expected 0 ≤ rank < worldSize but found rank 2, worldSize 2/,
  );
});
