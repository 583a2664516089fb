/**
 * Freezing options: the `freeze` section of a training recipe (camelCase keys). Which parameters
 * train is decided by rules applied in this order, starting from all-frozen, the last matching rule
 * winning for each parameter:
 *
 *   1. the preset's rules (`preset`; see lib/freeze/presets.ts),
 *   2. `trainable`: each pattern trains what it matches,
 *   3. `frozen`: each pattern freezes what it matches (so `frozen` carves exceptions out of 1 and 2),
 *   4. `rules`: `{ train: pattern }` / `{ freeze: pattern }` in order, for full control.
 *
 * Without `preset`, the preset is `full` when `trainable` and `rules` are both empty (so `{}` trains
 * everything and `{ frozen: [...] }` trains everything else), and `none` otherwise (so
 * `{ trainable: [...] }` trains exactly what it lists). `lrMultipliers` maps patterns to learning-rate
 * multipliers of trainable parameters (default 1; later entries win). Patterns are checked here
 * (syntax); that each matches a parameter is checked when the plan meets the model.
 * Pure: never loads the addon.
 */
import { z } from 'zod';
import { ConfigError } from '../errors';
import { formatFieldPath } from './field-path';
import { compilePattern } from './patterns';

// The names live here, the rules in lib/freeze/presets.ts (which must define every one): the recipe schema
// sits below lib/freeze/ and may not import it.
export const PRESET_NAMES = ['full', 'encoder-frozen', 'decoder-only', 'attention-only', 'bias-norm', 'none'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

const pattern = z.string().min(1, 'expected a non-empty pattern');

export const freezeOptionsSchema = z
  .object({
    /** Named starting selection; see the module comment for the default. */
    preset: z.enum(PRESET_NAMES).optional(),
    /** Patterns whose parameters train (applied after the preset). */
    trainable: z.array(pattern).default([]),
    /** Patterns whose parameters stay frozen (applied after `trainable`). */
    frozen: z.array(pattern).default([]),
    /** Ordered rules applied last: `{ train: pattern }` or `{ freeze: pattern }`. */
    rules: z.array(z.union([z.object({ train: pattern }).strict(), z.object({ freeze: pattern }).strict()])).default([]),
    /** Pattern → learning-rate multiplier (> 0) for the trainable parameters it matches; later entries win. */
    lrMultipliers: z.record(pattern, z.number().positive().finite()).default({}),
    /** Apply weight decay to every trainable parameter (as diffusers' scripts do) instead of sparing biases, norms and embedding tables. */
    decayAll: z.boolean().default(false),
    /**
     * The text encoder of a text-to-image pipeline: "frozen" (the default), "full" (every weight trains, with
     * the U-Net's), or patterns over its parameter names (`text_model.encoder.layers.1*.**`) that train.
     */
    textEncoder: z.union([z.enum(['frozen', 'full']), z.array(pattern).nonempty()]).default('frozen'),
  })
  .strict()
  .superRefine((options, ctx) => {
    const check = (source: string, path: (string | number)[]): void => {
      try {
        compilePattern(source, formatFieldPath('freeze', path));
      } catch (error) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path, message: error instanceof Error ? error.message : String(error) });
      }
    };
    options.trainable.forEach((p, i) => check(p, ['trainable', i]));
    options.frozen.forEach((p, i) => check(p, ['frozen', i]));
    options.rules.forEach((rule, i) => ('train' in rule ? check(rule.train, ['rules', i, 'train']) : check(rule.freeze, ['rules', i, 'freeze'])));
    Object.keys(options.lrMultipliers).forEach((p) => check(p, ['lrMultipliers', p]));
    if (Array.isArray(options.textEncoder)) options.textEncoder.forEach((p, i) => check(p, ['textEncoder', i]));
  });

/** Options as a caller writes them (defaults optional). */
export type FreezeOptionsInput = z.input<typeof freezeOptionsSchema>;
/** Options with every default filled in. */
export type FreezeOptions = z.output<typeof freezeOptionsSchema>;

/** Validates freezing options; errors name each field as `freeze.<path>` (or under `where`). */
export function parseFreezeOptions(input: unknown, where = 'freeze'): FreezeOptions {
  const result = freezeOptionsSchema.safeParse(input ?? {});
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    // Pattern issues already carry their full field path (compilePattern was given it).
    if (issue.code === z.ZodIssueCode.custom) return where === 'freeze' ? issue.message : issue.message.replace(/^freeze/, where);
    return `${formatFieldPath(where, issue.path)}: ${issue.message}`;
  });
  throw new ConfigError(`Invalid freeze options:\n  ${lines.join('\n  ')}`);
}
