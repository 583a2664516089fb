/**
 * The workloads of one model: U-Net forward, forward+backward, the full training step (native Trainer:
 * noise, timesteps, forward, MSE, backward, AdamW; a freezing preset or LoRA; data from a DataLoader
 * where the model takes images) and the sampling loop (DDIM, N scheduler steps); each in fp32 and under
 * bf16 autocast. Each one is timed by measure() and its FLOPs counted by flops.ts.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError } from '../errors';
import { loadUNet, UNet } from '../models/unet';
import { loadScheduler, Scheduler } from '../schedulers/scheduler';
import { Tensor } from '../native/tensor';
import type { NativeParameterInfo } from '../native/types';
import { randn } from '../native/ops';
import { Generator } from '../native/generator';
import { Trainer } from '../train/trainer';
import { planFreeze } from '../freeze/plan';
import { isPresetName } from '../freeze/presets';
import { loraOptionsSchema } from '../config/lora';
import { loraParameterNames, loraTargetModules } from '../models/lora';
import type { DataLoader } from '../data/loader';
import { backwardFlops, countFlops, type FlopCount } from './flops';
import { measure, measuredFields, type MeasureOptions, type Measurement, type Step } from './measure';
import { openLoader, writeImageFolder } from './data';
import type { BenchModel } from './presets';
import type { BenchDType, BenchResult, WorkloadName } from './schema';

export interface RunSettings extends MeasureOptions {
  threads: number;
  samplingSteps: number;
  loraRank: number;
  channelsLast: boolean;
  /** GEMM peaks of this run (GFLOP/s). */
  peak: { fp32: number; bf16: number | null };
  /** Scratch folder: PNG folders, exported weights. */
  tmpDir: string;
  log: (line: string) => void;
}

export interface OpenedModel {
  unet: UNet;
  scheduler: Scheduler;
  /** Where PyTorch can load the same weights from (written on demand). */
  exportDir?: string;
}

function schedulerDirOf(dir: string): string {
  for (const d of [path.join(dir, 'scheduler'), path.join(dir, '..', 'scheduler')]) if (fs.existsSync(path.join(d, 'scheduler_config.json'))) return d;
  throw new ConfigError(
    `${dir}: expected a scheduler/scheduler_config.json next to the U-Net (in ${path.join(dir, 'scheduler')} or ${path.join(dir, '..', 'scheduler')}) but found none`,
  );
}

export async function openModel(model: BenchModel, channelsLast = false): Promise<OpenedModel> {
  const source = model.source;
  if (source.kind === 'pipeline' || source.kind === 'init-pipeline')
    throw new ConfigError(`model "${model.name}" is a Stable Diffusion pipeline: expected the txt2img workload for it, not the U-Net workloads`);
  const unet = source.kind === 'folder' ? await loadUNet(source.dir) : await UNet.fromConfig(source.config, { seed: 0, source: `preset ${model.name}` });
  try {
    if (channelsLast) await unet.setOptions({ channelsLast: true });
    const scheduler =
      source.kind === 'folder'
        ? await loadScheduler(schedulerDirOf(source.dir))
        : await Scheduler.fromConfig(source.scheduler, { source: `preset ${model.name}` });
    return { unet, scheduler };
  } catch (error) {
    unet.dispose();
    throw error;
  }
}

/** The model's weights and training schedule as a diffusers folder, for PyTorch to load. */
export async function exportModel(opened: OpenedModel, dir: string): Promise<string> {
  if (opened.exportDir) return opened.exportDir;
  await opened.unet.save(dir);
  await opened.scheduler.save(path.join(dir, 'scheduler'));
  opened.exportDir = dir;
  return dir;
}

interface Inputs {
  sample: Tensor;
  timestep: Tensor;
  target: Tensor;
  encoderHiddenStates?: Tensor;
  classLabels?: Tensor;
  dispose(): void;
}

function crossAttentionDim(unet: UNet): number {
  const d = (unet.config as { cross_attention_dim?: number | number[] }).cross_attention_dim;
  return Array.isArray(d) ? d[0]! : (d ?? 0);
}

function needsClassLabels(unet: UNet): boolean {
  return unet.config.num_class_embeds !== null || unet.config.class_embed_type !== null;
}

async function makeInputs(unet: UNet, model: BenchModel): Promise<Inputs> {
  using g = new Generator(0);
  const b = model.batch;
  const r = model.resolution;
  const sample = await randn([b, unet.config.in_channels, r, r], { generator: g });
  const target = await randn([b, unet.config.out_channels, r, r], { generator: g });
  const timestep = Tensor.from(
    BigInt64Array.from({ length: b }, (_, i) => BigInt((i * 397 + 101) % 1000)),
    [b],
  );
  const encoderHiddenStates =
    unet.isConditional && model.crossAttnLen > 0 ? await randn([b, model.crossAttnLen, crossAttentionDim(unet)], { generator: g }) : undefined;
  const classLabels = needsClassLabels(unet) ? Tensor.from(new BigInt64Array(b), [b]) : undefined;
  return {
    sample,
    timestep,
    target,
    encoderHiddenStates,
    classLabels,
    dispose: () => [sample, timestep, target, encoderHiddenStates, classLabels].forEach((t) => t?.dispose()),
  };
}

function base(model: BenchModel, workload: WorkloadName, dtype: BenchDType, freeze: string | null): BenchResult {
  return {
    id: `${model.name}/${workload}/${dtype}${freeze ? `/${freeze}` : ''}`,
    model: model.name,
    workload,
    dtype,
    freeze,
    batch: model.batch,
    resolution: model.resolution,
    status: 'ok',
  };
}

export function skipped(model: BenchModel, workload: WorkloadName, dtype: BenchDType, freeze: string | null, reason: string): BenchResult {
  return { ...base(model, workload, dtype, freeze), status: 'skipped', reason };
}

function fill(r: BenchResult, m: Measurement, images: number, flops: number | null, conv: number | null, settings: RunSettings): BenchResult {
  const peak = r.dtype === 'bf16' ? settings.peak.bf16 : settings.peak.fp32;
  const gflops = flops === null ? null : flops / 1e9 / (m.medianMs / 1000);
  return {
    ...r,
    ...measuredFields(m),
    warmup: settings.warmup,
    imagesPerS: images / (m.medianMs / 1000),
    gflopPerStep: flops === null ? null : flops / 1e9,
    gflops,
    peakFraction: gflops === null || !peak ? null : gflops / peak,
    convShare: conv,
    dataWait: m.dataWait,
  };
}

/** How many numbers the parameters hold. */
function numelOf(parameters: readonly NativeParameterInfo[]): number {
  return parameters.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
}

async function flopsOf(unet: UNet, model: BenchModel): Promise<{ count: FlopCount; params: number; parameters: NativeParameterInfo[] }> {
  const parameters = await unet.parameters();
  const count = countFlops(parameters, {
    levels: unet.config.block_out_channels.length,
    height: model.resolution,
    width: model.resolution,
    batch: model.batch,
    encoderSeqLen: model.crossAttnLen,
  });
  return { count, params: numelOf(parameters.filter((p) => !/\.lora_[AB]\./.test(p.name))), parameters };
}

async function withAutocast<T>(unet: UNet, dtype: BenchDType, fn: () => Promise<T>): Promise<T> {
  await unet.setOptions({ autocast: dtype === 'bf16' ? 'bfloat16' : null });
  try {
    return await fn();
  } finally {
    await unet.setOptions({ autocast: null });
  }
}

export async function benchForward(opened: OpenedModel, model: BenchModel, dtype: BenchDType, settings: RunSettings): Promise<BenchResult> {
  const { unet } = opened;
  const { count, params } = await flopsOf(unet, model);
  const inputs = await makeInputs(unet, model);
  try {
    const step: Step = async () => {
      (await unet.forward(inputs.sample, inputs.timestep, { encoderHiddenStates: inputs.encoderHiddenStates, classLabels: inputs.classLabels })).dispose();
    };
    const m = await withAutocast(unet, dtype, () => measure(step, settings));
    return { ...fill(base(model, 'forward', dtype, null), m, model.batch, count.forward, count.conv / count.forward, settings), params };
  } finally {
    inputs.dispose();
  }
}

export async function benchForwardBackward(opened: OpenedModel, model: BenchModel, dtype: BenchDType, settings: RunSettings): Promise<BenchResult> {
  const { unet } = opened;
  const { count, params } = await flopsOf(unet, model);
  const inputs = await makeInputs(unet, model);
  try {
    const step: Step = async () => {
      const r = await unet.forwardBackwardMse(inputs.sample, inputs.timestep, inputs.target, {
        encoderHiddenStates: inputs.encoderHiddenStates,
        classLabels: inputs.classLabels,
        gradNames: ['conv_in.weight'],
      });
      [r.output, r.loss, r.gradSample, r.gradEncoderHiddenStates, ...r.gradParams.values()].forEach((t) => t?.dispose());
    };
    const m = await withAutocast(unet, dtype, () => measure(step, settings));
    const flops = count.forward + backwardFlops(count, () => true);
    return {
      ...fill(base(model, 'forward-backward', dtype, 'full'), m, model.batch, flops, count.conv / count.forward, settings),
      params,
      trainableParams: params,
    };
  } finally {
    inputs.dispose();
  }
}

export async function benchSampling(opened: OpenedModel, model: BenchModel, dtype: BenchDType, settings: RunSettings): Promise<BenchResult> {
  const { unet } = opened;
  const { count, params } = await flopsOf(unet, model);
  using ddim = await Scheduler.fromConfig(opened.scheduler.toJSON(), { className: 'DDIMScheduler', source: 'sampling' });
  const inputs = await makeInputs(unet, model);
  const n = settings.samplingSteps;
  try {
    // The loop diffusers' DDIMPipeline runs (lib/sample/pipeline.ts), here with text embeddings too.
    const step: Step = async () => {
      await ddim.setTimesteps(n);
      let x = await ddim.scaleInitialNoise(inputs.sample);
      for (const t of ddim.timesteps) {
        using input = await ddim.scaleModelInput(x, t);
        using ts = ddim.timestepTensor(t);
        using out = await unet.forward(input, ts, { encoderHiddenStates: inputs.encoderHiddenStates, classLabels: inputs.classLabels });
        const r = await ddim.step(out, t, x);
        r.predOriginalSample?.dispose();
        x.dispose();
        x = r.prevSample;
      }
      x.dispose();
    };
    const m = await withAutocast(unet, dtype, () => measure(step, settings));
    return { ...fill(base(model, 'sample', dtype, null), m, model.batch, n * count.forward, count.conv / count.forward, settings), params, samplingSteps: n };
  } finally {
    inputs.dispose();
  }
}

/** Which parameters train: "full", a freezing preset, or "lora" (adapters are added here; removed by the caller). */
async function trainable(unet: UNet, freeze: string, rank: number): Promise<string[]> {
  const parameters = await unet.parameters();
  if (freeze === 'lora') {
    const modules = loraTargetModules(
      parameters.map((p) => p.name),
      loraOptionsSchema.parse({ rank }),
    );
    await unet.addLora({ targets: modules, rank, seed: 0 });
    return loraParameterNames(modules);
  }
  if (!isPresetName(freeze)) throw new ConfigError(`freezes: expected "lora" or a freezing preset but found "${freeze}"`);
  return planFreeze(parameters, { preset: freeze }).trainable.map((p) => p.name);
}

// Keyed by the folder's path, which lies in the run's tmpDir: a later run in the same process (the
// self-tests) must not reuse a folder the earlier run deleted.
const imageFolders = new Map<string, Promise<string>>();

function imageFolder(settings: RunSettings, model: BenchModel, channels: 1 | 3): Promise<string> {
  const target = path.join(settings.tmpDir, `images-${channels}-${model.resolution}-${model.batch}`);
  let dir = imageFolders.get(target);
  if (!dir) {
    dir = writeImageFolder(target, Math.max(2 * model.batch, 16), model.resolution, channels);
    imageFolders.set(target, dir);
  }
  return dir;
}

export async function benchTrainStep(
  opened: OpenedModel,
  model: BenchModel,
  dtype: BenchDType,
  freeze: string,
  settings: RunSettings & { gradientCheckpointing?: boolean },
): Promise<BenchResult> {
  const { unet } = opened;
  const gc = settings.gradientCheckpointing ?? false;
  const names = await trainable(unet, freeze, settings.loraRank);
  const label = `${freeze === 'lora' ? `lora-r${settings.loraRank}` : freeze}${gc ? '+gc' : ''}`;
  if (gc) await unet.setOptions({ gradientCheckpointing: true });
  let loader: DataLoader | undefined;
  const inputs = await makeInputs(unet, model);
  try {
    const { count, params, parameters } = await flopsOf(unet, model);
    const trainSet = new Set(names);
    const flops = count.forward + backwardFlops(count, (n) => trainSet.has(n));
    const trainableParams = numelOf(parameters.filter((p) => trainSet.has(p.name)));
    if (model.imageChannels !== null) {
      const channels = model.imageChannels === 1 ? 1 : 3;
      loader = await openLoader(await imageFolder(settings, model, channels), model.resolution, channels, model.batch, settings.threads);
    }
    using alphasCumprod = await opened.scheduler.alphasCumprod();
    using trainer = await Trainer.create(unet, {
      trainable: names.map((name) => ({ name, lrMultiplier: 1, weightDecay: true })),
      alphasCumprod,
      predictionType: 'epsilon',
      seed: 0,
      // torch.optim.AdamW's defaults, as bench_diffusers.py runs it; no clipping, no EMA.
      weightDecay: 0.01,
      maxGradNorm: 0,
      mixedPrecision: dtype === 'bf16' ? 'bf16' : 'no',
      ema: false,
    });
    let stepIndex = 0;
    const indices = Array.from({ length: model.batch }, (_, i) => i);
    const step: Step = async () => {
      const t0 = performance.now();
      const batch = loader ? await loader.next() : undefined;
      const dataWaitMs = loader ? performance.now() - t0 : undefined;
      try {
        await trainer.accumulate({
          pixels: batch ? batch.pixels : inputs.sample,
          classLabels: inputs.classLabels,
          encoderHiddenStates: inputs.encoderHiddenStates,
          sampleIndices: batch ? batch.indices : indices,
          step: stepIndex,
          totalSamples: batch ? batch.indices.length : model.batch,
        });
        await trainer.step(1e-4);
      } finally {
        batch?.dispose();
      }
      stepIndex++;
      return { dataWaitMs };
    };
    const m = await measure(step, settings);
    return {
      ...fill(base(model, 'train-step', dtype, label), m, model.batch, flops, count.conv / count.forward, settings),
      params,
      trainableParams,
      ...(gc ? { gradientCheckpointing: true } : {}),
    };
  } finally {
    inputs.dispose();
    await loader?.close();
    if (freeze === 'lora') await unet.removeLora();
    if (gc) await unet.setOptions({ gradientCheckpointing: false });
  }
}
