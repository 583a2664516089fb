/**
 * Held-out loss: the first validation.samples samples of the held-out data, in order, their inputs made
 * once through the run's hooks, measured at fixed timesteps and noise so that the numbers compare across
 * steps and runs. With validation.wrongCaptions (text-to-image) the same samples are measured a second
 * time with each caption swapped for one of another class's, same noise and timesteps: the gap is how
 * much the captions steer the model. Rank 0 measures and records it (metrics.jsonl); the other ranks skip it.
 */
import type { Recipe } from '../config/recipe';
import { createDataset } from '../data/dataset';
import { DataLoader } from '../data/loader';
import { mismatchedCaptions } from '../data/captions';
import { ConfigError } from '../errors';
import { TensorScope, type Hooks, type ModelInputs, type SampleBatch } from './hooks';
import type { MetricsLog } from './metrics';
import type { Trainer } from './trainer';

interface HeldOut {
  readonly inputs: ModelInputs;
  /** The same samples with each caption swapped for another class's (validation.wrongCaptions). */
  readonly wrongCaptionInputs: ModelInputs | undefined;
  readonly indices: readonly number[];
}

/** One validation's numbers. */
export interface HeldOutLoss {
  step: number;
  loss: number;
  /** validation.wrongCaptions: the loss of the same samples, noise and timesteps with another class's captions. */
  wrongCaptionLoss?: number;
}

export class Validation implements Disposable {
  readonly results: HeldOutLoss[] = [];

  private constructor(
    private readonly heldOut: HeldOut | undefined,
    private readonly scope: TensorScope,
    private readonly settings: Recipe['validation'],
    private readonly record: { enabled: boolean; metrics: MetricsLog; log: (line: string) => void },
  ) {}

  /** Reads the held-out batch (none when validation.every is 0) and makes its inputs. */
  static async open(recipe: Recipe, hooks: Hooks, record: { enabled: boolean; metrics: MetricsLog; log: (line: string) => void }): Promise<Validation> {
    const heldOut = await readHeldOut(recipe, record.log);
    const scope = new TensorScope();
    if (heldOut === undefined) {
      if (recipe.validation.wrongCaptions)
        throw new ConfigError(
          'validation.wrongCaptions: expected held-out images (validation.data: an image folder of captioned held-out images) but the run has none',
        );
      return new Validation(undefined, scope, recipe.validation, record);
    }
    const { batch, candidates } = heldOut;
    scope.own(batch.pixels);
    try {
      const inputs = await hooks.prepareValidation(batch, scope);
      let wrongCaptionInputs: ModelInputs | undefined;
      if (recipe.validation.wrongCaptions) {
        const wrong = wrongCaptionsOf(batch, candidates, inputs);
        wrongCaptionInputs = await hooks.prepareValidation({ ...batch, captions: wrong }, scope);
      }
      return new Validation({ inputs, wrongCaptionInputs, indices: batch.indices }, scope, recipe.validation, record);
    } catch (error) {
      scope[Symbol.dispose]();
      throw error;
    }
  }

  async run(trainer: Pick<Trainer, 'validationLoss'>, step: number): Promise<void> {
    if (this.heldOut === undefined || !this.record.enabled) return;
    const at = { sampleIndices: this.heldOut.indices, seed: this.settings.seed, timesteps: this.settings.timesteps };
    const loss = await trainer.validationLoss({ ...this.heldOut.inputs, ...at });
    const wrong = this.heldOut.wrongCaptionInputs;
    if (wrong === undefined) {
      this.results.push({ step, loss });
      await this.record.metrics.write({ step, validationLoss: loss });
      this.record.log(`step ${step}: held-out loss ${loss.toFixed(5)}`);
      return;
    }
    const wrongCaptionLoss = await trainer.validationLoss({ ...wrong, ...at });
    this.results.push({ step, loss, wrongCaptionLoss });
    await this.record.metrics.write({ step, validationLoss: loss, validationLossWrongCaptions: wrongCaptionLoss });
    this.record.log(`step ${step}: held-out loss ${loss.toFixed(5)} (with another class's captions ${wrongCaptionLoss.toFixed(5)})`);
  }

  [Symbol.dispose](): void {
    this.scope[Symbol.dispose]();
  }
}

/** The held-out captions swapped for other classes' (validation.wrongCaptions), refused where there is nothing to swap or nothing reads them. */
function wrongCaptionsOf(batch: SampleBatch, candidates: ReadonlyArray<readonly string[] | null>, inputs: ModelInputs): string[] {
  if (inputs.encoderHiddenStates === undefined && inputs.inputIds === undefined)
    throw new ConfigError(
      'validation.wrongCaptions: expected a text-to-image run (a text-conditioned U-Net in a pipeline folder) but this U-Net takes no captions',
    );
  if (batch.captions === null)
    throw new ConfigError('validation.wrongCaptions: expected captioned held-out data (metadata.jsonl or caption files) but validation.data has no captions');
  const wrong = mismatchedCaptions(batch.captions, candidates);
  if (wrong === undefined)
    throw new ConfigError(
      `validation.wrongCaptions: expected held-out samples of two caption sets or more (classes) but all ${batch.captions.length} share one; raise validation.samples or hold out more classes`,
    );
  return wrong;
}

/**
 * The first N samples of the held-out data, in order, fixed for the run, with each sample's caption
 * candidates; undefined when the run never validates.
 */
async function readHeldOut(
  recipe: Recipe,
  log: (line: string) => void,
): Promise<{ batch: SampleBatch; candidates: Array<readonly string[] | null> } | undefined> {
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
    return {
      batch: { pixels: batch.pixels, rawPixels: batch.rawPixels, labels: batch.labels, captions: batch.captions, indices: batch.indices },
      candidates: batch.indices.map((i) => dataset.item(i).captions),
    };
  } finally {
    await loader.close();
  }
}
