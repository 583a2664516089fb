/**
 * The shapes of bench.json (what the harness writes, what --compare reads back) and of --config files.
 * zod: a result file or a config from outside is validated where it enters, errors name the field.
 */
import { z } from 'zod';

export const WORKLOADS = ['forward', 'forward-backward', 'train-step', 'sample', 'txt2img', 'data-loader', 'dist-throughput'] as const;
export type WorkloadName = (typeof WORKLOADS)[number];
export const BENCH_DTYPES = ['fp32', 'bf16'] as const;
export type BenchDType = (typeof BENCH_DTYPES)[number];

const num = z.number();
const nullableNum = z.number().nullable();

export const noiseSchema = z.object({
  /** Cores' worth of CPU other processes used while timing (max over attempts kept). */
  otherCpu: nullableNum,
  steal: nullableNum,
  ownCpu: nullableNum,
  /** Steps whose own interval showed other processes above the threshold. */
  disturbedSteps: z.number().int(),
  /** Timing passes run (a disturbed pass is repeated, up to the configured retries). */
  attempts: z.number().int().positive(),
  disturbed: z.boolean(),
});

export const timingSchema = z.object({
  medianMs: num,
  minMs: num,
  maxMs: num,
  /** Median absolute deviation ÷ median, in percent. */
  madPct: num,
  /** The timed steps, in order, of the pass kept. */
  timesMs: z.array(num),
  /** Steps the median was taken over (undisturbed steps when enough of them). */
  medianOver: z.number().int(),
});

/**
 * One text-to-image pipeline call split into its phases (txt2img rows, both sides). The row's timing is
 * over the denoising steps (U-Net on the guidance-doubled batch, guidance, scheduler step); these are the rest.
 */
export const txt2imgPhasesSchema = z.object({
  /** The prompt's and the negative prompt's text encoding. */
  textEncodeMs: num,
  /** All denoising steps (the first one also holds set_timesteps and drawing the initial noise). */
  loopMs: num,
  /** The VAE decode of the final latents. */
  decodeMs: num,
  /** The whole call. */
  totalMs: num,
  /** Loading the pipeline folder (before the calls; not in totalMs). */
  loadMs: num.optional(),
});
export type Txt2ImgPhases = z.infer<typeof txt2imgPhasesSchema>;

/** What a txt2img row's pipeline call does: the same on both sides. */
export const txt2imgCallSchema = z.object({
  scheduler: z.string(),
  predictionType: z.string().nullable(),
  steps: z.number().int().positive(),
  guidanceScale: num,
  height: z.number().int().positive(),
  width: z.number().int().positive(),
  prompt: z.string(),
  negativePrompt: z.string(),
  seed: z.number().int(),
  vaeSlicing: z.boolean(),
  vaeTiling: z.boolean(),
  /** Timed pipeline calls (the row's timing pools their steps; phases are the median call's). */
  runs: z.number().int().positive(),
});
export type Txt2ImgCall = z.infer<typeof txt2imgCallSchema>;

export const pytorchSchema = z.object({
  status: z.enum(['ok', 'skipped', 'failed']),
  reason: z.string().optional(),
  /** diffusers (the real model through bench_diffusers.py). */
  implementation: z.string().optional(),
  /** The PyTorch run's dtype (bf16 rows are compared with PyTorch's fp32 step). */
  dtype: z.enum(BENCH_DTYPES).optional(),
  medianMs: num.optional(),
  minMs: num.optional(),
  maxMs: num.optional(),
  /** difftune median ÷ PyTorch median (lower is better for difftune). */
  ratio: num.optional(),
  cpuUtil: nullableNum.optional(),
  otherCpu: nullableNum.optional(),
  steal: nullableNum.optional(),
  /** The PyTorch process's peak resident memory (loading included). */
  peakRssMb: num.optional(),
  /** Its peak over the warm-up and timed steps alone (null where the kernel cannot reset the peak), as difftune's peakRssMb. */
  stepsPeakRssMb: nullableNum.optional(),
  /** txt2img rows: the diffusers pipeline call's phases (medianMs is then its median denoising step). */
  txt2img: txt2imgPhasesSchema.optional(),
});

export const resultSchema = z.object({
  id: z.string(),
  model: z.string(),
  workload: z.enum(WORKLOADS),
  dtype: z.enum(BENCH_DTYPES),
  /** full, a freezing preset, or lora-r<rank>, with "+gc" under gradient checkpointing; null where nothing trains. */
  freeze: z.string().nullable(),
  /** Training steps with gradient checkpointing (both sides). */
  gradientCheckpointing: z.boolean().optional(),
  batch: z.number().int(),
  resolution: z.number().int(),
  status: z.enum(['ok', 'skipped', 'failed']),
  reason: z.string().optional(),
  params: z.number().int().optional(),
  trainableParams: z.number().int().optional(),
  /** Scheduler steps of one sampling loop. */
  samplingSteps: z.number().int().optional(),
  warmup: z.number().int().optional(),
  timing: timingSchema.optional(),
  imagesPerS: num.optional(),
  gflopPerStep: nullableNum.optional(),
  gflops: nullableNum.optional(),
  /** gflops ÷ the GEMM peak of the same dtype measured in this run. */
  peakFraction: nullableNum.optional(),
  convShare: nullableNum.optional(),
  peakRssMb: num.optional(),
  /** False when the kernel refused the peak-RSS reset: then it is the process's peak so far. */
  peakRssIsolated: z.boolean().optional(),
  /** Time spent awaiting the data loader ÷ step time; null without a loader. */
  dataWait: nullableNum.optional(),
  lagP50Ms: num.optional(),
  lagP99Ms: num.optional(),
  lagMaxMs: num.optional(),
  /** On-CPU time of the JS thread per step: orchestration and N-API marshalling, outside native compute. */
  jsCpuMsPerStep: nullableNum.optional(),
  noise: noiseSchema.optional(),
  pytorch: pytorchSchema.optional(),
  /** Data-loader rows: batches per second. */
  batchesPerS: num.optional(),
  /**
   * txt2img rows: the call and its phases. For these rows `timing` is over the denoising steps (median step,
   * the goal's number), `imagesPerS` counts whole calls, gflopPerStep is one step's U-Net forward, `resolution`
   * is the image's height (pixels) and `batch` the prompts per call.
   */
  txt2img: txt2imgCallSchema.merge(txt2imgPhasesSchema).optional(),
});
export type BenchResult = z.infer<typeof resultSchema>;

export const goalSchema = z.object({
  name: z.string(),
  target: z.string(),
  measured: nullableNum,
  met: z.boolean().nullable(),
  note: z.string(),
});
export type Goal = z.infer<typeof goalSchema>;

export const benchFileSchema = z.object({
  format: z.literal('difftune-bench/1'),
  suite: z.string(),
  startedAt: z.string(),
  durationS: num,
  machine: z.object({
    cpuModel: z.string(),
    cores: z.number().int(),
    cpuFlags: z.object({ avx512f: z.boolean(), avx512bf16: z.boolean(), amxBf16: z.boolean() }),
    memoryGb: num,
    os: z.string(),
    node: z.string(),
    loadAverageStart: z.array(num),
    loadAverageEnd: z.array(num),
  }),
  runtime: z.object({
    torchVersion: z.string(),
    backend: z.string(),
    threads: z.number().int(),
    blas: z.array(z.string()),
    parallelInfo: z.string(),
    ompWaitPolicy: z.string().nullable(),
    openblasCoretype: z.string().nullable(),
    /** U-Nets run with channels-last activations and conv weights (config channelsLast). */
    channelsLast: z.boolean().optional(),
  }),
  gemm: z.object({ n: z.number().int(), fp32Gflops: num, bf16Gflops: nullableNum, disturbed: z.boolean(), otherCpu: nullableNum }),
  /** Round trip of an empty job through the compute thread (the hand-off every native call pays). */
  noopRoundTripUs: num,
  pytorch: z.object({
    available: z.boolean(),
    reason: z.string().optional(),
    python: z.string().optional(),
    torchVersion: z.string().optional(),
    implementation: z.string().optional(),
    blas: z.array(z.string()).optional(),
  }),
  results: z.array(resultSchema),
  goals: z.array(goalSchema),
});
export type BenchFile = z.infer<typeof benchFileSchema>;

/** --config: overrides of the suite's defaults. */
export const benchConfigSchema = z
  .object({
    /** Model names (see lib/bench/presets.ts). */
    models: z.array(z.string()).nonempty().optional(),
    workloads: z.array(z.enum(WORKLOADS)).nonempty().optional(),
    dtypes: z.array(z.enum(BENCH_DTYPES)).nonempty().optional(),
    /** Training variants: "full", a freezing preset name, or "lora". */
    freezes: z.array(z.string()).nonempty().optional(),
    steps: z.number().int().positive().optional(),
    warmup: z.number().int().nonnegative().optional(),
    /** Timing passes repeated when disturbed. */
    retries: z.number().int().nonnegative().optional(),
    /** Scheduler steps of the sampling loop. */
    samplingSteps: z.number().int().positive().optional(),
    threads: z.number().int().positive().optional(),
    pytorch: z.boolean().optional(),
    /** Run difftune's U-Nets channels-last (PyTorch's side stays as diffusers runs it). */
    channelsLast: z.boolean().optional(),
    /** Training steps with gradient checkpointing, on both sides (default: as the suite says, on for sd15-unet). */
    gradientCheckpointing: z.boolean().optional(),
    /** Cores' worth of other processes' CPU above which a step counts as disturbed. */
    otherCpuThreshold: z.number().positive().optional(),
    /** H = W of every model: the U-Net's input (latents) for U-Net models, the image's pixels for pipelines (txt2img). */
    resolution: z.number().int().positive().optional(),
    /** txt2img on sd21-pipeline: this existing pipeline folder instead of one written by init-pipeline into the run's scratch folder. */
    pipelineDir: z.string().min(1).optional(),
    /** txt2img: decode in tiles on both sides (diffusers' enable_vae_tiling), where a whole decode would not fit (default off). */
    vaeTiling: z.boolean().optional(),
  })
  .strict();
export type BenchConfig = z.infer<typeof benchConfigSchema>;
