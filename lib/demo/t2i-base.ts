/**
 * The text-to-image base model (`npm run pretrain:t2i`, recipes/pretrain-t2i.json): a small Stable
 * Diffusion pipeline trained from scratch by difftune on captioned MNIST and Fashion-MNIST images.
 * The run folder holds each phase's work, so a stopped run resumes where it stopped:
 *   data/train, data/test  captioned images (t2i-data.ts), written once
 *   init/                  the pipeline of the recipe's config folder (npm run init-pipeline: random weights,
 *                          the real CLIP tokenizer); phase 1 replaces its vae/ with the trained VAE
 *   vae/                   phase 1: the VAE trained on the images (t2i-vae-phase.ts), its scaling_factor
 *                          written into init/vae/config.json; vae/result.json marks it done (a phase stopped
 *                          part-way starts again: trainVae keeps no optimizer checkpoint)
 *   unet/                  phase 2: the U-Net and the text encoder trained together on the VAE's latents
 *                          (a text-to-image finetune of init/ with freeze.textEncoder "full"): its
 *                          checkpoints, metrics.jsonl and, at the end, the whole pipeline
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { listCheckpoints } from '../checkpoint/train-state';
import { parseLenientJson } from '../config/json';
import { expectConfigObject, parseConfigObject, parseWithSchema } from '../config/schema-object';
import { ConfigError } from '../errors';
import { initPipeline } from '../models/init-pipeline';
import { finetune, type FinetuneProgress, type FinetuneResult } from '../train/finetune';
import { withFileErrors } from '../util/fs-errors';
import { createFolder } from '../util/output-folder';
import { captionedClass, writeCaptionedSet, type CaptionedSetInfo } from './t2i-data';
import { trainVaePhase, vaePhaseResultSchema, type VaePhaseResult } from './t2i-vae-phase';

const posInt = z.number().int().positive();

export const t2iPretrainRecipeSchema = z
  .object({
    /** The config folder init-pipeline builds the starting pipeline from (model_index.json, unet/, vae/, text_encoder/ configs, tokenizer/, scheduler/). */
    pipeline: z.string().min(1),
    /** Seeds init-pipeline's random weights. */
    initSeed: z.number().int().nonnegative().default(0),
    data: z
      .object({
        /** Class keys the base learns (t2i-data.ts T2I_CLASSES). */
        classes: z.array(z.string().min(1)).nonempty(),
        /** Class keys kept out of the base for a transfer to fine-tune on; only recorded (and checked to be disjoint from classes). */
        heldBack: z.array(z.string().min(1)).default([]),
        /** Images per class from the built-in sets' train split (the first 6/7 of each class). */
        trainPerClass: posInt,
        /** Held-out images per class from the test split (the last 1/7). */
        testPerClass: posInt,
      })
      .strict(),
    /** Phase 1: trainVae's options (lib/train/vae-training.ts); the data comes from `data`. */
    vae: z.record(z.unknown()),
    /** Phase 2: a finetune recipe without model, output and data.path (the run fills them in). */
    unet: z.record(z.unknown()),
    /** The model card's sample grid: one row per class prompt. */
    samples: z
      .object({
        perPrompt: posInt.max(16).default(8),
        steps: posInt.default(50),
        guidanceScale: z.number().finite().default(5),
        seed: z.number().int().nonnegative().default(0),
      })
      .strict()
      .default({}),
    /** The run folder. */
    output: z.string().min(1),
    /** "latest": continue the run in `output` where it stopped (each finished phase is kept). */
    resume: z.literal('latest').nullable().default(null),
  })
  .strict();

export type T2iPretrainRecipe = z.infer<typeof t2iPretrainRecipeSchema>;

/** Validates the recipe; relative paths resolve against `file`'s folder. */
export function parseT2iPretrainRecipe(raw: unknown, file: string): T2iPretrainRecipe {
  const recipe = parseConfigObject(t2iPretrainRecipeSchema, expectConfigObject(raw, file), file);
  const { classes, heldBack } = recipe.data;
  classes.forEach((k, i) => captionedClass(k, `${file}: "data.classes[${i}]"`));
  heldBack.forEach((k, i) => captionedClass(k, `${file}: "data.heldBack[${i}]"`));
  const both = heldBack.filter((k) => classes.includes(k));
  if (both.length > 0) throw new ConfigError(`${file}: "data.heldBack": ${both.join(', ')} also in data.classes; a held-back class is one the base never sees`);
  for (const key of ['model', 'output'] as const)
    if (key in recipe.unet) throw new ConfigError(`${file}: "unet.${key}": set by pretrain:t2i (the run's init/ pipeline and unet/ folder); remove it`);
  const abs = (p: string) => path.resolve(path.dirname(file), p);
  return { ...recipe, pipeline: abs(recipe.pipeline), output: abs(recipe.output) };
}

export interface T2iRunFolders {
  root: string;
  train: string;
  test: string;
  init: string;
  vae: string;
  unet: string;
}

export function t2iRunFolders(output: string): T2iRunFolders {
  return {
    root: output,
    train: path.join(output, 'data', 'train'),
    test: path.join(output, 'data', 'test'),
    init: path.join(output, 'init'),
    vae: path.join(output, 'vae'),
    unet: path.join(output, 'unet'),
  };
}

/** Marks init/ complete (init-pipeline writes it one file at a time). */
const INIT_DONE = 'init.json';
/** Marks phase 1 complete, with its numbers for the model card. */
export const VAE_RESULT = 'result.json';

export interface T2iPretrainOptions {
  /** The recipe file: names it in errors and anchors its relative paths. */
  recipeFile: string;
  /** Stops the running phase at its next step with a checkpoint. */
  signal?: AbortSignal;
  onLog?: (line: string) => void;
  /** Phase 2's progress (the finetune's). */
  onProgress?: (progress: FinetuneProgress) => void;
}

export interface T2iPretrainResult {
  status: 'completed' | 'aborted';
  /** Where a stopped run stopped. */
  stoppedIn?: 'vae' | 'unet';
  recipe: T2iPretrainRecipe;
  run: T2iRunFolders;
  data: { train: CaptionedSetInfo; test: CaptionedSetInfo };
  vae?: VaePhaseResult;
  /** Phase 2's finetune recipe as run (unetPhaseRecipe). */
  unetRecipe?: Record<string, unknown>;
  unet?: FinetuneResult;
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

/** Phase 2's finetune recipe: the recipe's `unet` section on init/, the captioned images and unet/. */
export function unetPhaseRecipe(recipe: T2iPretrainRecipe, run: T2iRunFolders, resume: boolean): Record<string, unknown> {
  const u = recipe.unet;
  const data = (u.data ?? {}) as Record<string, unknown>;
  const validation = (u.validation ?? {}) as Record<string, unknown>;
  // The held-out images are read as the training images are, without caption dropout.
  const heldOut = { path: run.test, resolution: data.resolution, channels: data.channels, ...((validation.data ?? {}) as Record<string, unknown>) };
  return {
    ...u,
    model: { pretrained: run.init },
    data: { ...data, path: run.train },
    validation: { ...validation, data: heldOut },
    output: run.unet,
    ...(resume ? { resume: 'latest' } : {}),
  };
}

/**
 * Runs the phases that are not done yet (all of them without `resume`, after clearing the earlier run's
 * init/, vae/ and unet/; the captioned images are kept when they are the same). Returns at the end or at
 * a stop; the caller packages a completed run (packageT2iBase).
 */
export async function pretrainT2i(raw: unknown, options: T2iPretrainOptions): Promise<T2iPretrainResult> {
  const log = options.onLog ?? (() => undefined);
  const recipe = parseT2iPretrainRecipe(raw, options.recipeFile);
  const run = t2iRunFolders(recipe.output);
  await createFolder(run.root, 'output');
  if (recipe.resume === null) {
    for (const dir of [run.init, run.vae, run.unet]) await withFileErrors(dir, 'remove', () => fs.rm(dir, { recursive: true, force: true }));
  }

  const d = recipe.data;
  const train = await writeCaptionedSet(run.train, { classes: d.classes, split: 'train', perClass: d.trainPerClass });
  const test = await writeCaptionedSet(run.test, { classes: d.classes, split: 'test', perClass: d.testPerClass });
  log(`data: ${train.images.toLocaleString('en-US')} captioned training images, ${test.images.toLocaleString('en-US')} held out (${d.classes.length} classes)`);

  let vae = await readVaeResult(run);
  if (vae === undefined) {
    if (!(await exists(path.join(run.root, INIT_DONE)))) {
      await fs.rm(run.init, { recursive: true, force: true });
      const made = await initPipeline(recipe.pipeline, run.init, { seed: recipe.initSeed, log: (l) => log(`init: ${l}`) });
      await fs.writeFile(
        path.join(run.root, INIT_DONE),
        `${JSON.stringify({ pipeline: recipe.pipeline, seed: recipe.initSeed, components: made.components }, null, 2)}\n`,
      );
    }
    log('phase 1: the VAE');
    const phase = await trainVaePhase(recipe.vae, {
      pipelineDir: run.init,
      workDir: run.vae,
      trainDir: run.train,
      testDir: run.test,
      signal: options.signal,
      log,
    });
    if (phase.status !== 'completed') return { status: 'aborted', stoppedIn: 'vae', recipe, run, data: { train, test } };
    vae = phase.result;
    await fs.writeFile(path.join(run.vae, VAE_RESULT), `${JSON.stringify(vae, null, 2)}\n`);
  } else log(`phase 1 (the VAE) done before: scaling_factor ${vae.scalingFactor}`);

  log('phase 2: the U-Net and the text encoder');
  const resumeUnet = recipe.resume !== null && (await listCheckpoints(run.unet)).length > 0;
  const unetRecipe = unetPhaseRecipe(recipe, run, resumeUnet);
  const unet = await finetune(unetRecipe, {
    recipeFile: options.recipeFile,
    signal: options.signal,
    onLog: log,
    onProgress: options.onProgress,
  });
  const status = unet.status === 'completed' ? 'completed' : 'aborted';
  return { status, stoppedIn: status === 'aborted' ? 'unet' : undefined, recipe, run, data: { train, test }, vae, unetRecipe, unet };
}

async function readVaeResult(run: T2iRunFolders): Promise<VaePhaseResult | undefined> {
  const file = path.join(run.vae, VAE_RESULT);
  if (!(await exists(file))) return undefined;
  return parseWithSchema(vaePhaseResultSchema, parseLenientJson(await fs.readFile(file, 'utf8'), file), file);
}
