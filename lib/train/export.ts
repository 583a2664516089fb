/**
 * The end of a run: the trainer lets go of the model, and rank 0 writes the final model of a completed
 * run. Where an EMA was kept its averages replace the trained weights (as diffusers' training scripts save
 * them); then each hook writes its part (unet/ or the LoRA adapters), then the scheduler, and for a
 * pipeline base its other components beside the new unet/.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { UNET_DIR } from '../checkpoint/train-state';
import type { Scheduler } from '../schedulers/scheduler';
import { withFileErrors } from '../util/fs-errors';
import type { Hooks } from './hooks';
import type { Trainer } from './trainer';
import type { TrainedWeights } from './weights';

/** Where the final model goes in `output`. */
export function outputFolders(output: string): { unetDir: string; schedulerDir: string } {
  return { unetDir: path.join(output, UNET_DIR), schedulerDir: path.join(output, 'scheduler') };
}

export async function exportModel(o: {
  output: string;
  /** Whether this process writes it: rank 0, after a completed run. */
  writes: boolean;
  trainer: Trainer;
  ema: boolean;
  weights: TrainedWeights;
  hooks: Hooks;
  scheduler: Scheduler;
  pipelineDir: string | undefined;
}): Promise<void> {
  const averages = o.writes && o.ema ? await o.trainer.emaWeights() : undefined;
  // Training is over: detach the optimizer from the model (LoRA adapters may now be replaced or merged).
  o.trainer.dispose();
  if (!o.writes) return;
  if (averages !== undefined) await o.weights.useEma(averages);
  await o.hooks.export(o.output);
  await o.scheduler.save(outputFolders(o.output).schedulerDir);
  // A LoRA run without a merged U-Net has no unet/: a pipeline folder around the adapters would not load.
  if (o.pipelineDir !== undefined && o.weights.savesUNet) await copyPipelineRest(o.pipelineDir, o.output);
}

/** model_index.json and the untouched components of a pipeline folder, beside the new unet/. */
async function copyPipelineRest(pipelineDir: string, output: string): Promise<void> {
  for (const entry of await fs.readdir(pipelineDir, { withFileTypes: true })) {
    if (entry.name === 'unet' || entry.name === 'scheduler') continue;
    const from = path.join(pipelineDir, entry.name);
    const to = path.join(output, entry.name);
    if (entry.isDirectory() || entry.name === 'model_index.json') await withFileErrors(to, 'write', () => fs.cp(from, to, { recursive: true, force: true }));
  }
}
