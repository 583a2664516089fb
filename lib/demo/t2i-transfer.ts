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
import { parseLenientJson } from '../config/json';
import { parseWithSchema } from '../config/schema-object';
import { ConfigError, InternalError } from '../errors';
import { formatPlan } from '../freeze/format';
import { duration } from '../report/run-report';
import { gridPng, type Images } from '../sample/image';
import { finetune, prepareRecipe, type FinetuneProgress, type FinetuneResult } from '../train/finetune';
import { checkOutputFolder } from '../util/output-folder';
import { sampleRows, t2iBaseSummarySchema } from './t2i-base-card';
import { captionedClass, classPrompt, writeCaptionedSet } from './t2i-data';
import { stepsToReach } from './data-efficiency';
import { loraParams } from './transfer-study';
import { BASE_ROW, lossText, renderT2iDemoReport, writeCharts } from './t2i-transfer-report';
import { parseT2iDemoRecipe, t2iDemoSummarySchema, type SteerPoint, type T2iDemoRecipe, type T2iDemoRun, type T2iDemoSummary } from './t2i-transfer-summary';

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

function steer(point: { loss: number; wrongCaptionLoss?: number }): SteerPoint {
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
