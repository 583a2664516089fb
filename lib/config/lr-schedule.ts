/**
 * Learning-rate schedule options (camelCase keys), with diffusers' `get_scheduler` names and
 * defaults (v0.31 optimization.py). The total step count and the base learning rate are not here:
 * they come from `train.steps` and `train.lr`. Options a schedule would ignore are refused rather
 * than silently dropped (diffusers' `constant` ignores warmup; here it is an error pointing at
 * `constant_with_warmup`). Pure: never loads the addon.
 */
import { z } from 'zod';
import { ConfigError } from '../errors';
import { formatFieldPath } from './field-path';

export const LR_SCHEDULE_NAMES = ['constant', 'constant_with_warmup', 'linear', 'cosine', 'cosine_with_restarts', 'polynomial'] as const;
export type LrScheduleName = (typeof LR_SCHEDULE_NAMES)[number];

/** diffusers' defaults where `get_scheduler` leaves them to the schedule function. */
export const LR_SCHEDULE_DEFAULTS = {
  /** get_cosine_schedule_with_warmup: half a cosine, from the peak down to 0. */
  cosineNumCycles: 0.5,
  /** get_scheduler's num_cycles for cosine_with_restarts: one cycle, i.e. no restart. */
  restartsNumCycles: 1,
  power: 1,
  lrEnd: 1e-7,
} as const;

export const lrScheduleSchema = z
  .object({
    /** The schedule (diffusers' --lr_scheduler; its scripts default to "constant"). */
    name: z.enum(LR_SCHEDULE_NAMES).default('constant'),
    /** Steps of linear warmup from 0 to the base lr (not for "constant"). */
    warmupSteps: z.number().int().nonnegative().default(0),
    /** cosine: periods of the cosine (default 0.5: a half cosine down to 0); cosine_with_restarts: cycles (default 1). */
    numCycles: z.number().positive().finite().optional(),
    /** polynomial: the power of the decay (default 1: linear). */
    power: z.number().positive().finite().optional(),
    /** polynomial: the lr reached at the last step, absolute, below train.lr (default 1e-7). */
    lrEnd: z.number().nonnegative().finite().optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    const refuse = (key: string, message: string): void => ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message });
    if (o.name === 'constant' && o.warmupSteps > 0)
      refuse('warmupSteps', 'the "constant" schedule has no warmup (as in diffusers); use "constant_with_warmup"');
    if (o.numCycles !== undefined && o.name !== 'cosine' && o.name !== 'cosine_with_restarts')
      refuse('numCycles', `used only by "cosine" and "cosine_with_restarts", not by "${o.name}"`);
    if (o.power !== undefined && o.name !== 'polynomial') refuse('power', `used only by "polynomial", not by "${o.name}"`);
    if (o.lrEnd !== undefined && o.name !== 'polynomial') refuse('lrEnd', `used only by "polynomial", not by "${o.name}"`);
  });

export type LrScheduleInput = z.input<typeof lrScheduleSchema>;
export type LrScheduleConfig = z.output<typeof lrScheduleSchema>;

/** Validates schedule options; errors name each field under `where` (the recipe's `train.lrSchedule`). */
export function parseLrSchedule(input: unknown, where = 'train.lrSchedule'): LrScheduleConfig {
  const result = lrScheduleSchema.safeParse(input ?? {});
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => `${formatFieldPath(where, issue.path)}: ${issue.message}`);
  throw new ConfigError(`Invalid learning-rate schedule:\n  ${lines.join('\n  ')}`);
}
