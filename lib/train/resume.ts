/**
 * A run's checkpoints: the one it resumes from (checked against the base model and train.steps), what
 * resuming restores into the trainer and the loader, and writing the next one at a step boundary.
 */
import * as path from 'path';
import {
  readCheckpointState,
  resolveResume,
  restoreTrainerState,
  saveTrainingCheckpoint,
  type CheckpointedTrainer,
  type CheckpointState,
} from '../checkpoint/train-state';
import type { Recipe } from '../config/recipe';
import type { LoaderState } from '../data/loader';
import { ConfigError } from '../errors';
import type { Hooks } from './hooks';
import type { RunPosition } from './loop';

export interface ResumePoint {
  readonly dir: string;
  readonly state: CheckpointState;
}

/** The base model's description and the sha256 of its weights: a checkpoint resumes only onto the same base. */
export interface BaseIdentity {
  path: string;
  sha256: string;
}

/** The checkpoint `recipe.resume` names, or undefined for a fresh run. */
export async function findResume(recipe: Recipe, base: BaseIdentity, log: (line: string) => void): Promise<ResumePoint | undefined> {
  if (recipe.resume === undefined) return undefined;
  const steps = recipe.train.steps;
  const dir = await resolveResume(recipe.resume, recipe.output);
  const state = await readCheckpointState(dir);
  if (state.base.sha256 !== base.sha256) {
    throw new ConfigError(
      `resume: ${dir} was trained from ${state.base.path} (sha256 ${state.base.sha256.slice(0, 12)}…), not from ${base.path} (sha256 ${base.sha256.slice(0, 12)}…)`,
    );
  }
  // Past the end, no step would run: the run "finished" with a NaN loss and exit 0.
  if (state.step > steps) {
    throw new ConfigError(
      `resume: ${dir} is at step ${state.step}, past train.steps (${steps}): nothing is left to train; set train.steps above ${state.step} to continue training`,
    );
  }
  if (state.step === steps) log(`resume: ${dir} is at train.steps (${steps}): no step is left to train; writing the final model from it`);
  return { dir, state };
}

/** The data loader's position in the checkpoint (DataLoader.restore checks it against the dataset). */
export function loaderPosition(from: ResumePoint | undefined): LoaderState | undefined {
  return from?.state.loader as LoaderState | undefined;
}

/** The checkpoint's optimizer moments, loss scale and EMA into `trainer`; where the loop continues. */
export async function resumeTrainer(
  trainer: CheckpointedTrainer,
  from: ResumePoint | undefined,
  recipe: Recipe,
  log: (line: string) => void,
): Promise<RunPosition> {
  if (from === undefined) return { step: 0, skippedSteps: 0 };
  await restoreTrainerState(from.dir, from.state, trainer, { ema: recipe.train.ema !== null, lossScale: recipe.train.mixedPrecision === 'fp16' });
  log(`resumed from ${from.dir} at step ${from.state.step}`);
  return { step: from.state.step, skippedSteps: from.state.skippedSteps };
}

/** Writes the run's checkpoints into recipe.output; on ranks other than 0 (`enabled` false) save() does nothing. */
export class Checkpoints {
  readonly written: string[] = [];

  constructor(
    private readonly run: {
      recipe: Recipe;
      base: BaseIdentity;
      trainer: CheckpointedTrainer;
      loader: { state(): LoaderState };
      hooks: Hooks;
      enabled: boolean;
      log: (line: string) => void;
    },
  ) {}

  async save(at: RunPosition): Promise<void> {
    const { recipe, base, trainer, loader, hooks, enabled, log } = this.run;
    if (!enabled) return;
    const state = { ...at, loader: { ...loader.state() }, recipe, base };
    const dir = await saveTrainingCheckpoint(recipe.output, state, trainer, {
      ema: recipe.train.ema !== null,
      keep: recipe.checkpoint.keep,
      writeWeights: (tmp) => hooks.saveCheckpoint(tmp),
    });
    this.written.push(dir);
    log(`checkpoint ${path.relative(process.cwd(), dir) || dir}`);
  }
}
