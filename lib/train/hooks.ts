/**
 * The pieces a fine-tuning run is made of plug into its loop through one interface, so that the loop
 * (lib/train/loop.ts) stays the same recipe whatever the run trains or conditions on. Each piece
 * implements the methods it needs; the loop calls every piece's, in the order finetune() lists them:
 * - what trains (lib/train/weights.ts: the U-Net's own weights or LoRA adapters) writes its weights into
 *   each checkpoint and into the output;
 * - conditioning (lib/train/class-labels.ts, lib/train/text-to-image.ts) turns a batch into the
 *   U-Net's inputs;
 * - the process group (lib/distributed/data-parallel.ts, which fits this interface as it is) sets the
 *   step's loss divisor and totals over the ranks, and when every rank stops.
 * - what a batch holds (lib/train/dreambooth.ts: captions, prior preservation's class samples) extends
 *   each batch before any hook turns it into inputs.
 * - what trains of the text encoder (lib/train/text-encoder-training.ts, textual-inversion.ts) writes its
 *   weights in saveCheckpoint and export; textual inversion also captions uncaptioned batches.
 * Aspect-ratio buckets are the loader's business and need no hook.
 */
import type { Batch } from '../data/loader';
import type { StepTotals } from '../distributed/data-parallel';
import type { Tensor } from '../native/tensor';
import type { Trainer } from './trainer';

/** What a hook reads of a batch: the loader's training batch, or the held-out batch. */
export type SampleBatch = Pick<Batch, 'pixels' | 'rawPixels' | 'labels' | 'captions' | 'indices'>;

/** A training micro-batch as extendBatch hooks pass it on. */
export interface TrainingBatch extends SampleBatch {
  /** The loader's epoch of the batch's samples. */
  readonly epoch: number;
  /** Each sample's weight in the loss sum (default 1 each); samples a hook appends are not in the step's sample count. */
  readonly lossWeights?: readonly number[];
}

/** A micro-batch ready for the trainer: the U-Net's inputs, the samples' random keys and loss weights. */
export interface StepInputs extends ModelInputs {
  readonly sampleIndices: readonly number[];
  readonly lossWeights?: readonly number[];
}

/** The U-Net's inputs for one batch, as the hooks build them up from the batch's pixels. */
export interface ModelInputs {
  /** What the U-Net denoises: pixels [N, C, H, W], or latents [N, 4, H/8, W/8] once a VAE encoded them. */
  readonly pixels: Tensor;
  /** Text-to-image: the captions' embeddings [N, 77, D]. */
  readonly encoderHiddenStates?: Tensor;
  /** Text-to-image with a training text encoder: the captions' token ids [N, 77], encoded inside the trainer's step. */
  readonly inputIds?: Tensor;
  /** Class-conditional U-Nets: int64 [N]. */
  readonly classLabels?: Tensor;
}

/** The tensors made for one batch's inputs, freed together once the batch is done. */
export class TensorScope implements Disposable {
  readonly #tensors: Tensor[] = [];

  own<T extends Tensor | undefined>(tensor: T): T {
    if (tensor !== undefined) this.#tensors.push(tensor);
    return tensor;
  }

  [Symbol.dispose](): void {
    for (const t of this.#tensors.splice(0)) t.dispose();
  }
}

/** One piece of a run. Every method is optional. */
export interface TrainingHooks {
  /** Once the trainer exists, before the first step (data-parallel: rank 0's weights to every rank). */
  attach?(trainer: Trainer): Promise<void>;
  /** Whether to stop before the next step; with no hook deciding, the signal alone decides. */
  shouldStop?(signal: AbortSignal | undefined): boolean;
  /**
   * Before any prepareBatch: the training micro-batch at `step` with samples added (their pixels, raw
   * pixels, captions, random keys — indices no loader sample has — and loss weights) or captions filled in.
   */
  extendBatch?(batch: TrainingBatch, step: number, scope: TensorScope): Promise<TrainingBatch>;
  /** Before any prepareValidation: the held-out batch with captions filled in (the same samples). */
  extendValidation?(batch: SampleBatch): Promise<SampleBatch>;
  /** A training micro-batch's inputs at `step`, from the previous hook's; tensors it makes go into `scope`. */
  prepareBatch?(batch: SampleBatch, inputs: ModelInputs, step: number, scope: TensorScope): Promise<ModelInputs>;
  /** The held-out batch's inputs, made once for the whole run (nothing drawn per step). */
  prepareValidation?(batch: SampleBatch, inputs: ModelInputs, scope: TensorScope): Promise<ModelInputs>;
  /** What the step's loss sum is divided by, from the divisor so far (first the step's sample count). */
  lossDivisor?(divisor: number): Promise<number>;
  /** The step's loss sum, sample count and stop request as the run reports them (data-parallel: over every rank). */
  stepTotals?(totals: StepTotals): Promise<StepTotals>;
  /** Writes its own files into the checkpoint folder being written (rank 0). */
  saveCheckpoint?(dir: string): Promise<void>;
  /** The loop ended, normally or by an error (the data loader is closed). */
  afterTraining?(): Promise<void>;
  /** Every step is done on every process, before the export. */
  finish?(): Promise<void>;
  /**
   * Writes its own part of the final model into `output` (rank 0, completed runs); returns the pipeline
   * components it wrote (e.g. ["text_encoder"]), which are then not copied from the base pipeline.
   */
  export?(output: string): Promise<readonly string[]>;
}

/** A run's hooks, called in order. */
export class Hooks {
  readonly #list: readonly TrainingHooks[];

  constructor(list: ReadonlyArray<TrainingHooks | undefined>) {
    this.#list = list.filter((h): h is TrainingHooks => h !== undefined);
  }

  async attach(trainer: Trainer): Promise<void> {
    for (const h of this.#list) await h.attach?.(trainer);
  }

  shouldStop(signal: AbortSignal | undefined): boolean {
    // A process group decides for every rank at once: a rank that read the signal alone would stop a step early.
    const votes = this.#list.flatMap((h) => (h.shouldStop === undefined ? [] : [h.shouldStop(signal)]));
    return votes.length === 0 ? (signal?.aborted ?? false) : votes.some(Boolean);
  }

  async prepareBatch(loaded: TrainingBatch, step: number, scope: TensorScope): Promise<StepInputs> {
    let batch = loaded;
    for (const h of this.#list) if (h.extendBatch) batch = await h.extendBatch(batch, step, scope);
    let inputs: ModelInputs = { pixels: batch.pixels };
    for (const h of this.#list) if (h.prepareBatch) inputs = await h.prepareBatch(batch, inputs, step, scope);
    return { ...inputs, sampleIndices: batch.indices, ...(batch.lossWeights === undefined ? {} : { lossWeights: batch.lossWeights }) };
  }

  async prepareValidation(heldOut: SampleBatch, scope: TensorScope): Promise<ModelInputs> {
    let batch = heldOut;
    for (const h of this.#list) if (h.extendValidation) batch = await h.extendValidation(batch);
    let inputs: ModelInputs = { pixels: batch.pixels };
    for (const h of this.#list) if (h.prepareValidation) inputs = await h.prepareValidation(batch, inputs, scope);
    return inputs;
  }

  /** undefined when no hook sets one: the trainer then divides by the step's sample count. */
  async lossDivisor(samples: number): Promise<number | undefined> {
    let divisor: number | undefined;
    for (const h of this.#list) if (h.lossDivisor) divisor = await h.lossDivisor(divisor ?? samples);
    return divisor;
  }

  async stepTotals(local: StepTotals): Promise<StepTotals> {
    let totals = local;
    for (const h of this.#list) if (h.stepTotals) totals = await h.stepTotals(totals);
    return totals;
  }

  async saveCheckpoint(dir: string): Promise<void> {
    for (const h of this.#list) await h.saveCheckpoint?.(dir);
  }

  async afterTraining(): Promise<void> {
    for (const h of this.#list) await h.afterTraining?.();
  }

  async finish(): Promise<void> {
    for (const h of this.#list) await h.finish?.();
  }

  /** Every hook's part of the final model; the pipeline components they wrote. */
  async export(output: string): Promise<Set<string>> {
    const written = new Set<string>();
    for (const h of this.#list) for (const c of (await h.export?.(output)) ?? []) written.add(c);
    return written;
  }
}
