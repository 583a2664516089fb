/**
 * The exponential moving average of a run's trained weights (recipe train.ema): the native trainer keeps
 * and updates it, each checkpoint holds it (ema.safetensors), and when training completes its averages
 * replace the trained weights (the U-Net's own or the LoRA adapters), as diffusers' training scripts
 * save them.
 */
import { disposeStateDict, type StateDict } from '../checkpoint/state-dict';
import type { Recipe } from '../config/recipe';
import { InternalError } from '../errors';
import type { CLIPTextModel } from '../models/clip-text';
import { disposeLoraEntries } from '../models/lora';
import type { UNet } from '../models/unet';
import type { Tensor } from '../native/tensor';
import { TEXT_ENCODER_PREFIX, type TrainerOptions } from './trainer';

type EmaTrainerOptions = Pick<
  TrainerOptions,
  'ema' | 'emaDecay' | 'emaMinDecay' | 'emaUpdateAfterStep' | 'emaUpdateEvery' | 'emaWarmup' | 'emaInvGamma' | 'emaPower' | 'emaOnCpu'
>;

/** The trainer's EMA options from train.ema (null: no EMA). */
export function emaTrainerOptions(ema: Recipe['train']['ema']): EmaTrainerOptions {
  if (ema === null) return { ema: false };
  return {
    ema: true,
    emaDecay: ema.decay,
    emaMinDecay: ema.minDecay,
    emaUpdateAfterStep: ema.updateAfterStep,
    emaUpdateEvery: ema.updateEvery,
    emaWarmup: ema.warmup,
    emaInvGamma: ema.invGamma,
    emaPower: ema.power,
    emaOnCpu: ema.device === 'cpu',
  };
}

/** Moves the averages of `parameters` (the trainer's names) out of `averages` into a map of their own. */
export function takeAverages(averages: StateDict, parameters: ReadonlyArray<{ readonly name: string }>): StateDict {
  const taken: StateDict = new Map();
  for (const { name } of parameters) {
    const tensor = averages.get(name);
    if (tensor === undefined) continue;
    taken.set(name, tensor);
    averages.delete(name);
  }
  return taken;
}

/** The EMA's averages (trainer.emaWeights(), consumed) replace the U-Net's trained weights. */
export async function useEmaWeights(unet: UNet, averages: StateDict): Promise<void> {
  const current = await unet.stateDict();
  try {
    for (const [name, w] of averages) {
      current.get(name)?.dispose();
      current.set(name, w);
    }
    averages.clear();
    await unet.loadStateDict(current, 'EMA weights');
  } finally {
    disposeStateDict(current);
    disposeStateDict(averages);
  }
}

/** The EMA's averages (consumed, named as the model names its adapters) replace a model's trained LoRA adapters (the U-Net's, the text encoder's). */
export async function useEmaAdapters(
  unet: Pick<UNet, 'loraEntries' | 'setLora'> | Pick<CLIPTextModel, 'loraEntries' | 'setLora'>,
  averages: StateDict,
  dropout: number,
): Promise<void> {
  const entries = await unet.loraEntries();
  try {
    const averaged = entries.map((e) => ({
      module: e.module,
      A: average(averages, `${e.module}.lora_A.weight`),
      B: average(averages, `${e.module}.lora_B.weight`),
      alpha: e.alpha,
    }));
    await unet.setLora(averaged, dropout);
  } finally {
    disposeStateDict(averages);
    disposeLoraEntries(entries);
  }
}

function average(averages: StateDict, name: string): Tensor {
  const tensor = averages.get(name);
  // The trainer averages exactly the adapters it trains, so each one has its average.
  if (tensor === undefined) throw new InternalError(`the EMA weights have no "${name}" (they hold ${averages.size} tensors)`);
  return tensor;
}

/** The EMA's averages (consumed; the trainer's text_encoder.<name>) replace the encoder's trained weights. */
export async function useEmaEncoderWeights(textEncoder: CLIPTextModel, averages: StateDict): Promise<void> {
  const current = await textEncoder.stateDict();
  try {
    for (const [name, w] of averages) {
      const own = name.startsWith(TEXT_ENCODER_PREFIX) ? name.slice(TEXT_ENCODER_PREFIX.length) : name;
      current.get(own)?.dispose();
      current.set(own, w);
    }
    averages.clear();
    await textEncoder.loadStateDict(current, 'EMA weights');
  } finally {
    disposeStateDict(current);
    disposeStateDict(averages);
  }
}
