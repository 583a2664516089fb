/**
 * The transfer study: one base recipe (model, data, validation, train budget) run several ways —
 * from scratch, full fine-tune, each freezing preset, LoRA — with a table and a plot of held-out
 * loss, trainable parameters and time per step. It answers "what should I freeze?" on your own data.
 * Its runner (planRuns, executeRuns) also drives the data-efficiency study (data-efficiency.ts).
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { z } from 'zod';
import { SafetensorsFile } from '../checkpoint/safetensors';
import { formatFieldPath, refusePrototypeKeys } from '../config/field-path';
import { parseRecipe } from '../config/recipe';
import { ConfigError } from '../errors';
import { renderReport } from '../report/html';
import { lineChart } from '../report/svg-chart';
import { finetune, prepareRecipe } from '../train/finetune';
import { writeAll, writeFileAtomically } from '../util/atomic-write';

export interface StudyVariant {
  name: string;
  /** Merged over the base recipe (freeze, lora, model.scratch, train.lr ...). */
  overrides: Record<string, unknown>;
}

const curvePointSchema = z.object({ step: z.number().int().nonnegative(), loss: z.number() }).strict();

/** A row of the study's table; `study.json` is an array of them (`transferStudySchema`). */
const studyRowSchema = z
  .object({
    name: z.string(),
    trainableParams: z.number().int().nonnegative(),
    trainablePercent: z.number(),
    heldOutLoss: z.number(),
    secondsPerStep: z.number().nonnegative(),
    curve: z.array(curvePointSchema),
  })
  .strict();

export type StudyRow = z.infer<typeof studyRowSchema>;

/** The transfer study's `study.json`. */
export const transferStudySchema = z.array(studyRowSchema).nonempty();

export const COLORS = ['#d62728', '#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

/** From scratch: the same architecture, randomly initialised, at 10× the fine-tuning lr with a cosine schedule. */
export function scratchOverrides(lr: number): Record<string, unknown> {
  return { model: { scratch: true }, train: { lr: lr * 10, lrSchedule: { name: 'cosine', warmupSteps: 0 } } };
}

/** The default ways to run: scratch (10× the fine-tuning lr, cosine with warmup), full, the presets, LoRA. */
export function defaultVariants(lr: number): StudyVariant[] {
  const ft = (name: string, freeze: Record<string, unknown>): StudyVariant => ({ name, overrides: { freeze } });
  return [
    { name: 'from scratch', overrides: scratchOverrides(lr) },
    ft('full', { preset: 'full' }),
    ft('encoder-frozen', { preset: 'encoder-frozen' }),
    ft('decoder-only', { preset: 'decoder-only' }),
    ft('attention-only', { preset: 'attention-only' }),
    ft('bias-norm', { preset: 'bias-norm' }),
    { name: 'LoRA locon (r8, alpha 16, attention, convolutions, samplers)', overrides: { lora: { preset: 'locon' }, train: { lr: lr * 10 } } },
  ];
}

/**
 * A variants file (`npm run transfer-study -- --variants <file>`): the ways to run instead of the default
 * ones — a search over learning rates or LoRA shapes, say — and the README block `--readme` replaces.
 */
export const studyVariantsFileSchema = z
  .object({
    /** README.md's `<!-- name:begin -->` … `<!-- name:end -->` block for --readme (default "transfer-study"). */
    readmeBlock: z
      .string()
      .regex(/^[a-z0-9-]+$/, 'expected lower-case letters, digits and hyphens')
      .default('transfer-study'),
    variants: z
      .array(z.object({ name: z.string().min(1), overrides: z.record(z.unknown()) }).strict())
      .min(1)
      .superRefine((vs, ctx) => {
        const seen = new Set<string>();
        vs.forEach((v, i) => {
          if (seen.has(v.name)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [i, 'name'], message: `expected unique names but "${v.name}" repeats` });
          seen.add(v.name);
        });
      }),
  })
  .strict();

export type StudyVariantsFile = z.infer<typeof studyVariantsFileSchema>;

export function merge(base: Record<string, unknown>, over: Record<string, unknown>, where: string, path: readonly string[] = []): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    refusePrototypeKeys([...path, k], formatFieldPath(where, [...path, k]));
    const b = Object.hasOwn(out, k) ? out[k] : undefined;
    out[k] =
      v !== null && typeof v === 'object' && !Array.isArray(v) && b !== null && typeof b === 'object' && !Array.isArray(b)
        ? merge(b as Record<string, unknown>, v as Record<string, unknown>, where, [...path, k])
        : v;
  }
  return out;
}

export function studyTable(rows: readonly StudyRow[]): string {
  const lines = ['| run | trainable parameters | held-out loss | s / step |', '|---|---:|---:|---:|'];
  for (const r of rows)
    lines.push(
      `| ${r.name} | ${r.trainableParams.toLocaleString('en-US')} (${r.trainablePercent.toFixed(1)}%) | ${r.heldOutLoss.toFixed(4)} | ${r.secondsPerStep.toFixed(3)} |`,
    );
  return lines.join('\n');
}

export interface PlannedRun {
  readonly name: string;
  readonly dir: string;
  readonly recipe: Record<string, unknown>;
}

const finishedRunSchema = studyRowSchema.extend({
  seconds: z.number().nonnegative(),
  steps: z.number().int().nonnegative(),
});

export type FinishedRun = z.infer<typeof finishedRunSchema> & {
  /** Taken from the run's study-run.json by a resumed study rather than trained now. */
  kept?: boolean;
};

/** Each finished run leaves its recipe and row here, so that a resumed study (--resume) keeps it. */
export const RUN_RECORD = 'study-run.json';
const runRecordSchema = z.object({ recipe: z.record(z.unknown()), parsed: z.record(z.unknown()).optional(), row: finishedRunSchema });

export interface ExecuteOptions {
  /** Keep each run whose folder holds a study-run.json made from the same recipe; train the others. */
  resume?: boolean;
}

/**
 * The run's record when it finished with this recipe, else null: it runs again. The record keeps the recipe
 * as parsed then (presets expanded, defaults filled in), so a preset or a default that has changed since
 * counts as a change even where the recipe's text has not; records without it compare as written.
 */
export async function keptRun(run: PlannedRun): Promise<FinishedRun | null> {
  let text: string;
  try {
    text = await fs.readFile(path.join(run.dir, RUN_RECORD), 'utf8');
  } catch {
    return null;
  }
  let parsed;
  try {
    parsed = runRecordSchema.safeParse(JSON.parse(text));
  } catch {
    return null;
  }
  if (!parsed.success || parsed.data.row.name !== run.name) return null;
  const record = parsed.data;
  const same =
    record.parsed === undefined ? JSON.stringify(record.recipe) === JSON.stringify(run.recipe) : JSON.stringify(record.parsed) === parsedJson(run.recipe);
  return same ? { ...record.row, kept: true } : null;
}

/** The recipe as this version parses it, in JSON (the planned recipes were validated by planRuns). */
function parsedJson(recipe: Record<string, unknown>): string {
  return JSON.stringify(parseRecipe(recipe));
}

/**
 * Every run's recipe, built and validated before the first run, so a bad override or a study without a
 * held-out loss fails in seconds, not after hours.
 */
export function planRuns(recipe: Record<string, unknown>, recipeFile: string, out: string, variants: readonly StudyVariant[]): PlannedRun[] {
  return variants.map((v, i) => {
    const dir = path.join(out, `run-${i}-${v.name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`);
    const merged = merge(
      { ...recipe, checkpoint: { every: 0, keep: 1 }, resume: undefined },
      { ...v.overrides, output: dir },
      `variant "${v.name}": overrides`,
    );
    const prepared = prepareRecipe(merged, recipeFile);
    if (prepared.validation.every === 0)
      throw new ConfigError(
        `${recipeFile}: validation.every: expected a number of steps > 0 (a study compares held-out losses) but found 0 (variant "${v.name}")`,
      );
    return { name: v.name, dir, recipe: merged };
  });
}

export async function executeRuns(
  runs: readonly PlannedRun[],
  recipeFile: string,
  log: (line: string) => void,
  options: ExecuteOptions = {},
): Promise<FinishedRun[]> {
  const rows: FinishedRun[] = [];
  for (const run of runs) {
    const { name, dir, recipe: variantRecipe } = run;
    const kept = options.resume === true ? await keptRun(run) : null;
    if (kept !== null) {
      rows.push(kept);
      log(`${name}: kept from ${path.join(dir, RUN_RECORD)} (held-out loss ${kept.heldOutLoss.toFixed(4)})`);
      continue;
    }
    await fs.rm(dir, { recursive: true, force: true });
    log(name);
    const started = Date.now();
    const r = await finetune(variantRecipe, { recipeFile });
    const seconds = (Date.now() - started) / 1000;
    const last = r.validation[r.validation.length - 1];
    if (last === undefined)
      throw new ConfigError(
        `${recipeFile}: run "${name}" measured no held-out loss: expected held-out data (validation.data, or a built-in dataset's test split) but found none`,
      );
    const lora = r.loraFile !== undefined;
    const trainable = lora ? await loraParams(r.loraFile!) : r.plan.totals.trainableNumel;
    const row: FinishedRun = {
      name,
      trainableParams: trainable,
      trainablePercent: (100 * trainable) / r.plan.totals.numel,
      heldOutLoss: last.loss,
      secondsPerStep: seconds / Math.max(1, r.steps),
      curve: r.validation.map((v) => ({ step: v.step, loss: v.loss })),
      seconds,
      steps: r.steps,
    };
    rows.push(row);
    const record = Buffer.from(`${JSON.stringify({ recipe: variantRecipe, parsed: parseRecipe(variantRecipe), row }, null, 2)}\n`);
    await writeFileAtomically(path.join(dir, RUN_RECORD), (h) => writeAll(h, record));
    log(`  held-out loss ${last.loss.toFixed(4)}, ${rows[rows.length - 1]!.secondsPerStep.toFixed(3)} s/step`);
  }
  return rows;
}

export async function runTransferStudy(
  recipe: Record<string, unknown>,
  recipeFile: string,
  out: string,
  variants: readonly StudyVariant[],
  log: (line: string) => void = () => undefined,
  options: ExecuteOptions = {},
): Promise<StudyRow[]> {
  const runs = planRuns(recipe, recipeFile, out, variants);
  await fs.mkdir(out, { recursive: true });
  const rows: StudyRow[] = (await executeRuns(runs, recipeFile, log, options)).map(({ seconds: _s, steps: _n, kept: _k, ...row }) => row);
  const svg = lineChart(
    rows.map((r, i) => ({ name: r.name, color: COLORS[i % COLORS.length]!, points: r.curve.map((c) => [c.step, c.loss] as const) })),
    { title: 'Held-out loss vs step', xLabel: 'training step', yLabel: 'held-out loss', logY: true, width: 760, height: 460 },
  );
  await writeChart(out, 'loss', svg);
  const table = studyTable(rows);
  await fs.writeFile(path.join(out, 'study.md'), `${table}\n`);
  await fs.writeFile(path.join(out, 'study.json'), `${JSON.stringify(rows, null, 2)}\n`);
  await fs.writeFile(
    path.join(out, 'report.html'),
    renderReport('difftune transfer study', [
      {
        title: 'Runs',
        blocks: [
          {
            kind: 'table',
            header: ['run', 'trainable parameters', '% trained', 'held-out loss', 's / step'],
            rows: rows.map((r) => [
              r.name,
              r.trainableParams.toLocaleString('en-US'),
              r.trainablePercent.toFixed(2),
              r.heldOutLoss.toFixed(5),
              r.secondsPerStep.toFixed(3),
            ]),
          },
        ],
      },
      { title: 'Held-out loss', blocks: [{ kind: 'images', items: [{ src: 'loss.png', caption: 'held-out loss vs step (log scale)' }] }] },
      { title: 'Recipe', blocks: [{ kind: 'pre', text: JSON.stringify(recipe, null, 2) }] },
    ]),
  );
  return rows;
}

/** Parameters in a LoRA adapters file (what a LoRA run trains). */
export async function loraParams(file: string): Promise<number> {
  const f = await SafetensorsFile.open(file);
  try {
    return [...f.tensors.values()].reduce((n, t) => n + t.numel, 0);
  } finally {
    await f.close();
  }
}

/** `<name>.svg` and `<name>.png` (sharp renders it) in `out`. */
export async function writeChart(out: string, name: string, svg: string): Promise<void> {
  await fs.writeFile(path.join(out, `${name}.svg`), svg);
  await sharp(Buffer.from(svg))
    .png()
    .toFile(path.join(out, `${name}.png`));
}
