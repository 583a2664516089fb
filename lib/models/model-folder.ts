/**
 * Diffusers model folders on disk, the one place that knows their layout: where a recipe's
 * `model.pretrained` keeps its parts (a U-Net folder with config.json and weights, or a whole pipeline
 * folder with model_index.json, unet/ and scheduler/), finding a model's weight files (single or
 * sharded), loading them into one state dict for the time of a call, and writing a folder back.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError } from '../errors';
import { parseLenientJson, formatLenientJson } from '../config/json';
import { DEFAULT_DIFFUSERS_VERSION, SCHEDULER_CLASSES, type SchedulerClassName } from '../config/scheduler';
import { loadStateDict, saveStateDict, disposeStateDict, type StateDict } from '../checkpoint/state-dict';
import { loadScheduler, Scheduler, SCHEDULER_CONFIG_FILE } from '../schedulers/scheduler';
import { writeFileAtomically, writeAll } from '../util/atomic-write';
import { pathKind } from '../util/fs-errors';
import { createFolder } from '../util/output-folder';
import { MODEL_INDEX_FILE, parseModelIndex } from './model-index';

/**
 * diffusers' `_add_variant` (utils/hub_utils.py): the variant goes before the last extension, so
 * "diffusion_pytorch_model.safetensors" → "diffusion_pytorch_model.fp16.safetensors" and the index
 * "diffusion_pytorch_model.safetensors.index.json" → "diffusion_pytorch_model.safetensors.index.fp16.json".
 */
export function addVariant(name: string, variant: string | undefined): string {
  if (variant === undefined) return name;
  const dot = name.lastIndexOf('.');
  return `${name.slice(0, dot)}.${variant}${name.slice(dot)}`;
}

/**
 * The files diffusers v0.31's `from_pretrained(variant=...)` looks for, in its order (models/modeling_utils.py):
 * a shard index first — `addVariant("<weights>.index.json")`, then for a variant the deprecated
 * "<weights>.<variant>.index.json" (`_fetch_index_file_legacy`) — and only then the single file
 * `addVariant(weightsName)`. Shards are whatever the index's weight_map names: v0.31 writes
 * "diffusion_pytorch_model.fp16-00001-of-00002.safetensors", v0.29–v0.30 wrote
 * "diffusion_pytorch_model-00001-of-00002.fp16.safetensors".
 */
export function weightFileNames(weightsName: string, variant?: string): { indexes: string[]; single: string } {
  const indexes = [addVariant(`${weightsName}.index.json`, variant)];
  if (variant !== undefined) indexes.push(`${weightsName}.${variant}.index.json`);
  return { indexes, single: addVariant(weightsName, variant) };
}

/** The names weightFileNames looks for, for an error saying none was found: "<single> (nor a shard index <index> or <index>)". */
export function describeWeightFileNames(weightsName: string, variant?: string): string {
  const { indexes, single } = weightFileNames(weightsName, variant);
  return `${single} (nor a shard index ${indexes.join(' or ')})`;
}

/** True when `dir` holds any of the files weightFileNames names. */
export function hasWeightFiles(dir: string, weightsName: string, variant?: string): boolean {
  const { indexes, single } = weightFileNames(weightsName, variant);
  // pathKind, not fs.existsSync: a symlink loop is an error naming the file, not a missing file.
  return [...indexes, single].some((name) => pathKind(path.join(dir, name)) !== undefined);
}

/**
 * The shards the first shard index of weightFileNames maps to (each checked to be a file in the
 * folder), else the single file; undefined when the folder has none of them.
 */
export function shardedWeightFiles(dir: string, weightsName: string, variant?: string): string[] | undefined {
  const { indexes, single } = weightFileNames(weightsName, variant);
  const index = indexes.map((name) => path.join(dir, name)).find((file) => pathKind(file) !== undefined);
  if (index === undefined) return pathKind(path.join(dir, single)) === undefined ? undefined : [path.join(dir, single)];
  const parsed = parseLenientJson(fs.readFileSync(index, 'utf8'), index) as { weight_map?: unknown };
  const map = parsed.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) throw new ConfigError(`${index}: expected an object "weight_map" of tensor name → shard file`);
  const shards = [...new Set(Object.values(map as Record<string, unknown>))];
  for (const shard of shards) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) throw new ConfigError(`${index}: shard ${JSON.stringify(shard)} is not a file name in the folder`);
    if (pathKind(path.join(dir, shard)) === undefined) throw new ConfigError(`${index}: shard ${shard} is missing from ${dir}`);
  }
  return (shards as string[]).map((s) => path.join(dir, s));
}

/** How errors and logs name a model's weights: the file, or the folder and its shard count. */
export function weightsSource(dir: string, files: readonly string[]): string {
  return files.length === 1 ? files[0]! : `${dir} (${files.length} shards)`;
}

/**
 * Loads `files` (of folder `dir`) into one state dict and calls `use(weights, source)`, source naming
 * the file or the shard count; the loaded tensors are disposed afterwards.
 */
export async function withWeightFiles<T>(dir: string, files: readonly string[], use: (weights: StateDict, source: string) => Promise<T>): Promise<T> {
  const weights: StateDict = new Map();
  try {
    for (const file of files) {
      for (const [name, t] of await loadStateDict(file)) weights.set(name, t);
    }
    return await use(weights, weightsSource(dir, files));
  } finally {
    disposeStateDict(weights);
  }
}

/** The diffusers config.json object: _class_name, _diffusers_version, then every other key (kept unknown keys too) sorted. */
export function diffusersConfigJson(config: { _class_name: string }, extra: Readonly<Record<string, unknown>> = {}): Record<string, unknown> {
  const { _class_name, ...rest } = config;
  const all: Record<string, unknown> = { ...extra, ...rest };
  const out: Record<string, unknown> = { _class_name, _diffusers_version: DEFAULT_DIFFUSERS_VERSION };
  for (const key of Object.keys(all).sort()) out[key] = all[key];
  return out;
}

/** Writes `<dir>/<weightsFile>` (the model's state dict) and then config.json, each atomically. */
export async function saveModelFolder(dir: string, weightsFile: string, stateDict: () => Promise<StateDict>, configJson: () => Record<string, unknown>): Promise<void> {
  await createFolder(dir);
  const weights = await stateDict();
  try {
    await saveStateDict(path.join(dir, weightsFile), weights, { format: 'pt' });
  } finally {
    disposeStateDict(weights);
  }
  const text = Buffer.from(`${formatLenientJson(configJson(), 2)}\n`, 'utf8');
  await writeFileAtomically(path.join(dir, 'config.json'), (handle) => writeAll(handle, text));
}

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

/**
 * The noise scheduler a fine-tune adds noise with. diffusers' training scripts load a folder's scheduler
 * config into DDPMScheduler whatever class it names (only the betas, timestep count and prediction type
 * matter for training), so a base whose sampling scheduler difftune lacks (e.g. LCMScheduler) still trains.
 */
export async function openTrainingScheduler(folder: ModelFolder, log: (line: string) => void = () => undefined): Promise<Scheduler> {
  const file = folder.schedulerConfig;
  if (file === undefined) return openFolderScheduler(folder);
  const json = parseLenientJson(await fs.promises.readFile(file, 'utf8'), file);
  const declared = json !== null && typeof json === 'object' && !Array.isArray(json) ? json._class_name : undefined;
  if (typeof declared !== 'string' || (SCHEDULER_CLASSES as readonly string[]).includes(declared)) return openFolderScheduler(folder);
  log(`${file}: "_class_name" ${declared} is not a scheduler difftune samples with; training adds noise with DDPMScheduler from its config, as diffusers' training scripts do (the output's scheduler/ is a DDPMScheduler)`);
  return openFolderScheduler(folder, 'DDPMScheduler');
}
