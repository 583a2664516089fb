// The training loop over a fake trainer and loader (no addon): the step's micro-batches, the order of
// validation and checkpoints, stopping (signal, process group, divergence) and what hooks plug in.
import type { Batch } from '../../../lib/data/loader';
import { DifftuneError, TrainingError } from '../../../lib/errors';
import type { Tensor } from '../../../lib/native/tensor';
import { Hooks, type TrainingHooks } from '../../../lib/train/hooks';
import { trainLoop, type LoopOptions, type RunPosition } from '../../../lib/train/loop';
import type { MicroBatch } from '../../../lib/train/trainer';

function fakeTensor(): Tensor & { disposed: boolean } {
  const t = { disposed: false, dispose: () => void (t.disposed = true) };
  return t as Tensor & { disposed: boolean };
}

interface Fake {
  options: LoopOptions;
  events: string[];
  microBatches: MicroBatch[];
  batches: Array<{ disposed: boolean }>;
}

/** A loader of batches of `batchSize` samples and a trainer whose steps are skipped when `skip(step)`. */
function fake(overrides: Partial<LoopOptions> & { batchSize?: number; skip?: (step: number) => boolean } = {}): Fake {
  const events: string[] = [];
  const microBatches: MicroBatch[] = [];
  const batches: Array<{ disposed: boolean }> = [];
  let next = 0;
  let steps = 0;
  const loader = {
    next: async (): Promise<Batch> => {
      const n = overrides.batchSize ?? 2;
      const indices = Array.from({ length: n }, () => next++);
      const state = { disposed: false };
      batches.push(state);
      return {
        epoch: 0,
        batch: 0,
        step: 0,
        indices,
        ids: indices.map(String),
        captions: null,
        labels: null,
        skipped: [],
        pixels: fakeTensor(),
        rawPixels: new Uint8Array(0),
        dispose: () => void (state.disposed = true),
      };
    },
  };
  const trainer = {
    accumulate: async (batch: MicroBatch) => {
      microBatches.push(batch);
      return { lossSum: batch.sampleIndices.length * 0.5, samples: batch.sampleIndices.length, finite: true };
    },
    step: async (lr: number) => {
      const step = steps++;
      events.push(`step ${step} lr ${lr}`);
      return { gradNorm: 1, skipped: overrides.skip?.(step) ?? false, optimizerSteps: steps, emaDecay: 0, lossScale: 1 };
    },
  };
  const options: LoopOptions = {
    trainer,
    loader,
    hooks: new Hooks([]),
    start: { step: 0, skippedSteps: 0 },
    steps: 4,
    gradientAccumulation: 1,
    maxSkippedSteps: 10,
    lrAt: (step) => 0.1 * (step + 1),
    validateEvery: 0,
    checkpointEvery: 0,
    report: async (p) => void events.push(`report ${p.step} loss ${p.loss}`),
    validate: async (step) => void events.push(`validate ${step}`),
    checkpoint: async (at: RunPosition) => void events.push(`checkpoint ${at.step} skipped ${at.skippedSteps}`),
    ...overrides,
  };
  return { options, events, microBatches, batches };
}

test('a run: validation at 0, every N and at the end; checkpoints every N and at the end; each step at its learning rate', async () => {
  const f = fake({ validateEvery: 2, checkpointEvery: 3, steps: 4 });
  const result = await trainLoop(f.options);
  expect(result).toEqual({ status: 'completed', step: 4, skippedSteps: 0, lastLoss: 0.5 });
  expect(f.events).toEqual([
    'validate 0',
    'step 0 lr 0.1',
    'report 1 loss 0.5',
    'step 1 lr 0.2',
    'report 2 loss 0.5',
    'validate 2',
    'step 2 lr 0.30000000000000004',
    'report 3 loss 0.5',
    'checkpoint 3 skipped 0',
    'step 3 lr 0.4',
    'report 4 loss 0.5',
    'validate 4',
    'checkpoint 4 skipped 0',
  ]);
  expect(f.batches.every((b) => b.disposed)).toBe(true);
});

test('gradient accumulation: every micro-batch of a step knows the step and its total sample count', async () => {
  const f = fake({ gradientAccumulation: 3, batchSize: 2, steps: 2 });
  await trainLoop(f.options);
  expect(f.microBatches.map((b) => [b.step, b.totalSamples, b.sampleIndices])).toEqual([
    [0, 6, [0, 1]],
    [0, 6, [2, 3]],
    [0, 6, [4, 5]],
    [1, 6, [6, 7]],
    [1, 6, [8, 9]],
    [1, 6, [10, 11]],
  ]);
  // No hook sets a divisor: the trainer divides by totalSamples.
  expect(f.microBatches.every((b) => b.lossDivisor === undefined)).toBe(true);
});

test('a resumed run continues from its position and does not validate at the start', async () => {
  const f = fake({ start: { step: 3, skippedSteps: 1 }, steps: 4 });
  const result = await trainLoop(f.options);
  expect(result).toMatchObject({ status: 'completed', step: 4, skippedSteps: 1 });
  expect(f.events).toEqual(['step 0 lr 0.4', 'report 4 loss 0.5', 'validate 4', 'checkpoint 4 skipped 1']);
});

test('a diverging run stops with a TrainingError (ERR_TRAINING, not a native error) and writes no checkpoint', async () => {
  const f = fake({ steps: 40, maxSkippedSteps: 2, skip: (step) => step >= 1 });
  const error = await trainLoop(f.options).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(TrainingError);
  expect((error as DifftuneError).code).toBe('ERR_TRAINING');
  expect((error as Error).message).toMatch(/2 steps in a row had a non-finite loss or gradients \(last at step 3\)/);
  expect(f.events.filter((e) => e.startsWith('checkpoint'))).toEqual([]);
  expect(f.batches.every((b) => b.disposed)).toBe(true);
});

test('the signal stops the run at a step boundary with a checkpoint and no final validation', async () => {
  const controller = new AbortController();
  const f = fake({ steps: 10, signal: controller.signal });
  f.options = {
    ...f.options,
    report: async (p) => {
      if (p.step === 2) controller.abort();
    },
  };
  const result = await trainLoop(f.options);
  expect(result).toMatchObject({ status: 'aborted', step: 2 });
  expect(f.events.filter((e) => !e.startsWith('step'))).toEqual(['validate 0', 'checkpoint 2 skipped 0']);
});

test('a hook that decides stopping (a process group) overrides the signal; its divisor and totals reach the trainer and the loss', async () => {
  const controller = new AbortController();
  controller.abort();
  const group: TrainingHooks = {
    shouldStop: () => false,
    lossDivisor: async (samples) => samples * 2,
    stepTotals: async (t) => ({ lossSum: t.lossSum * 3, samples: t.samples * 2, stop: t.stop }),
  };
  const f = fake({ steps: 2, signal: controller.signal, hooks: new Hooks([group]) });
  const result = await trainLoop(f.options);
  expect(result).toMatchObject({ status: 'completed', step: 2, lastLoss: 0.75 });
  expect(f.microBatches.map((b) => b.lossDivisor)).toEqual([4, 4]);
});

test('prepareBatch hooks chain in order and their tensors are freed after each micro-batch', async () => {
  const made: Array<Tensor & { disposed: boolean }> = [];
  const latents: TrainingHooks = {
    prepareBatch: async (_batch, inputs, _step, scope) => {
      const t = scope.own(fakeTensor());
      made.push(t);
      return { ...inputs, pixels: t };
    },
  };
  const context: TrainingHooks = {
    prepareBatch: async (_batch, inputs, step, scope) => {
      expect(made).toContain(inputs.pixels);
      expect(step).toBeLessThan(2);
      return { ...inputs, encoderHiddenStates: scope.own(fakeTensor()) };
    },
  };
  const f = fake({ steps: 2, hooks: new Hooks([latents, undefined, context]) });
  await trainLoop(f.options);
  expect(f.microBatches.map((b) => b.pixels)).toEqual(made);
  expect(f.microBatches.every((b) => b.encoderHiddenStates !== undefined)).toBe(true);
  expect(made.every((t) => t.disposed)).toBe(true);
});

test('extendBatch hooks run before every prepareBatch: the samples they append, their keys and loss weights reach the trainer, the step counts only the loaded ones', async () => {
  const appended = fakeTensor();
  const extend: TrainingHooks = {
    extendBatch: async (batch, _step, scope) => ({
      ...batch,
      pixels: scope.own(appended),
      captions: [...batch.indices.map(() => 'instance'), ...batch.indices.map(() => 'class')],
      indices: [...batch.indices, ...batch.indices.map((i) => 1000 + i)],
      lossWeights: [...batch.indices.map(() => 1), ...batch.indices.map(() => 0.5)],
    }),
  };
  const seen: Array<readonly string[] | null> = [];
  const text: TrainingHooks = {
    prepareBatch: async (batch, inputs) => {
      seen.push(batch.captions);
      return inputs;
    },
  };
  // Listed after the hook that reads the batch: extending happens first all the same.
  const f = fake({ steps: 1, gradientAccumulation: 2, batchSize: 2, hooks: new Hooks([text, extend]) });
  await trainLoop(f.options);
  expect(seen).toEqual([
    ['instance', 'instance', 'class', 'class'],
    ['instance', 'instance', 'class', 'class'],
  ]);
  expect(f.microBatches.map((b) => [b.totalSamples, b.sampleIndices, b.lossWeights, b.pixels === appended])).toEqual([
    [4, [0, 1, 1000, 1001], [1, 1, 0.5, 0.5], true],
    [4, [2, 3, 1002, 1003], [1, 1, 0.5, 0.5], true],
  ]);
  expect(appended.disposed).toBe(true);
});
