// The native training step: frozen weights stay bit-identical, accumulation equals a full batch,
// a resumed run equals a straight one bit for bit, runs are reproducible, NaN steps are skipped.
import * as path from 'path';
import { disposeStateDict, type StateDict } from '../../lib/checkpoint/state-dict';
import { loadUNet, type UNet } from '../../lib/models/unet';
import { Tensor } from '../../lib/native/tensor';
import { loadScheduler } from '../../lib/schedulers/scheduler';
import { Trainer, type TrainableParameter, type TrainerOptions } from '../../lib/train/trainer';
import { float32SumBound, floatsOf, relativeDistance } from '../helpers/run-distance';

const DIR = path.join(__dirname, '..', 'fixtures', 'diffusers', 'unet2d-tiny');

/** Samples first..first+n−1 of a synthetic dataset: each sample's pixels depend on its index only. */
function images(n: number, first: number): Tensor {
  const per = 3 * 16 * 16;
  const data = new Float32Array(n * per);
  for (let k = 0; k < n; k++) for (let j = 0; j < per; j++) data[k * per + j] = Math.sin(((first + k) * 7919 + j) * 0.37) * 0.9;
  return Tensor.from(data, [n, 3, 16, 16]);
}

async function setup(trainable: (name: string) => boolean, extra: Partial<TrainerOptions> = {}) {
  const unet = await loadUNet(DIR);
  const scheduler = await loadScheduler(path.join(DIR, 'scheduler'));
  const alphasCumprod = await scheduler.alphasCumprod();
  scheduler.dispose();
  const params = await unet.parameters();
  const list: TrainableParameter[] = params
    .filter((p) => trainable(p.name))
    .map((p) => ({ name: p.name, lrMultiplier: 1, weightDecay: !p.name.endsWith('bias') }));
  const trainer = await Trainer.create(unet, {
    trainable: list,
    alphasCumprod,
    predictionType: 'epsilon',
    seed: 1234,
    ema: false,
    mixedPrecision: 'no',
    maxGradNorm: 1,
    ...extra,
  });
  alphasCumprod.dispose();
  return { unet, trainer, names: list.map((p) => p.name) };
}

async function runSteps(trainer: Trainer, from: number, to: number, batch = 8, micro = 8, lr = 1e-3): Promise<number[]> {
  const norms: number[] = [];
  for (let step = from; step < to; step++) {
    for (let start = 0; start < batch; start += micro) {
      using pixels = images(micro, step * batch + start);
      const indices = Array.from({ length: micro }, (_, i) => step * batch + start + i);
      await trainer.accumulate({ pixels, sampleIndices: indices, step, totalSamples: batch });
    }
    norms.push((await trainer.step(lr)).gradNorm);
  }
  return norms;
}

async function weights(unet: UNet): Promise<StateDict> {
  return unet.stateDict();
}

function bytesOf(t: Tensor): Buffer {
  return Buffer.from(t.toArray().buffer);
}

const decoderOnly = (n: string) => n.startsWith('up_blocks.') || n.startsWith('conv_norm_out.') || n.startsWith('conv_out.');

test('frozen parameters stay bit-identical; trainable ones change', async () => {
  const { unet, trainer, names } = await setup(decoderOnly);
  const before = await weights(unet);
  await runSteps(trainer, 0, 3);
  const after = await weights(unet);
  let changed = 0;
  for (const [name, t] of before) {
    const same = bytesOf(t).equals(bytesOf(after.get(name)!));
    if (names.includes(name)) changed += same ? 0 : 1;
    else expect([name, same]).toEqual([name, true]);
  }
  expect(changed).toBe(names.length);
  disposeStateDict(before);
  disposeStateDict(after);
  trainer.dispose();
  unet.dispose();
});

/** One optimizer step over `batch` samples in micro-batches of `micro`; `mistake` injects a wrong split. */
async function splitStep(trainer: Trainer, step: number, batch: number, micro: number, lr: number, mistake?: 'indices' | 'normalisation'): Promise<number> {
  for (let start = 0; start < batch; start += micro) {
    using pixels = images(micro, step * batch + start);
    // 'indices': each micro-batch numbers its samples from 0, so samples share noise and timesteps.
    const first = mistake === 'indices' ? step * batch : step * batch + start;
    const indices = Array.from({ length: micro }, (_, i) => first + i);
    // 'normalisation': each micro-batch averages over itself, so the gradient is (batch / micro)× too large.
    await trainer.accumulate({ pixels, sampleIndices: indices, step, totalSamples: mistake === 'normalisation' ? micro : batch });
  }
  return (await trainer.step(lr)).gradNorm;
}

/** Adam's first moments (exp_avg.<name>): after step k, (1 − β1)·Σ β1^(k−j)·g_j of the clipped gradients. */
async function firstMoments(trainer: Trainer): Promise<Map<string, Float32Array>> {
  const state = await trainer.optimizerState();
  const out = floatsOf(state, (n) => n.startsWith('exp_avg.'));
  disposeStateDict(state);
  return out;
}

// Accumulation must give the full batch's gradient. The weights cannot show it within a tight bound:
// Adam normalises each element by its own gradient's size, so a last-bit difference flips the sign of
// near-zero elements' updates (±lr each, however small the gradient), and which elements sit that close
// to zero depends on the CPU's kernels (per-tensor maxima of 1.3e-5 on AVX2 vs < 1e-5 on AVX-512).
// The gradients themselves can: Adam's first moment is a fixed linear map of them. Splitting 8 samples
// into 4 + 4 reorders float32 sums; the deepest is a convolution weight gradient over batch × H × W =
// 8 × 16 × 16 = 2048 products, whose rounding error is at most 2048 · 2^-24 ≈ 1.2e-4 of the sum of the
// products' magnitudes (a bound without cancellation; summed in random order it is ~√2048 · 2^-24 ≈ 2.7e-6).
// Three steps at lr 1e-5 move the weights by ≤ 3e-5, which changes later gradients far less than that.
const ACCUMULATION_BOUND = float32SumBound(8 * 16 * 16);

test('batch 8 equals batch 4 × accumulation 2 in the gradients, within float32 summation error; wrong splits fail', async () => {
  const runs = {
    full: await setup(() => true),
    split: await setup(() => true),
    indices: await setup(() => true),
    normalisation: await setup(() => true),
  };
  const distances: Record<'split' | 'indices', number[]> = { split: [], indices: [] };
  const normErrors: Record<'split' | 'normalisation', number[]> = { split: [], normalisation: [] };
  for (let step = 0; step < 3; step++) {
    const full = await splitStep(runs.full.trainer, step, 8, 8, 1e-5);
    normErrors.split.push(Math.abs((await splitStep(runs.split.trainer, step, 8, 4, 1e-5)) - full) / full);
    await splitStep(runs.indices.trainer, step, 8, 4, 1e-5, 'indices');
    normErrors.normalisation.push(Math.abs((await splitStep(runs.normalisation.trainer, step, 8, 4, 1e-5, 'normalisation')) - full) / full);
    const reference = await firstMoments(runs.full.trainer);
    for (const k of ['split', 'indices'] as const) distances[k].push(relativeDistance(reference, await firstMoments(runs[k].trainer)));
  }
  // The gradient norm (before clipping) is one more sum over the same products. It is also what shows
  // a wrongly scaled gradient: clipping to norm 1 (and Adam) would hide the scale in the moments.
  for (const e of normErrors.split) expect(e).toBeLessThan(ACCUMULATION_BOUND);
  for (const d of distances.split) expect(d).toBeLessThan(ACCUMULATION_BOUND);
  // Real mistakes in the split are hundreds of times larger than the bound (measured: ≥ 0.1 and 1.0).
  for (const d of distances.indices) expect(d).toBeGreaterThan(100 * ACCUMULATION_BOUND);
  for (const e of normErrors.normalisation) expect(e).toBeGreaterThan(100 * ACCUMULATION_BOUND);
  for (const s of Object.values(runs)) {
    s.trainer.dispose();
    s.unet.dispose();
  }
});

// The up blocks' inputs (frozen down blocks' outputs, the frozen time embedding) need no gradient, yet
// their own weights do: the recomputing blocks must still get them.
test('gradient checkpointing trains blocks whose inputs need no gradient (decoder-only): same gradient norms', async () => {
  const plain = await setup(decoderOnly);
  const ckpt = await setup(decoderOnly);
  await ckpt.unet.setOptions({ gradientCheckpointing: true });
  const a = await runSteps(plain.trainer, 0, 2);
  const b = await runSteps(ckpt.trainer, 0, 2);
  a.forEach((n, i) => expect(Math.abs(b[i]! - n) / n).toBeLessThan(1e-5));
  for (const s of [plain, ckpt]) {
    s.trainer.dispose();
    s.unet.dispose();
  }
});

// Backward runs after the step's autocast scope has ended: checkpointed blocks must recompute under the
// autocast their forward ran under (without, the float32 recomputation met bf16 tensors: "mat1 and mat2
// must have the same dtype"). With the same arithmetic recomputed, only the grouping of backward's bf16
// sums differs: each element's gradient within about one bf16 rounding, u = 2^-8 (measured 4.9e-4 RMS).
test('gradient checkpointing under bf16 mixed precision recomputes in bf16: the same gradients', async () => {
  const plain = await setup(() => true, { mixedPrecision: 'bf16' });
  const ckpt = await setup(() => true, { mixedPrecision: 'bf16' });
  await ckpt.unet.setOptions({ gradientCheckpointing: true });
  // One step: after it the weights differ by Adam's sign flips, and later gradients with them.
  const [a] = await runSteps(plain.trainer, 0, 1);
  const [b] = await runSteps(ckpt.trainer, 0, 1);
  const distance = relativeDistance(await firstMoments(plain.trainer), await firstMoments(ckpt.trainer));
  expect(Math.abs(b! - a!) / a!).toBeLessThan(2 ** -8);
  expect(distance).toBeLessThan(2 ** -8);
  for (const s of [plain, ckpt]) {
    s.trainer.dispose();
    s.unet.dispose();
  }
});

// One AdamW step is torch.optim.AdamW's formula. After the first step the moments hold the gradient
// (m = (1−β1)·g, v = (1−β2)·g²), so the update the weights took can be recomputed from the saved
// moments in float64: p₁ = p₀·(1 − lr·λ) − lr/(1−β1)·m/(√v/√(1−β2) + ε). The float32 arithmetic of the
// fused kernel rounds each of its ~6 operations (≤ 6·2^-24 of |p| per element), i.e. ≤ 2e-5 of an update
// of ~lr = 1e-3 on weights of |p| ≲ 0.5. Missing bias correction would be 10× off, missing decay 1e-5·|p|.
test('an AdamW step is torch.optim.AdamW: decoupled decay, bias-corrected moments', async () => {
  const hyper = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
  const { unet, trainer } = await setup(() => true, hyper);
  const before = floatsOf(await weights(unet));
  const lr = 1e-3;
  await runSteps(trainer, 0, 1, 8, 8, lr);
  const after = floatsOf(await weights(unet));
  const state = await trainer.optimizerState();
  const moments = floatsOf(state);
  disposeStateDict(state);
  const expected = new Map<string, Float32Array>();
  const taken = new Map<string, Float32Array>();
  for (const [name, p0] of before) {
    const m = moments.get(`exp_avg.${name}`)!;
    const v = moments.get(`exp_avg_sq.${name}`)!;
    const decay = name.endsWith('bias') ? 0 : hyper.weightDecay;
    const e = new Float32Array(p0.length);
    const t = new Float32Array(p0.length);
    for (let i = 0; i < p0.length; i++) {
      const update = -p0[i]! * lr * decay - (lr / (1 - hyper.beta1)) * (m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(1 - hyper.beta2) + hyper.eps));
      e[i] = update;
      t[i] = after.get(name)![i]! - p0[i]!;
    }
    expected.set(name, e);
    taken.set(name, t);
  }
  expect(relativeDistance(expected, taken)).toBeLessThan(2e-5);
  trainer.dispose();
  unet.dispose();
});

test('N steps + resume + N steps is bit-identical to 2N straight steps, with EMA', async () => {
  const straight = await setup(() => true, { ema: true, emaDecay: 0.99 });
  await runSteps(straight.trainer, 0, 4);
  const first = await setup(() => true, { ema: true, emaDecay: 0.99 });
  await runSteps(first.trainer, 0, 2);
  const savedWeights = await weights(first.unet);
  const savedOptimizer = await first.trainer.optimizerState();
  const savedEma = await first.trainer.emaWeights();
  const counters = await first.trainer.counters();
  first.trainer.dispose();
  first.unet.dispose();

  const resumed = await setup(() => true, { ema: true, emaDecay: 0.99 });
  await resumed.unet.loadStateDict(savedWeights);
  // The trainer was created before the weights were loaded: rebuild it so its EMA starts from them.
  resumed.trainer.dispose();
  const again = await setup(() => true, { ema: true, emaDecay: 0.99 });
  await again.unet.loadStateDict(savedWeights);
  await again.trainer.loadOptimizerState(savedOptimizer, counters.optimizerSteps);
  await again.trainer.loadEmaWeights(savedEma, counters.emaUpdates);
  await runSteps(again.trainer, 2, 4);
  const a = await weights(straight.unet);
  const b = await weights(again.unet);
  for (const [name, t] of a) expect([name, bytesOf(t).equals(bytesOf(b.get(name)!))]).toEqual([name, true]);
  const ea = await straight.trainer.emaWeights();
  const eb = await again.trainer.emaWeights();
  for (const [name, t] of ea) expect([name, bytesOf(t).equals(bytesOf(eb.get(name)!))]).toEqual([name, true]);
  for (const x of [a, b, ea, eb, savedWeights, savedOptimizer, savedEma]) disposeStateDict(x);
  for (const s of [straight, again]) {
    s.trainer.dispose();
    s.unet.dispose();
  }
  resumed.unet.dispose();
});

test('a non-finite loss skips the step and leaves the weights untouched', async () => {
  const { unet, trainer } = await setup(() => true);
  const before = await weights(unet);
  using bad = Tensor.from(new Float32Array(2 * 3 * 16 * 16).fill(NaN), [2, 3, 16, 16]);
  const micro = await trainer.accumulate({ pixels: bad, sampleIndices: [0, 1], step: 0, totalSamples: 2 });
  expect(micro.finite).toBe(false);
  const r = await trainer.step(1e-3);
  expect(r.skipped).toBe(true);
  const after = await weights(unet);
  for (const [name, t] of before) expect(bytesOf(t).equals(bytesOf(after.get(name)!))).toBe(true);
  disposeStateDict(before);
  disposeStateDict(after);
  trainer.dispose();
  unet.dispose();
});

test('bad trainer options are clear errors', async () => {
  const unet = await loadUNet(DIR);
  using ac = Tensor.from(new Float32Array(10).fill(0.5), [10]);
  await expect(
    Trainer.create(unet, {
      trainable: [{ name: 'nope.weight', lrMultiplier: 1, weightDecay: true }],
      alphasCumprod: ac,
      predictionType: 'epsilon',
      seed: 0,
      ema: false,
      mixedPrecision: 'no',
    }),
  ).rejects.toThrow(/not in the model: nope\.weight/);
  await expect(
    Trainer.create(unet, {
      trainable: [{ name: 'conv_in.weight', lrMultiplier: 1, weightDecay: true }],
      alphasCumprod: ac,
      predictionType: 'epsilon',
      seed: 0,
      ema: false,
      mixedPrecision: 'fp16',
    }),
  ).rejects.toThrow(/fp16 mixed precision needs CUDA/);
  unet.dispose();
});

test('the loss scale a checkpoint saved can be restored, and only a finite number ≥ 1 is accepted', async () => {
  const unet = await loadUNet(DIR);
  using ac = Tensor.from(new Float32Array(10).fill(0.5), [10]);
  using trainer = await Trainer.create(unet, {
    trainable: [{ name: 'conv_in.weight', lrMultiplier: 1, weightDecay: true }],
    alphasCumprod: ac,
    predictionType: 'epsilon',
    seed: 0,
    ema: false,
    mixedPrecision: 'no',
  });
  await trainer.setLossScale(1024);
  expect((await trainer.counters()).lossScale).toBe(1024);
  await expect(trainer.setLossScale(0.5)).rejects.toThrow(/finite number ≥ 1 for scale/);
  await expect(trainer.setLossScale(Number.NaN)).rejects.toThrow(/scale/);
  trainer.dispose();
  unet.dispose();
});
