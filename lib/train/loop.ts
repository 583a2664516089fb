/**
 * The training loop: for each optimizer step, get the step's micro-batches, forward and backward each
 * (gradients add up), clip and step AdamW at the scheduled learning rate, log, and validate and write a
 * checkpoint when due. What a run conditions on, trains or shares with other processes comes in through
 * its hooks (lib/train/hooks.ts); rank 0's logging, validation and checkpoints through the callbacks,
 * which are no-ops on the other ranks.
 */
import { performance } from 'perf_hooks';
import type { Batch } from '../data/loader';
import { TrainingError } from '../errors';
import { TensorScope, type Hooks } from './hooks';
import type { Trainer } from './trainer';

export interface FinetuneProgress {
  /** Optimizer steps done. */
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  gradNorm: number;
  imagesPerSecond: number;
  /** Optimizer steps per second over this process's steps (a resumed run's earlier steps excluded). */
  stepsPerSecond: number;
  etaSeconds: number;
  skipped: boolean;
}

/** Where a run stands: optimizer steps done (a skipped step counts) and how many of them were skipped. */
export interface RunPosition {
  step: number;
  skippedSteps: number;
}

export interface LoopOptions {
  readonly trainer: Pick<Trainer, 'accumulate' | 'step'>;
  readonly loader: { next(): Promise<Batch> };
  readonly hooks: Hooks;
  /** 0 and no skipped steps for a fresh run; the checkpoint's position after resume. */
  readonly start: RunPosition;
  readonly steps: number;
  readonly gradientAccumulation: number;
  /** Non-finite steps in a row that stop the run. */
  readonly maxSkippedSteps: number;
  readonly lrAt: (step: number) => number;
  /** Steps between validations and between checkpoints (0: only at the end). */
  readonly validateEvery: number;
  readonly checkpointEvery: number;
  /** Stops at the next step boundary, after a checkpoint. */
  readonly signal?: AbortSignal;
  report(progress: FinetuneProgress): Promise<void>;
  validate(step: number): Promise<void>;
  checkpoint(at: RunPosition): Promise<void>;
}

export interface LoopResult extends RunPosition {
  status: 'completed' | 'aborted';
  /** The last step's mean loss over its samples (NaN when no step ran). */
  lastLoss: number;
}

interface StepResult {
  lossSum: number;
  samples: number;
  lr: number;
  gradNorm: number;
  skipped: boolean;
}

export async function trainLoop(o: LoopOptions): Promise<LoopResult> {
  const at: RunPosition = { ...o.start };
  const pace = new Pace(at.step);
  let status: LoopResult['status'] = 'completed';
  let lastLoss = NaN;
  let consecutiveSkips = 0;
  if (at.step === 0) await o.validate(at.step);
  while (at.step < o.steps) {
    if (o.hooks.shouldStop(o.signal)) {
      status = 'aborted';
      break;
    }
    const r = await trainStep(o, at.step);
    at.step += 1; // a skipped step still consumed its data and counts, so the run ends on time
    if (r.skipped) at.skippedSteps += 1;
    consecutiveSkips = r.skipped ? consecutiveSkips + 1 : 0;
    lastLoss = r.lossSum / r.samples;
    await o.report(pace.progress(at.step, o.steps, lastLoss, r));
    if (consecutiveSkips >= o.maxSkippedSteps) {
      throw new TrainingError(
        `training stopped: ${consecutiveSkips} steps in a row had a non-finite loss or gradients (last at step ${at.step}); the last checkpoint is intact. Lower train.lr, enable train.maxGradNorm, or check the data`,
      );
    }
    if (due(o.validateEvery, at.step, o.steps)) await o.validate(at.step);
    if (due(o.checkpointEvery, at.step, o.steps)) await o.checkpoint({ ...at });
  }
  if (status === 'completed') await o.validate(at.step);
  await o.checkpoint({ ...at });
  return { status, ...at, lastLoss };
}

/** Every `every` steps, except at the end (the loop validates and checkpoints there anyway). */
function due(every: number, step: number, steps: number): boolean {
  return every > 0 && step % every === 0 && step < steps;
}

/** One optimizer step: its micro-batches forward and backward, then clip and AdamW at the step's learning rate. */
async function trainStep(o: LoopOptions, step: number): Promise<StepResult> {
  const batches: Batch[] = [];
  try {
    // Fetch the step's micro-batches first: the loss is divided by the step's true sample count.
    for (let a = 0; a < o.gradientAccumulation; a++) batches.push(await o.loader.next());
    const totalSamples = batches.reduce((n, b) => n + b.indices.length, 0);
    // Data-parallel: ranks may hold different sample counts (an epoch's short last batch); dividing by the
    // global count ÷ ranks makes the averaged gradient the mean over every sample of the step.
    const lossDivisor = await o.hooks.lossDivisor(totalSamples);
    let lossSum = 0;
    for (const batch of batches) lossSum += await forwardBackward(o, batch, { step, totalSamples, lossDivisor });
    const lr = o.lrAt(step);
    const r = await o.trainer.step(lr);
    const totals = await o.hooks.stepTotals({ lossSum, samples: totalSamples, stop: o.signal?.aborted ?? false });
    return { lossSum: totals.lossSum, samples: totals.samples, lr, gradNorm: r.gradNorm, skipped: r.skipped };
  } finally {
    for (const b of batches) b.dispose();
  }
}

/** One micro-batch through the hooks to the U-Net's inputs, then forward and backward; returns its loss sum. */
async function forwardBackward(o: LoopOptions, batch: Batch, at: { step: number; totalSamples: number; lossDivisor: number | undefined }): Promise<number> {
  using scope = new TensorScope();
  const inputs = await o.hooks.prepareBatch(batch, at.step, scope);
  const r = await o.trainer.accumulate({ ...inputs, ...at });
  return r.lossSum;
}

/** Throughput and time left, over the steps this process ran (a resumed run's earlier steps excluded). */
class Pace {
  readonly #started = performance.now();
  readonly #startStep: number;
  #images = 0;

  constructor(startStep: number) {
    this.#startStep = startStep;
  }

  progress(step: number, totalSteps: number, loss: number, r: StepResult): FinetuneProgress {
    this.#images += r.samples;
    const elapsed = (performance.now() - this.#started) / 1000;
    const imagesPerSecond = this.#images / Math.max(elapsed, 1e-9);
    const stepsPerSecond = (step - this.#startStep) / Math.max(elapsed, 1e-9);
    return {
      step,
      totalSteps,
      loss,
      lr: r.lr,
      gradNorm: r.gradNorm,
      imagesPerSecond,
      stepsPerSecond,
      etaSeconds: (totalSteps - step) / Math.max(stepsPerSecond, 1e-9),
      skipped: r.skipped,
    };
  }
}
