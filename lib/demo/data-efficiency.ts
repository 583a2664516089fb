/**
 * The data-efficiency study: the full fine-tune and from scratch at each dataset size, with one step
 * budget, on the transfer study's runner — "how much data does the base model save?": held-out loss vs
 * images, "fine-tuning with N images matches scratch with M images", and the README's two transfer goals.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { z } from 'zod';
import { parseDataOptions, type DataOptions } from '../config/data';
import { createDataset } from '../data/dataset';
import { ConfigError } from '../errors';
import { renderReport, type Section } from '../report/html';
import { duration } from '../report/run-report';
import { lineChart } from '../report/svg-chart';
import { prepareRecipe } from '../train/finetune';
import { COLORS, executeRuns, type ExecuteOptions, merge, planRuns, scratchOverrides, writeChart, type StudyVariant } from './transfer-study';

/** The README's goals: fine-tuned reaches scratch's final held-out loss in ≤ 1/5 of the steps, and matches scratch on all the images with ≤ 1/10 of them. */
export const STEPS_GOAL = 1 / 5;
export const IMAGES_GOAL = 1 / 10;

export const SUBSET_RULE =
  'each size N trains on data.limit = N: the first N images of the training data in its fixed order (a built-in dataset interleaves its classes, so every subset is class-balanced; an image folder takes its sorted paths), whatever train.seed is, so the subsets are nested (the 64 images are among the 256)';

/** `--data-sizes 64,256,1024,4096`: two or more different sizes, returned in ascending order. */
export const dataSizesValue: { readonly schema: z.ZodType<number[], z.ZodTypeDef, string>; readonly expected: string } = {
  schema: z
    .string()
    .regex(/^\s*\d+(\s*,\s*\d+)+\s*$/)
    .transform((text) => text.split(',').map(Number))
    .pipe(
      z
        .array(z.number().int().min(1).max(Number.MAX_SAFE_INTEGER))
        .refine((sizes) => new Set(sizes).size === sizes.length)
        .transform((sizes) => [...sizes].sort((a, b) => a - b)),
    ),
  expected: 'two or more different image counts ≥ 1, separated by commas (64,256,1024,4096)',
};

/** Held-out loss at one dataset size (NaN: the run diverged). */
export interface SizePoint {
  images: number;
  loss: number;
}

const reachSchema = z.discriminatedUnion('kind', [
  /** Log-linear interpolation between the two measured sizes around the first crossing. */
  z.object({ kind: z.literal('interpolated'), images: z.number().positive(), between: z.tuple([z.number().int(), z.number().int()]) }).strict(),
  /** Already reached at the smallest size measured: the answer is that size or fewer. */
  z.object({ kind: z.literal('smallest'), images: z.number().int().positive() }).strict(),
  /** Not reached at any size measured, up to `largest`. */
  z.object({ kind: z.literal('never'), largest: z.number().int().positive() }).strict(),
  /** The target is not a finite loss (its run diverged): nothing to reach. */
  z.object({ kind: z.literal('no-target') }).strict(),
]);
export type ImagesToReach = z.infer<typeof reachSchema>;

/**
 * The fewest images at which a loss-vs-images curve gets down to `target` (loss ≤ target). Sizes are
 * scanned in ascending order and the first one at or below the target is the crossing — on a curve that
 * is not monotonic (noise, a size that overfits) a later dip does not count, since a smaller set already
 * reached it. Between the crossing and the size before it, the loss is taken as linear in log(images).
 */
export function imagesToReach(points: readonly SizePoint[], target: number): ImagesToReach {
  const sorted = [...points].sort((a, b) => a.images - b.images);
  if (sorted.length === 0) throw new ConfigError('imagesToReach: expected at least one measured size but found none');
  if (!Number.isFinite(target)) return { kind: 'no-target' };
  const i = sorted.findIndex((p) => p.loss <= target);
  if (i < 0) return { kind: 'never', largest: sorted[sorted.length - 1]!.images };
  if (i === 0) return { kind: 'smallest', images: sorted[0]!.images };
  const [a, b] = [sorted[i - 1]!, sorted[i]!];
  // a.loss > target ≥ b.loss, or a.loss is NaN (a diverged run: no slope to interpolate along, b is the answer).
  const t = Number.isFinite(a.loss) ? (a.loss - target) / (a.loss - b.loss) : 1;
  const images = t >= 1 ? b.images : Math.exp(Math.log(a.images) + t * (Math.log(b.images) - Math.log(a.images)));
  return { kind: 'interpolated', images, between: [a.images, b.images] };
}

/** The first step at which a held-out curve gets down to `target`, linear between validations; null: never within the run. */
export function stepsToReach(curve: ReadonlyArray<{ step: number; loss: number }>, target: number): number | null {
  const sorted = [...curve].sort((a, b) => a.step - b.step);
  const i = sorted.findIndex((p) => p.loss <= target);
  if (i < 0) return null;
  if (i === 0) return sorted[0]!.step;
  const [a, b] = [sorted[i - 1]!, sorted[i]!];
  const t = Number.isFinite(a.loss) ? (a.loss - target) / (a.loss - b.loss) : 1;
  return a.step + Math.min(1, t) * (b.step - a.step);
}

/** A loss in the summary: null where it was not finite (JSON has no NaN). */
const loss = z.number().nullable();
const curveSchema = z.array(z.object({ step: z.number().int().nonnegative(), loss }).strict());

const runSchema = z
  .object({
    variant: z.enum(['fine-tuned', 'from scratch']),
    images: z.number().int().positive(),
    /** At the last step (the study's number), and the lowest along the way. */
    heldOutLoss: loss,
    bestHeldOutLoss: loss,
    steps: z.number().int().nonnegative(),
    seconds: z.number().nonnegative(),
    secondsPerStep: z.number().nonnegative(),
    curve: curveSchema,
  })
  .strict();
export type DataEfficiencyRun = z.infer<typeof runSchema>;

const matchSchema = z.object({ images: z.number().int().positive(), heldOutLoss: loss, scratch: reachSchema, statement: z.string().min(1) }).strict();
export type MatchStatement = z.infer<typeof matchSchema>;

const stepsGoalSchema = z
  .object({
    target: z.number().positive(),
    met: z.boolean(),
    perSize: z.array(
      z
        .object({
          images: z.number().int().positive(),
          scratchFinalLoss: loss,
          /** Steps the fine-tuned run took to reach it (interpolated between validations); null: never. */
          steps: z.number().nonnegative().nullable(),
          budget: z.number().int().nonnegative(),
          fraction: z.number().nonnegative().nullable(),
          met: z.boolean(),
        })
        .strict(),
    ),
    statement: z.string().min(1),
  })
  .strict();

const imagesGoalSchema = z
  .object({
    target: z.number().positive(),
    met: z.boolean(),
    /** The largest size: scratch's held-out loss with all of it is the bar. */
    scratchImages: z.number().int().positive(),
    scratchLoss: loss,
    /** The smallest measured fine-tuned size at or below the bar; null: none. */
    fineTunedImages: z.number().int().positive().nullable(),
    fineTunedLoss: loss,
    fraction: z.number().positive().nullable(),
    /** The same read off the fine-tuned curve, interpolated log-linearly (informative; the verdict uses measured sizes). */
    estimate: reachSchema,
    statement: z.string().min(1),
  })
  .strict();

export const dataEfficiencyGoalsSchema = z.object({ steps: stepsGoalSchema, images: imagesGoalSchema }).strict();
export type DataEfficiencyGoals = z.infer<typeof dataEfficiencyGoalsSchema>;

/** study.json of `npm run transfer-study -- --data-sizes …` (the tests parse it with this schema too). */
export const dataEfficiencySummarySchema = z
  .object({
    kind: z.literal('data-efficiency'),
    recipe: z.string(),
    date: z.string(),
    machine: z.string(),
    sizes: z.array(z.number().int().positive()).min(2),
    subsetRule: z.string(),
    fineTuned: z.string(),
    fromScratch: z.string(),
    trainSteps: z.number().int().positive(),
    batchSize: z.number().int().positive(),
    heldOut: z.object({ data: z.string(), samples: z.number().int().positive() }).strict(),
    runs: z.array(runSchema).min(4),
    matches: z.array(matchSchema).min(2),
    goals: dataEfficiencyGoalsSchema,
    /** Wall time of the whole study, and of its runs. */
    seconds: z.number().nonnegative(),
  })
  .strict();
export type DataEfficiencySummary = z.infer<typeof dataEfficiencySummarySchema>;

function finite(x: number | null): number {
  return x ?? NaN;
}

function lossText(x: number | null): string {
  return x !== null && Number.isFinite(x) ? x.toFixed(4) : 'not finite';
}

function percent(x: number): string {
  return `${(100 * x).toFixed(x < 0.1 ? 1 : 0)}%`;
}

/** The fine-tuned and from-scratch runs at each size, ascending; both must be there. */
function pairs(runs: readonly DataEfficiencyRun[]): Array<{ images: number; ft: DataEfficiencyRun; scratch: DataEfficiencyRun }> {
  const sizes = [...new Set(runs.map((r) => r.images))].sort((a, b) => a - b);
  return sizes.map((images) => {
    const ft = runs.find((r) => r.images === images && r.variant === 'fine-tuned');
    const scratch = runs.find((r) => r.images === images && r.variant === 'from scratch');
    if (ft === undefined || scratch === undefined)
      throw new ConfigError(
        `data-efficiency runs: expected a fine-tuned and a from-scratch run with ${images} images but found ${ft ? 'no from-scratch' : 'no fine-tuned'} one`,
      );
    return { images, ft, scratch };
  });
}

/** What `imagesToReach` found, as the end of "… matches scratch with …". */
function reachText(r: ImagesToReach): string {
  switch (r.kind) {
    case 'interpolated':
      return r.images === r.between[1] ? `${r.images} images` : `≈ ${Math.round(r.images)} images (between ${r.between[0]} and ${r.between[1]})`;
    case 'smallest':
      return `≤ ${r.images} images (scratch with the fewest images measured is already as good)`;
    case 'never':
      return `more than ${r.largest} images (better than scratch with every size measured)`;
    case 'no-target':
      return "nothing (the fine-tuned run's held-out loss is not finite)";
  }
}

/**
 * "Fine-tuning with N images matches scratch with M images", for each fine-tuned size N: M is the fewest
 * images with which scratch's held-out loss is as low as fine-tuned's (scratch ≤ fine-tuned), read off the
 * scratch curve by imagesToReach.
 */
export function matchStatements(runs: readonly DataEfficiencyRun[]): MatchStatement[] {
  const rows = pairs(runs);
  const scratch = rows.map((r) => ({ images: r.images, loss: finite(r.scratch.heldOutLoss) }));
  return rows.map(({ images, ft }) => {
    const reach = imagesToReach(scratch, finite(ft.heldOutLoss));
    const statement =
      reach.kind === 'never'
        ? `fine-tuning with ${images} images is better than scratch with every size measured (up to ${reach.largest} images)`
        : reach.kind === 'no-target'
          ? `fine-tuning with ${images} images matches no scratch run: its held-out loss is not finite (the run diverged)`
          : `fine-tuning with ${images} images matches scratch with ${reachText(reach)}`;
    return { images, heldOutLoss: ft.heldOutLoss, scratch: reach, statement };
  });
}

/**
 * The README's two goals, from the runs. Steps: at each size, the steps the fine-tuned run's held-out
 * curve took to reach the from-scratch run's final held-out loss, ÷ the step budget; met when ≤ 1/5 at
 * every size. Images: the bar is scratch's held-out loss with the largest size ("all of them"); met when
 * a measured fine-tuned size ≤ 1/10 of it reaches the bar.
 */
export function dataEfficiencyGoals(runs: readonly DataEfficiencyRun[]): DataEfficiencyGoals {
  const rows = pairs(runs);
  const perSize = rows.map(({ images, ft, scratch }) => {
    const steps = stepsToReach(
      ft.curve.map((c) => ({ step: c.step, loss: finite(c.loss) })),
      finite(scratch.heldOutLoss),
    );
    const budget = scratch.steps;
    const fraction = steps === null ? null : steps / Math.max(1, budget);
    return { images, scratchFinalLoss: scratch.heldOutLoss, steps, budget, fraction, met: fraction !== null && fraction <= STEPS_GOAL };
  });
  const stepsMet = perSize.every((p) => p.met);
  const detail = perSize
    .map((p) => {
      if (p.steps === null) return `${p.images} images: not within ${p.budget} steps`;
      // The base model before any step is already as good: worth saying in words, not as "0 steps".
      if (p.steps === 0) return `${p.images} images: at step 0, before fine-tuning`;
      return `${p.images} images: ${Math.round(p.steps)} of ${p.budget} steps (${percent(p.fraction!)})`;
    })
    .join('; ');
  const stepsStatement = stepsMet
    ? `met at every size: ${detail}`
    : `not met at ${perSize.filter((p) => !p.met).length} of ${perSize.length} sizes (the goal is ≤ 1/5 of the steps at every size): ${detail}`;

  const largest = rows[rows.length - 1]!;
  const bar = finite(largest.scratch.heldOutLoss);
  const reached = rows.find((r) => finite(r.ft.heldOutLoss) <= bar);
  const limit = largest.images * IMAGES_GOAL;
  const met = reached !== undefined && reached.images <= limit;
  const barText = `from-scratch's held-out loss with all ${largest.images} images (${lossText(largest.scratch.heldOutLoss)})`;
  const unmeasured = rows[0]!.images > limit ? ` (no size ≤ 1/10 of ${largest.images} was measured)` : '';
  const imagesStatement =
    reached === undefined
      ? `not met: fine-tuned stays above ${barText} with every size measured${unmeasured}`
      : met
        ? `met: fine-tuned with ${reached.images} images (${percent(reached.images / largest.images)} of them) reaches ${barText} with ${lossText(reached.ft.heldOutLoss)}`
        : `not met: fine-tuned needs ${reached.images} images (${percent(reached.images / largest.images)}) to reach ${barText}; the goal is ≤ 1/10 (${Math.floor(limit)} images)${unmeasured}`;
  return {
    steps: { target: STEPS_GOAL, met: stepsMet, perSize, statement: stepsStatement },
    images: {
      target: IMAGES_GOAL,
      met,
      scratchImages: largest.images,
      scratchLoss: largest.scratch.heldOutLoss,
      fineTunedImages: reached?.images ?? null,
      fineTunedLoss: reached?.ft.heldOutLoss ?? null,
      fraction: reached === undefined ? null : reached.images / largest.images,
      estimate: imagesToReach(
        rows.map((r) => ({ images: r.images, loss: finite(r.ft.heldOutLoss) })),
        bar,
      ),
      statement: imagesStatement,
    },
  };
}

/**
 * A goal's statement without its opening verdict ("met: …", "not met at 3 of 4 sizes …" → "…", "at 3 of 4
 * sizes …"), for the table and the report, which show the verdict in a place of its own.
 */
function goalNumbers(statement: string): string {
  return statement.replace(/^(not )?met:? /, '');
}

/** The README / study.md block: held-out loss by size, "N matches M", the goals, how long it took. */
export function dataEfficiencyTable(summary: DataEfficiencySummary): string {
  const rows = pairs(summary.runs);
  const lines = ['| images | from scratch | fine-tuned | fine-tuning with this many matches scratch with |', '|---:|---:|---:|---|'];
  for (const { images, ft, scratch } of rows) {
    const m = summary.matches.find((x) => x.images === images)!;
    lines.push(`| ${images} | ${lossText(scratch.heldOutLoss)} | ${lossText(ft.heldOutLoss)} | ${reachText(m.scratch)} |`);
  }
  const verdict = (met: boolean) => (met ? '**met**' : '**not met**');
  return [
    `Held-out loss (${summary.heldOut.samples} images of ${summary.heldOut.data}) after ${summary.trainSteps} steps of batch ${summary.batchSize} at every size:`,
    '',
    ...lines,
    '',
    `- Fine-tuned reaches from-scratch's final held-out loss in ≤ 1/5 of the steps: ${verdict(summary.goals.steps.met)} — ${goalNumbers(summary.goals.steps.statement)}.`,
    `- With ≤ 1/10 of the images, fine-tuned matches scratch on all of them: ${verdict(summary.goals.images.met)} — ${goalNumbers(summary.goals.images.statement)}.`,
    '',
    `The study took ${duration(summary.seconds)} (${summary.runs.length} runs) on ${summary.machine}.`,
  ].join('\n');
}

/** "fashion-mnist (test split)" or the image folder's path. */
function describeData(d: DataOptions): string {
  return d.source === 'imagefolder' ? (d.path ?? 'an image folder') : `${d.source} (${d.split} split)`;
}

function heldOutData(recipe: ReturnType<typeof prepareRecipe>): string {
  return describeData(parseDataOptions(recipe.validation.data ?? { ...recipe.data, split: 'test' }, 'validation.data'));
}

/** Refuses sizes the training data cannot give, and warns when the smallest subset misses classes. */
async function checkSizes(recipe: ReturnType<typeof prepareRecipe>, sizes: readonly number[], log: (line: string) => void): Promise<void> {
  const largest = sizes[sizes.length - 1]!;
  const dataset = await createDataset({ ...recipe.data, limit: largest }, { onWarning: log });
  const n = dataset.items.length;
  if (n < largest) throw new ConfigError(`--data-sizes: expected sizes up to the ${n} images ${describeData(dataset.options)} holds but found ${largest}`);
  const classes = (k: number) => new Set(dataset.items.slice(0, k).flatMap((i) => (i.label === null ? [] : [i.label]))).size;
  const [few, all] = [classes(sizes[0]!), classes(n)];
  if (few < all)
    log(
      `warning: the ${sizes[0]}-image subset holds ${few} of the ${all} classes of the ${largest}-image one (data.limit takes the first images in sorted order): the sizes also differ in classes`,
    );
}

/**
 * The data-efficiency study: the base recipe as written (fine-tuned) and from scratch (model.scratch, 10×
 * the lr with a cosine schedule, every weight trained) at each dataset size, with the recipe's step budget
 * for all; held-out loss from its validation data. Writes study.json (dataEfficiencySummarySchema),
 * study.md, loss-vs-images.png, loss.png (the held-out curves) and report.html into `out`.
 */
export async function runDataEfficiencyStudy(
  recipe: Record<string, unknown>,
  recipeFile: string,
  out: string,
  sizes: readonly number[],
  log: (line: string) => void = () => undefined,
  options: ExecuteOptions = {},
): Promise<DataEfficiencySummary> {
  const started = Date.now();
  const sorted = [...sizes].sort((a, b) => a - b);
  if (sorted.length < 2 || new Set(sorted).size !== sorted.length || !sorted.every((n) => Number.isSafeInteger(n) && n >= 1))
    throw new ConfigError(`--data-sizes: expected ${dataSizesValue.expected} but found ${JSON.stringify(sizes)}`);
  const base = prepareRecipe(recipe, recipeFile);
  const variants = sorted.flatMap((images): StudyVariant[] => [
    {
      name: `from scratch, ${images} images`,
      overrides: merge(scratchOverrides(base.train.lr), { lora: undefined, freeze: undefined, data: { limit: images } }, 'scratch'),
    },
    { name: `fine-tuned, ${images} images`, overrides: { data: { limit: images } } },
  ]);
  const runs = planRuns(recipe, recipeFile, out, variants);
  await checkSizes(base, sorted, log);
  await fs.mkdir(out, { recursive: true });
  const finished = await executeRuns(runs, recipeFile, log, options);
  // A resumed study's time: this call's, plus the kept runs' own.
  const keptSeconds = finished.reduce((a, r) => a + (r.kept === true ? r.seconds : 0), 0);
  const results: DataEfficiencyRun[] = finished.map((r, i) => ({
    variant: i % 2 === 0 ? 'from scratch' : 'fine-tuned',
    images: sorted[Math.floor(i / 2)]!,
    heldOutLoss: r.heldOutLoss,
    bestHeldOutLoss: Math.min(...r.curve.map((c) => c.loss)),
    steps: r.steps,
    seconds: r.seconds,
    secondsPerStep: r.secondsPerStep,
    curve: r.curve,
  }));
  const cpus = os.cpus();
  // Through JSON and back: the summary returned is exactly what study.json holds, and the writer checks it against the schema the readers use.
  const summary = dataEfficiencySummarySchema.parse(
    JSON.parse(
      JSON.stringify({
        kind: 'data-efficiency',
        recipe: recipeFile,
        date: new Date().toISOString(),
        machine: `${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown CPU'}`,
        sizes: sorted,
        subsetRule: SUBSET_RULE,
        fineTuned: 'the base recipe as written (its freeze and lora settings; all weights when it sets neither), from its pretrained model',
        fromScratch: `the same architecture randomly initialised (model.scratch), every weight trained, lr ${base.train.lr * 10} (10×) with a cosine schedule`,
        trainSteps: base.train.steps,
        batchSize: base.train.batchSize,
        heldOut: { data: heldOutData(base), samples: base.validation.samples },
        runs: results,
        matches: matchStatements(results),
        goals: dataEfficiencyGoals(results),
        seconds: (Date.now() - started) / 1000 + keptSeconds,
      } satisfies DataEfficiencySummary),
    ),
  );
  await writeDataEfficiency(out, summary, recipe);
  log(`data-efficiency study: ${duration(summary.seconds)}`);
  return summary;
}

async function writeDataEfficiency(out: string, summary: DataEfficiencySummary, recipe: Record<string, unknown>): Promise<void> {
  const rows = pairs(summary.runs);
  const point = (r: DataEfficiencyRun) => [r.images, finite(r.heldOutLoss)] as const;
  await writeChart(
    out,
    'loss-vs-images',
    lineChart(
      [
        { name: 'from scratch', color: COLORS[0]!, points: rows.map((r) => point(r.scratch)) },
        { name: 'fine-tuned', color: COLORS[1]!, points: rows.map((r) => point(r.ft)) },
      ],
      {
        title: `Held-out loss after ${summary.trainSteps} steps vs training images`,
        xLabel: 'training images',
        yLabel: 'held-out loss',
        logX: true,
        markers: true,
        width: 760,
        height: 460,
      },
    ),
  );
  await writeChart(
    out,
    'loss',
    lineChart(
      summary.runs.map((r, i) => ({
        name: `${r.variant === 'fine-tuned' ? 'fine-tuned' : 'scratch'}, ${r.images}`,
        color: COLORS[i % COLORS.length]!,
        points: r.curve.map((c) => [c.step, finite(c.loss)] as const),
      })),
      { title: 'Held-out loss vs step', xLabel: 'training step', yLabel: 'held-out loss', logY: true, width: 760, height: 460 },
    ),
  );
  const table = dataEfficiencyTable(summary);
  await fs.writeFile(path.join(out, 'study.md'), `${table}\n`);
  await fs.writeFile(path.join(out, 'study.json'), `${JSON.stringify(summary, null, 2)}\n`);
  const verdict = (met: boolean) => (met ? 'met' : 'not met');
  const sections: Section[] = [
    {
      title: 'Held-out loss vs training images',
      blocks: [
        {
          kind: 'text',
          text: `Fine-tuned vs from scratch at ${summary.sizes.join(', ')} training images, ${summary.trainSteps} steps of batch ${summary.batchSize} each; held-out loss on ${summary.heldOut.samples} images of ${summary.heldOut.data}, at the last step.`,
        },
        {
          kind: 'table',
          header: ['images', 'from scratch', 'fine-tuned', 'fine-tuning with this many matches scratch with'],
          rows: rows.map(({ images, ft, scratch }) => [
            images,
            lossText(scratch.heldOutLoss),
            lossText(ft.heldOutLoss),
            reachText(summary.matches.find((m) => m.images === images)!.scratch),
          ]),
        },
        { kind: 'images', items: [{ src: 'loss-vs-images.png', caption: 'held-out loss vs training images (log scale)' }] },
      ],
    },
    {
      title: 'Goals',
      blocks: [
        {
          kind: 'table',
          header: ['goal', 'result', 'numbers'],
          rows: [
            [
              "fine-tuned reaches from-scratch's final held-out loss in ≤ 1/5 of the steps",
              verdict(summary.goals.steps.met),
              goalNumbers(summary.goals.steps.statement),
            ],
            [
              'with ≤ 1/10 of the images, fine-tuned matches scratch on all of them',
              verdict(summary.goals.images.met),
              goalNumbers(summary.goals.images.statement),
            ],
          ],
        },
      ],
    },
    {
      title: 'Fine-tuning with N images matches scratch with M images',
      blocks: [
        ...summary.matches.map((m): { kind: 'text'; text: string } => ({ kind: 'text', text: `${m.statement}.` })),
        {
          kind: 'text',
          text: "M is the fewest images with which scratch's held-out loss is as low as fine-tuned's with N: the first measured size at or below it, in ascending order, with the loss taken as linear in log(images) between that size and the one before.",
        },
      ],
    },
    { title: 'Held-out loss curves', blocks: [{ kind: 'images', items: [{ src: 'loss.png', caption: 'held-out loss vs step, every run (log scale)' }] }] },
    {
      title: 'Runs',
      blocks: [
        {
          kind: 'table',
          header: ['run', 'images', 'held-out loss', 'lowest on the way', 'steps', 'time', 's / step'],
          rows: summary.runs.map((r) => [
            r.variant,
            r.images,
            lossText(r.heldOutLoss),
            lossText(r.bestHeldOutLoss),
            r.steps,
            duration(r.seconds),
            r.secondsPerStep.toFixed(3),
          ]),
        },
        { kind: 'text', text: `Fine-tuned: ${summary.fineTuned}. From scratch: ${summary.fromScratch}.` },
        { kind: 'text', text: `Subsets: ${summary.subsetRule}.` },
      ],
    },
    { title: 'Time', blocks: [{ kind: 'text', text: `The study took ${duration(summary.seconds)} on ${summary.machine} (${summary.date}).` }] },
    { title: 'Recipe', blocks: [{ kind: 'pre', text: JSON.stringify(recipe, null, 2) }] },
  ];
  await fs.writeFile(path.join(out, 'report.html'), renderReport('difftune data-efficiency study', sections));
}
