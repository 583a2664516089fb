// VAE training (lib/train/vae-training.ts over native/train/vae_trainer): the loss falls on a handful of
// MNIST images, the KL term's gradient is the closed form's, the whole loss's gradient matches central
// finite differences in float64, training changes the weights and improves the held-out reconstruction
// (an untrained copy stays as it was), bad arguments name themselves, and the saved vae/ folder reloads
// bit for bit with the scaling factor measured.
import * as fs from 'fs';
import * as path from 'path';
import { createDataset, type Dataset } from '../../lib/data/dataset';
import { DisposedError, InvalidArgumentError } from '../../lib/errors';
import { AutoencoderKL, loadVae } from '../../lib/models/vae';
import { Tensor } from '../../lib/native/tensor';
import { saveTrainedVae, trainVae, VaeTrainer, type TrainVaeOptions } from '../../lib/train/vae-training';
import { useTempDir } from '../helpers/temp-dir';

const TINY_CONFIG = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'diffusers', 'vae-tiny', 'config.json'), 'utf8')) as Record<
  string,
  unknown
>;
const tmp = useTempDir('vae-training');

/** MNIST digits as 16×16 RGB: the VAE's three channels, sides a multiple of its scale factor 2. */
function digits(split: 'train' | 'test', limit: number, extra: Record<string, unknown> = {}): Promise<Dataset> {
  return createDataset({ source: 'mnist', split, limit, resolution: 16, channels: 3, cache: 'memory', ...extra });
}

let train: Dataset;
let heldOut: Dataset;
beforeAll(async () => {
  train = await digits('train', 8);
  heldOut = await digits('test', 6);
});

function tinyVae(seed = 0): Promise<AutoencoderKL> {
  return AutoencoderKL.fromConfig(TINY_CONFIG, { seed });
}

/** Deterministic pseudo-images in [-0.9, 0.9]. */
function images(n: number, size = 8): Tensor {
  const per = 3 * size * size;
  return Tensor.from(
    Float32Array.from({ length: n * per }, (_, i) => Math.sin(i * 0.37 + 1) * 0.9),
    [n, 3, size, size],
  );
}

async function weights(vae: AutoencoderKL): Promise<Map<string, Float32Array>> {
  const dict = await vae.stateDict();
  const out = new Map<string, Float32Array>();
  for (const [name, t] of dict) {
    out.set(name, Float32Array.from(t.toArray() as Float32Array));
    t.dispose();
  }
  return out;
}

const options = (extra: Partial<TrainVaeOptions> = {}): TrainVaeOptions => ({ images: train, heldOut, steps: 30, batchSize: 4, lr: 2e-3, seed: 3, ...extra });

test('the loss falls over 30 steps, the weights change, the held-out reconstruction improves; an untrained copy stays as it was', async () => {
  using vae = await tinyVae();
  using frozen = await tinyVae();
  const before = await weights(vae);
  const lines: string[] = [];
  const seen: number[] = [];
  const r = await trainVae(vae, options({ log: (l) => lines.push(l), onStep: (s) => void seen.push(s.step) }));
  expect(r.steps).toBe(30);
  expect(seen).toEqual([...Array(30).keys()]);
  expect(r.skippedSteps).toBe(0);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mean(r.losses.slice(0, 5).map((l) => l.loss));
  const last = mean(r.losses.slice(-5).map((l) => l.loss));
  process.stdout.write(
    `vae loss ${first.toFixed(2)} → ${last.toFixed(2)}; held-out ${r.initialHeldOutReconstruction.toFixed(4)} → ${r.heldOutReconstruction.toFixed(4)}; scaling ${r.scalingFactor}\n`,
  );
  expect(last).toBeLessThan(0.7 * first);
  for (const l of r.losses) expect(l.loss).toBeCloseTo(l.reconstruction + 1e-6 * l.kl, 3);
  expect(r.heldOutReconstruction).toBeLessThan(0.8 * r.initialHeldOutReconstruction);
  expect(r.heldOut.images).toBe(6);
  expect(r.latentStd).toBe(r.heldOut.latentStd);
  expect(r.scalingFactor).toBeCloseTo(1 / r.latentStd, 12);
  expect(lines.some((l) => l.startsWith('vae step 30/30: loss'))).toBe(true);

  const after = await weights(vae);
  let changed = 0;
  for (const [name, w] of before) if (!after.get(name)!.every((v, i) => v === w[i])) changed++;
  expect(changed).toBe(before.size); // every parameter trains

  // steps: 0 only measures: the copy's weights and its measure are untouched by the other's training.
  const f = await trainVae(frozen, options({ steps: 0 }));
  expect(f.losses).toEqual([]);
  expect(f.heldOut).toEqual(f.initialHeldOut);
  // The same model measured the same way (up to the reduction order of another torch thread count).
  for (const key of ['reconstruction', 'kl', 'latentMean', 'latentStd'] as const) expect(f.initialHeldOut[key]).toBeCloseTo(r.initialHeldOut[key], 5);
  const frozenWeights = await weights(frozen);
  for (const [name, w] of before) expect(frozenWeights.get(name)).toEqual(w);
}, 120_000);

test("the KL term's gradient is the closed form's: ∂KL/∂quant_conv.bias from the posterior's mean and logvar", async () => {
  using vae = await tinyVae(5);
  using x = images(2);
  const batch = { images: x, sampleIndices: [0, 1], step: 0 };
  // The same noise with and without the KL term: the difference of the gradients is klWeight · ∂KL.
  using withKl = await VaeTrainer.create(vae, { klWeight: 1, seed: 9 });
  const a = await withKl.gradients(batch);
  using withoutKl = await VaeTrainer.create(vae, { klWeight: 0, seed: 9 });
  const b = await withoutKl.gradients(batch);
  expect(a.reconstruction).toBe(b.reconstruction);
  expect(a.loss).toBeCloseTo(a.reconstruction + a.kl, 4);
  expect(b.loss).toBe(b.reconstruction);

  // KL = (1/B) Σ ½(μ² + exp(lv) − 1 − lv); quant_conv's bias adds to channel c of μ (c < 4) or lv (c ≥ 4).
  const dist = await vae.encode(x);
  const mu = dist.mean.toArray() as Float32Array;
  const lv = dist.logvar.toArray() as Float32Array;
  const [B, C, h, w] = dist.mean.shape as [number, number, number, number];
  dist.mean.dispose();
  dist.logvar.dispose();
  const expected = new Float64Array(2 * C);
  for (let n = 0; n < B; n++)
    for (let c = 0; c < C; c++)
      for (let k = 0; k < h * w; k++) {
        const i = (n * C + c) * h * w + k;
        expected[c]! += mu[i]! / B;
        expected[C + c]! += (0.5 * (Math.exp(lv[i]!) - 1)) / B;
      }
  const ga = a.gradParams.get('quant_conv.bias')!.toArray() as Float32Array;
  const gb = b.gradParams.get('quant_conv.bias')!.toArray() as Float32Array;
  const scale = Math.max(...expected.map(Math.abs));
  for (let c = 0; c < 2 * C; c++) expect(Math.abs(ga[c]! - gb[c]! - expected[c]!)).toBeLessThan(1e-3 * scale);
  for (const g of [...a.gradParams.values(), ...b.gradParams.values()]) g.dispose();
}, 60_000);

// Without the mid-block attention: its softmax upcasts to float32 (diffusers' upcast_softmax) even in a
// float64 model, too coarse for differences. Its backward is checked against diffusers' by vae.test.ts.
test('the gradient of the whole loss (L1 and MSE) matches central finite differences in float64', async () => {
  for (const reconstructionLoss of ['mse', 'l1'] as const) {
    using vae = await AutoencoderKL.fromConfig({ ...TINY_CONFIG, mid_block_add_attention: false }, { seed: 7 });
    await vae.native.to('cpu', 'float64'); // float64 makes the differences exact enough to compare closely
    using x = images(2);
    const batch = { images: x, sampleIndices: [4, 9], step: 2 };
    using trainer = await VaeTrainer.create(vae, { klWeight: 0.01, reconstructionLoss, seed: 1 });
    const g = await trainer.gradients(batch);
    const base = await vae.stateDict();
    const probes: Array<[string, number]> = [
      ['encoder.conv_in.weight', 5],
      ['encoder.down_blocks.0.resnets.0.norm1.weight', 3],
      ['quant_conv.weight', 40],
      ['decoder.up_blocks.1.resnets.0.conv2.bias', 2],
      ['decoder.conv_out.weight', 11],
    ];
    for (const [name, index] of probes) {
      const original = base.get(name)!;
      const values = Float64Array.from(original.toArray() as Float64Array);
      const h = 1e-5 * Math.max(1, Math.abs(values[index]!));
      const lossAt = async (delta: number): Promise<number> => {
        const changed = Float64Array.from(values);
        changed[index]! += delta;
        using t = Tensor.from(changed, original.shape, { dtype: 'float64' });
        await vae.loadStateDict(new Map([...base, [name, t]]));
        return (await trainer.gradients(batch)).loss;
      };
      const numeric = ((await lossAt(h)) - (await lossAt(-h))) / (2 * h);
      const analytic = (g.gradParams.get(name)!.toArray() as Float64Array)[index]!;
      expect(Math.abs(numeric - analytic)).toBeLessThan(1e-5 * Math.max(1, Math.abs(analytic)));
    }
    for (const t of [...base.values(), ...g.gradParams.values()]) t.dispose();
  }
}, 120_000);

test('bad arguments are DifftuneErrors naming the argument', async () => {
  using vae = await tinyVae();
  const grey = await digits('train', 2, { channels: 1 });
  const odd = await digits('train', 2, { resolution: 15 });
  const cases: Array<[Partial<TrainVaeOptions> | Record<string, unknown>, string]> = [
    [{ steps: -1 }, 'options.steps'],
    [{ steps: 1.5 }, 'options.steps'],
    [{ batchSize: 0 }, 'options.batchSize'],
    [{ lr: 0 }, 'options.lr'],
    [{ klWeight: -1 }, 'options.klWeight'],
    [{ klWeight: Number.NaN }, 'options.klWeight'],
    [{ reconstructionLoss: 'l2' }, 'options.reconstructionLoss'],
    [{ maxGradNorm: -1 }, 'options.maxGradNorm'],
    [{ images: grey }, 'options.images'],
    [{ images: odd }, 'options.images'],
    [{ heldOut: 'test' }, 'options.heldOut'],
    [{ onStep: 3 }, 'options.onStep'],
  ];
  for (const [extra, name] of cases) {
    const error = await trainVae(vae, { ...options(), ...extra }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toContain(name);
  }
  // The native step checks its batch.
  using trainer = await VaeTrainer.create(vae);
  using x = images(2);
  await expect(trainer.step({ images: x, sampleIndices: [0], step: 0 }, 1e-3)).rejects.toThrow(/batch\.sampleIndices/);
  await expect(trainer.step({ images: x, sampleIndices: [0, 1], step: 0 }, -1)).rejects.toThrow(/\blr\b/);
  using oddImages = images(2, 7);
  await expect(trainer.step({ images: oddImages, sampleIndices: [0, 1], step: 0 }, 1e-3)).rejects.toThrow(/batch\.images.*scale factor 2/);
  using grey2 = Tensor.from(new Float32Array(2 * 8 * 8), [2, 1, 8, 8]);
  await expect(trainer.gradients({ images: grey2, sampleIndices: [0, 1], step: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
  trainer.dispose();
  await expect(trainer.evaluate({ images: x, sampleIndices: [0, 1], step: 0 })).rejects.toBeInstanceOf(DisposedError);
}, 60_000);

test('the saved vae/ folder reloads bit for bit with the measured scaling_factor', async () => {
  using vae = await tinyVae(2);
  const r = await trainVae(vae, options({ steps: 3 }));
  const dir = path.join(tmp(), 'vae');
  await saveTrainedVae(vae, dir, { scalingFactor: r.scalingFactor });
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  expect(config.scaling_factor).toBe(r.scalingFactor);
  expect(Object.keys(config)).toEqual(Object.keys(vae.configJson()));
  using loaded = await loadVae(dir);
  expect(loaded.scalingFactor).toBe(r.scalingFactor);
  expect(await weights(loaded)).toEqual(await weights(vae));
  using x = images(1, 16);
  using a = await vae.forward(x);
  using b = await loaded.forward(x);
  expect(b.toArray()).toEqual(a.toArray());
  await expect(saveTrainedVae(vae, dir, { scalingFactor: 0 })).rejects.toThrow(/options\.scalingFactor/);
}, 60_000);
