/**
 * Where a recipe's `model.pretrained` keeps its parts: a U-Net folder (config.json + weights) or a
 * whole diffusers pipeline folder (model_index.json with unet/ and scheduler/).
 */
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError } from '../errors';
import type { SchedulerClassName } from '../config/scheduler';
import { loadScheduler, Scheduler, SCHEDULER_CONFIG_FILE } from '../schedulers/scheduler';

export interface ModelFolder {
  /** The folder holding the U-Net's config.json and weights. */
  unetDir: string;
  /** The noise scheduler's config, or undefined (then DDPM with diffusers' defaults). */
  schedulerConfig: string | undefined;
  /** The pipeline folder when the base is a whole pipeline (its other components are copied to the output). */
  pipelineDir: string | undefined;
}

/** What a recipe's `model` section starts from: a folder's weights, or an architecture trained from scratch. */
export interface BaseModel extends ModelFolder {
  /** The config.json to initialise from (from-scratch runs); undefined: load the folder's weights. */
  scratchConfig: string | undefined;
  /** Files whose sha256 identifies the base (weights, or the config of a from-scratch run). */
  identity: string[];
  describe: string;
}

export function resolveBaseModel(model: { pretrained?: string; config?: string; scheduler?: string; scratch: boolean; variant?: string }, weightFiles: (dir: string) => string[]): BaseModel {
  if (model.config !== undefined) {
    if (!fs.existsSync(model.config)) throw new ConfigError(`model.config: ${model.config} does not exist (expected a U-Net config.json)`);
    if (model.scheduler !== undefined && !fs.existsSync(model.scheduler)) throw new ConfigError(`model.scheduler: ${model.scheduler} does not exist`);
    return { unetDir: path.dirname(model.config), schedulerConfig: model.scheduler, pipelineDir: undefined, scratchConfig: model.config, identity: [model.config], describe: `${model.config} (from scratch)` };
  }
  const folder = resolveModelFolder(model.pretrained!);
  if (model.scratch) {
    const config = path.join(folder.unetDir, 'config.json');
    return { ...folder, scratchConfig: config, identity: [config], describe: `${folder.unetDir} architecture (from scratch)` };
  }
  return { ...folder, scratchConfig: undefined, identity: weightFiles(folder.unetDir), describe: folder.unetDir };
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
  if (!fs.existsSync(path.join(pretrained, 'config.json')) && fs.existsSync(path.join(pretrained, 'unet', 'config.json'))) {
    // A fine-tuning output folder: unet/ and scheduler/ without a model_index.json.
    return { unetDir: path.join(pretrained, 'unet'), schedulerConfig: firstExisting([path.join(pretrained, 'scheduler', SCHEDULER_CONFIG_FILE)]), pipelineDir: undefined };
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

/** True when `dir` is a diffusers pipeline folder with a text encoder and a VAE (text-to-image). */
export function isTextToImageFolder(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'model_index.json')) && fs.existsSync(path.join(dir, 'text_encoder')) && fs.existsSync(path.join(dir, 'vae'));
}

/** The folder's noise scheduler (as `className` when given), or that class (default DDPM) with diffusers' defaults when the folder has none. */
export async function openFolderScheduler(folder: ModelFolder, className?: SchedulerClassName): Promise<Scheduler> {
  const name = className ?? 'DDPMScheduler';
  return folder.schedulerConfig ? loadScheduler(folder.schedulerConfig, { className }) : Scheduler.fromConfig({ _class_name: name }, { source: `${name} defaults` });
}
