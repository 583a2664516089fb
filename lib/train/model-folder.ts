/**
 * Where a recipe's `model.pretrained` keeps its parts: a U-Net folder (config.json + weights) or a
 * whole diffusers pipeline folder (model_index.json with unet/ and scheduler/).
 */
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError } from '../errors';
import { parseLenientJson } from '../config/json';
import type { SchedulerClassName } from '../config/scheduler';
import { MODEL_INDEX_FILE, parseModelIndex } from '../models/model-index';
import { loadScheduler, Scheduler, SCHEDULER_CONFIG_FILE } from '../schedulers/scheduler';
import { pathKind } from '../util/fs-errors';

// pathKind, not fs.existsSync: a symlink loop or an unreadable folder is an error naming the path, not a missing file.
const exists = (p: string): boolean => pathKind(p) !== undefined;

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

export function resolveBaseModel(
  model: { pretrained?: string; config?: string; scheduler?: string; scratch: boolean; variant?: string },
  weightFiles: (dir: string) => string[],
  onWarning?: (message: string) => void,
): BaseModel {
  if (model.config !== undefined) {
    if (!exists(model.config)) throw new ConfigError(`model.config: ${model.config} does not exist (expected a U-Net config.json)`);
    if (model.scheduler !== undefined && !exists(model.scheduler)) throw new ConfigError(`model.scheduler: ${model.scheduler} does not exist`);
    return { unetDir: path.dirname(model.config), schedulerConfig: model.scheduler, pipelineDir: undefined, scratchConfig: model.config, identity: [model.config], describe: `${model.config} (from scratch)` };
  }
  const folder = resolveModelFolder(model.pretrained!, onWarning);
  if (model.scratch) {
    const config = path.join(folder.unetDir, 'config.json');
    return { ...folder, scratchConfig: config, identity: [config], describe: `${folder.unetDir} architecture (from scratch)` };
  }
  return { ...folder, scratchConfig: undefined, identity: weightFiles(folder.unetDir), describe: folder.unetDir };
}

/**
 * The U-Net, scheduler and pipeline folders of `pretrained`. `onWarning` hears of a model_index.json
 * that does not parse: the U-Net beside it still trains (a whole pipeline would fail when it loads).
 */
export function resolveModelFolder(pretrained: string, onWarning?: (message: string) => void): ModelFolder {
  if (pathKind(pretrained, { field: 'model.pretrained' }) !== 'folder') {
    throw new ConfigError(`model.pretrained: ${pretrained} is not a folder (expected a diffusers U-Net folder or pipeline folder)`);
  }
  const firstExisting = (candidates: string[]) => candidates.find(exists);
  const indexFile = path.join(pretrained, MODEL_INDEX_FILE);
  if (exists(indexFile)) {
    const unetDir = path.join(pretrained, 'unet');
    if (!exists(path.join(unetDir, 'config.json'))) throw new ConfigError(`model.pretrained: the pipeline folder ${pretrained} has no unet/config.json`);
    const problem = modelIndexProblem(indexFile);
    if (problem !== undefined) onWarning?.(`${problem}; using the U-Net in ${unetDir} regardless`);
    return { unetDir, schedulerConfig: firstExisting([path.join(pretrained, 'scheduler', SCHEDULER_CONFIG_FILE)]), pipelineDir: pretrained };
  }
  if (!exists(path.join(pretrained, 'config.json')) && exists(path.join(pretrained, 'unet', 'config.json'))) {
    // A fine-tuning output folder: unet/ and scheduler/ without a model_index.json.
    return { unetDir: path.join(pretrained, 'unet'), schedulerConfig: firstExisting([path.join(pretrained, 'scheduler', SCHEDULER_CONFIG_FILE)]), pipelineDir: undefined };
  }
  if (!exists(path.join(pretrained, 'config.json'))) {
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

/** What is wrong with a model_index.json (unreadable, not JSON, not a diffusers index), or undefined. */
function modelIndexProblem(file: string): string | undefined {
  try {
    parseModelIndex(parseLenientJson(fs.readFileSync(file, 'utf8'), file), file);
    return undefined;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return message.startsWith(file) ? message : `${file}: ${message}`;
  }
}

/** True when `dir` is a diffusers pipeline folder with a text encoder and a VAE (text-to-image). */
export function isTextToImageFolder(dir: string): boolean {
  return exists(path.join(dir, MODEL_INDEX_FILE)) && exists(path.join(dir, 'text_encoder')) && exists(path.join(dir, 'vae'));
}

/** The folder's noise scheduler (as `className` when given), or that class (default DDPM) with diffusers' defaults when the folder has none. */
export async function openFolderScheduler(folder: ModelFolder, className?: SchedulerClassName): Promise<Scheduler> {
  const name = className ?? 'DDPMScheduler';
  return folder.schedulerConfig ? loadScheduler(folder.schedulerConfig, { className }) : Scheduler.fromConfig({ _class_name: name }, { source: `${name} defaults` });
}
