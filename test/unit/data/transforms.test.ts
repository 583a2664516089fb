// Decoding and transforms: shapes, channels, alpha, crops and flips, checked on recoverable pixels.
import * as path from 'node:path';
import sharp from 'sharp';
import { createDataset } from '../../../lib/data/dataset';
import { mismatchedCaptions, shuffleTags, sampleCaption } from '../../../lib/data/captions';
import { Rng } from '../../../lib/data/random';
import { tempDir, writeGray, writeImage } from './folders';

const quiet = { onWarning: () => undefined };

async function one(file: (dir: string) => Promise<void>, options: Record<string, unknown>): Promise<{ pixels: Uint8Array; sampleBytes: number }> {
  const dir = tempDir();
  await file(dir);
  const ds = await createDataset({ path: dir, ...options }, quiet);
  const out = new Uint8Array(ds.sampleBytes);
  await ds.loadSample(0, 0, out);
  return { pixels: out, sampleBytes: ds.sampleBytes };
}

test('center crop without resize takes the middle: a 48×32 image at 32 starts at x = 8', async () => {
  const { pixels } = await one((d) => writeImage(path.join(d, 'a.png'), 48, 32, 5), { resolution: 32 });
  expect(pixels.length).toBe(32 * 32 * 3);
  expect([pixels[0], pixels[1], pixels[2]]).toEqual([8 * 8, 0, 5]);
  const last = (31 * 32 + 31) * 3;
  expect([pixels[last], pixels[last + 1]]).toEqual([(39 * 8) & 255, (31 * 8) & 255]);
});

test('random flip mirrors rows exactly; the choice is seeded per sample', async () => {
  const dir = tempDir();
  await writeImage(path.join(dir, 'a.png'), 32, 32, 5);
  const ds = await createDataset({ path: dir, resolution: 32, randomFlip: true, repeats: 16 }, quiet);
  const flips = [];
  for (let i = 0; i < 16; i++) {
    const out = new Uint8Array(ds.sampleBytes);
    await ds.loadSample(i, 0, out);
    flips.push(out[0] === 31 * 8);
    if (!flips[i]) expect(out[0]).toBe(0);
  }
  expect(flips.some((f) => f)).toBe(true);
  expect(flips.some((f) => !f)).toBe(true);
});

test('random crop stays inside the image and varies by sample', async () => {
  const dir = tempDir();
  await writeImage(path.join(dir, 'a.png'), 32, 64, 5);
  const ds = await createDataset({ path: dir, resolution: 32, centerCrop: false, repeats: 8 }, quiet);
  const rows = new Set<number>();
  for (let i = 0; i < 8; i++) {
    const out = new Uint8Array(ds.sampleBytes);
    await ds.loadSample(i, 0, out);
    const y0 = out[1]! / 8;
    expect(y0).toBeGreaterThanOrEqual(0);
    expect(y0).toBeLessThanOrEqual(32);
    expect(out[31 * 32 * 3 + 1]).toBe(((y0 + 31) * 8) & 255);
    rows.add(y0);
  }
  expect(rows.size).toBeGreaterThan(1);
});

test('alpha is composited on the configured background', async () => {
  const { pixels } = await one((d) => writeImage(path.join(d, 'a.png'), 16, 16, 5, 'png', 4, 0), { resolution: 16, background: [10, 20, 30] });
  expect([pixels[0], pixels[1], pixels[2]]).toEqual([10, 20, 30]);
});

test('grayscale → 3 channels, RGB → 1 channel', async () => {
  const gray3 = await one((d) => writeGray(path.join(d, 'g.png'), 16, 16, 100), { resolution: 16, channels: 3 });
  expect(gray3.sampleBytes).toBe(16 * 16 * 3);
  expect([gray3.pixels[0], gray3.pixels[1], gray3.pixels[2]]).toEqual([100, 100, 100]);
  const rgb1 = await one((d) => writeImage(path.join(d, 'a.png'), 16, 16, 200), { resolution: 16, channels: 1 });
  expect(rgb1.sampleBytes).toBe(16 * 16);
});

test('mixed sizes, formats and modes all come out at the same shape', async () => {
  const dir = tempDir();
  await writeImage(path.join(dir, 'a.png'), 100, 40, 1);
  await writeImage(path.join(dir, 'b.jpg'), 20, 70, 2, 'jpeg');
  await writeImage(path.join(dir, 'c.webp'), 33, 33, 3, 'webp', 4, 128);
  await writeGray(path.join(dir, 'd.png'), 9, 13, 50);
  const ds = await createDataset({ path: dir, resolution: 24, interpolation: 'bicubic' }, quiet);
  expect(ds.items.length).toBe(4);
  for (let i = 0; i < 4; i++) {
    const out = new Uint8Array(ds.sampleBytes).fill(7);
    await ds.loadSample(i, 0, out);
    expect(out.length).toBe(24 * 24 * 3);
  }
});

test('resize uses the chosen interpolation: nearest keeps the source values', async () => {
  const dir = tempDir();
  const px = Buffer.from([0, 0, 0, 255, 255, 255, 255, 255, 255, 0, 0, 0]);
  await sharp(px, { raw: { width: 2, height: 2, channels: 3 } })
    .png()
    .toFile(path.join(dir, 'a.png'));
  const ds = await createDataset({ path: dir, resolution: 8, interpolation: 'nearest' }, quiet);
  const out = new Uint8Array(ds.sampleBytes);
  await ds.loadSample(0, 0, out);
  expect(new Set(out)).toEqual(new Set([0, 255]));
  const bilinear = await createDataset({ path: dir, resolution: 8, interpolation: 'bilinear' }, quiet);
  await bilinear.loadSample(0, 0, out);
  expect(new Set(out).size).toBeGreaterThan(2);
});

describe('captions', () => {
  test('shuffle keeps the first keepTokens tags in place (kohya)', () => {
    const rng = new Rng(1);
    for (let i = 0; i < 20; i++) {
      const out = shuffleTags('sks dog, red, running,  grass , sunny', 1, rng).split(', ');
      expect(out[0]).toBe('sks dog');
      expect([...out].sort()).toEqual(['grass', 'red', 'running', 'sks dog', 'sunny']);
    }
  });

  test('dropout replaces the caption by "" at the given rate, per sample', () => {
    const options = { captionDropout: 0.25, shuffleCaption: false, keepTokens: 0 };
    let dropped = 0;
    for (let i = 0; i < 4000; i++) if (sampleCaption(['x'], options, new Rng(i), new Rng(i + 1), new Rng(i * 7 + 3)) === '') dropped++;
    expect(dropped / 4000).toBeGreaterThan(0.22);
    expect(dropped / 4000).toBeLessThan(0.28);
  });

  test('wrong captions: each sample gets the caption drawn for the next sample of another caption set, cyclically', () => {
    const bag = ['a bag', 'a handbag'];
    const boot = ['a boot', 'an ankle boot'];
    const sandal = ['a sandal'];
    // Interleaved classes as the captioned demo data is written: bag, boot, sandal, bag, ...; two of one class in a row too.
    const candidates = [bag, boot, sandal, bag, bag, boot];
    const drawn = ['a bag', 'a boot', 'a sandal', 'a handbag', 'a bag', 'an ankle boot'];
    expect(mismatchedCaptions(drawn, candidates)).toEqual(['a boot', 'a sandal', 'a handbag', 'an ankle boot', 'an ankle boot', 'a bag']);
    // Never a caption of the sample's own set, whatever wording was drawn.
    const wrong = mismatchedCaptions(drawn, candidates)!;
    wrong.forEach((w, k) => expect([k, candidates[k]!.includes(w)]).toEqual([k, false]));
    // One caption set (or none): nothing to swap in.
    expect(mismatchedCaptions(['a bag', 'a handbag'], [bag, bag])).toBeUndefined();
    expect(mismatchedCaptions(['', ''], [null, null])).toBeUndefined();
    // Own captions per image (sidecar files, one text per image): the next image's.
    expect(mismatchedCaptions(['x', 'y', 'z'], [['x'], ['y'], ['z']])).toEqual(['y', 'z', 'x']);
  });
});
