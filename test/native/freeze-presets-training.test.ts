// Each freezing preset (and a pattern set) on both U-Net classes: after training, frozen tensors are
// bit-identical, trainable ones changed, and the plan's counts are what trained.
import * as path from 'path';
import { disposeStateDict } from '../../lib/checkpoint/state-dict';
import { planFreeze } from '../../lib/freeze/plan';
import { loadUNet } from '../../lib/models/unet';
import { Tensor } from '../../lib/native/tensor';
import { loadScheduler } from '../../lib/schedulers/scheduler';
import { Trainer } from '../../lib/train/trainer';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');

function noise(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sin(i * 1.7 + seed * 3.1);
  return out;
}

const cases: Array<[string, Record<string, unknown>]> = [
  ['full', { preset: 'full' }],
  ['encoder-frozen', { preset: 'encoder-frozen' }],
  ['decoder-only', { preset: 'decoder-only' }],
  ['attention-only', { preset: 'attention-only' }],
  ['bias-norm', { preset: 'bias-norm' }],
  [
    'patterns',
    { trainable: ['down_blocks.*.resnets.0.**', 're:up_blocks\\.1\\..*\\.weight'], frozen: ['**.norm1.*'], lrMultipliers: { 'down_blocks.**': 0.1 } },
  ],
];

describe.each([
  ['unet2d-tiny', false],
  ['unet2dcond-tiny', true],
])('%s', (set, conditional) => {
  test.each(cases)('%s', async (_name, freeze) => {
    const dir = path.join(FIXTURES, set);
    using unet = await loadUNet(dir);
    using scheduler = await loadScheduler(path.join(dir, 'scheduler'));
    using alphasCumprod = await scheduler.alphasCumprod();
    const plan = planFreeze(await unet.parameters(), freeze);
    using trainer = await Trainer.create(unet, {
      trainable: plan.trainable,
      alphasCumprod,
      predictionType: 'epsilon',
      seed: 3,
      ema: false,
      mixedPrecision: 'no',
      weightDecay: 0,
    });
    const before = await unet.stateDict();
    const c = conditional ? 4 : 3;
    for (let step = 0; step < 2; step++) {
      using pixels = Tensor.from(noise(2 * c * 16 * 16, step), [2, c, 16, 16]);
      using context = conditional ? Tensor.from(noise(2 * 5 * 32, step + 10), [2, 5, 32]) : undefined;
      await trainer.accumulate({ pixels, encoderHiddenStates: context, sampleIndices: [2 * step, 2 * step + 1], step, totalSamples: 2 });
      const r = await trainer.step(1e-3);
      expect(r.skipped).toBe(false);
    }
    const after = await unet.stateDict();
    const trainable = new Set(plan.trainable.map((p) => p.name));
    let changed = 0;
    let numel = 0;
    for (const [name, t] of before) {
      const same = Buffer.from(t.toArray().buffer).equals(Buffer.from(after.get(name)!.toArray().buffer));
      if (!trainable.has(name)) expect([name, 'frozen', same]).toEqual([name, 'frozen', true]);
      else if (!same) {
        changed++;
        numel += t.numel;
      }
    }
    expect(changed).toBe(plan.totals.trainableTensors);
    expect(numel).toBe(plan.totals.trainableNumel);
    expect(plan.totals.trainableTensors + plan.totals.frozenTensors).toBe(before.size);
    disposeStateDict(before);
    disposeStateDict(after);
  });
});
