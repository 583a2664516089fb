/**
 * What a run trains and how those weights are saved. A full fine-tune trains the U-Net parameters its
 * freeze plan leaves trainable and saves the whole U-Net (checkpoints and output); a LoRA run
 * (lib/train/lora-training.ts) trains adapters over a frozen base and saves only them.
 */
import * as path from 'path';
import type { StateDict } from '../checkpoint/state-dict';
import { UNET_DIR } from '../checkpoint/train-state';
import type { Recipe } from '../config/recipe';
import { planFreeze, type FreezePlan } from '../freeze/plan';
import type { UNet } from '../models/unet';
import { useEmaWeights } from './ema';
import type { TrainingHooks } from './hooks';
import type { TrainableParameter } from './trainer';

export interface TrainedWeights extends TrainingHooks {
  readonly plan: FreezePlan;
  readonly trainable: readonly TrainableParameter[];
  /** Whether the output gets a unet/ (a pipeline base then gets its other components beside it). */
  readonly savesUNet: boolean;
  /** LoRA runs: the adapters' files in `output`, the PEFT/diffusers one first (and kohya's when asked); otherwise none. */
  loraFiles(output: string): string[];
  /** Training completed with an EMA: its averages (consumed) replace the trained weights before the export. */
  useEma(averages: StateDict): Promise<void>;
}

/** A full fine-tune: the U-Net parameters the freeze plan leaves trainable. */
export async function trainUNet(unet: UNet, recipe: Recipe, log: (line: string) => void): Promise<TrainedWeights> {
  const plan = planFreeze(await unet.parameters(), recipe.freeze, { ema: recipe.train.ema !== null });
  log(
    `training ${plan.totals.trainableTensors} of ${plan.totals.tensors} tensors (${plan.totals.trainablePercent.toFixed(1)}% of ${plan.totals.numel} parameters)`,
  );
  return {
    plan,
    trainable: plan.trainable.map((p) => ({ name: p.name, lrMultiplier: p.lrMultiplier, weightDecay: p.weightDecay })),
    savesUNet: true,
    loraFiles: () => [],
    saveCheckpoint: (dir) => unet.save(path.join(dir, UNET_DIR)),
    useEma: (averages) => useEmaWeights(unet, averages),
    export: (output) => unet.save(path.join(output, UNET_DIR)),
  };
}
