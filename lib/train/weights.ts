/**
 * What a run trains and how those weights are saved. A full fine-tune trains the U-Net parameters its
 * freeze plan leaves trainable and saves the whole U-Net (checkpoints and output); a LoRA run
 * (lib/train/lora-training.ts) trains adapters over a frozen base and saves only them; textual inversion
 * keeps the whole U-Net frozen. What trains of the text encoder is a part of its own
 * (lib/train/text-encoder-training.ts, textual-inversion.ts; LoRA adapters of both models are one part).
 */
import * as path from 'path';
import type { StateDict } from '../checkpoint/state-dict';
import { UNET_DIR } from '../checkpoint/train-state';
import type { Recipe } from '../config/recipe';
import { planFreeze, planLoraBase, type FreezePlan } from '../freeze/plan';
import type { UNet } from '../models/unet';
import { useEmaWeights } from './ema';
import type { TrainingHooks } from './hooks';
import type { TrainableParameter } from './trainer';

/** Something a run trains: its parameters as the trainer names them, and how an EMA's averages of them replace them. */
export interface TrainedPart extends TrainingHooks {
  readonly trainable: readonly TrainableParameter[];
  /** Training completed with an EMA: the averages of this part's parameters (consumed, trainer names) replace the trained weights before the export. */
  useEma(averages: StateDict): Promise<void>;
}

/** A trained part of the text encoder, as the run plans, saves and reports it (its own weights, textual inversion). */
export interface TextEncoderPart extends TrainedPart {
  /** One line for the plan and the log. */
  readonly note: string;
  /** Files of the final model it writes into `output` besides pipeline components (learned_embeds.safetensors). */
  outputFiles(output: string): string[];
}

export interface TrainedWeights extends TrainedPart {
  readonly plan: FreezePlan;
  /** Whether the output gets a unet/ (a pipeline base then gets its other components beside it). */
  readonly savesUNet: boolean;
  /** LoRA runs: the adapters' files in `output`, the PEFT/diffusers one first (and kohya's when asked); otherwise none. */
  loraFiles(output: string): string[];
}

/** A full fine-tune: the U-Net parameters the freeze plan leaves trainable (none under textual inversion). */
export async function trainUNet(unet: UNet, recipe: Recipe, log: (line: string) => void): Promise<TrainedWeights> {
  const ti = recipe.textualInversion;
  if (ti !== null) {
    const note = "textual inversion: the whole U-Net stays frozen; only the new tokens' embeddings train";
    log(note);
    return frozenUNet(planFrozenUNet(await unet.parameters(), note), unet, ti.saveAsFullPipeline);
  }
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
    export: async (output) => {
      await unet.save(path.join(output, UNET_DIR));
      return [UNET_DIR];
    },
  };
}

/**
 * The U-Net frozen whole (textual inversion trains only new token embeddings): nothing of it in the
 * optimizer or the checkpoints; with `savePipeline` the output still gets its unet/ (a whole pipeline).
 */
export function frozenUNet(plan: FreezePlan, unet: UNet, savePipeline: boolean): TrainedWeights {
  return {
    plan,
    trainable: [],
    savesUNet: savePipeline,
    loraFiles: () => [],
    useEma: async () => undefined,
    export: async (output) => {
      if (!savePipeline) return [];
      await unet.save(path.join(output, UNET_DIR));
      return [UNET_DIR];
    },
  };
}

/** A plan of the U-Net with nothing trainable, noting what trains instead. */
export function planFrozenUNet(parameters: Parameters<typeof planLoraBase>[0], note: string): FreezePlan {
  const plan = planLoraBase(parameters);
  return { ...plan, notes: [note] };
}
