/**
 * The text-to-image transfer demo (`npm run demo -- --t2i`, recipes/demo-t2i.json): the pretrained base
 * pipeline (models/t2i-base, `npm run pretrain:t2i`) fine-tuned on captioned images of classes it never saw
 * (trousers, sandals, bags, ankle boots: new objects and new words), its text encoder and VAE frozen, against
 * the same U-Net architecture from random weights with the same frozen text encoder and VAE, and a LoRA run.
 * Each run measures the held-out loss with the right captions and with another class's captions
 * (validation.wrongCaptions) at every validation; then per-prompt sample grids of every run and of the base,
 * a guidance-scale sweep of the fine-tuned pipeline, the curves, summary.json (t2iDemoSummarySchema) and
 * report.html.
 */
import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { parseLenientJson } from '../config/json';
import { expectConfigObject, parseConfigObject, parseWithSchema } from '../config/schema-object';
import { ConfigError, InternalError } from '../errors';
import { formatPlan } from '../freeze/format';
import { renderReport, type Section } from '../report/html';
import { duration } from '../report/run-report';
import { lineChart, type Series } from '../report/svg-chart';
import { gridPng, type Images } from '../sample/image';
import { finetune, prepareRecipe, type FinetuneProgress, type FinetuneResult } from '../train/finetune';
import { checkOutputFolder } from '../util/output-folder';
import { sampleRows, t2iBaseSummarySchema } from './t2i-base-card';
import { captionedClass, classPrompt, T2I_HELD_BACK_CLASSES, writeCaptionedSet } from './t2i-data';
import { loraParams, stepsToReach, writeChart } from './transfer-study';

const posInt = z.number().int().positive();
const lr = z.number().positive().finite();

/** recipes/demo-t2i.json: the base, the target data, each run's budget and learning rate, the validations and the samples. */
export const t2iDemoRecipeSchema = z
  .object({
    /** The pretrained pipeline (relative to the recipe file). */
    base: z.string().min(1),
    /** The target classes (t2i-data.ts keys): ones the base never saw. */
    classes: z
      .array(z.string().min(1))
      .nonempty()
      .default([...T2I_HELD_BACK_CLASSES] as [string, ...string[]]),
    data: z
      .object({
        /** Training images per class (the first of the built-in train split). */
        trainPerClass: posInt,
        /** Held-out images per class (the first of the test split). */
        testPerClass: posInt,
        /** Captions replaced by "" (classifier-free guidance), as in pretraining. */
        captionDropout: z.number().min(0).lt(1).default(0.1),
      })
      .strict(),
    /** Optimizer steps of each run. */
    steps: posInt,
    batchSize: posInt,
    seed: z.number().int().nonnegative().default(0),
    /** The full fine-tune of the pretrained U-Net: a constant low learning rate. */
    finetune: z.object({ lr }).strict(),
    /** The same architecture from random weights: the pretraining's rate, cosine with warmup. */
    scratch: z.object({ lr, warmupSteps: z.number().int().nonnegative() }).strict(),
    /** LoRA adapters on the pretrained U-Net (lib/config/lora.ts's fields of the same names). */
    lora: z
      .object({ lr, rank: posInt, attention: z.boolean().default(true), convolutions: z.boolean().default(false), feedForward: z.boolean().default(false) })
      .strict(),
    /** Held-out loss (right and wrong captions) every `every` steps on the first `samples` held-out images. */
    validation: z.object({ every: posInt, samples: posInt }).strict(),
    /** The per-prompt grids: one row per target class prompt. */
    samples: z.object({ perPrompt: posInt.max(16), steps: posInt, guidanceScale: z.number().finite(), seed: z.number().int().nonnegative() }).strict(),
    /** Guidance scales of the fine-tuned pipeline's sweep (≤ 1: no guidance). */
    guidanceSweep: z.array(z.number().finite().nonnegative()).nonempty(),
  })
  .strict();

export type T2iDemoRecipe = z.infer<typeof t2iDemoRecipeSchema>;

/** A loss in the summary: null where it was not finite (JSON has no NaN). */
const loss = z.number().nullable();

const steerSchema = z
  .object({
    /** Held-out loss with each image's own caption … */
    right: loss,
    /** … and with another target class's caption (same images, noise and timesteps). */
    wrong: loss,
    /** wrong − right: > 0 when the captions steer the model towards the right images. */
    gap: loss,
    /** gap ÷ right. */
    relativeGap: loss,
  })
  .strict();

const runSchema = z
  .object({
    name: z.enum(['fine-tuned', 'from scratch', 'LoRA']),
    /** The run's output folder, relative to the demo's (a whole pipeline). */
    folder: z.string().min(1),
    description: z.string().min(1),
    lr: z.number().positive(),
    lrSchedule: z.string().min(1),
    trainableParams: z.number().int().positive(),
    /** Of the U-Net's parameters. */
    trainablePercent: z.number().positive(),
    steps: z.number().int().nonnegative(),
    seconds: z.number().nonnegative(),
    /** Wall time ÷ steps, validations and the first latent encoding included. */
    secondsPerStep: z.number().nonnegative(),
    heldOutLoss: loss,
    curve: z.array(z.object({ step: z.number().int().nonnegative(), loss, wrongCaptionLoss: loss }).strict()).nonempty(),
    /** At the last step. */
    captionsSteer: steerSchema,
  })
  .strict();

export type T2iDemoRun = z.infer<typeof runSchema>;

/** summary.json of `npm run demo -- --t2i` (the tests parse it with this schema too). */
export const t2iDemoSummarySchema = z
  .object({
    kind: z.literal('t2i-transfer'),
    base: z.string().min(1),
    date: z.string().min(1),
    machine: z.string().min(1),
    target: z
      .object({
        classes: z
          .array(z.object({ key: z.string(), prompt: z.string(), train: z.number().int().positive(), test: z.number().int().positive() }).strict())
          .nonempty(),
        trainImages: z.number().int().positive(),
        heldOutImages: z.number().int().positive(),
        captionDropout: z.number().min(0),
      })
      .strict(),
    /** sha256 of the frozen text encoder's and VAE's weights: the same before and after every run. */
    frozen: z.object({ textEncoder: z.string().length(64), vae: z.string().length(64) }).strict(),
    steps: z.number().int().positive(),
    batchSize: z.number().int().positive(),
    validation: z.object({ every: z.number().int().positive(), samples: z.number().int().positive() }).strict(),
    /** fine-tuned, from scratch, LoRA. */
    runs: z.tuple([runSchema, runSchema, runSchema]),
    /** The base pipeline on the target's held-out images before any training (the fine-tuned run's step 0). */
    baseHeldOut: steerSchema,
    /** The first step at which the fine-tuned curve reaches scratch's final held-out loss (linear between validations); null: never. */
    stepsToMatchScratch: z.number().nonnegative().nullable(),
    /** One grid per target prompt: a row per model (the base first: what it makes of words it never saw), every row from the same noise. */
    samples: z
      .object({
        grids: z.array(z.object({ key: z.string(), prompt: z.string(), file: z.string().min(1) }).strict()).nonempty(),
        rows: z.array(z.string()).nonempty(),
        perPrompt: z.number().int().positive(),
        steps: z.number().int().positive(),
        guidanceScale: z.number(),
        seed: z.number().int().nonnegative(),
        scheduler: z.string(),
      })
      .strict(),
    /** The fine-tuned pipeline at each guidance scale: one grid, a row per (prompt, scale), every row from the same noise. */
    guidanceSweep: z.object({ scales: z.array(z.number()).nonempty(), file: z.literal('guidance.png') }).strict(),
    plots: z.object({ loss: z.literal('loss.png'), captions: z.literal('captions.png') }).strict(),
    seconds: z.object({ total: z.number().nonnegative(), training: z.number().nonnegative(), sampling: z.number().nonnegative() }).strict(),
  })
  .strict();

export type T2iDemoSummary = z.infer<typeof t2iDemoSummarySchema>;

/** Validates the recipe; `base` resolves against `file`'s folder. */
export function parseT2iDemoRecipe(raw: unknown, file: string): T2iDemoRecipe {
  const recipe = parseConfigObject(t2iDemoRecipeSchema, expectConfigObject(raw, file), file);
  recipe.classes.forEach((k, i) => captionedClass(k, `${file}: "classes[${i}]"`));
  if (new Set(recipe.classes).size !== recipe.classes.length)
    throw new ConfigError(`${file}: "classes": each class once, found ${JSON.stringify(recipe.classes)}`);
  if (recipe.classes.length < 2)
    throw new ConfigError(
      `${file}: "classes": expected two target classes or more (the wrong-caption loss swaps in another class's caption) but found ${recipe.classes.length}`,
    );
  if (recipe.scratch.warmupSteps > recipe.steps)
    throw new ConfigError(
      `${file}: "scratch.warmupSteps": expected at most "steps" (${recipe.steps}) but found ${recipe.scratch.warmupSteps}; the lr would never reach scratch.lr`,
    );
  return { ...recipe, base: path.resolve(path.dirname(file), recipe.base) };
}

/**
 * The base pipeline, or a ConfigError saying how to make it; the classes it learned (from its
 * summary.json, when pretrain:t2i made it) must not be targets.
 */
async function checkBase(recipe: T2iDemoRecipe, file: string): Promise<void> {
  const base = recipe.base;
  if (!existsSync(path.join(base, 'model_index.json')))
    throw new ConfigError(
      `${base}: expected the text-to-image base pipeline (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/) but found ${existsSync(base) ? 'no model_index.json there' : 'no such folder'}; make it with \`npm run pretrain:t2i\` (hours on a CPU), or point --base (${file}: "base") at another Stable Diffusion folder`,
    );
  const summaryFile = path.join(base, 'summary.json');
  if (!existsSync(summaryFile)) return;
  const summary = parseWithSchema(t2iBaseSummarySchema, parseLenientJson(await fs.readFile(summaryFile, 'utf8'), summaryFile), summaryFile);
  const known = recipe.classes.filter((k) => summary.data.classes.some((c) => c.key === k));
  if (known.length > 0)
    throw new ConfigError(
      `${file}: "classes": expected classes the base never saw but found ${known.join(', ')}, which ${summaryFile} lists among its training classes`,
    );
}

export interface T2iDemoOptions {
  /** The recipe file: names it in errors and anchors `base`. */
  recipeFile: string;
  /** Where everything is written. */
  out: string;
  onLog?: (line: string) => void;
}

export interface PlannedT2iDemoRun {
  name: T2iDemoRun['name'];
  folder: string;
  description: string;
  lr: number;
  lrSchedule: string;
  recipe: Record<string, unknown>;
}

/** The three finetune recipes: same data, order, seed, batch, steps and validations; their own start, what trains and learning rate. */
export function planT2iDemoRuns(recipe: T2iDemoRecipe, out: string, data: { train: string; test: string }): PlannedT2iDemoRun[] {
  const common = {
    data: { path: data.train, resolution: 32, channels: 3, captionDropout: recipe.data.captionDropout },
    validation: {
      every: recipe.validation.every,
      samples: recipe.validation.samples,
      data: { path: data.test, resolution: 32, channels: 3 },
      wrongCaptions: true,
    },
    // One cache for the three runs: they share the frozen VAE and text encoder, so the latents and embeddings are the same.
    textToImage: { cacheDir: path.join(out, 'cache') },
    checkpoint: { every: 0, keep: 1 },
  };
  const train = { steps: recipe.steps, batchSize: recipe.batchSize, seed: recipe.seed };
  const l = recipe.lora;
  return [
    {
      name: 'fine-tuned',
      folder: 'finetuned',
      description: 'the pretrained U-Net, every weight trained; text encoder and VAE frozen',
      lr: recipe.finetune.lr,
      lrSchedule: 'constant',
      recipe: {
        ...common,
        model: { pretrained: recipe.base },
        freeze: { preset: 'full' },
        train: { ...train, lr: recipe.finetune.lr },
        output: path.join(out, 'finetuned'),
      },
    },
    {
      name: 'from scratch',
      folder: 'scratch',
      description:
        "the same U-Net architecture from random weights (torch.nn's initialisation from the seed), every weight trained, with the base's frozen text encoder and VAE (pretrained: only the U-Net starts from scratch)",
      lr: recipe.scratch.lr,
      lrSchedule: `cosine, ${recipe.scratch.warmupSteps} warmup steps`,
      recipe: {
        ...common,
        model: { pretrained: recipe.base, scratch: true },
        train: { ...train, lr: recipe.scratch.lr, lrSchedule: { name: 'cosine', warmupSteps: recipe.scratch.warmupSteps } },
        output: path.join(out, 'scratch'),
      },
    },
    {
      name: 'LoRA',
      folder: 'lora',
      description: `LoRA rank ${l.rank} on the pretrained U-Net's ${[l.attention && 'attention projections', l.feedForward && 'feed-forward layers', l.convolutions && 'resnet convolutions'].filter(Boolean).join(', ')}; the U-Net's own weights, text encoder and VAE frozen`,
      lr: l.lr,
      lrSchedule: 'constant',
      recipe: {
        ...common,
        model: { pretrained: recipe.base },
        lora: { rank: l.rank, attention: l.attention, convolutions: l.convolutions, feedForward: l.feedForward, saveMerged: true },
        train: { ...train, lr: l.lr },
        output: path.join(out, 'lora'),
      },
    },
  ];
}

const finite = (x: number | undefined): number | null => (x !== undefined && Number.isFinite(x) ? x : null);

function steer(point: { loss: number; wrongCaptionLoss?: number }): z.infer<typeof steerSchema> {
  const right = finite(point.loss);
  const wrong = finite(point.wrongCaptionLoss);
  const gap = right === null || wrong === null ? null : wrong - right;
  return { right, wrong, gap, relativeGap: gap === null || right === null || right === 0 ? null : gap / right };
}

/** Row `row` (`perRow` images) of each of `parts`, stacked in that order. */
function pickRows(parts: ReadonlyArray<{ images: Images; row: number }>, perRow: number): Images {
  const first = parts[0]!.images;
  const size = first.height * first.width * first.channels;
  const pixels = new Uint8Array(parts.length * perRow * size);
  parts.forEach(({ images, row }, i) => pixels.set(images.pixels.subarray(row * perRow * size, (row + 1) * perRow * size), i * perRow * size));
  return { ...first, count: parts.length * perRow, pixels };
}

/** The per-prompt grids' first row. */
const BASE_ROW = 'base, before training';

const COLORS = { 'fine-tuned': '#1f77b4', 'from scratch': '#d62728', LoRA: '#2ca02c' } as const;
/** The wrong captions' curves: the run's colour, lighter. */
const LIGHT = { 'fine-tuned': '#9ecae1', 'from scratch': '#fc9f9f', LoRA: '#a1d99b' } as const;

/** A loss in the report's tables (n/a: not finite). */
export const lossText = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(4));
/** A relative gap as a signed percentage. */
export const percentText = (x: number | null): string => (x === null ? 'n/a' : `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`);
/** Below this relative gap either way the two losses are taken as the same: the captions barely matter. */
const STEER_THRESHOLD = 0.01;

/** "the captions steer it: +4.2% with the wrong ones" and the like, from the relative gap. */
export function steerVerdict(relativeGap: number | null): string {
  if (relativeGap === null) return 'not measured';
  if (relativeGap > STEER_THRESHOLD) return `the captions steer it: ${percentText(relativeGap)} with the wrong ones`;
  if (relativeGap < -STEER_THRESHOLD) return `the wrong captions do better (${percentText(relativeGap)}): the words are not learnt`;
  return `no clear difference (${percentText(relativeGap)}): the captions barely steer it`;
}

/**
 * Removes an earlier demo's results from `out`: only what the demo writes (a mistyped --out loses nothing
 * else), keeping its captioned data and latent cache, which are the same for the same recipe.
 */
async function clearResults(out: string): Promise<void> {
  const ours = (name: string) =>
    ['finetuned', 'scratch', 'lora', 'summary.json', 'report.html', 'guidance.png'].includes(name) ||
    /^(loss|captions)\.(png|svg)$/.test(name) ||
    /^samples-[a-z0-9-]+\.png$/.test(name);
  const entries = await fs.readdir(out).catch(() => [] as string[]);
  for (const e of entries.filter(ours)) await fs.rm(path.join(out, e), { recursive: true, force: true });
}

export async function runT2iTransferDemo(raw: unknown, options: T2iDemoOptions): Promise<T2iDemoSummary> {
  const log = options.onLog ?? (() => undefined);
  const started = performance.now();
  const recipe = parseT2iDemoRecipe(raw, options.recipeFile);
  await checkBase(recipe, options.recipeFile);
  const out = path.resolve(options.out);
  // Before training: an unwritable --out would otherwise fail after minutes of it.
  await checkOutputFolder(out, '--out');
  await clearResults(out);

  const d = recipe.data;
  const data = { train: path.join(out, 'data', 'train'), test: path.join(out, 'data', 'test') };
  const train = await writeCaptionedSet(data.train, { classes: recipe.classes, split: 'train', perClass: d.trainPerClass });
  const test = await writeCaptionedSet(data.test, { classes: recipe.classes, split: 'test', perClass: d.testPerClass });
  const prompts = recipe.classes.map((k) => classPrompt(captionedClass(k)));
  log(`target: ${recipe.classes.join(', ')} — ${train.images} captioned training images, ${test.images} held out`);

  // Every run's recipe checked before the first one trains: a bad one fails in seconds, not after a run.
  const planned = planT2iDemoRuns(recipe, out, data);
  for (const run of planned) prepareRecipe(run.recipe, options.recipeFile);
  const trainingStarted = performance.now();
  const runs: T2iDemoRun[] = [];
  const results: FinetuneResult[] = [];
  for (const run of planned) {
    log(`${run.name}: ${run.description}; ${recipe.steps} steps of batch ${recipe.batchSize}, lr ${run.lr} (${run.lrSchedule})`);
    const t0 = performance.now();
    const progress = (p: FinetuneProgress) => p.step % 25 === 0 && log(`  ${run.name} step ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(4)}`);
    const r = await finetune(run.recipe, { recipeFile: options.recipeFile, onProgress: progress, verifyFrozen: true });
    const seconds = (performance.now() - t0) / 1000;
    const unetParams = r.plan.totals.numel;
    const trainable = r.loraFile === undefined ? r.plan.totals.trainableNumel : await loraParams(r.loraFile);
    const last = r.validation[r.validation.length - 1];
    if (last === undefined) throw new InternalError(`${run.name}: the run measured no held-out loss`);
    results.push(r);
    runs.push({
      name: run.name,
      folder: run.folder,
      description: run.description,
      lr: run.lr,
      lrSchedule: run.lrSchedule,
      trainableParams: trainable,
      trainablePercent: (100 * trainable) / unetParams,
      steps: r.steps,
      seconds,
      secondsPerStep: seconds / Math.max(1, r.steps),
      heldOutLoss: finite(last.loss),
      curve: r.validation.map((v) => ({ step: v.step, loss: finite(v.loss), wrongCaptionLoss: finite(v.wrongCaptionLoss) })) as T2iDemoRun['curve'],
      captionsSteer: steer(last),
    });
    const s = runs[runs.length - 1]!;
    log(
      `  held-out loss ${lossText(s.heldOutLoss)} (another class's captions ${lossText(s.captionsSteer.wrong)}), ${duration(seconds)}, ${s.secondsPerStep.toFixed(3)} s/step`,
    );
  }
  const frozen = frozenDigests(results);
  const trainingSeconds = (performance.now() - trainingStarted) / 1000;

  const samplingStarted = performance.now();
  const sp = recipe.samples;
  log(`sampling: ${prompts.length} prompts × ${sp.perPrompt} images per model, ${sp.steps} steps, guidance ${sp.guidanceScale}, seed ${sp.seed}`);
  // Each model draws every prompt's row from the same noise (sampleRows), so a prompt's grid differs row to row by the model alone.
  const models = [{ label: BASE_ROW, dir: recipe.base }, ...runs.map((r) => ({ label: r.name, dir: path.join(out, r.folder) }))];
  const drawn: Images[] = [];
  let scheduler = '';
  for (const m of models) {
    const r = await sampleRows(m.dir, prompts, sp);
    drawn.push(r.images);
    scheduler = r.scheduler;
  }
  const gridOptions = (rowLabels: string[]) => ({ columns: sp.perPrompt, scale: 2, rowLabels });
  const grids = recipe.classes.map((key, p) => ({ key, prompt: prompts[p]!, file: `samples-${key}.png` }));
  for (const [p, g] of grids.entries()) {
    const images = pickRows(
      drawn.map((images) => ({ images, row: p })),
      sp.perPrompt,
    );
    await fs.writeFile(path.join(out, g.file), await gridPng(images, gridOptions(models.map((m) => m.label))));
  }
  log(`guidance sweep of the fine-tuned pipeline: ${recipe.guidanceSweep.join(', ')}`);
  const sweep: Images[] = [];
  for (const guidanceScale of recipe.guidanceSweep) sweep.push((await sampleRows(path.join(out, 'finetuned'), prompts, { ...sp, guidanceScale })).images);
  const sweepRows = prompts.flatMap((prompt, p) =>
    recipe.guidanceSweep.map((scale, k) => ({ images: sweep[k]!, row: p, label: `${prompt}, guidance ${scale}` })),
  );
  await fs.writeFile(path.join(out, 'guidance.png'), await gridPng(pickRows(sweepRows, sp.perPrompt), gridOptions(sweepRows.map((r) => r.label))));
  const samplingSeconds = (performance.now() - samplingStarted) / 1000;

  await writeCharts(out, runs, Math.min(recipe.validation.samples, test.images));
  const [ft, scratch] = [runs[0]!, runs[1]!];
  const scratchFinal = scratch.heldOutLoss;
  const cpus = os.cpus();
  const summary = t2iDemoSummarySchema.parse(
    JSON.parse(
      JSON.stringify({
        kind: 't2i-transfer',
        base: recipe.base,
        date: new Date().toISOString(),
        machine: `${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown CPU'}`,
        target: {
          classes: recipe.classes.map((k, i) => ({
            key: k,
            prompt: prompts[i]!,
            train: train.counts[k]!,
            test: test.counts[k]!,
          })) as T2iDemoSummary['target']['classes'],
          trainImages: train.images,
          heldOutImages: test.images,
          captionDropout: d.captionDropout,
        },
        frozen,
        steps: recipe.steps,
        batchSize: recipe.batchSize,
        validation: recipe.validation,
        runs: runs as [T2iDemoRun, T2iDemoRun, T2iDemoRun],
        baseHeldOut: steer({ loss: ft.curve[0].loss ?? NaN, wrongCaptionLoss: ft.curve[0].wrongCaptionLoss ?? NaN }),
        stepsToMatchScratch:
          scratchFinal === null
            ? null
            : stepsToReach(
                ft.curve.map((c) => ({ step: c.step, loss: c.loss ?? NaN })),
                scratchFinal,
              ),
        samples: {
          grids: grids as T2iDemoSummary['samples']['grids'],
          rows: models.map((m) => m.label) as [string, ...string[]],
          perPrompt: sp.perPrompt,
          steps: sp.steps,
          guidanceScale: sp.guidanceScale,
          seed: sp.seed,
          scheduler,
        },
        guidanceSweep: { scales: recipe.guidanceSweep, file: 'guidance.png' },
        plots: { loss: 'loss.png', captions: 'captions.png' },
        seconds: { total: (performance.now() - started) / 1000, training: trainingSeconds, sampling: samplingSeconds },
      } satisfies T2iDemoSummary),
    ),
  );
  await fs.writeFile(path.join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  await fs.writeFile(path.join(out, 'report.html'), renderT2iDemoReport(summary, formatPlan(results[0]!.plan)));
  log(`t2i demo: ${duration(summary.seconds.total)} (training ${duration(trainingSeconds)}, sampling ${duration(samplingSeconds)})`);
  return summary;
}

/** The frozen models' digests, the same before and after each run and across the runs (all start from the base's). */
function frozenDigests(results: readonly FinetuneResult[]): T2iDemoSummary['frozen'] {
  const digests = results.map((r) => r.textToImage?.frozenAfter);
  const first = digests[0];
  if (first === undefined || digests.some((x) => x === undefined || x.textEncoder !== first.textEncoder || x.vae !== first.vae))
    throw new InternalError('t2i demo: expected every run to keep the base pipeline’s text encoder and VAE bit-identical (verifyFrozen digests)');
  return { textEncoder: first.textEncoder, vae: first.vae };
}

async function writeCharts(out: string, runs: readonly T2iDemoRun[], heldOut: number): Promise<void> {
  const pts = (r: T2iDemoRun, key: 'loss' | 'wrongCaptionLoss') => r.curve.map((c) => [c.step, c[key] ?? NaN] as const);
  await writeChart(
    out,
    'loss',
    lineChart(
      runs.map((r) => ({ name: r.name, color: COLORS[r.name], points: pts(r, 'loss') })),
      {
        title: `Held-out loss on the new classes (${heldOut} images with their captions, fixed noise and timesteps)`,
        xLabel: 'training step',
        yLabel: 'held-out loss',
        logY: true,
        width: 760,
        height: 460,
      },
    ),
  );
  // Short legend names (the legend is narrow): the title and the report say which is which. The light
  // curves first, so that where the two coincide (captions not read) the dark one shows on top.
  const series: Series[] = [
    ...runs.map((r) => ({ name: `${r.name}, wrong`, color: LIGHT[r.name], points: pts(r, 'wrongCaptionLoss') })),
    ...runs.map((r) => ({ name: r.name, color: COLORS[r.name], points: pts(r, 'loss') })),
  ];
  await writeChart(
    out,
    'captions',
    lineChart(series, {
      title: "Held-out loss with each image's own caption (dark) and another class's (light, wrong)",
      xLabel: 'training step',
      yLabel: 'held-out loss',
      logY: true,
      width: 760,
      height: 460,
    }),
  );
}

/** Whether and when the fine-tuned run reached the from-scratch run's final held-out loss, in a sentence. */
export function matchSentence(s: Pick<T2iDemoSummary, 'stepsToMatchScratch' | 'steps' | 'runs'>): string {
  const target = lossText(s.runs[1].heldOutLoss);
  if (s.stepsToMatchScratch === null) return `The fine-tuned run did not reach the from-scratch run's final held-out loss (${target}) within the budget.`;
  // The base before any step is already as good: worth saying in words, not as "after 0 steps".
  if (s.stepsToMatchScratch === 0) return `The base, before any fine-tuning, was already below the from-scratch run's final held-out loss (${target}).`;
  return `The fine-tuned run reached the from-scratch run's final held-out loss (${target}) after ${Math.round(s.stepsToMatchScratch)} of ${s.steps} steps.`;
}

/** report.html: the result, the curves, whether captions steer, the grids, the guidance sweep, how the runs were set up. */
export function renderT2iDemoReport(s: T2iDemoSummary, plan: string): string {
  const [ft, scratch, lora] = s.runs;
  const classes = s.target.classes.map((c) => `${c.key} ("${c.prompt}")`).join(', ');
  const steerWords = (name: string, c: T2iDemoRun['captionsSteer']) =>
    `${name}: ${lossText(c.right)} with the right captions, ${lossText(c.wrong)} with another class's — ${steerVerdict(c.relativeGap)}`;
  const sections: Section[] = [
    {
      title: 'Result',
      blocks: [
        {
          kind: 'text',
          text: `The base pipeline (${s.base}) never saw ${classes}: none of their nouns occurs in its captions. Each run trains ${s.steps} steps of batch ${s.batchSize} on ${s.target.trainImages} captioned images of them, with the base's text encoder and VAE frozen (their weights' sha256 the same before and after every run), and is measured on ${s.validation.samples} held-out images every ${s.validation.every} steps.`,
        },
        {
          kind: 'text',
          text: `Held-out loss at the last step: fine-tuned ${lossText(ft.heldOutLoss)}, from scratch ${lossText(scratch.heldOutLoss)}, LoRA ${lossText(lora.heldOutLoss)} (the base before any training: ${lossText(s.baseHeldOut.right)}). ${matchSentence(s)}`,
        },
        {
          kind: 'table',
          header: ['run', 'trainable parameters', '% of the U-Net', 'learning rate', 'held-out loss', "another class's captions", 'gap', 's / step'],
          rows: [
            [BASE_ROW, '—', '—', '—', lossText(s.baseHeldOut.right), lossText(s.baseHeldOut.wrong), percentText(s.baseHeldOut.relativeGap), '—'],
            ...s.runs.map((r) => [
              r.name,
              r.trainableParams.toLocaleString('en-US'),
              r.trainablePercent.toFixed(1),
              `${r.lr} (${r.lrSchedule})`,
              lossText(r.heldOutLoss),
              lossText(r.captionsSteer.wrong),
              percentText(r.captionsSteer.relativeGap),
              r.secondsPerStep.toFixed(3),
            ]),
          ],
        },
      ],
    },
    { title: 'Held-out loss', blocks: [{ kind: 'images', items: [{ src: s.plots.loss, caption: 'held-out loss vs step (log scale)' }] }] },
    {
      title: 'Do the captions steer the images?',
      blocks: [
        {
          kind: 'text',
          text: "At every validation the same held-out images are measured twice, with the same noise and timesteps: with each image's own caption, and with the caption drawn for the next held-out image of another target class (validation.wrongCaptions). A model that reads its captions denoises an image better when told what it is: the wrong captions' loss is higher, and the gap grows as the new words come to mean the new objects.",
        },
        { kind: 'text', text: `${steerWords('The base, before training', s.baseHeldOut)}.` },
        ...[ft, scratch, lora].map((r): { kind: 'text'; text: string } => ({ kind: 'text', text: `${steerWords(r.name, r.captionsSteer)}.` })),
        { kind: 'images', items: [{ src: s.plots.captions, caption: "held-out loss, right captions (dark) vs another class's (light)" }] },
        {
          kind: 'table',
          header: ['step', 'fine-tuned', 'wrong captions', 'gap', 'from scratch', 'wrong captions', 'gap'],
          rows: ft.curve.map((c, i) => {
            const sc = scratch.curve[i];
            const g = (x: { loss: number | null; wrongCaptionLoss: number | null } | undefined) =>
              x === undefined || x.loss === null || x.wrongCaptionLoss === null || x.loss === 0 ? null : (x.wrongCaptionLoss - x.loss) / x.loss;
            return [
              c.step,
              lossText(c.loss),
              lossText(c.wrongCaptionLoss),
              percentText(g(c)),
              lossText(sc?.loss ?? null),
              lossText(sc?.wrongCaptionLoss ?? null),
              percentText(g(sc)),
            ];
          }),
        },
      ],
    },
    {
      title: `Samples, one grid per prompt (${s.samples.scheduler}, ${s.samples.steps} steps, guidance ${s.samples.guidanceScale}, seed ${s.samples.seed})`,
      blocks: [
        {
          kind: 'text',
          text: `Rows, top to bottom: ${s.samples.rows.join('; ')}. Every row starts from the same noise, so the rows differ by their model alone.`,
        },
        { kind: 'images', items: s.samples.grids.map((g) => ({ src: g.file, caption: `"${g.prompt}"` })) },
      ],
    },
    {
      title: 'Guidance scale (the fine-tuned pipeline)',
      blocks: [
        {
          kind: 'text',
          text: `Each prompt at classifier-free guidance ${s.guidanceSweep.scales.join(', ')}, from the same noise: at 1 the conditional prediction alone, above 1 pushed away from the unconditional one (captions were dropped ${Math.round(100 * s.target.captionDropout)}% of the time in training, so the model knows both).`,
        },
        { kind: 'images', items: [{ src: s.guidanceSweep.file, caption: `guidance ${s.guidanceSweep.scales.join(', ')}, row by row for each prompt` }] },
      ],
    },
    {
      title: 'How the runs are set up',
      blocks: [
        ...s.runs.map((r): { kind: 'text'; text: string } => ({
          kind: 'text',
          text: `${r.name} (${r.folder}/): ${r.description}; AdamW at ${r.lr}, ${r.lrSchedule}.`,
        })),
        {
          kind: 'text',
          text: `All three see the same images in the same order with the same batch size, seed, caption dropout (${s.target.captionDropout}) and step budget. Frozen text encoder sha256 ${s.frozen.textEncoder.slice(0, 16)}…, VAE ${s.frozen.vae.slice(0, 16)}….`,
        },
        { kind: 'pre', text: plan },
      ],
    },
    {
      title: 'Time',
      blocks: [
        {
          kind: 'text',
          text: `${duration(s.seconds.total)} on ${s.machine} (${s.date}): training ${duration(s.seconds.training)} (${s.runs.map((r) => `${r.name} ${r.secondsPerStep.toFixed(3)} s/step`).join(', ')}, validations included), sampling ${duration(s.seconds.sampling)}.`,
        },
      ],
    },
  ];
  return renderReport('difftune transfer demo, text-to-image: new classes and new words', sections);
}
