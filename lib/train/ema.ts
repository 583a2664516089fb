/**
 * The exponential moving average of a run's trained weights (recipe train.ema): the native trainer keeps
 * and updates it, each checkpoint holds it (ema.safetensors), and when training completes its averages
 * replace the trained weights (the U-Net's own or the LoRA adapters), as diffusers' training scripts
 * save them.
 */
import { disposeStateDict, type StateDict } from '../checkpoint/state-dict';
import type { Recipe } from '../config/recipe';
import { InternalError } from '../errors';
import { disposeLoraEntries } from '../models/lora';
import type { UNet } from '../models/unet';
import type { Tensor } from '../native/tensor';
import type { TrainerOptions } from './trainer';

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

/** The EMA's averages (consumed) replace the U-Net's trained LoRA adapters. */
export async function useEmaAdapters(unet: UNet, averages: StateDict, dropout: number): Promise<void> {
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
