/**
 * Learning-rate schedules with diffusers' `get_scheduler` semantics (v0.31 optimization.py): the lr of
 * optimizer step `step` (0-based) is `lr × λ(step)`, which is what torch's LambdaLR gives after `step`
 * calls to `scheduler.step()` — so with warmup the very first step runs at lr 0, as in diffusers.
 * Past `totalSteps` the formulas continue as diffusers' do (linear stays at 0, polynomial at lrEnd,
 * cosine_with_restarts at 0, cosine follows its cosine). Pure: numbers in, numbers out.
 */
import { LR_SCHEDULE_DEFAULTS, type LrScheduleConfig, type LrScheduleInput, type LrScheduleName, parseLrSchedule } from '../config/lr-schedule';
import { ConfigError, expected } from '../errors';

/** A schedule plus what the rest of the recipe supplies: the base lr (`train.lr`) and total optimizer steps (`train.steps`). */
export type LrScheduleOptions = LrScheduleInput & {
  readonly lr: number;
  readonly totalSteps: number;
};

/** A validated schedule with every default resolved. */
export interface ResolvedLrSchedule {
  readonly name: LrScheduleName;
  readonly warmupSteps: number;
  readonly numCycles: number;
  readonly power: number;
  readonly lrEnd: number;
  readonly lr: number;
  readonly totalSteps: number;
}

/**
 * Validates `options` and fills diffusers' defaults (numCycles 0.5 for cosine, 1 for restarts; power 1;
 * lrEnd 1e-7). ConfigError, naming the field, when the schedule cannot run over `totalSteps`.
 */
export function resolveLrSchedule(options: LrScheduleOptions, where = 'train.lrSchedule'): ResolvedLrSchedule {
  if (typeof options !== 'object' || options === null) throw expected('schedule options { name, lr, totalSteps, ... }', where, options);
  const { lr, totalSteps, ...schedule } = options;
  if (typeof lr !== 'number' || !Number.isFinite(lr) || lr <= 0) throw expected('a positive finite learning rate', 'train.lr', lr);
  if (!Number.isSafeInteger(totalSteps) || totalSteps <= 0) throw expected('a positive integer number of optimizer steps', 'train.steps', totalSteps);
  const config: LrScheduleConfig = parseLrSchedule(schedule, where);
  const resolved: ResolvedLrSchedule = {
    name: config.name,
    warmupSteps: config.warmupSteps,
    numCycles: config.numCycles ?? (config.name === 'cosine_with_restarts' ? LR_SCHEDULE_DEFAULTS.restartsNumCycles : LR_SCHEDULE_DEFAULTS.cosineNumCycles),
    power: config.power ?? LR_SCHEDULE_DEFAULTS.power,
    lrEnd: config.lrEnd ?? LR_SCHEDULE_DEFAULTS.lrEnd,
    lr,
    totalSteps,
  };
  if (resolved.warmupSteps > totalSteps) {
    throw new ConfigError(
      `${where}.warmupSteps: expected at most train.steps (${totalSteps}) warmup steps but found ${resolved.warmupSteps}; the lr would never reach train.lr`,
    );
  }
  if (resolved.name === 'polynomial') {
    // diffusers divides by (total − warmup) and requires lr > lr_end.
    if (resolved.warmupSteps >= totalSteps) {
      throw new ConfigError(
        `${where}.warmupSteps: "polynomial" needs decay steps: expected fewer than train.steps (${totalSteps}) warmup steps but found ${resolved.warmupSteps}`,
      );
    }
    if (!(lr > resolved.lrEnd)) throw new ConfigError(`${where}.lrEnd: expected an end lr below train.lr (${lr}) but found ${resolved.lrEnd}`);
  }
  return resolved;
}

/** λ(step): the factor on the base lr at optimizer step `step` (0-based) of a resolved schedule. */
export function lrMultiplierAt(step: number, s: ResolvedLrSchedule): number {
  if (!Number.isSafeInteger(step) || step < 0) throw expected('a non-negative integer optimizer step', 'step', step);
  if (s.name === 'constant') return 1;
  if (step < s.warmupSteps) return step / Math.max(1, s.warmupSteps);
  const decaySteps = s.totalSteps - s.warmupSteps;
  const progress = (step - s.warmupSteps) / Math.max(1, decaySteps);
  switch (s.name) {
    case 'constant_with_warmup':
      return 1;
    case 'linear':
      return Math.max(0, (s.totalSteps - step) / Math.max(1, decaySteps));
    case 'cosine':
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * s.numCycles * 2 * progress)));
    case 'cosine_with_restarts':
      if (progress >= 1) return 0;
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * ((s.numCycles * progress) % 1))));
    case 'polynomial': {
      if (step > s.totalSteps) return s.lrEnd / s.lr;
      // Unlike the others, diffusers divides by the raw decay steps here (resolve ensures > 0).
      const remaining = 1 - (step - s.warmupSteps) / decaySteps;
      return ((s.lr - s.lrEnd) * remaining ** s.power + s.lrEnd) / s.lr;
    }
  }
}

/** The learning rate of optimizer step `step` (0-based): `lr × λ(step)`. Validates `options` on each call. */
export function lrAt(step: number, options: LrScheduleOptions): number {
  const schedule = resolveLrSchedule(options);
  return schedule.lr * lrMultiplierAt(step, schedule);
}

/** Validates once and returns `step => lr` for the training loop. */
export function makeLrSchedule(options: LrScheduleOptions, where?: string): (step: number) => number {
  const schedule = resolveLrSchedule(options, where);
  return (step) => schedule.lr * lrMultiplierAt(step, schedule);
}
