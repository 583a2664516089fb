/**
 * finetune(recipe): the whole fine-tuning run. It reads like the recipe it runs — load the base model,
 * plan what trains, open the data, resume if asked, then for each optimizer step: micro-batches,
 * accumulate, step, log, validate, checkpoint — and finally write a diffusers folder. Details live in
 * the functions it calls; the native step runs off the main thread throughout.
 */
import { promises as fs, readFileSync } from 'fs';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { loadStateDict, disposeStateDict, saveStateDict } from '../checkpoint/state-dict';
import {
  CHECKPOINT_FORMAT,
  EMA_FILE,
  OPTIMIZER_FILE,
  UNET_DIR,
  hashFiles,
  readCheckpointState,
  resolveResume,
  writeCheckpoint,
  type CheckpointState,
} from '../checkpoint/train-state';
import { checkMixedPrecision, parseRecipe, resolveRecipePaths, type Recipe } from '../config/recipe';
import { ConfigError, DifftuneError } from '../errors';
import { createDataset, type Dataset } from '../data/dataset';
import { DataLoader, type Batch, type LoaderState } from '../data/loader';
import { planFreeze, planLoraBase, type FreezePlan } from '../freeze/plan';
import { disposeLoraEntries, LORA_WEIGHTS, loraParameterNames, loraTargetModules, readLoraFile, saveLoraFile } from '../models/lora';
import { classLabelTensor, loadUNet, resolveWeightFiles, UNet, unknownConfigKeysWarning } from '../models/unet';
import { Tensor } from '../native/tensor';
import { makeLrSchedule } from './lr-schedule';
import { MetricsLog } from './metrics';
import { isTextToImageFolder, openFolderScheduler, resolveBaseModel, type BaseModel } from '../models/model-folder';
import { parseLenientJson } from '../config/json';
import { readCpuinfo } from '../util/cpu';

import type { CacheStats, OpenedTextConditioning } from './text-conditioning';
import { Trainer } from './trainer';
import { joinDataParallel } from '../distributed/data-parallel';
import { readDistEnv } from '../distributed/env';
import { withFileErrors } from '../util/fs-errors';
import { checkOutputFolder } from '../util/output-folder';

export interface FinetuneProgress {
  /** Optimizer steps done. */
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  gradNorm: number;
  imagesPerSecond: number;
  etaSeconds: number;
  skipped: boolean;
}

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
  schedulerDir: string;
  checkpoints: string[];
  finalLoss: number;
  validation: Array<{ step: number; loss: number }>;
  plan: FreezePlan;
  skippedSteps: number;
  /** Text-to-image runs: the cache's hits and misses, and the frozen models' weight digests before and after training (equal). */
  textToImage?: { cache: CacheStats; frozenBefore?: { textEncoder: string; vae: string }; frozenAfter?: { textEncoder: string; vae: string } };
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

/** The U-Net a run starts from: the folder's weights, or its architecture initialised from `seed`. */
async function openBaseUNet(base: BaseModel, recipe: Recipe): Promise<UNet> {
  if (base.scratchConfig === undefined) return loadUNet(base.unetDir, { device: recipe.model.device, variant: recipe.model.variant });
  const raw = parseLenientJson(readFileSync(base.scratchConfig, 'utf8'), base.scratchConfig);
  return UNet.fromConfig(raw, { seed: recipe.train.seed, device: recipe.model.device, source: base.scratchConfig });
}

/** The parameter plan alone (what `--dry-run` prints): nothing trains, no data is read. */
export async function planRecipe(input: unknown, recipeFile?: string): Promise<FreezePlan> {
  const recipe = prepareRecipe(input, recipeFile);
  const folder = resolveBaseModel(recipe.model, (dir) => resolveWeightFiles(dir, recipe.model.variant));
  using unet = await openBaseUNet(folder, recipe);
  const parameters = await unet.parameters();
  if (!recipe.lora) return planFreeze(parameters, recipe.freeze, { ema: recipe.train.ema !== null });
  const plan = planLoraBase(parameters);
  const modules = new Set(loraTargetModules(parameters.map((p) => p.name), recipe.lora));
  const r = recipe.lora.rank;
  let numel = 0;
  for (const p of parameters) {
    if (!p.name.endsWith('.weight') || !modules.has(p.name.slice(0, -7))) continue;
    const [out, inp, kh = 1, kw = 1] = p.shape;
    numel += r * inp! * kh * kw + out! * r;
  }
  const states = recipe.train.ema ? 3 : 2;
  return {
    ...plan,
    notes: [...plan.notes, `LoRA rank ${r} (alpha ${recipe.lora.alpha ?? r}) on ${modules.size} layers: ${numel.toLocaleString('en-US')} adapter parameters, optimizer state ${((numel * 4 * states) / 2 ** 20).toFixed(2)} MiB`],
  };
}

function labelsTensor(batch: Batch, unet: UNet): Tensor | undefined {
  if (!unet.isClassConditional) return undefined;
  if (batch.labels === null) throw new ConfigError('data: this U-Net is class-conditional but the dataset has no class labels (use class subfolders or a built-in dataset)');
  return classLabelTensor(batch.labels);
}

/** The held-out batch for validation: the first N samples of the held-out data, in order, fixed for the run. */
async function openValidation(recipe: Recipe, log: (line: string) => void): Promise<{ pixels: Tensor; rawPixels: Uint8Array; labels: number[] | null; captions: string[] | null; indices: number[] } | undefined> {
  if (recipe.validation.every === 0) return undefined;
  const options = recipe.validation.data ?? { ...recipe.data, split: 'test' };
  if ((options.source ?? 'imagefolder') === 'imagefolder' && recipe.validation.data === undefined) {
    throw new ConfigError('validation.data: required for an image folder (held-out images in another folder); built-in datasets use their test split');
  }
  const dataset = await createDataset({ ...options, limit: recipe.validation.samples, onBadImage: 'skip' }, { onWarning: log });
  const loader = new DataLoader(dataset, { batchSize: Math.min(recipe.validation.samples, dataset.size), shuffle: false, applyTorchThreads: false, onWarning: log });
  try {
    const batch = await loader.next();
    return { pixels: batch.pixels, rawPixels: batch.rawPixels, labels: batch.labels, captions: batch.captions, indices: batch.indices };
  } finally {
    await loader.close();
  }
}

export async function finetune(input: unknown, options: FinetuneOptions = {}): Promise<FinetuneResult> {
  const recipe = prepareRecipe(input, options.recipeFile);
  // Before anything loads: a read-only, mistyped or /proc output would otherwise fail only at the first
  // metrics line or checkpoint, after the model and the data. Rank 0 alone writes there.
  if ((readDistEnv()?.rank ?? 0) === 0) await checkOutputFolder(recipe.output, 'output');
  // Data-parallel (lib/distributed): a process group when a launcher or torchrun started this process; rank 0 alone logs and writes.
  const dp = await joinDataParallel({ device: recipe.model.device });
  const log = dp.isMain ? options.onLog ?? (() => undefined) : () => undefined;
  const t = recipe.train;
  const folder = resolveBaseModel(recipe.model, (dir) => resolveWeightFiles(dir, recipe.model.variant), log);
  const base = { path: folder.describe, sha256: await hashFiles(folder.identity) };

  // Resume: the checkpoint's weights replace the base weights before the optimizer and EMA exist.
  let resumed: { dir: string; state: CheckpointState } | undefined;
  if (recipe.resume !== undefined) {
    const dir = await resolveResume(recipe.resume, recipe.output);
    const state = await readCheckpointState(dir);
    if (state.base.sha256 !== base.sha256) {
      throw new ConfigError(`resume: ${dir} was trained from ${state.base.path} (sha256 ${state.base.sha256.slice(0, 12)}…), not from ${base.path} (sha256 ${base.sha256.slice(0, 12)}…)`);
    }
    // Past the end, no step would run: the run "finished" with a NaN loss and exit 0.
    if (state.step > t.steps) {
      throw new ConfigError(`resume: ${dir} is at step ${state.step}, past train.steps (${t.steps}): nothing is left to train; set train.steps above ${state.step} to continue training`);
    }
    if (state.step === t.steps) log(`resume: ${dir} is at train.steps (${t.steps}): no step is left to train; writing the final model from it`);
    resumed = { dir, state };
  }

  const lora = recipe.lora;
  // A LoRA run always starts from the base weights; its checkpoints hold only the adapters.
  const fromCheckpoint = resumed !== undefined && lora === null;
  using unet = fromCheckpoint ? await loadUNet(path.join(resumed!.dir, UNET_DIR), { device: recipe.model.device }) : await openBaseUNet(folder, recipe);
  const unknownKeys = unknownConfigKeysWarning(unet, fromCheckpoint ? path.join(resumed!.dir, UNET_DIR, 'config.json') : folder.scratchConfig ?? path.join(folder.unetDir, 'config.json'));
  if (unknownKeys !== undefined) log(unknownKeys);
  // Text-to-image: the pipeline's frozen text encoder and VAE make the U-Net's inputs.
  let text: OpenedTextConditioning | undefined;
  if (unet.isConditional && !unet.isClassConditional) {
    if (!folder.pipelineDir || !isTextToImageFolder(folder.pipelineDir)) {
      throw new ConfigError('model.pretrained: a text-conditioned UNet2DConditionModel trains from a whole Stable Diffusion pipeline folder (model_index.json with text_encoder/, tokenizer/ and vae/), which encodes the captions and images');
    }
    const tti = recipe.textToImage;
    // Loaded on demand: U-Net-only runs never load the text models' code.
    const { openTextConditioning } = await import('./text-conditioning');
    text = await openTextConditioning(folder.pipelineDir, {
      device: recipe.model.device,
      clipSkip: tti.clipSkip,
      cacheLatents: tti.cacheLatents,
      cacheTextEmbeddings: tti.cacheTextEmbeddings,
      cacheDir: tti.cacheDir ?? path.join(recipe.output, 'cache'),
      seed: t.seed,
    });
    log(`text-to-image: captions through the frozen text encoder${tti.clipSkip ? ` (clip skip ${tti.clipSkip})` : ''}, images through the frozen VAE to latents (cache: ${[tti.cacheLatents && 'latents', tti.cacheTextEmbeddings && 'text embeddings'].filter(Boolean).join(' + ') || 'off'})`);
  }
  using _text = text;
  const frozenBefore = text && options.verifyFrozen ? await text.fingerprint() : undefined;
  await unet.setOptions({ gradientCheckpointing: t.gradientCheckpointing, channelsLast: t.channelsLast });
  using scheduler = await openFolderScheduler(folder);
  const predictionType = t.predictionType ?? (scheduler.config as { prediction_type?: string }).prediction_type ?? 'epsilon';
  if (predictionType !== 'epsilon' && predictionType !== 'v_prediction' && predictionType !== 'sample') throw new ConfigError(`scheduler prediction_type "${predictionType}" is not trainable`);

  const parameters = await unet.parameters();
  let plan: FreezePlan;
  let trainable: Array<{ name: string; lrMultiplier: number; weightDecay: boolean }>;
  let loraModules: string[] = [];
  if (lora) {
    plan = planLoraBase(parameters);
    loraModules = loraTargetModules(parameters.map((p) => p.name), lora);
    if (resumed) {
      const read = await readLoraFile(path.join(resumed.dir, LORA_WEIGHTS), loraModules);
      try {
        await unet.setLora(read.entries, lora.dropout);
      } finally {
        disposeLoraEntries(read.entries);
      }
    } else {
      await unet.addLora({ targets: loraModules, rank: lora.rank, alpha: lora.alpha ?? lora.rank, dropout: lora.dropout, init: lora.init, seed: t.seed });
    }
    trainable = loraParameterNames(loraModules).map((name) => ({ name, lrMultiplier: 1, weightDecay: true }));
    log(`LoRA rank ${lora.rank} on ${loraModules.length} layers; the base model (${plan.totals.numel} parameters) stays frozen`);
  } else {
    plan = planFreeze(parameters, recipe.freeze, { ema: t.ema !== null });
    trainable = plan.trainable.map((p) => ({ name: p.name, lrMultiplier: p.lrMultiplier, weightDecay: p.weightDecay }));
    log(`training ${plan.totals.trainableTensors} of ${plan.totals.tensors} tensors (${plan.totals.trainablePercent.toFixed(1)}% of ${plan.totals.numel} parameters)`);
  }

  const dataset: Dataset = await createDataset({ ...recipe.data, batchSize: t.batchSize, seed: (recipe.data as { seed?: number }).seed ?? t.seed }, { onWarning: log });
  const loader = new DataLoader(dataset, { batchSize: t.batchSize, torchThreads: t.threads ?? dp.torchThreads, shard: dp.shard, onWarning: log, state: resumed?.state.loader as LoaderState | undefined });
  const validation = await openValidation(recipe, log);
  using alphasCumprod = await scheduler.alphasCumprod();
  const ema = t.ema;
  using trainer = await Trainer.create(unet, {
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
    ema: ema !== null,
    ...(ema
      ? { emaDecay: ema.decay, emaMinDecay: ema.minDecay, emaUpdateAfterStep: ema.updateAfterStep, emaUpdateEvery: ema.updateEvery, emaWarmup: ema.warmup, emaInvGamma: ema.invGamma, emaPower: ema.power, emaOnCpu: ema.onCpu }
      : {}),
  });

  let step = 0;
  let skippedSteps = 0;
  if (resumed) {
    step = resumed.state.step;
    skippedSteps = resumed.state.skippedSteps;
    const optimizer = await loadStateDict(path.join(resumed.dir, OPTIMIZER_FILE));
    try {
      await trainer.loadOptimizerState(optimizer, resumed.state.optimizerSteps);
    } finally {
      disposeStateDict(optimizer);
    }
    // fp16 runs continue with the loss scale they had reached (the others keep 1).
    if (t.mixedPrecision === 'fp16') await trainer.setLossScale(resumed.state.lossScale);
    if (ema) {
      const weights = await loadStateDict(path.join(resumed.dir, EMA_FILE));
      try {
        await trainer.loadEmaWeights(weights, resumed.state.emaUpdates);
      } finally {
        disposeStateDict(weights);
      }
    }
    log(`resumed from ${resumed.dir} at step ${step}`);
  }

  await dp.attach(trainer);

  const lrAt = makeLrSchedule({ ...t.lrSchedule, lr: t.lr, totalSteps: t.steps });
  const metrics = new MetricsLog(path.join(recipe.output, 'metrics.jsonl'));
  const checkpoints: string[] = [];
  const validations: Array<{ step: number; loss: number }> = [];
  let consecutiveSkips = 0;
  let lastLoss = NaN;
  let status: FinetuneResult['status'] = 'completed';
  const started = performance.now();
  const startStep = step;
  let images = 0;

  const saveAdapters = async (file: string, format: 'peft' | 'kohya'): Promise<void> => {
    const entries = await unet.loraEntries();
    try {
      await saveLoraFile(file, entries, format, { rank: lora!.rank, alpha: lora!.alpha ?? lora!.rank, dropout: lora!.dropout, init: lora!.init });
    } finally {
      disposeLoraEntries(entries);
    }
  };

  const saveCheckpoint = async (): Promise<void> => {
    if (!dp.isMain) return;
    const counters = await trainer.counters();
    const state: CheckpointState = {
      format: CHECKPOINT_FORMAT,
      step,
      optimizerSteps: counters.optimizerSteps,
      emaUpdates: counters.emaUpdates,
      lossScale: counters.lossScale,
      skippedSteps,
      loader: loader.state() as unknown as Record<string, unknown>,
      recipe: recipe as unknown as Record<string, unknown>,
      base,
      createdAt: new Date().toISOString(),
    };
    const dir = await writeCheckpoint(
      recipe.output,
      state,
      async (tmp) => {
        if (lora) await saveAdapters(path.join(tmp, LORA_WEIGHTS), 'peft');
        else await unet.save(path.join(tmp, UNET_DIR));
        const optimizer = await trainer.optimizerState();
        try {
          await saveStateDict(path.join(tmp, OPTIMIZER_FILE), optimizer, { format: 'difftune-optimizer' });
        } finally {
          disposeStateDict(optimizer);
        }
        if (ema) {
          const weights = await trainer.emaWeights();
          try {
            await saveStateDict(path.join(tmp, EMA_FILE), weights, { format: 'pt' });
          } finally {
            disposeStateDict(weights);
          }
        }
      },
      recipe.checkpoint.keep,
    );
    checkpoints.push(dir);
    log(`checkpoint ${path.relative(process.cwd(), dir) || dir}`);
  };

  // Text-to-image validation sees the latent means (no draw) and the held-out captions, fixed for the run.
  const validationText = validation && text ? await text.conditioning.prepareFixed(validation.pixels, validation.rawPixels, validation.captions) : undefined;
  const validate = async (): Promise<void> => {
    if (!validation || !dp.isMain) return;
    using labels = validation.labels && unet.isClassConditional ? classLabelTensor(validation.labels) : undefined;
    const loss = await trainer.validationLoss({
      pixels: validationText?.latents ?? validation.pixels,
      encoderHiddenStates: validationText?.context,
      classLabels: labels,
      sampleIndices: validation.indices,
      seed: recipe.validation.seed,
      timesteps: recipe.validation.timesteps,
    });
    validations.push({ step, loss });
    await metrics.write({ step, validationLoss: loss });
    log(`step ${step}: held-out loss ${loss.toFixed(5)}`);
  };

  try {
    if (step === 0) await validate();
    while (step < t.steps) {
      if (dp.shouldStop(options.signal)) {
        status = 'aborted';
        break;
      }
      // Fetch the step's micro-batches first: the loss is divided by the step's true sample count.
      const batches: Batch[] = [];
      try {
        for (let a = 0; a < t.gradientAccumulation; a++) batches.push(await loader.next());
        const total = batches.reduce((n, b) => n + b.indices.length, 0);
        // Data-parallel: ranks may hold different sample counts (an epoch's short last batch); dividing by the
        // global count ÷ ranks makes the averaged gradient the mean over every sample of the step.
        const lossDivisor = dp.worldSize > 1 ? await dp.lossDivisor(total) : undefined;
        let lossSum = 0;
        for (const batch of batches) {
          using labels = labelsTensor(batch, unet);
          const inputs = text ? await text.conditioning.prepare(batch.pixels, batch.rawPixels, batch.captions, batch.indices, step) : undefined;
          using _latents = inputs?.latents;
          using _context = inputs?.context;
          const r = await trainer.accumulate({ pixels: inputs?.latents ?? batch.pixels, encoderHiddenStates: inputs?.context, classLabels: labels, sampleIndices: batch.indices, step, totalSamples: total, lossDivisor });
          lossSum += r.lossSum;
        }
        const lr = lrAt(step);
        const r = await trainer.step(lr);
        const totals = await dp.stepTotals({ lossSum, samples: total, stop: options.signal?.aborted ?? false });
        step += 1;  // a skipped step still consumed its data and counts, so the run ends on time
        images += totals.samples;
        lastLoss = totals.lossSum / totals.samples;
        consecutiveSkips = r.skipped ? consecutiveSkips + 1 : 0;
        if (r.skipped) skippedSteps++;
        const elapsed = (performance.now() - started) / 1000;
        const rate = images / Math.max(elapsed, 1e-9);
        const stepsPerSecond = (step - startStep) / Math.max(elapsed, 1e-9);
        const progress: FinetuneProgress = { step, totalSteps: t.steps, loss: lastLoss, lr, gradNorm: r.gradNorm, imagesPerSecond: rate, etaSeconds: (t.steps - step) / Math.max(stepsPerSecond, 1e-9), skipped: r.skipped };
        if (dp.isMain) options.onProgress?.(progress);
        if (dp.isMain) await metrics.write({ step, loss: lastLoss, lr, gradNorm: r.gradNorm, imagesPerSecond: rate, skipped: r.skipped });
        if (consecutiveSkips >= t.maxSkippedSteps) {
          throw new DifftuneError('ERR_NATIVE', `training stopped: ${consecutiveSkips} steps in a row had a non-finite loss or gradients (last at step ${step}); the last checkpoint is intact. Lower train.lr, enable train.maxGradNorm, or check the data`);
        }
      } finally {
        for (const b of batches) b.dispose();
      }
      if (recipe.validation.every > 0 && step % recipe.validation.every === 0 && step < t.steps) await validate();
      if (recipe.checkpoint.every > 0 && step % recipe.checkpoint.every === 0 && step < t.steps) await saveCheckpoint();
    }
    if (status === 'completed') await validate();
    await saveCheckpoint();
  } finally {
    await loader.close();
    validation?.pixels.dispose();
    validationText?.latents.dispose();
    validationText?.context.dispose();
    if (text) log(`text-to-image cache: latents ${text.conditioning.stats.latentHits} hits / ${text.conditioning.stats.latentMisses} misses, text ${text.conditioning.stats.textHits} hits / ${text.conditioning.stats.textMisses} misses`);
  }

  await dp.finish();

  // The final model: EMA weights where an EMA was kept (as diffusers' training scripts save them).
  const unetDir = path.join(recipe.output, UNET_DIR);
  const schedulerDir = path.join(recipe.output, 'scheduler');
  // Training is over: detach the optimizer from the model (LoRA adapters may now be replaced or merged).
  const emaWeights = status === 'completed' && ema ? await trainer.emaWeights() : undefined;
  trainer.dispose();
  if (status === 'completed' && dp.isMain) {
    if (ema && lora) {
      // The averaged adapters replace the trained ones.
      const weights = emaWeights!;
      const entries = await unet.loraEntries();
      try {
        await unet.setLora(
          entries.map((e) => ({ module: e.module, A: weights.get(`${e.module}.lora_A.weight`)!, B: weights.get(`${e.module}.lora_B.weight`)!, alpha: e.alpha })),
          lora.dropout,
        );
      } finally {
        disposeStateDict(weights);
        disposeLoraEntries(entries);
      }
    } else if (ema) {
      const weights = emaWeights!;
      const current = await unet.stateDict();
      try {
        for (const [name, w] of weights) {
          current.get(name)?.dispose();
          current.set(name, w);
        }
        await unet.loadStateDict(current, 'EMA weights');
      } finally {
        disposeStateDict(current);
      }
    }
    if (lora) {
      await saveAdapters(path.join(recipe.output, LORA_WEIGHTS), 'peft');
      if (lora.format === 'kohya') await saveAdapters(path.join(recipe.output, 'lora.kohya.safetensors'), 'kohya');
      if (lora.saveMerged) {
        await unet.mergeLora();
        await unet.save(unetDir);
      }
    } else {
      await unet.save(unetDir);
    }
    await scheduler.save(schedulerDir);
    // A LoRA run without a merged U-Net has no unet/: a pipeline folder around the adapters would not load.
    if (folder.pipelineDir && (!lora || lora.saveMerged)) await copyPipelineRest(folder.pipelineDir, recipe.output);
  }
  const loraFile = lora ? path.join(recipe.output, LORA_WEIGHTS) : undefined;
  let textToImage: FinetuneResult['textToImage'];
  if (text) {
    const frozenAfter = frozenBefore ? await text.fingerprint() : undefined;
    if (frozenBefore && (frozenAfter!.textEncoder !== frozenBefore.textEncoder || frozenAfter!.vae !== frozenBefore.vae)) {
      throw new DifftuneError('ERR_NATIVE', 'internal error: the frozen text encoder or VAE changed during training (their weights must stay bit-identical)');
    }
    textToImage = { cache: { ...text.conditioning.stats }, frozenBefore, frozenAfter };
  }
  return { status, steps: step, output: recipe.output, unetDir, schedulerDir, loraFile, checkpoints, finalLoss: lastLoss, validation: validations, plan, skippedSteps, textToImage };
}

/** model_index.json and the untouched components of a pipeline folder, beside the new unet/. */
async function copyPipelineRest(pipelineDir: string, output: string): Promise<void> {
  for (const entry of await fs.readdir(pipelineDir, { withFileTypes: true })) {
    if (entry.name === 'unet' || entry.name === 'scheduler') continue;
    const from = path.join(pipelineDir, entry.name);
    const to = path.join(output, entry.name);
    if (entry.isDirectory() || entry.name === 'model_index.json') await withFileErrors(to, 'write', () => fs.cp(from, to, { recursive: true, force: true }));
  }
}
