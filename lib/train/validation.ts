/**
 * Held-out loss: the first validation.samples samples of the held-out data, in order, their inputs made
 * once through the run's hooks, measured at fixed timesteps and noise so that the numbers compare across
 * steps and runs. Rank 0 measures and records it (metrics.jsonl); the other ranks skip it.
 */
import type { Recipe } from '../config/recipe';
import { createDataset } from '../data/dataset';
import { DataLoader } from '../data/loader';
import { ConfigError } from '../errors';
import { TensorScope, type Hooks, type ModelInputs, type SampleBatch } from './hooks';
import type { MetricsLog } from './metrics';
import type { Trainer } from './trainer';

interface HeldOut {
  readonly inputs: ModelInputs;
  readonly indices: readonly number[];
}

export class Validation implements Disposable {
  readonly results: Array<{ step: number; loss: number }> = [];

  private constructor(
    private readonly heldOut: HeldOut | undefined,
    private readonly scope: TensorScope,
    private readonly settings: Recipe['validation'],
    private readonly record: { enabled: boolean; metrics: MetricsLog; log: (line: string) => void },
  ) {}

  /** Reads the held-out batch (none when validation.every is 0) and makes its inputs. */
  static async open(recipe: Recipe, hooks: Hooks, record: { enabled: boolean; metrics: MetricsLog; log: (line: string) => void }): Promise<Validation> {
    const batch = await readHeldOut(recipe, record.log);
    const scope = new TensorScope();
    if (batch === undefined) return new Validation(undefined, scope, recipe.validation, record);
    scope.own(batch.pixels);
    try {
      const inputs = await hooks.prepareValidation(batch, scope);
      return new Validation({ inputs, indices: batch.indices }, scope, recipe.validation, record);
    } catch (error) {
      scope[Symbol.dispose]();
      throw error;
    }
  }

  async run(trainer: Pick<Trainer, 'validationLoss'>, step: number): Promise<void> {
    if (this.heldOut === undefined || !this.record.enabled) return;
    const loss = await trainer.validationLoss({
      ...this.heldOut.inputs,
      sampleIndices: this.heldOut.indices,
      seed: this.settings.seed,
      timesteps: this.settings.timesteps,
    });
    this.results.push({ step, loss });
    await this.record.metrics.write({ step, validationLoss: loss });
    this.record.log(`step ${step}: held-out loss ${loss.toFixed(5)}`);
  }

  [Symbol.dispose](): void {
    this.scope[Symbol.dispose]();
  }
}

/** The first N samples of the held-out data, in order, fixed for the run; undefined when the run never validates. */
async function readHeldOut(recipe: Recipe, log: (line: string) => void): Promise<SampleBatch | undefined> {
  if (recipe.validation.every === 0) return undefined;
  const options = recipe.validation.data ?? { ...recipe.data, split: 'test' };
  if ((options.source ?? 'imagefolder') === 'imagefolder' && recipe.validation.data === undefined) {
    const v = recipe.validation;
    // A handful of one's own images often leaves none to hold out: the grids alone then show the run.
    if (v.prompts.length > 0 || v.classLabels.length > 0 || v.numImages !== undefined) {
      log('validation: no held-out loss (validation.data names no held-out image folder); validation grids only');
      return undefined;
    }
    throw new ConfigError('validation.data: required for an image folder (held-out images in another folder); built-in datasets use their test split');
  }
  // One batch of square center crops at data.resolution, whatever the training data's aspect-ratio buckets:
  // a batch holds one shape, and the held-out loss compares across runs with and without buckets.
  const dataset = await createDataset({ ...options, buckets: false, limit: recipe.validation.samples, onBadImage: 'skip' }, { onWarning: log });
  const loader = new DataLoader(dataset, {
    batchSize: Math.min(recipe.validation.samples, dataset.size),
    shuffle: false,
    applyTorchThreads: false,
    onWarning: log,
  });
  try {
    const batch = await loader.next();
    return { pixels: batch.pixels, rawPixels: batch.rawPixels, labels: batch.labels, captions: batch.captions, indices: batch.indices };
  } finally {
    await loader.close();
  }
}
