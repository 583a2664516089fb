/**
 * The native training session over one U-Net and, optionally, a conditioning model (the text encoder)
 * that runs inside each step on the batches' token ids and trains in the same optimizer: micro-batches
 * accumulate gradients, `step(lr)` applies AdamW (clipping, EMA, loss scaling). Holds no policy: which
 * parameters train and at which learning rate come from the freeze plan, the learning rate per step from
 * the LR schedule.
 */
import { DisposedError, expected } from '../errors';
import type { CLIPTextModel } from '../models/clip-text';
import type { UNet } from '../models/unet';
import { toTensorMap } from '../models/native-model';
import { callAsync, loadNative } from '../native/load';
import { Tensor } from '../native/tensor';
import type { NativeProcessGroup, NativeTrainer, NativeTrainerConfig } from '../native/types';

export interface TrainableParameter {
  name: string;
  lrMultiplier: number;
  weightDecay: boolean;
  /** Only these rows (dim 0) train; the others stay bit-identical (textual inversion's new token embeddings). Default: all. */
  rows?: readonly number[];
}

/** The conditioning model's slots are named with this prefix among the trainer's parameters, its optimizer state and EMA. */
export const TEXT_ENCODER_PREFIX = 'text_encoder.';

export type TrainerOptions = Omit<NativeTrainerConfig, 'alphasCumprod' | 'trainable' | 'conditioningPrefix'> & {
  trainable: readonly TrainableParameter[];
  /** The noise scheduler's alphas_cumprod ([num_train_timesteps]). */
  alphasCumprod: Tensor;
};

export interface MicroBatch {
  pixels: Tensor;
  classLabels?: Tensor;
  encoderHiddenStates?: Tensor;
  /** [B, T] int64 token ids instead of encoderHiddenStates: the conditioning model encodes them inside the step. */
  inputIds?: Tensor;
  sampleIndices: readonly number[];
  step: number;
  totalSamples: number;
  /** Divides the loss sum instead of totalSamples (data-parallel runs: the step's global sample count ÷ world size). */
  lossDivisor?: number;
  /**
   * Each sample's weight in the loss sum (default 1 each): the loss is Σ wᵢ·lossᵢ ÷ (lossDivisor or
   * totalSamples). DreamBooth's class samples weigh priorLossWeight and are not counted in totalSamples.
   */
  lossWeights?: readonly number[];
}

export class Trainer {
  #native: NativeTrainer | undefined;
  readonly #unet: UNet;
  readonly #autocast: boolean;

  private constructor(native: NativeTrainer, unet: UNet, autocast: boolean) {
    this.#native = native;
    this.#unet = unet;
    this.#autocast = autocast;
  }

  /**
   * Freezes everything not in `options.trainable` (no gradients, bit-identical) and builds the optimizer.
   * With `conditioning`, batches may carry inputIds, which it encodes inside each step; its parameters are
   * trainable as `text_encoder.<name>` (TEXT_ENCODER_PREFIX).
   */
  static async create(unet: UNet, options: TrainerOptions, conditioning?: CLIPTextModel): Promise<Trainer> {
    if (!Array.isArray(options.trainable) || options.trainable.length === 0)
      throw expected('a non-empty list of trainable parameters', 'options.trainable', options.trainable);
    const native = loadNative();
    const config: NativeTrainerConfig = {
      ...options,
      trainable: options.trainable.map((t: TrainableParameter) => ({ ...t, rows: t.rows === undefined ? undefined : [...t.rows] })),
      alphasCumprod: options.alphasCumprod.native,
      conditioningPrefix: TEXT_ENCODER_PREFIX,
    };
    const handle = unet.native;
    const conditioningHandle = conditioning?.native;
    return new Trainer(await callAsync(() => native.NativeTrainer.create(handle, config, conditioningHandle)), unet, options.mixedPrecision !== 'no');
  }

  private live(): NativeTrainer {
    if (this.#native === undefined || this.#native.disposed) throw new DisposedError('Trainer');
    return this.#native;
  }

  /** Forward + backward of one micro-batch; gradients add up until step(). */
  async accumulate(batch: MicroBatch): Promise<{ lossSum: number; samples: number; finite: boolean }> {
    const native = this.live();
    const operation = this.#unet.checkStepFits('batch.pixels', batch.pixels, 'a training step', this.#autocast);
    return callAsync(
      () =>
        native.accumulate({
          pixels: batch.pixels.native,
          classLabels: batch.classLabels?.native,
          encoderHiddenStates: batch.encoderHiddenStates?.native,
          inputIds: batch.inputIds?.native,
          sampleIndices: [...batch.sampleIndices],
          step: batch.step,
          totalSamples: batch.totalSamples,
          ...(batch.lossDivisor === undefined ? {} : { lossDivisor: batch.lossDivisor }),
          ...(batch.lossWeights === undefined ? {} : { lossWeights: [...batch.lossWeights] }),
        }),
      operation,
    );
  }

  /** Clip, AdamW at learning rate `lr`, EMA; skipped (and reported) when the loss or gradients are not finite. */
  async step(lr: number): Promise<{ gradNorm: number; skipped: boolean; optimizerSteps: number; emaDecay: number; lossScale: number }> {
    const native = this.live();
    return callAsync(() => native.step(lr));
  }

  async validationLoss(batch: {
    pixels: Tensor;
    classLabels?: Tensor;
    encoderHiddenStates?: Tensor;
    inputIds?: Tensor;
    sampleIndices: readonly number[];
    seed: number;
    timesteps: readonly number[];
  }): Promise<number> {
    const native = this.live();
    return callAsync(() =>
      native.validationLoss({
        pixels: batch.pixels.native,
        classLabels: batch.classLabels?.native,
        encoderHiddenStates: batch.encoderHiddenStates?.native,
        inputIds: batch.inputIds?.native,
        sampleIndices: [...batch.sampleIndices],
        seed: batch.seed,
        timesteps: [...batch.timesteps],
      }),
    );
  }

  /**
   * AdamW's moments by name (exp_avg.<param>, exp_avg_sq.<param>): views of the live state, not copies (an SD 1.5
   * U-Net's are 6.9 GB), so read or save them before the next step changes them, as checkpoints do.
   */
  async optimizerState(): Promise<Map<string, Tensor>> {
    const native = this.live();
    return toTensorMap(await callAsync(() => native.optimizerState()));
  }

  async loadOptimizerState(state: ReadonlyMap<string, Tensor>, optimizerSteps: number): Promise<void> {
    const native = this.live();
    const entries = [...state];
    await callAsync(() =>
      native.loadOptimizerState(
        entries.map(([name]) => name),
        entries.map(([, t]) => t.native),
        optimizerSteps,
      ),
    );
  }

  async emaWeights(): Promise<Map<string, Tensor>> {
    const native = this.live();
    return toTensorMap(await callAsync(() => native.emaWeights()));
  }

  async loadEmaWeights(weights: ReadonlyMap<string, Tensor>, updates: number): Promise<void> {
    const native = this.live();
    const entries = [...weights];
    await callAsync(() =>
      native.loadEmaWeights(
        entries.map(([name]) => name),
        entries.map(([, t]) => t.native),
        updates,
      ),
    );
  }

  async counters(): Promise<{ optimizerSteps: number; emaUpdates: number; lossScale: number }> {
    const native = this.live();
    return callAsync(() => native.counters());
  }

  /** The fp16 loss scale (a resumed run continues with its checkpoint's). */
  async setLossScale(scale: number): Promise<void> {
    const native = this.live();
    return callAsync(() => native.setLossScale(scale));
  }

  /**
   * Data-parallel training (lib/distributed): copies rank 0's trainable and EMA weights to this process, then
   * averages every step's gradients over the group before clipping. null goes back to one process.
   */
  async setProcessGroup(group: { readonly native: NativeProcessGroup } | null): Promise<void> {
    const native = this.live();
    await callAsync(() => native.setProcessGroup(group ? group.native : null));
  }

  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
