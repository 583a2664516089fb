/**
 * Training an AutoencoderKL with difftune alone (the VAE of a latent pipeline pretrained from scratch):
 * `trainVae(vae, { images, heldOut, steps, ... })` reads batches from a dataset (lib/data, as fine-tuning
 * does), and each step runs natively on the compute thread (native/train/vae_trainer.h): encode, a
 * reparameterised draw from the diagonal Gaussian posterior, decode; loss = reconstruction (MSE or L1,
 * summed over each image's pixels) + klWeight · KL(posterior ‖ N(0, I)) (summed over its latents), both
 * averaged over the batch as diffusers' train_autoencoderkl.py and ldm do; backward, clipping, AdamW.
 *
 * It then measures the held-out images and gives `scalingFactor` = 1 / std of posterior draws of their
 * latents — how Stable Diffusion's 0.18215 was chosen — for the caller to write into vae/config.json
 * (saveTrainedVae does both), so that a U-Net trains on latents of unit variance.
 */
import { DisposedError, expected, InvalidArgumentError } from '../errors';
import type { LrScheduleInput } from '../config/lr-schedule';
import { Dataset } from '../data/dataset';
import { DataLoader, type Batch } from '../data/loader';
import { saveModelFolder } from '../models/model-folder';
import { toTensorMap } from '../models/native-model';
import { AutoencoderKL, VAE_WEIGHTS } from '../models/vae';
import { callAsync, loadNative } from '../native/load';
import type { Tensor } from '../native/tensor';
import type { NativeVaeBatch, NativeVaeEvaluation, NativeVaeTrainer, NativeVaeTrainerConfig } from '../native/types';
import { makeLrSchedule } from './lr-schedule';

export type VaeReconstructionLoss = 'mse' | 'l1';

/** diffusers' train_autoencoderkl.py kl_scale default (ldm's kl_weight for its f8 KL VAEs). */
export const DEFAULT_KL_WEIGHT = 1e-6;

export interface VaeTrainerOptions {
  /** Per-element reconstruction loss (default "mse"). */
  reconstructionLoss?: VaeReconstructionLoss;
  /** Weight of the KL term (default DEFAULT_KL_WEIGHT). */
  klWeight?: number;
  /** Seeds every posterior draw: (seed, step, sample index) gives an image's noise. */
  seed?: number;
  /** AdamW (torch's defaults but weight decay 1e-2, as diffusers' scripts). */
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Gradient clipping to this total norm (default 1.0); 0: none. */
  maxGradNorm?: number;
}

/** One batch for the native trainer: images [B, in_channels, H, W] in [-1, 1], each image's global index, the step. */
export interface VaeBatch {
  images: Tensor;
  sampleIndices: readonly number[];
  step: number;
}

/** Each a mean over the batch of per-image sums: loss = reconstruction + klWeight · kl. */
export interface VaeLossParts {
  loss: number;
  reconstruction: number;
  kl: number;
  finite: boolean;
}

/** What the VAE makes of a set of held-out images (posterior means decoded; latents drawn from the posterior). */
export interface VaeMeasure {
  images: number;
  /** The reconstruction loss of decode(mean) per pixel element (MSE or L1 as trained), in [-1, 1] pixel units. */
  reconstruction: number;
  /** KL(posterior ‖ N(0, I)) per image. */
  kl: number;
  /** Mean and standard deviation over every element of posterior draws of the latents. */
  latentMean: number;
  latentStd: number;
}

/** The native training session over one AutoencoderKL: every parameter trains. */
export class VaeTrainer {
  #native: NativeVaeTrainer | undefined;

  private constructor(native: NativeVaeTrainer) {
    this.#native = native;
  }

  static async create(vae: AutoencoderKL, options: VaeTrainerOptions = {}): Promise<VaeTrainer> {
    if (!(vae instanceof AutoencoderKL)) throw expected('an AutoencoderKL', 'vae', vae);
    const config = vaeTrainerConfig(options);
    const native = loadNative();
    const handle = vae.native;
    return new VaeTrainer(await callAsync(() => native.NativeVaeTrainer.create(handle, config)));
  }

  private live(): NativeVaeTrainer {
    if (this.#native === undefined || this.#native.disposed) throw new DisposedError('VaeTrainer');
    return this.#native;
  }

  /** Forward, backward, clipping and AdamW at `lr`; skipped (no update) when the loss or gradients are not finite. */
  async step(batch: VaeBatch, lr: number): Promise<VaeLossParts & { gradNorm: number; skipped: boolean; optimizerSteps: number }> {
    const native = this.live();
    return callAsync(() => native.step(nativeBatch(batch), lr));
  }

  /** The step's loss and every parameter's gradient (the same noise as step), without an update. */
  async gradients(batch: VaeBatch): Promise<VaeLossParts & { gradParams: Map<string, Tensor> }> {
    const native = this.live();
    const { gradParams, ...loss } = await callAsync(() => native.gradients(nativeBatch(batch)));
    return { ...loss, gradParams: toTensorMap(gradParams) };
  }

  /** Sums over the batch, without autograd: see VaeMeasure. */
  async evaluate(batch: VaeBatch): Promise<NativeVaeEvaluation> {
    const native = this.live();
    return callAsync(() => native.evaluate(nativeBatch(batch)));
  }

  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

function nativeBatch(batch: VaeBatch): NativeVaeBatch {
  if (batch === null || typeof batch !== 'object') throw expected('a batch { images, sampleIndices, step }', 'batch', batch);
  return { images: batch.images.native, sampleIndices: [...batch.sampleIndices], step: batch.step };
}

function finiteNumber(value: unknown, param: string, min: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) throw expected(`a finite number ≥ ${min}`, param, value);
  return value;
}

function integer(value: unknown, param: string, min: number, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (!Number.isSafeInteger(value) || (value as number) < min) throw expected(`an integer ≥ ${min}`, param, value);
  return value as number;
}

function vaeTrainerConfig(options: VaeTrainerOptions, where = 'options'): NativeVaeTrainerConfig {
  if (options === null || typeof options !== 'object') throw expected('an options object', where, options);
  const loss = options.reconstructionLoss ?? 'mse';
  if (loss !== 'mse' && loss !== 'l1') throw expected('"mse" or "l1"', `${where}.reconstructionLoss`, loss);
  return {
    reconstructionLoss: loss,
    klWeight: finiteNumber(options.klWeight, `${where}.klWeight`, 0, DEFAULT_KL_WEIGHT),
    beta1: finiteNumber(options.beta1, `${where}.beta1`, 0, 0.9),
    beta2: finiteNumber(options.beta2, `${where}.beta2`, 0, 0.999),
    eps: finiteNumber(options.eps, `${where}.eps`, 0, 1e-8),
    weightDecay: finiteNumber(options.weightDecay, `${where}.weightDecay`, 0, 1e-2),
    maxGradNorm: finiteNumber(options.maxGradNorm, `${where}.maxGradNorm`, 0, 1),
    seed: integer(options.seed, `${where}.seed`, 0, 0),
  };
}

export interface VaeStepRecord extends VaeLossParts {
  /** 0-based optimizer step. */
  step: number;
  lr: number;
  gradNorm: number;
  skipped: boolean;
  /** Wall-clock seconds since training began, at the end of this step. */
  seconds: number;
}

export interface TrainVaeOptions extends VaeTrainerOptions {
  /** Training images (createDataset): the VAE's in_channels, sides multiples of its scale factor; read in a seeded shuffled order, epoch after epoch. */
  images: Dataset;
  /** Held-out images (createDataset), read once in order: measured before and after training; scalingFactor comes from them. */
  heldOut: Dataset;
  /** Optimizer steps (0: only the measures). */
  steps: number;
  batchSize: number;
  /** Base learning rate. */
  lr: number;
  /** diffusers' get_scheduler schedule over `steps` (default constant). */
  lrSchedule?: LrScheduleInput;
  /** Held-out images per native call (default batchSize). */
  heldOutBatchSize?: number;
  /** Progress lines (default: none); every `logEvery` steps (default steps / 20). */
  log?: (line: string) => void;
  logEvery?: number;
  /** Called after every step, awaited before the next. */
  onStep?: (record: VaeStepRecord) => void | Promise<void>;
  /** Stops after the step in flight (the result says how many ran). */
  signal?: AbortSignal;
}

export interface TrainVaeResult {
  /** One record per step that ran. */
  losses: VaeStepRecord[];
  /** Steps that ran (fewer than asked when `signal` stopped the run). */
  steps: number;
  /** Steps skipped for a non-finite loss or gradient. */
  skippedSteps: number;
  /** Held-out reconstruction per pixel element (see VaeMeasure) after training, and before it. */
  heldOutReconstruction: number;
  initialHeldOutReconstruction: number;
  /** The held-out measures after training, and before it. */
  heldOut: VaeMeasure;
  initialHeldOut: VaeMeasure;
  /** std of posterior draws of the held-out latents, and scalingFactor = 1 / latentStd (the value for vae/config.json). */
  latentStd: number;
  scalingFactor: number;
  /** Wall-clock seconds of the training steps. */
  seconds: number;
}

/** The held-out images read once, in order, as batches of tensors. */
async function readHeldOut(dataset: Dataset, batchSize: number, log: (line: string) => void): Promise<Batch[]> {
  const loader = new DataLoader(dataset, { batchSize, shuffle: false, dropLast: false, onWarning: log, applyTorchThreads: false });
  const batches: Batch[] = [];
  try {
    for (let i = 0; i < loader.batchesPerEpoch; i++) batches.push(await loader.next());
  } catch (error) {
    for (const b of batches) b.dispose();
    throw error;
  } finally {
    await loader.close();
  }
  return batches;
}

/** A held-out set's measures: each batch's sums added up. */
async function measure(trainer: VaeTrainer, batches: readonly Batch[]): Promise<VaeMeasure> {
  const total = { reconstructionSum: 0, klSum: 0, latentSum: 0, latentSquareSum: 0, images: 0, pixelElements: 0, latentElements: 0 };
  for (const b of batches) {
    const e = await trainer.evaluate({ images: b.pixels, sampleIndices: b.indices, step: 0 });
    for (const key of Object.keys(total) as Array<keyof typeof total>) total[key] += e[key];
  }
  const n = total.latentElements;
  const latentMean = total.latentSum / n;
  // The sample standard deviation (torch.std's n − 1), from double-precision sums.
  const variance = Math.max(0, (total.latentSquareSum - n * latentMean * latentMean) / Math.max(1, n - 1));
  return {
    images: total.images,
    reconstruction: total.reconstructionSum / total.pixelElements,
    kl: total.klSum / total.images,
    latentMean,
    latentStd: Math.sqrt(variance),
  };
}

function checkDataset(dataset: unknown, param: string, vae: AutoencoderKL): Dataset {
  if (!(dataset instanceof Dataset)) throw expected('a Dataset (createDataset from lib/data)', param, dataset);
  const c = vae.config;
  if (dataset.options.channels !== c.in_channels)
    throw new InvalidArgumentError(
      `Expected ${param} with ${c.in_channels} channels (the VAE's in_channels) but found data.channels ${dataset.options.channels}`,
    );
  if (dataset.buckets === null && dataset.options.resolution % vae.vaeScaleFactor !== 0)
    throw new InvalidArgumentError(
      `Expected ${param} with a resolution that is a multiple of the VAE's scale factor ${vae.vaeScaleFactor} but found data.resolution ${dataset.options.resolution}`,
    );
  return dataset;
}

/**
 * Trains every parameter of `vae` in place (see the file comment) and measures it on the held-out images.
 * Each step's batch comes from the data loader (decoded ahead while the previous step runs); all tensor
 * work runs on the compute thread, so the event loop stays free.
 */
export async function trainVae(vae: AutoencoderKL, options: TrainVaeOptions): Promise<TrainVaeResult> {
  if (!(vae instanceof AutoencoderKL)) throw expected('an AutoencoderKL', 'vae', vae);
  if (options === null || typeof options !== 'object') throw expected('an options object', 'options', options);
  const c = vae.config;
  if (c.out_channels !== c.in_channels)
    throw new InvalidArgumentError(
      `Expected a VAE whose out_channels equal its in_channels (${c.in_channels}) to reconstruct its input but found ${c.out_channels}`,
    );
  const images = checkDataset(options.images, 'options.images', vae);
  const heldOutSet = checkDataset(options.heldOut, 'options.heldOut', vae);
  const steps = integer(options.steps, 'options.steps', 0);
  const batchSize = integer(options.batchSize, 'options.batchSize', 1);
  const heldOutBatchSize = integer(options.heldOutBatchSize, 'options.heldOutBatchSize', 1, batchSize);
  if (typeof options.lr !== 'number' || !Number.isFinite(options.lr) || options.lr <= 0)
    throw expected('a positive finite learning rate', 'options.lr', options.lr);
  const lrAt = makeLrSchedule({ name: 'constant', ...options.lrSchedule, lr: options.lr, totalSteps: Math.max(1, steps) }, 'options.lrSchedule');
  const logEvery = integer(options.logEvery, 'options.logEvery', 1, Math.max(1, Math.round(steps / 20)));
  if (options.onStep !== undefined && typeof options.onStep !== 'function') throw expected('a function', 'options.onStep', options.onStep);
  if (options.log !== undefined && typeof options.log !== 'function') throw expected('a function', 'options.log', options.log);
  const log = options.log ?? (() => undefined);
  const seed = integer(options.seed, 'options.seed', 0, 0);

  using trainer = await VaeTrainer.create(vae, options);
  const heldOutBatches = await readHeldOut(heldOutSet, heldOutBatchSize, log);
  try {
    const initialHeldOut = await measure(trainer, heldOutBatches);
    log(`vae: ${initialHeldOut.images} held-out images, reconstruction ${initialHeldOut.reconstruction.toFixed(5)} per element before training`);
    const losses: VaeStepRecord[] = [];
    const start = performance.now();
    if (steps > 0) {
      const loader = new DataLoader(images, { batchSize, seed, onWarning: log });
      try {
        for (let step = 0; step < steps && options.signal?.aborted !== true; step++) {
          const batch = await loader.next();
          const lr = lrAt(step);
          let r: Awaited<ReturnType<VaeTrainer['step']>>;
          try {
            r = await trainer.step({ images: batch.pixels, sampleIndices: batch.indices, step }, lr);
          } finally {
            batch.dispose();
          }
          const record: VaeStepRecord = {
            step,
            lr,
            loss: r.loss,
            reconstruction: r.reconstruction,
            kl: r.kl,
            finite: r.finite,
            gradNorm: r.gradNorm,
            skipped: r.skipped,
            seconds: (performance.now() - start) / 1000,
          };
          losses.push(record);
          if ((step + 1) % logEvery === 0 || step + 1 === steps)
            log(
              `vae step ${step + 1}/${steps}: loss ${r.loss.toPrecision(5)} (reconstruction ${r.reconstruction.toPrecision(5)}, kl ${r.kl.toPrecision(5)})${r.skipped ? ' skipped' : ''}, ${(record.seconds / (step + 1)).toFixed(3)} s/step`,
            );
          await options.onStep?.(record);
        }
      } finally {
        await loader.close();
      }
    }
    const seconds = (performance.now() - start) / 1000;
    const heldOut = await measure(trainer, heldOutBatches);
    const scalingFactor = 1 / heldOut.latentStd;
    log(
      `vae: ${losses.length} steps in ${seconds.toFixed(1)} s; held-out reconstruction ${heldOut.reconstruction.toFixed(5)} per element (was ${initialHeldOut.reconstruction.toFixed(5)}), latent std ${heldOut.latentStd.toPrecision(5)} → scaling_factor ${scalingFactor.toPrecision(5)}`,
    );
    return {
      losses,
      steps: losses.length,
      skippedSteps: losses.filter((l) => l.skipped).length,
      heldOutReconstruction: heldOut.reconstruction,
      initialHeldOutReconstruction: initialHeldOut.reconstruction,
      heldOut,
      initialHeldOut,
      latentStd: heldOut.latentStd,
      scalingFactor,
      seconds,
    };
  } finally {
    for (const b of heldOutBatches) b.dispose();
  }
}

/**
 * `vae.save(dir)` with config.json's scaling_factor replaced (trainVae's scalingFactor): a vae/ folder
 * diffusers' AutoencoderKL.from_pretrained and loadVae read back.
 */
export async function saveTrainedVae(vae: AutoencoderKL, dir: string, options: { scalingFactor: number }): Promise<void> {
  if (!(vae instanceof AutoencoderKL)) throw expected('an AutoencoderKL', 'vae', vae);
  if (typeof dir !== 'string' || dir.length === 0) throw expected('a folder path', 'dir', dir);
  const scalingFactor = options?.scalingFactor;
  if (typeof scalingFactor !== 'number' || !Number.isFinite(scalingFactor) || scalingFactor <= 0)
    throw expected('a positive finite number', 'options.scalingFactor', scalingFactor);
  await saveModelFolder(
    dir,
    VAE_WEIGHTS,
    () => vae.stateDict(),
    () => ({ ...vae.configJson(), scaling_factor: scalingFactor }),
  );
}
