/**
 * The suites. quick: the tiny fixtures (forward, forward+backward, training step) and the training
 * step of ddpm-cifar10 and mnist-small, a few timed steps each, fp32 and bf16 (≤ 5 min on the 2-core dev
 * machine). full: every model × every workload × fp32/bf16, freezing variants and LoRA, the real SD 1.5
 * U-Net's forward and LoRA + gradient-checkpointing step, and txt2img on the tiny pipeline. sd21: one
 * SD 2.1 768² txt2img call (DPM-Solver++ 20 steps, guidance 7.5) on each side — tens of minutes on 2 cores,
 * so a suite of its own. On a CPU without bf16 arithmetic the bf16 rows are skipped with the reason (run.ts).
 */
import { ConfigError } from '../errors';
import type { BenchConfig, BenchDType, WorkloadName } from './schema';

export interface SuiteEntry {
  model: string;
  workloads: WorkloadName[];
  dtypes: BenchDType[];
  /** Training variants: "full", a freezing preset, "lora". */
  freezes: string[];
  /** Training variants also timed under bf16 autocast (default: all of `freezes`). */
  bf16Freezes?: string[];
  /** Training steps with gradient checkpointing (difftune's setOptions, diffusers' enable_gradient_checkpointing). */
  gradientCheckpointing?: boolean;
  steps: number;
  warmup: number;
  /** Timed sampling loops (each is samplingSteps U-Net calls). */
  samplingLoops: number;
  pytorch: boolean;
  /** txt2img: denoising steps of one pipeline call (default 20; --config samplingSteps overrides it). */
  txt2imgSteps?: number;
}

export interface Suite {
  name: string;
  entries: SuiteEntry[];
  samplingSteps: number;
  retries: number;
  /** Size of the GEMM that measures the peak (n×n×n). */
  gemmN: number;
  dataLoader: { resolution: number; batch: number; batches: number } | null;
  /** Data-parallel throughput (launcher + Gloo): the demo's base model on MNIST with 1 and 2 ranks. */
  dataParallel: { ranks: number[]; batch: number; steps: number; warmup: number } | null;
}

const MODEL_WORKLOADS: WorkloadName[] = ['forward', 'forward-backward', 'train-step', 'sample'];

export const SUITE_NAMES = ['quick', 'full', 'sd21'] as const;
export type SuiteName = (typeof SUITE_NAMES)[number];

/** Pipeline entries (txt2img) take no U-Net workloads; U-Net entries no txt2img. */
export function isPipelineEntry(entry: Pick<SuiteEntry, 'workloads'>): boolean {
  return entry.workloads.includes('txt2img');
}

export const SUITES: Record<SuiteName, Suite> = {
  quick: {
    name: 'quick',
    samplingSteps: 10,
    retries: 1,
    gemmN: 1536,
    dataLoader: { resolution: 32, batch: 32, batches: 12 },
    dataParallel: { ranks: [1, 2], batch: 16, steps: 6, warmup: 2 },
    entries: [
      {
        model: 'unet2d-tiny',
        workloads: ['forward', 'forward-backward', 'train-step'],
        dtypes: ['fp32'],
        freezes: ['full'],
        steps: 10,
        warmup: 2,
        samplingLoops: 2,
        pytorch: false,
      },
      {
        model: 'unet2dcond-tiny',
        workloads: ['forward', 'forward-backward', 'train-step'],
        dtypes: ['fp32'],
        freezes: ['full'],
        steps: 10,
        warmup: 2,
        samplingLoops: 2,
        pytorch: false,
      },
      { model: 'ddpm-cifar10', workloads: ['train-step'], dtypes: ['fp32', 'bf16'], freezes: ['full'], steps: 3, warmup: 1, samplingLoops: 1, pytorch: true },
      { model: 'mnist-small', workloads: ['train-step'], dtypes: ['fp32', 'bf16'], freezes: ['full'], steps: 3, warmup: 1, samplingLoops: 1, pytorch: true },
    ],
  },
  full: {
    name: 'full',
    samplingSteps: 10,
    retries: 2,
    gemmN: 1536,
    dataLoader: { resolution: 32, batch: 32, batches: 48 },
    dataParallel: { ranks: [1, 2], batch: 16, steps: 12, warmup: 2 },
    entries: [
      ...['unet2d-tiny', 'unet2dcond-tiny'].map((model) => ({
        model,
        workloads: MODEL_WORKLOADS,
        dtypes: ['fp32', 'bf16'] as BenchDType[],
        freezes: ['full', 'decoder-only', 'lora'],
        steps: 10,
        warmup: 2,
        samplingLoops: 3,
        pytorch: true,
      })),
      // bf16 steps take 3-4× fp32's on libtorch 1.13's CPU kernels: bf16 training only for the full model.
      ...['ddpm-cifar10', 'mnist-small', 'sd15-unet-small', 'mnist-ddpm'].map((model) => ({
        model,
        workloads: MODEL_WORKLOADS,
        dtypes: ['fp32', 'bf16'] as BenchDType[],
        freezes: ['full', 'decoder-only', 'lora'],
        bf16Freezes: ['full'],
        steps: 5,
        warmup: 1,
        samplingLoops: 2,
        pytorch: true,
      })),
      // The real SD 1.5 U-Net on the CPU: a forward at 512 px (64² latents) and the LoRA r4 step with gradient
      // checkpointing that fine-tuning on a CPU runs (about a minute per step on 2 cores), each side ~6 min.
      {
        model: 'sd15-unet',
        workloads: ['forward', 'train-step'],
        dtypes: ['fp32'],
        freezes: ['lora'],
        gradientCheckpointing: true,
        steps: 2,
        warmup: 1,
        samplingLoops: 1,
        pytorch: true,
      },
      // The whole pipeline (text encoder, guided DPM-Solver++ loop, VAE decode) on the tiny fixture: seconds.
      {
        model: 'sd-pipeline-tiny',
        workloads: ['txt2img'],
        dtypes: ['fp32'],
        freezes: [],
        steps: 3,
        warmup: 1,
        samplingLoops: 1,
        pytorch: true,
        txt2imgSteps: 20,
      },
    ],
  },
  sd21: {
    name: 'sd21',
    samplingSteps: 20,
    // One call per side; a disturbed one is flagged, not repeated (retrying would double tens of minutes).
    retries: 0,
    gemmN: 1536,
    dataLoader: null,
    dataParallel: null,
    entries: [
      { model: 'sd21-pipeline', workloads: ['txt2img'], dtypes: ['fp32'], freezes: [], steps: 1, warmup: 0, samplingLoops: 1, pytorch: true, txt2imgSteps: 20 },
    ],
  },
};

const ALL_ENTRIES: SuiteEntry[] = SUITE_NAMES.flatMap((n) => SUITES[n].entries);

/** The suite with a --config's overrides applied (filters and counts). */
export function applyConfig(suite: Suite, config: BenchConfig, knownModels: ReadonlySet<string>): Suite {
  for (const [i, m] of (config.models ?? []).entries()) {
    if (!knownModels.has(m)) throw new ConfigError(`config models[${i}]: unknown model "${m}"; expected one of ${[...knownModels].join(', ')}`);
  }
  const wanted = config.models ? new Set(config.models) : null;
  const fromSuite = suite.entries.filter((e) => !wanted || wanted.has(e.model));
  // Models the config names but the suite lacks get their entry from another suite (full's first).
  const extra = (config.models ?? [])
    .filter((m) => !fromSuite.some((e) => e.model === m))
    .map((m) => ALL_ENTRIES.find((e) => e.model === m) ?? { ...SUITES.full.entries[2]!, model: m });
  const entries = [...fromSuite, ...extra].map((e) => ({
    ...e,
    workloads: config.workloads
      ? e.workloads
          .filter((w) => config.workloads!.includes(w))
          .concat(isPipelineEntry(e) ? [] : config.workloads.filter((w) => !e.workloads.includes(w) && MODEL_WORKLOADS.includes(w)))
      : e.workloads,
    txt2imgSteps: isPipelineEntry(e) ? (config.samplingSteps ?? e.txt2imgSteps ?? 20) : e.txt2imgSteps,
    dtypes: config.dtypes ?? e.dtypes,
    freezes: config.freezes ?? e.freezes,
    steps: config.steps ?? e.steps,
    warmup: config.warmup ?? e.warmup,
    gradientCheckpointing: config.gradientCheckpointing ?? e.gradientCheckpointing,
    pytorch: config.pytorch === false ? false : e.pytorch,
  }));
  const keepLoader = !config.workloads || config.workloads.includes('data-loader');
  const keepDataParallel = !config.workloads || config.workloads.includes('dist-throughput');
  return {
    ...suite,
    entries: entries.filter((e) => e.workloads.length > 0),
    samplingSteps: config.samplingSteps ?? suite.samplingSteps,
    retries: config.retries ?? suite.retries,
    dataLoader: keepLoader ? suite.dataLoader : null,
    dataParallel: keepDataParallel ? suite.dataParallel : null,
  };
}
