/**
 * What a run loads before it plans anything: the base model (where its parts are and the sha256 that
 * ties checkpoints to it), the U-Net that trains (the base's, or a full fine-tune's checkpoint when
 * resuming) and the noise scheduler's prediction type the loss is computed against.
 */
import { readFileSync } from 'fs';
import * as path from 'path';
import { hashFiles, UNET_DIR } from '../checkpoint/train-state';
import { parseLenientJson } from '../config/json';
import type { Recipe } from '../config/recipe';
import { ConfigError } from '../errors';
import { resolveBaseModel, type BaseModel } from '../models/model-folder';
import { describeLoad } from '../models/native-model';
import { deviceProblem } from '../native/runtime';
import { loadUNet, resolveWeightFiles, UNet, unknownConfigKeysWarning } from '../models/unet';
import type { Scheduler } from '../schedulers/scheduler';
import type { BaseIdentity, ResumePoint } from './resume';

export interface RunBase {
  readonly folder: BaseModel;
  readonly identity: BaseIdentity;
}

/**
 * The folder `recipe.model` names, without loading it. Refuses first a model.device this libtorch cannot
 * reach, naming the field: otherwise it would surface as an options.device error of the first model load.
 */
export function resolveRecipeBase(recipe: Recipe, log?: (line: string) => void): BaseModel {
  const deviceIssue = deviceProblem(recipe.model.device);
  if (deviceIssue !== undefined) throw new ConfigError(`recipe model.device: ${deviceIssue}`);
  return resolveBaseModel(recipe.model, (dir) => resolveWeightFiles(dir, recipe.model.variant), log);
}

export async function resolveRunBase(recipe: Recipe, log: (line: string) => void): Promise<RunBase> {
  const folder = resolveRecipeBase(recipe, log);
  return { folder, identity: { path: folder.describe, sha256: await hashFiles(folder.identity) } };
}

/** The U-Net a run starts from: the folder's weights, or its architecture initialised from train.seed. */
export async function openBaseUNet(base: BaseModel, recipe: Recipe): Promise<UNet> {
  if (base.scratchConfig === undefined) return loadUNet(base.unetDir, { device: recipe.model.device, variant: recipe.model.variant });
  const raw = parseLenientJson(readFileSync(base.scratchConfig, 'utf8'), base.scratchConfig);
  return UNet.fromConfig(raw, { seed: recipe.train.seed, device: recipe.model.device, source: base.scratchConfig });
}

/**
 * The U-Net that trains: a full fine-tune resumes from its checkpoint's U-Net; a fresh run, a LoRA run
 * (whose checkpoints hold only the adapters) and textual inversion (whose U-Net stays frozen) start from
 * the base. Warns of config keys it does not know.
 */
export async function openTrainingUNet(recipe: Recipe, base: BaseModel, resumed: ResumePoint | undefined, log: (line: string) => void): Promise<UNet> {
  const unetTrains = recipe.lora === null && recipe.textualInversion === null;
  const checkpointDir = resumed !== undefined && unetTrains ? path.join(resumed.dir, UNET_DIR) : undefined;
  const unet = checkpointDir === undefined ? await openBaseUNet(base, recipe) : await loadUNet(checkpointDir, { device: recipe.model.device });
  const configFile = checkpointDir !== undefined ? path.join(checkpointDir, 'config.json') : (base.scratchConfig ?? path.join(base.unetDir, 'config.json'));
  if (unet.loadStats !== undefined) log(`loaded the U-Net from ${path.dirname(configFile)}: ${describeLoad(unet.loadStats)}`);
  const unknownKeys = unknownConfigKeysWarning(unet, configFile);
  if (unknownKeys !== undefined) log(unknownKeys);
  return unet;
}

/** What the U-Net learns to predict: train.predictionType, else the scheduler's prediction_type. */
export function trainedPredictionType(recipe: Recipe, scheduler: Scheduler): 'epsilon' | 'v_prediction' | 'sample' {
  const predictionType: string = recipe.train.predictionType ?? scheduler.config.prediction_type;
  if (predictionType !== 'epsilon' && predictionType !== 'v_prediction' && predictionType !== 'sample')
    throw new ConfigError(`scheduler prediction_type "${predictionType}" is not trainable`);
  return predictionType;
}
