// Aspect-ratio buckets in a real fine-tuning run: the tiny SD pipeline on wide, tall and square captioned
// shapes trains at three latent sizes (the U-Net takes each), prints the buckets in its plan, and an
// interrupted run resumed from its checkpoint ends bit-identical to an uninterrupted one.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SafetensorsFile } from '../../lib/checkpoint/safetensors';
import { finetune } from '../../lib/train/finetune';

const ROOT = path.join(__dirname, '..', '..');
const PIPELINE = path.join(ROOT, 'test', 'fixtures', 'diffusers', 'sd-pipeline-tiny');
const MIXED = path.join(ROOT, 'recipes', 'data', 'shapes-mixed', 'train');
const HELD_OUT = path.join(ROOT, 'recipes', 'data', 'shapes', 'test');

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-buckets-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function recipe(output: string, extra: Record<string, unknown> = {}) {
  return {
    model: { pretrained: PIPELINE },
    data: { path: MIXED, resolution: 32, channels: 3, buckets: true, randomFlip: true },
    freeze: { preset: 'full' },
    train: { steps: 6, batchSize: 2, lr: 1e-4, seed: 3 },
    validation: { every: 3, samples: 4, data: { path: HELD_OUT, resolution: 32, channels: 3 } },
    textToImage: { cacheDir: path.join(output, 'cache') },
    output,
    checkpoint: { every: 3, keep: 1 },
    ...extra,
  };
}

async function tensorBytes(file: string): Promise<Map<string, Buffer>> {
  await using f = await SafetensorsFile.open(file);
  const out = new Map<string, Buffer>();
  for (const name of f.names()) out.set(name, await f.readBytes(name));
  return out;
}

/** The shapes of the latent distributions a run cached: one per image the VAE encoded. */
async function cachedLatentShapes(cacheDir: string): Promise<string[]> {
  const dir = path.join(cacheDir, 'latents');
  const files = fs
    .readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.safetensors'));
  const shapes: string[] = [];
  for (const f of files) {
    await using file = await SafetensorsFile.open(path.join(dir, f));
    shapes.push(file.info('mean').shape.join('x'));
  }
  return shapes.sort();
}

test('wide, tall and square images train in their own buckets, at their own latent sizes; the plan names the buckets', async () => {
  const out = path.join(tmp, 'plain');
  const log: string[] = [];
  const r = await finetune(recipe(out), { onLog: (line) => log.push(line) });
  expect(r.status).toBe('completed');
  expect(Number.isFinite(r.finalLoss)).toBe(true);
  // The tiny pipeline downsamples 4× (VAE 2× · U-Net 2×): buckets are multiples of 4 px around 32².
  expect(log).toContain('aspect-ratio buckets (sides multiples of 4 px, about 32² pixels): 20×44: 4, 32×32: 4, 44×20: 4 images');
  // 6 steps of 2 = one epoch: every training image encoded once at its bucket's size (latents ÷ 2), the held-out ones square.
  expect(await cachedLatentShapes(path.join(out, 'cache'))).toEqual([
    ...Array<string>(4).fill('4x10x22'),
    ...Array<string>(4 + 4).fill('4x16x16'),
    ...Array<string>(4).fill('4x22x10'),
  ]);
  expect(r.validation.map((v) => v.step)).toEqual([0, 3, 6]);
}, 120_000);

test('interrupted at step 3 and resumed: bit-identical to 6 straight steps', async () => {
  const straight = await finetune(recipe(path.join(tmp, 'a')));
  const controller = new AbortController();
  const out = path.join(tmp, 'b');
  const first = await finetune(recipe(out), {
    signal: controller.signal,
    onProgress: (p) => {
      if (p.step === 3) controller.abort();
    },
  });
  expect([first.status, first.steps]).toEqual(['aborted', 3]);
  const resumed = await finetune(recipe(out, { resume: 'latest' }));
  expect(resumed.status).toBe('completed');
  expect(resumed.finalLoss).toBe(straight.finalLoss);
  const a = await tensorBytes(path.join(straight.unetDir, 'diffusion_pytorch_model.safetensors'));
  const b = await tensorBytes(path.join(resumed.unetDir, 'diffusion_pytorch_model.safetensors'));
  for (const [name, bytes] of a) expect([name, bytes.equals(b.get(name)!)]).toEqual([name, true]);
}, 180_000);

test("a bucket step that is not a multiple of the model's downsampling factor is refused", async () => {
  await expect(finetune(recipe(path.join(tmp, 'c'), { data: { path: MIXED, resolution: 32, buckets: { step: 6 } } }))).rejects.toThrow(
    /data.buckets.step: expected a multiple of the model's downsampling factor, 4 pixels, but found 6/,
  );
}, 60_000);
