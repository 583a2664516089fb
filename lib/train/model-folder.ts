/**
 * Where a recipe's `model.pretrained` keeps its parts: a U-Net folder (config.json + weights) or a
 * whole diffusers pipeline folder (model_index.json with unet/ and scheduler/).
 */
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError } from '../errors';
import { SCHEDULER_CONFIG_FILE } from '../schedulers/scheduler';

export interface ModelFolder {
  /** The folder holding the U-Net's config.json and weights. */
  unetDir: string;
  /** The noise scheduler's config, or undefined (then DDPM with diffusers' defaults). */
  schedulerConfig: string | undefined;
  /** The pipeline folder when the base is a whole pipeline (its other components are copied to the output). */
  pipelineDir: string | undefined;
}

export function resolveModelFolder(pretrained: string): ModelFolder {
  if (!fs.existsSync(pretrained) || !fs.statSync(pretrained).isDirectory()) {
    throw new ConfigError(`model.pretrained: ${pretrained} is not a folder (expected a diffusers U-Net folder or pipeline folder)`);
  }
  const firstExisting = (candidates: string[]) => candidates.find((c) => fs.existsSync(c));
  if (fs.existsSync(path.join(pretrained, 'model_index.json'))) {
    const unetDir = path.join(pretrained, 'unet');
    if (!fs.existsSync(path.join(unetDir, 'config.json'))) throw new ConfigError(`model.pretrained: the pipeline folder ${pretrained} has no unet/config.json`);
    return { unetDir, schedulerConfig: firstExisting([path.join(pretrained, 'scheduler', SCHEDULER_CONFIG_FILE)]), pipelineDir: pretrained };
  }
  if (!fs.existsSync(path.join(pretrained, 'config.json'))) {
    throw new ConfigError(`model.pretrained: ${pretrained} has neither model_index.json (a pipeline) nor config.json (a U-Net)`);
  }
  return {
    unetDir: pretrained,
    // A U-Net folder written by difftune or diffusers: the scheduler sits inside it, beside it, or nowhere.
    schedulerConfig: firstExisting([
      path.join(pretrained, 'scheduler', SCHEDULER_CONFIG_FILE),
      path.join(pretrained, SCHEDULER_CONFIG_FILE),
      path.join(pretrained, '..', 'scheduler', SCHEDULER_CONFIG_FILE),
    ]),
    pipelineDir: undefined,
  };
}
