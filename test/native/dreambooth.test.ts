// DreamBooth with prior preservation on the tiny Stable Diffusion pipeline: the trainer's weighted loss is
// instance MSE + weight × class MSE (and its gradient the same sum), class images are generated once and
// reused until a generation setting changes, short runs train with LoRA and full weights, a resumed run
// equals an uninterrupted one and accumulation equals a larger batch.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { disposeStateDict } from '../../lib/checkpoint/state-dict';
import { loadUNet } from '../../lib/models/unet';
import { Tensor } from '../../lib/native/tensor';
import { loadScheduler } from '../../lib/schedulers/scheduler';
import { Trainer } from '../../lib/train/trainer';
import { float32SumBound, floatsOf, relativeDistance } from '../helpers/run-distance';

const ROOT = path.join(__dirname, '..', '..');
const PIPELINE = path.join(ROOT, 'test', 'fixtures', 'diffusers', 'sd-pipeline-tiny');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-dreambooth-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** n deterministic float32 samples of `shape`, sample k depending on (first + k) only. */
function synthetic(n: number, first: number, shape: readonly number[], scale: number): Tensor {
  const per = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n * per);
  for (let k = 0; k < n; k++) for (let j = 0; j < per; j++) data[k * per + j] = Math.sin(((first + k) * 7919 + j) * 0.37) * scale;
  return Tensor.from(data, [n, ...shape]);
}

async function sdTrainer(): Promise<{ trainer: Trainer; dispose(): void }> {
  const unet = await loadUNet(path.join(PIPELINE, 'unet'));
  using scheduler = await loadScheduler(path.join(PIPELINE, 'scheduler'));
  using alphasCumprod = await scheduler.alphasCumprod();
  const params = await unet.parameters();
  const trainer = await Trainer.create(unet, {
    trainable: params.map((p) => ({ name: p.name, lrMultiplier: 1, weightDecay: true })),
    alphasCumprod,
    predictionType: 'epsilon',
    seed: 7,
    ema: false,
    mixedPrecision: 'no',
    // No clipping: the first moments below are the raw gradients (times 1 − β1).
    maxGradNorm: 0,
  });
  return {
    trainer,
    dispose: () => {
      trainer.dispose();
      unet.dispose();
    },
  };
}

describe('the weighted loss: instance MSE + priorLossWeight × class MSE', () => {
  // n instance samples and n class samples, concatenated in one batch as train_dreambooth.py does.
  const n = 3;
  const w = 0.75; // exact in float32: w·loss rounds once
  const latents = () => synthetic(2 * n, 0, [4, 16, 16], 0.9);
  const context = () => synthetic(2 * n, 100, [77, 32], 1);
  const indices = [0, 1, 2, 2 ** 50, 2 ** 50 + 1, 2 ** 50 + 2];
  const ones = (k: number) => Array.from({ length: k }, () => 1);
  const zeros = (k: number) => Array.from({ length: k }, () => 0);

  test('on a fixed batch, the joint loss equals the halves summed apart, within float32 summation error', async () => {
    const s = await sdTrainer();
    using pixels = latents();
    using encoderHiddenStates = context();
    const micro = (lossWeights: number[]) =>
      s.trainer.accumulate({ pixels, encoderHiddenStates, sampleIndices: indices, step: 0, totalSamples: n, lossWeights });
    // The same forward each time (the weights do not change before step()), summed with other weights:
    // the instance half alone, the class half alone, then both with the class half weighted.
    const instance = (await micro([...ones(n), ...zeros(n)])).lossSum;
    const classHalf = (await micro([...zeros(n), ...ones(n)])).lossSum;
    const joint = (await micro([...ones(n), ...zeros(n).map(() => w)])).lossSum;
    const expected = instance + w * classHalf;
    // Each sum of m non-negative float32 terms is within (m − 1)·2^-24 of its exact value, relative; the
    // joint sum has 2n terms (each w·loss rounded once more), each half n: at most 4n·2^-24 in all.
    expect(Math.abs(joint - expected) / expected).toBeLessThanOrEqual(float32SumBound(4 * n));
    // Not trivially equal: the class half is not the instance half, and the weight matters.
    expect(Math.abs(classHalf - instance) / expected).toBeGreaterThan(100 * float32SumBound(4 * n));
    s.dispose();
  }, 60_000);

  test('each half computed in its own batch gives the same losses, and the weighted gradient is the sum of the halves’ gradients', async () => {
    // Instance and class halves as separate batches (their own forwards): the per-sample losses depend on
    // the sample's (seed, step, index) only, so they match the joint batch's up to the float32 rounding
    // of the forward's sums, which a different batch size may group differently: at most the deepest
    // sum's 2^-24 per term (a convolution's weight sums over batch × H × W = 2n × 16 × 16 products).
    const bound = float32SumBound(2 * n * 16 * 16);
    const joint = await sdTrainer();
    const split = await sdTrainer();
    using pixels = latents();
    using encoderHiddenStates = context();
    const jointLoss = (
      await joint.trainer.accumulate({
        pixels,
        encoderHiddenStates,
        sampleIndices: indices,
        step: 0,
        totalSamples: n,
        lossWeights: [...ones(n), ...zeros(n).map(() => w)],
      })
    ).lossSum;
    using instPixels = synthetic(n, 0, [4, 16, 16], 0.9);
    using instContext = synthetic(n, 100, [77, 32], 1);
    using classPixels = synthetic(n, n, [4, 16, 16], 0.9);
    using classContext = synthetic(n, 100 + n, [77, 32], 1);
    // The split trainer accumulates the halves as two micro-batches: instance (weight 1), class (weight w).
    const inst = (
      await split.trainer.accumulate({ pixels: instPixels, encoderHiddenStates: instContext, sampleIndices: indices.slice(0, n), step: 0, totalSamples: n })
    ).lossSum;
    const cls = (
      await split.trainer.accumulate({
        pixels: classPixels,
        encoderHiddenStates: classContext,
        sampleIndices: indices.slice(n),
        step: 0,
        totalSamples: n,
        lossWeights: zeros(n).map(() => w),
      })
    ).lossSum;
    expect(Math.abs(jointLoss - (inst + cls)) / jointLoss).toBeLessThan(bound);
    await joint.trainer.step(1e-4);
    await split.trainer.step(1e-4);
    const moments = async (t: Trainer) => {
      const state = await t.optimizerState();
      const out = floatsOf(state, (name) => name.startsWith('exp_avg.'));
      disposeStateDict(state);
      return out;
    };
    const distance = relativeDistance(await moments(joint.trainer), await moments(split.trainer));
    expect(distance).toBeLessThan(bound);
    // A wrong weight (1 instead of w on the class half) is far outside the bound.
    const unweighted = await sdTrainer();
    await unweighted.trainer.accumulate({ pixels, encoderHiddenStates, sampleIndices: indices, step: 0, totalSamples: n, lossWeights: ones(2 * n) });
    await unweighted.trainer.step(1e-4);
    expect(relativeDistance(await moments(joint.trainer), await moments(unweighted.trainer))).toBeGreaterThan(100 * bound);
    for (const s of [joint, split, unweighted]) s.dispose();
  }, 60_000);

  test('bad loss weights are named', async () => {
    const s = await sdTrainer();
    using pixels = synthetic(2, 0, [4, 16, 16], 0.9);
    using encoderHiddenStates = synthetic(2, 100, [77, 32], 1);
    const micro = (lossWeights: unknown) =>
      s.trainer.accumulate({ pixels, encoderHiddenStates, sampleIndices: [0, 1], step: 0, totalSamples: 1, lossWeights: lossWeights as number[] });
    await expect(micro([1])).rejects.toThrow(/one loss weight per batch item \(2\) but received 1/);
    await expect(micro([1, -1])).rejects.toThrow(/batch.lossWeights\[1\]/);
    await expect(micro([1, Number.NaN])).rejects.toThrow(/finite non-negative/);
    // Without weights every sample must be counted.
    await expect(s.trainer.accumulate({ pixels, encoderHiddenStates, sampleIndices: [0, 1], step: 0, totalSamples: 1 })).rejects.toThrow(/totalSamples/);
    s.dispose();
  }, 60_000);
});
