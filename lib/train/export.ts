/**
 * The end of a run: the trainer lets go of the model, and rank 0 writes the final model of a completed
 * run. Where an EMA was kept its averages replace the trained weights (as diffusers' training scripts save
 * them), each part taking those of what it trains; then each hook writes its part (unet/, text_encoder/,
 * the LoRA adapters, learned_embeds.safetensors), then the scheduler, and for a pipeline base its other
 * components beside them.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { PIPELINE_INDEX_FILE, pipelineEntries, writePipelineIndex } from '../checkpoint/pipeline-folder';
import { disposeStateDict } from '../checkpoint/state-dict';
import { UNET_DIR } from '../checkpoint/train-state';
import { DEFAULT_DIFFUSERS_VERSION } from '../config/scheduler';
import { ConfigError } from '../errors';
import type { UNet } from '../models/unet';
import type { Scheduler } from '../schedulers/scheduler';
import { withFileErrors } from '../util/fs-errors';
import { takeAverages } from './ema';
import type { Hooks } from './hooks';
import type { Trainer } from './trainer';
import type { TrainedPart, TrainedWeights } from './weights';

/** Where the final model goes in `output`. */
export function outputFolders(output: string): { unetDir: string; schedulerDir: string } {
  return { unetDir: path.join(output, UNET_DIR), schedulerDir: path.join(output, 'scheduler') };
}

/**
 * The default latent and text-embedding cache of a text-to-image run: a hidden folder in `output`, which
 * model_index.json does not name, so that diffusers and `pipelineEntries` see only the pipeline.
 */
export function textToImageCacheDir(output: string): string {
  return path.join(output, '.cache');
}

export async function exportModel(o: {
  output: string;
  /** Whether this process writes it: rank 0, after a completed run. */
  writes: boolean;
  trainer: Trainer;
  ema: boolean;
  weights: TrainedWeights;
  /** What else trains (the text encoder's part), each taking the EMA averages of its own parameters. */
  parts?: readonly TrainedPart[];
  hooks: Hooks;
  scheduler: Scheduler;
  pipelineDir: string | undefined;
  unet: UNet;
  /** The side of the images the U-Net saw in training (pixels, or latents for a latent U-Net). */
  trainedSampleSize: number;
}): Promise<void> {
  const averages = o.writes && o.ema ? await o.trainer.emaWeights() : undefined;
  // Training is over: detach the optimizer from the model (LoRA adapters may now be replaced or merged).
  o.trainer.dispose();
  if (!o.writes) return;
  if (averages !== undefined) {
    try {
      for (const part of [o.weights, ...(o.parts ?? [])]) await part.useEma(takeAverages(averages, part.trainable));
    } finally {
      disposeStateDict(averages);
    }
  }
  // Pipelines size their samples by sample_size: the trained size, where the config had none or another.
  const size = o.unet.config.sample_size;
  if (size !== o.trainedSampleSize && !(Array.isArray(size) && size.every((s) => s === o.trainedSampleSize))) o.unet.setSampleSize(o.trainedSampleSize);
  const written = await o.hooks.export(o.output);
  await o.scheduler.save(outputFolders(o.output).schedulerDir);
  // A LoRA run without a merged U-Net has no unet/: a pipeline folder around the adapters would not load.
  if (!o.weights.savesUNet) return;
  if (o.pipelineDir !== undefined) await copyPipelineRest(o.pipelineDir, o.output, written);
  else if (!o.unet.isConditional && !o.unet.isClassConditional) {
    await writePipelineIndex(o.output, 'DDPMPipeline', DEFAULT_DIFFUSERS_VERSION, {
      scheduler: ['diffusers', o.scheduler.className],
      unet: ['diffusers', 'UNet2DModel'],
    });
  }
  // Other U-Nets from a bare U-Net folder get no model_index.json: DDPMPipeline calls unet(x, t) without
  // class labels or encoder states, and no diffusers pipeline runs a class-conditional UNet2DModel or a
  // UNet2DConditionModel without a text encoder. Their unet/ loads with from_pretrained(output, subfolder="unet").
}

/**
 * model_index.json and the untouched components of a pipeline folder, beside the new unet/ and the other
 * components the run wrote (`written`; nothing else: no checkpoints, logs or caches).
 */
async function copyPipelineRest(pipelineDir: string, output: string, written: ReadonlySet<string>): Promise<void> {
  // A model_index.json that does not parse was warned about when the base loaded; the run is not lost over it.
  const entries = await pipelineEntries(pipelineDir).catch((error: unknown) => {
    if (error instanceof ConfigError) return [PIPELINE_INDEX_FILE];
    throw error;
  });
  for (const entry of entries) {
    if (entry === 'unet' || entry === 'scheduler' || written.has(entry)) continue;
    const from = path.join(pipelineDir, entry);
    const to = path.join(output, entry);
    await withFileErrors(to, 'write', () => fs.cp(from, to, { recursive: true, force: true }));
  }
}
