/**
 * finetune(recipe): the whole fine-tuning run, read as the recipe it runs — load the base model, plan
 * what trains, open the data, resume if asked, loop (lib/train/loop.ts), export a diffusers folder.
 * Details live in the functions it calls; what a run conditions on, trains or shares with other processes
 * plugs into the loop as hooks (lib/train/hooks.ts). The native step runs off the main thread throughout.
 */
import * as path from 'path';
import { checkMixedPrecision, parseRecipe, resolveRecipePaths, type Recipe } from '../config/recipe';
import { unetDownsampling } from '../config/unet';
import { joinDataParallel } from '../distributed/data-parallel';
import { readDistEnv } from '../distributed/env';
import { formatPlan } from '../freeze/format';
import { planFreeze, type FreezePlan } from '../freeze/plan';
import type { CLIPTextModel } from '../models/clip-text';
import { openTrainingScheduler } from '../models/model-folder';
import { releaseCpuCache } from '../native/runtime';
import type { UNet } from '../models/unet';
import type { Scheduler } from '../schedulers/scheduler';
import { readCpuinfo } from '../util/cpu';
import { checkOutputFolder } from '../util/output-folder';
import { classLabels } from './class-labels';
import { DreamBooth, planDreamBooth, prepareClassImages, type DreamBoothPlan } from './dreambooth';
import { openTrainingLoader } from './data';
import { emaTrainerOptions } from './ema';
import { exportModel, outputFolders } from './export';
import { Hooks } from './hooks';
import { openBaseUNet, openTrainingUNet, resolveRecipeBase, resolveRunBase, trainedPredictionType } from './load';
import { trainLoop, type FinetuneProgress, type LoopOptions, type LoopResult } from './loop';
import { planLoraRun, trainLora } from './lora-training';
import { formatMemoryPlan, peakRssBytes, type TrainingMemoryPlan } from './memory-plan';
import { makeLrSchedule } from './lr-schedule';
import { MetricsLog, stepReporter } from './metrics';
import { planRunMemory } from './run-memory';
import { Checkpoints, findResume, resumeTrainer } from './resume';
import { RunReportWriter } from './run-report';
import { loraTextEncoder, openTextEncoderTraining, textEncoderPlanNote } from './text-encoder-training';
import { openTextToImage, type TextToImageSummary } from './text-to-image';
import { Trainer, type TrainableParameter, type TrainerOptions } from './trainer';
import { Validation, type HeldOutLoss } from './validation';
import { ValidationImages, type ValidationGrid } from './validation-images';
import { planFrozenUNet, trainUNet } from './weights';

export type { FinetuneProgress } from './loop';

export interface FinetuneOptions {
  /** The recipe file, for error messages and to resolve relative paths (default: the working folder). */
  recipeFile?: string;
  onProgress?: (progress: FinetuneProgress) => void;
  /** Informational lines (plan summary, checkpoints written, validation). */
  onLog?: (line: string) => void;
  /** Stops at the next step boundary, after writing a checkpoint. */
  signal?: AbortSignal;
  /**
   * Text-to-image runs: hash the frozen text encoder's and VAE's weights before and after training and
   * fail if they differ. Off by default: it reads every frozen weight back to JS (~0.8 GB for SD 1.5).
   */
  verifyFrozen?: boolean;
}

export interface FinetuneResult {
  status: 'completed' | 'aborted';
  steps: number;
  output: string;
  /** The final diffusers folder: <output>/unet (+ scheduler/, model_index.json for pipelines); for LoRA runs only with lora.saveMerged. */
  unetDir: string;
  /** LoRA runs: <output>/pytorch_lora_weights.safetensors. */
  loraFile?: string;
  /** LoRA runs: every adapters file written, loraFile first (then <output>/lora.kohya.safetensors with lora.format "kohya"). */
  loraFiles?: string[];
  /** Textual inversion: <output>/learned_embeds.safetensors (diffusers' layout). */
  learnedEmbedsFile?: string;
  schedulerDir: string;
  checkpoints: string[];
  finalLoss: number;
  /** Held-out losses by step (and the wrong-caption loss with validation.wrongCaptions). */
  validation: HeldOutLoss[];
  /** The validation grids this process wrote (<output>/validation/step-<n>.png), oldest first. */
  validationGrids: ValidationGrid[];
  /** <output>/report.html (rank 0 writes it; rewritten at each validation and at the end). */
  report: string;
  plan: FreezePlan;
  /** What the run expected to need at its peak (memoryPlan, as --dry-run prints it) and what it reached (this process's peak RSS). */
  memory: { plan: TrainingMemoryPlan; peakRssBytes: number };
  skippedSteps: number;
  /** Text-to-image runs: the cache's hits and misses, and the frozen models' weight digests before and after training (equal). */
  textToImage?: TextToImageSummary;
}

/**
 * Loads and validates a recipe (relative paths anchored at the recipe file's folder), refusing bf16 on
 * a CPU that would only emulate it (unless train.allowSlowBf16); `cpuinfo` is the /proc/cpuinfo text
 * that judges the CPU (default: this machine's).
 */
export function prepareRecipe(input: unknown, recipeFile?: string, cpuinfo: string = readCpuinfo()): Recipe {
  const recipe = parseRecipe(input, recipeFile ?? 'recipe');
  checkMixedPrecision(recipe, cpuinfo, recipeFile ?? 'recipe');
  return resolveRecipePaths(recipe, recipeFile ? path.dirname(path.resolve(recipeFile)) : process.cwd());
}

/** The parameter plan and the memory plan (what `--dry-run` prints): nothing trains, no data is read. */
export async function planRecipe(input: unknown, recipeFile?: string): Promise<FreezePlan & { memoryPlan: TrainingMemoryPlan }> {
  const recipe = prepareRecipe(input, recipeFile);
  const base = resolveRecipeBase(recipe);
  using unet = await openBaseUNet(base, recipe);
  const parameters = await unet.parameters();
  const ema = recipe.train.ema !== null;
  const textEncoder = textEncoderPlanNote(recipe);
  const unetPlan = recipe.lora
    ? planLoraRun(parameters, recipe.lora, ema)
    : recipe.textualInversion
      ? planFrozenUNet(parameters, 'textual inversion: the whole U-Net stays frozen')
      : planFreeze(parameters, recipe.freeze, { ema });
  const plan = textEncoder === undefined ? unetPlan : { ...unetPlan, notes: [...unetPlan.notes, textEncoder] };
  const trainable = recipe.lora ? undefined : plan.trainable.map((p) => p.name);
  return { ...plan, memoryPlan: await planRunMemory(recipe, base, unet, trainable) };
}

/** DreamBooth's part of the plan (instance and class image counts, class images to generate); undefined without a dreambooth section. */
export async function planDreamBoothRecipe(
  input: unknown,
  recipeFile?: string,
  log: (line: string) => void = () => undefined,
): Promise<DreamBoothPlan | undefined> {
  const recipe = prepareRecipe(input, recipeFile);
  if (recipe.dreambooth === null) return undefined;
  return planDreamBooth(recipe, await resolveRunBase(recipe, log), log);
}

/** DreamBooth with prior preservation: generates the class images the recipe's classData lacks (nothing else), as a run would first. */
export async function generateClassImages(input: unknown, recipeFile?: string, log: (line: string) => void = () => undefined): Promise<void> {
  const recipe = prepareRecipe(input, recipeFile);
  if (recipe.dreambooth?.classData === undefined) return;
  await prepareClassImages(recipe, await resolveRunBase(recipe, log), { isMain: true }, log);
}

export async function finetune(input: unknown, options: FinetuneOptions = {}): Promise<FinetuneResult> {
  const recipe = prepareRecipe(input, options.recipeFile);
  const t = recipe.train;
  // Before anything loads: a read-only, mistyped or /proc output would otherwise fail only at the first
  // metrics line or checkpoint, after the model and the data. Rank 0 alone writes there.
  if ((readDistEnv()?.rank ?? 0) === 0) await checkOutputFolder(recipe.output, 'output');
  // Data-parallel (lib/distributed): a process group when a launcher or torchrun started this process; rank 0 alone logs and writes.
  const dp = await joinDataParallel({ device: recipe.model.device });
  const log = dp.isMain ? (options.onLog ?? (() => undefined)) : () => undefined;

  // Load: the base model, the checkpoint to resume from, the U-Net, a pipeline's frozen text encoder and VAE.
  const base = await resolveRunBase(recipe, log);
  const resumed = await findResume(recipe, base.identity, log);
  // DreamBooth: the class images the folder lacks, generated with the base pipeline before the run loads its own models.
  await prepareClassImages(recipe, base, dp, log);
  using unet = await openTrainingUNet(recipe, base.folder, resumed, log);
  using text = await openTextToImage(unet, base.folder, recipe, { verifyFrozen: options.verifyFrozen ?? false, log });
  await unet.setOptions({ gradientCheckpointing: t.gradientCheckpointing, channelsLast: t.channelsLast });
  using scheduler = await openTrainingScheduler(base.folder, log);
  const predictionType = trainedPredictionType(recipe, scheduler);

  // Plan: what trains (the U-Net's own weights, or LoRA adapters — the text encoder's too —, and the text
  // encoder's own weights or textual inversion's tokens) and the hooks the loop calls, in order.
  const at = { resumedDir: resumed?.dir, seed: t.seed };
  const weights = recipe.lora
    ? await trainLora(unet, recipe.lora, { ...at, textEncoder: loraTextEncoder(text, recipe) }, log)
    : await trainUNet(unet, recipe, log);
  const encoder = await openTextEncoderTraining(text, recipe, at, log);
  const conditioning = await trainingTextEncoder(text?.textEncoderTrains ? text.pipelineParts.textEncoder : undefined, recipe);
  const plan = encoder === undefined ? weights.plan : { ...weights.plan, notes: [...weights.plan.notes, encoder.note] };
  const memoryPlan = await planRunMemory(
    recipe,
    base.folder,
    unet,
    weights.trainable.map((p) => p.name),
  );
  log(formatMemoryPlan(memoryPlan));

  // Data: this rank's shard of the training set (DreamBooth captions it and adds class samples), and the held-out batch.
  const loader = await openTrainingLoader(recipe, dp, resumed, log, unetDownsampling(unet.config) * (text?.latentScale ?? 1));
  const dreambooth = await DreamBooth.open(recipe, { instanceSamples: loader.size, resumedDir: resumed?.dir, log });
  const hooks = new Hooks([weights, encoder, classLabels(unet), dreambooth, text, dp]);
  const metrics = new MetricsLog(path.join(recipe.output, 'metrics.jsonl'));
  using validation = await Validation.open(recipe, hooks, { enabled: dp.isMain, metrics, log });
  const imageSize = [loader.sampleShape[0], loader.sampleShape[1]] as const;
  using images = await ValidationImages.open(recipe, { unet, text, scheduler, predictionType, imageSize, enabled: dp.isMain, log });

  // Resume: the trainer over what trains, then the checkpoint's optimizer state, loss scale and EMA.
  using trainer = await createTrainer(unet, [...weights.trainable, ...(encoder?.trainable ?? [])], recipe, scheduler, predictionType, conditioning);
  const start = await resumeTrainer(trainer, resumed, recipe, log);
  await hooks.attach(trainer);

  // Loop.
  const checkpoints = new Checkpoints({ recipe, base: base.identity, trainer, loader, hooks, enabled: dp.isMain, log });
  const report = await RunReportWriter.open({
    recipe,
    plan: formatPlan(plan),
    sources: { heldOut: () => validation.results, grids: () => images?.grids ?? [], gridSettings: images?.description },
    enabled: dp.isMain,
    start: start.step,
  });
  await report.write('running');
  let run: LoopResult;
  try {
    run = await trainLoop({
      ...loopSchedule(recipe),
      trainer,
      loader,
      hooks,
      start,
      signal: options.signal,
      report: stepReporter(
        metrics,
        (p) => {
          report.onStep(p);
          options.onProgress?.(p);
        },
        dp.isMain,
      ),
      // A validation: the held-out loss, the grids, then the report shows both.
      validate: async (step) => {
        await validation.run(trainer, step);
        await images?.run(step, trainer);
        await report.write('running');
      },
      checkpoint: (at) => checkpoints.save(at),
    });
  } catch (error) {
    await report.write('failed', { error: error instanceof Error ? error.message : String(error) }).catch(() => undefined);
    throw error;
  } finally {
    await loader.close();
    await hooks.afterTraining();
    // The blocks the step reused go back to the OS: an embedding process does not keep the run's peak.
    releaseCpuCache();
  }
  await hooks.finish();

  // Export: the final model of a completed run (rank 0).
  const writes = run.status === 'completed' && dp.isMain;
  const trainedSampleSize = Math.floor(loader.sampleShape[0] / (text?.latentScale ?? 1));
  await exportModel({
    output: recipe.output,
    writes,
    trainer,
    ema: t.ema !== null,
    weights,
    parts: encoder === undefined ? [] : [encoder],
    hooks,
    scheduler,
    pipelineDir: base.folder.pipelineDir,
    unet,
    trainedSampleSize,
  });
  const loraFiles = weights.loraFiles(recipe.output);
  const encoderFiles = encoder?.outputFiles(recipe.output) ?? [];
  const outputs = writes
    ? [...(weights.savesUNet ? ['unet'] : []), 'scheduler', ...[...loraFiles, ...encoderFiles].map((f) => path.relative(recipe.output, f))]
    : [];
  await report.write(run.status, { outputs });
  return {
    status: run.status,
    steps: run.step,
    output: recipe.output,
    ...outputFolders(recipe.output),
    loraFile: loraFiles[0],
    loraFiles: loraFiles.length > 0 ? loraFiles : undefined,
    learnedEmbedsFile: recipe.textualInversion === null ? undefined : encoderFiles[0],
    checkpoints: checkpoints.written,
    finalLoss: run.lastLoss,
    validation: validation.results,
    validationGrids: images?.grids ?? [],
    report: report.file,
    plan,
    memory: { plan: memoryPlan, peakRssBytes: peakRssBytes() },
    skippedSteps: run.skippedSteps,
    textToImage: await text?.summary(),
  };
}

/** How many steps, micro-batches per step and skipped steps in a row, at which learning rates, validating and checkpointing how often. */
function loopSchedule(recipe: Recipe): Pick<LoopOptions, 'steps' | 'gradientAccumulation' | 'maxSkippedSteps' | 'lrAt' | 'validateEvery' | 'checkpointEvery'> {
  const t = recipe.train;
  return {
    steps: t.steps,
    gradientAccumulation: t.gradientAccumulation,
    maxSkippedSteps: t.maxSkippedSteps,
    lrAt: makeLrSchedule({ ...t.lrSchedule, lr: t.lr, totalSteps: t.steps }),
    validateEvery: recipe.validation.every,
    checkpointEvery: recipe.checkpoint.every,
  };
}

/** The text encoder when it trains (its layers checkpointed as the U-Net's are): the trainer runs it inside each step. */
async function trainingTextEncoder(textEncoder: CLIPTextModel | undefined, recipe: Recipe): Promise<CLIPTextModel | undefined> {
  await textEncoder?.setOptions({ gradientCheckpointing: recipe.train.gradientCheckpointing });
  return textEncoder;
}

/** The native trainer over `trainable` (and the conditioning model's, when it trains), with the recipe's optimizer, loss and EMA settings. */
async function createTrainer(
  unet: UNet,
  trainable: readonly TrainableParameter[],
  recipe: Recipe,
  scheduler: Scheduler,
  predictionType: TrainerOptions['predictionType'],
  conditioning: CLIPTextModel | undefined,
): Promise<Trainer> {
  const t = recipe.train;
  using alphasCumprod = await scheduler.alphasCumprod();
  // Awaited so `alphasCumprod` is disposed after Trainer.create has read it.
  return await Trainer.create(
    unet,
    {
      trainable,
      alphasCumprod,
      predictionType,
      seed: t.seed,
      beta1: t.adamBeta1,
      beta2: t.adamBeta2,
      eps: t.adamEpsilon,
      weightDecay: t.weightDecay,
      maxGradNorm: t.maxGradNorm,
      minSnrGamma: t.minSnrGamma ?? 0,
      noiseOffset: t.noiseOffset,
      inputPerturbation: t.inputPerturbation,
      mixedPrecision: t.mixedPrecision,
      conditioningClipSkip: recipe.textToImage.clipSkip ?? 0,
      ...emaTrainerOptions(t.ema),
    },
    conditioning,
  );
}
