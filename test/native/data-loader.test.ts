// A batch reaches the model as one native call: uint8 NHWC → float32 NCHW in [-1, 1].
import * as path from 'node:path';
import { createDataset } from '../../lib/data/dataset';
import { DataLoader } from '../../lib/data/loader';
import { imagesToTensor } from '../../lib/native/images';
import { loadNative } from '../../lib/native/load';
import { runtimeInfo, setThreads } from '../../lib/native/runtime';
import { parseRecipe } from '../../lib/config/recipe';
import { openTrainingLoader } from '../../lib/train/data';
import { tempDir, writeImage } from '../unit/data/folders';

test('imagesToTensor: permutes to NCHW and maps 0 → −1, 255 → 1', async () => {
  // N=1, H=1, W=2, C=3
  const pixels = Uint8Array.from([0, 255, 51, 102, 127, 204]);
  using t = await imagesToTensor(pixels, [1, 1, 2, 3]);
  expect(t.shape).toEqual([1, 3, 1, 2]);
  expect(t.dtype).toBe('float32');
  const v = Array.from(t.toArray() as Float32Array);
  const expected = [0, 102, 255, 127, 51, 204].map((x) => x / 127.5 - 1);
  v.forEach((x, i) => expect(x).toBeCloseTo(expected[i]!, 6));
});

test('imagesToTensor refuses a buffer that does not match the shape, naming the argument', async () => {
  const native = loadNative();
  expect(() => native.imagesToTensor(new Uint8Array(5), [1, 1, 2, 3])).toThrow(/Expected a Uint8Array of 6 bytes .* for pixels/);
  expect(() => native.imagesToTensor(new Uint8Array(6), [6])).toThrow(/Expected a shape \[N, H, W, C\] with 1 to 4 channels for shape/);
});

test('DataLoader.next(): the float batch equals the raw batch, in [-1, 1]', async () => {
  const dir = tempDir();
  for (let i = 0; i < 4; i++) await writeImage(path.join(dir, `${i}.png`), 20, 20, i * 60);
  const ds = await createDataset({ path: dir, resolution: 16, randomFlip: true }, { onWarning: () => undefined });
  const raw = await new DataLoader(ds, { batchSize: 4, applyTorchThreads: false }).nextRaw();
  const loader = new DataLoader(ds, { batchSize: 4, applyTorchThreads: false });
  const batch = await loader.next();
  expect(batch.indices).toEqual(raw.indices);
  expect(batch.pixels.shape).toEqual([4, 3, 16, 16]);
  const data = (await batch.pixels.data()) as Float32Array;
  // element [n, c, y, x] against raw [n, y, x, c]
  for (const [n, c, y, x] of [
    [0, 0, 0, 0],
    [1, 2, 5, 7],
    [3, 1, 15, 15],
  ] as const) {
    const f = data[((n * 3 + c) * 16 + y) * 16 + x]!;
    expect(f).toBeCloseTo(raw.pixels[((n * 16 + y) * 16 + x) * 3 + c]! / 127.5 - 1, 6);
  }
  expect(Math.min(...data)).toBeGreaterThanOrEqual(-1);
  expect(Math.max(...data)).toBeLessThanOrEqual(1);
  batch.dispose();
  await loader.close();
});

test("a run's loader sets torch's threads to its share as it opens, before the first batch (the step-0 validation runs under it)", async () => {
  const before = (await runtimeInfo()).threads;
  await setThreads(2);
  const recipe = parseRecipe({
    model: { pretrained: path.join(__dirname, '..', '..', 'models', 'mnist-ddpm') },
    data: { source: 'mnist', resolution: 28, channels: 1, limit: 8 },
    train: { steps: 1, batchSize: 4, lr: 1e-4, threads: 1 },
    output: path.join(__dirname, 'unused-output'),
  });
  const loader = await openTrainingLoader(recipe, { torchThreads: undefined, shard: undefined }, undefined, () => undefined);
  try {
    expect((await runtimeInfo()).threads).toBe(1);
  } finally {
    await loader.close();
    await setThreads(before);
  }
});
