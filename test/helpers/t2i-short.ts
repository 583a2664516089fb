/**
 * A shortened `npm run pretrain:t2i`: the shipped recipe (recipes/pretrain-t2i.json) with three classes,
 * a dozen images each and a few steps per phase, run in-process and packaged — seconds, for the tests
 * of the run and of the packaged pipeline (native and interop).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseLenientJson } from '../../lib/config/json';
import { applyOverrides } from '../../lib/config/recipe';
import { pretrainT2i, type T2iPretrainResult } from '../../lib/demo/t2i-base';
import { packageT2iBase, type T2iBaseSummary } from '../../lib/demo/t2i-base-card';

export const ROOT = path.join(__dirname, '..', '..');
export const T2I_RECIPE = path.join(ROOT, 'recipes', 'pretrain-t2i.json');

/** The --set overrides that shorten the shipped recipe, its run folder in `output`. */
export function shortT2iOverrides(output: string, unetSteps = 4): string[] {
  return [
    `output=${output}`,
    'data.classes=["digit-7","digit-1","sneaker"]',
    'data.heldBack=["sandal"]',
    'data.trainPerClass=8',
    'data.testPerClass=4',
    'vae.steps=3',
    'vae.batchSize=8',
    'vae.lrSchedule.warmupSteps=0',
    `unet.train.steps=${unetSteps}`,
    'unet.train.batchSize=8',
    'unet.train.lrSchedule.warmupSteps=0',
    'unet.validation={"every":2,"samples":12,"wrongCaptions":true}',
    'unet.checkpoint.every=2',
    'samples.perPrompt=2',
    'samples.steps=2',
  ];
}

export function shortT2iRecipe(output: string, extra: readonly string[] = []): Record<string, unknown> {
  const raw = parseLenientJson(fs.readFileSync(T2I_RECIPE, 'utf8'), T2I_RECIPE);
  return applyOverrides(raw, [...shortT2iOverrides(output), ...extra]);
}

export interface ShortT2iRun {
  result: T2iPretrainResult;
  summary: T2iBaseSummary;
  logs: string[];
  /** The packaged pipeline. */
  model: string;
}

/** Runs the shortened pretraining in `dir`/run and packages it into `dir`/model. */
export async function runShortT2i(dir: string, extra: readonly string[] = []): Promise<ShortT2iRun> {
  const raw = shortT2iRecipe(path.join(dir, 'run'), extra);
  const logs: string[] = [];
  const result = await pretrainT2i(raw, { recipeFile: T2I_RECIPE, onLog: (l) => logs.push(l) });
  const model = path.join(dir, 'model');
  const summary = await packageT2iBase(result, model, raw);
  return { result, summary, logs, model };
}
