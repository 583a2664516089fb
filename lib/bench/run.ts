/**
 * One harness run: the machine and runtime, the GEMM peak, the compute thread's hand-off cost, then
 * each model's workloads in difftune followed by the same workloads in PyTorch (never both at once),
 * the data loader, the distributed slot, and the goals. Returns the bench.json content.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ConfigError } from '../errors';
import { gemmBenchmark, runtimeInfo, setThreads } from '../native/runtime';
import { callAsync, loadNative } from '../native/load';
import { benchModels, isPipelineModel, type BenchModel } from './presets';
import { applyConfig, isPipelineEntry, SUITES, type Suite, type SuiteEntry, type SuiteName } from './suites';
import { benchFileSchema, type BenchConfig, type BenchFile, type BenchResult } from './schema';
import { blasLibraries, disturbance, machineInfo, sampleCpu } from './system';
import { readCpuinfo, slowBf16Reason } from '../util/cpu';

import { measuredFields, median, measure } from './measure';
import { detectPytorch, pytorchArgs, runPytorch, txt2imgProblem, type PytorchEnv } from './pytorch';
import { benchPipelineEntry, planTxt2Img } from './txt2img';
import { benchForward, benchForwardBackward, benchSampling, benchTrainStep, exportModel, openModel, skipped, type RunSettings } from './workloads';
import { openLoader, writeImageFolder } from './data';
import { benchDistThroughput } from './dist-slot';
import { evaluateGoals } from './goals';

export interface BenchOptions {
  suite: SuiteName;
  config?: BenchConfig;
  /** The repository root (test/fixtures, models/). */
  root: string;
  /** ../shared/reference by default (bench_diffusers.py). */
  referenceDir?: string;
  log?: (line: string) => void;
  /** Override the suite outright (the self-test uses a one-model suite). */
  suiteOverride?: Suite;
  /** /proc/cpuinfo's text to judge bf16 arithmetic by (default: this machine's; tests pass another CPU's). */
  cpuinfo?: string;
}

async function noopRoundTripUs(): Promise<number> {
  const native = loadNative();
  for (let i = 0; i < 20; i++) await callAsync(() => native.getThreads());
  const times: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    await callAsync(() => native.getThreads());
    times.push((performance.now() - t0) * 1000);
  }
  return median(times);
}

/**
 * The GEMM peak: the best of several n×n×n multiplies per dtype, each attempt judged by what other
 * processes did meanwhile; a peak measured only under disturbance is flagged (it would inflate % peak).
 */
async function gemmPeak(
  n: number,
  threshold: number,
  measureBf16: boolean,
): Promise<{ fp32: number; bf16: number | null; disturbed: boolean; otherCpu: number | null }> {
  let disturbed = true;
  let worstOther: number | null = null;
  const best = async (dtype: 'float32' | 'bfloat16'): Promise<number> => {
    let top = 0;
    for (let i = 0; i < 4; i++) {
      const a = sampleCpu();
      const g = (await gemmBenchmark({ n, reps: dtype === 'float32' ? 6 : 3, dtype })).gflops;
      const d = disturbance(a, sampleCpu());
      const clean = d === null || d.otherCpu <= threshold;
      if (d) worstOther = Math.max(worstOther ?? 0, d.otherCpu);
      if (clean && dtype === 'float32') disturbed = false;
      top = Math.max(top, g);
      if (clean && i >= 1) break;
    }
    return top;
  };
  const fp32 = await best('float32');
  // No bf16 peak where bf16 is only emulated: its rows are skipped, and the emulated GEMM takes long.
  let bf16: number | null = null;
  try {
    if (measureBf16) bf16 = await best('bfloat16');
  } catch {
    bf16 = null;
  }
  return { fp32, bf16, disturbed, otherCpu: worstOther };
}

const PYTORCH_MODES = { forward: 'forward', 'forward-backward': 'backward', 'train-step': 'train' } as const;

/** What bench_diffusers.py trains for a row's freeze label: full, decoder-only, or LoRA of a rank (peft); null for the rest. */
function pytorchFreeze(label: string | null): { freeze: 'full' | 'decoder-only' | 'lora'; loraRank?: number } | null {
  const base = label?.replace(/\+gc$/, '') ?? null;
  if (base === null || base === 'full') return { freeze: 'full' };
  if (base === 'decoder-only') return { freeze: 'decoder-only' };
  const lora = /^lora-r(\d+)$/.exec(base);
  return lora ? { freeze: 'lora', loraRank: Number(lora[1]) } : null;
}

async function pytorchFor(
  env: PytorchEnv,
  results: BenchResult[],
  exportDir: () => Promise<string>,
  model: BenchModel,
  entry: SuiteEntry,
  threads: number,
  log: (l: string) => void,
): Promise<void> {
  // One PyTorch run per (workload, freeze) in fp32; bf16 rows are compared with it (the goal's baseline).
  const done = new Map<string, BenchResult['pytorch']>();
  for (const r of results) {
    if (r.status !== 'ok' || !r.timing) continue;
    const mode = PYTORCH_MODES[r.workload as keyof typeof PYTORCH_MODES];
    const variant = pytorchFreeze(r.freeze);
    if (!mode || !variant) {
      r.pytorch = {
        status: 'skipped',
        reason:
          r.workload === 'sample'
            ? 'bench_diffusers.py has no sampling loop'
            : `bench_diffusers.py trains "full", "decoder-only" or LoRA (peft) only, not ${r.freeze}`,
      };
      continue;
    }
    const { freeze, loraRank } = variant;
    const gradientCheckpointing = r.workload === 'train-step' && r.gradientCheckpointing === true;
    const key = `${mode}/${freeze}/${loraRank ?? ''}/${gradientCheckpointing}`;
    if (!done.has(key)) {
      if (!env.available) {
        done.set(key, { status: 'skipped', reason: env.reason });
      } else {
        try {
          log(`  PyTorch ${model.name} ${mode} (${freeze})`);
          const line = await runPytorch(
            env,
            {
              modelDir: await exportDir(),
              mode,
              freeze,
              loraRank,
              gradientCheckpointing,
              batch: model.batch,
              resolution: model.resolution,
              threads,
              steps: entry.steps,
              warmup: Math.max(1, entry.warmup),
              crossAttnLen: model.crossAttnLen,
            },
            1000 * (model.pytorchTimeoutS ?? 600),
          );
          env.blas ??= line.blas;
          done.set(key, {
            status: 'ok',
            implementation: 'diffusers',
            dtype: 'fp32',
            medianMs: line.median_s * 1000,
            minMs: line.min_s * 1000,
            maxMs: line.max_s * 1000,
            cpuUtil: line.cpu_util,
            otherCpu: line.other_cpu,
            steal: line.steal,
            peakRssMb: line.peak_rss_mb,
            stepsPeakRssMb: line.steps_peak_rss_mb ?? null,
          });
        } catch (error) {
          done.set(key, { status: 'failed', reason: (error as Error).message });
        }
      }
    }
    const p = done.get(key)!;
    r.pytorch = p.status === 'ok' ? { ...p, ratio: r.timing.medianMs / p.medianMs! } : p;
  }
}

/**
 * One model's rows. `slowBf16` (why bf16 would only be emulated on this CPU, or null) turns its bf16 rows
 * into skipped ones with that reason: emulated bf16 steps take 1.5–30× fp32's, which would blow the quick
 * suite's 5 minutes and measure nothing anyone would run.
 */
async function benchEntry(
  model: BenchModel,
  entry: SuiteEntry,
  suite: Suite,
  settings: RunSettings,
  env: PytorchEnv,
  slowBf16: string | null,
  log: (l: string) => void,
): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  log(`${model.name}: opening (${model.note})`);
  const opened = await openModel(model, settings.channelsLast);
  try {
    const per = { ...settings, steps: entry.steps, warmup: entry.warmup };
    const run = async (label: string, fn: () => Promise<BenchResult>, fallback: () => BenchResult): Promise<void> => {
      log(`  ${label}`);
      try {
        const r = await fn();
        results.push(r);
        if (r.timing) log(`    median ${r.timing.medianMs.toFixed(1)} ms${r.noise?.disturbed ? ' (disturbed)' : ''}`);
      } catch (error) {
        results.push({ ...fallback(), status: 'failed', reason: (error as Error).message });
        log(`    failed: ${(error as Error).message}`);
      }
    };
    for (const dtype of entry.dtypes) {
      if (dtype === 'bf16' && slowBf16 !== null) {
        for (const w of entry.workloads) if (w !== 'train-step') results.push(skipped(model, w, dtype, w === 'forward-backward' ? 'full' : null, slowBf16));
        log(`  ${dtype} rows skipped: ${slowBf16}`);
        continue;
      }
      if (entry.workloads.includes('forward'))
        await run(
          `forward ${dtype}`,
          () => benchForward(opened, model, dtype, per),
          () => skipped(model, 'forward', dtype, null, ''),
        );
      if (entry.workloads.includes('forward-backward'))
        await run(
          `forward+backward ${dtype}`,
          () => benchForwardBackward(opened, model, dtype, per),
          () => skipped(model, 'forward-backward', dtype, 'full', ''),
        );
      if (entry.workloads.includes('sample')) {
        await run(
          `sampling loop ${dtype} (${suite.samplingSteps} steps)`,
          () => benchSampling(opened, model, dtype, { ...per, steps: entry.samplingLoops, warmup: Math.min(1, entry.warmup) }),
          () => skipped(model, 'sample', dtype, null, ''),
        );
      }
    }
    if (entry.workloads.includes('train-step')) {
      for (const freeze of entry.freezes) {
        for (const dtype of entry.dtypes) {
          if (dtype === 'bf16' && entry.bf16Freezes && !entry.bf16Freezes.includes(freeze)) continue;
          if (dtype === 'bf16' && slowBf16 !== null) {
            results.push(skipped(model, 'train-step', dtype, freeze, slowBf16));
            continue;
          }
          const gc = entry.gradientCheckpointing ?? false;
          await run(
            `train step ${dtype} ${freeze}${gc ? ' (gradient checkpointing)' : ''}`,
            () => benchTrainStep(opened, model, dtype, freeze, { ...per, gradientCheckpointing: gc }),
            () => skipped(model, 'train-step', dtype, freeze, ''),
          );
        }
      }
    }
    if (entry.pytorch) {
      const dir = path.join(settings.tmpDir, `export-${model.name}`);
      await pytorchFor(env, results, () => exportModel(opened, dir), model, entry, settings.threads, log);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    opened.unet.dispose();
    opened.scheduler.dispose();
  }
  return results;
}

async function benchDataLoader(spec: NonNullable<Suite['dataLoader']>, settings: RunSettings): Promise<BenchResult> {
  const dir = await writeImageFolder(path.join(settings.tmpDir, 'loader-images'), spec.batch * 8, spec.resolution, 3);
  const loader = await openLoader(dir, spec.resolution, 3, spec.batch);
  try {
    const m = await measure(async () => (await loader.next()).dispose(), { ...settings, warmup: 1, steps: spec.batches });
    return {
      id: `png-folder/data-loader/fp32`,
      model: 'png-folder',
      workload: 'data-loader',
      dtype: 'fp32',
      freeze: null,
      batch: spec.batch,
      resolution: spec.resolution,
      status: 'ok',
      reason: `PNG decode, resize, random crop and flip, to float32 NCHW; ${loader.threads.decodeConcurrency} decoder(s), prefetch ${loader.prefetch}`,
      ...measuredFields(m),
      imagesPerS: spec.batch / (m.medianMs / 1000),
      batchesPerS: 1000 / m.medianMs,
      dataWait: null,
    };
  } finally {
    await loader.close();
    await setThreads(settings.threads);
  }
}

/**
 * What a run would do, without loading anything (`npm run bench -- --dry-run`): each model's rows in
 * order and, where PyTorch runs, the bench_diffusers.py command of each of its runs.
 */
export function planBench(options: Pick<BenchOptions, 'suite' | 'config' | 'root' | 'referenceDir' | 'suiteOverride'>): string[] {
  const models = configuredModels(options.root, options.config);
  const suite = options.suiteOverride ?? applyConfig(SUITES[options.suite], options.config ?? {}, new Set(models.keys()));
  const threads = options.config?.threads ?? Number(process.env.OMP_NUM_THREADS || os.cpus().length);
  const referenceDir = options.referenceDir ?? process.env.DIFFTUNE_REFERENCE_DIR ?? path.resolve(options.root, '..', 'shared', 'reference');
  const lines = [`suite ${suite.name}: ${threads} thread(s), ${suite.samplingSteps} sampling steps, ${suite.retries} retries when disturbed`];
  for (const entry of suite.entries) {
    const model = models.get(entry.model);
    if (!model) throw new ConfigError(`suite ${suite.name}: unknown model "${entry.model}"; expected one of ${[...models.keys()].join(', ')}`);
    if (isPipelineModel(model)) {
      lines.push(...planTxt2Img(model, entry, threads, referenceDir, options.config));
      continue;
    }
    const gc = entry.gradientCheckpointing === true;
    lines.push(`${model.name} (${model.note}): batch ${model.batch}, ${entry.warmup} warm-up + ${entry.steps} timed steps`);
    const freezes = entry.freezes.map((f) => `${f === 'lora' ? 'lora-r4' : f}${gc ? '+gc' : ''}`);
    for (const w of entry.workloads)
      for (const d of entry.dtypes) {
        const trains = w === 'train-step' || w === 'forward-backward';
        const variants =
          w === 'train-step'
            ? freezes.filter((_, i) => d === 'fp32' || !entry.bf16Freezes || entry.bf16Freezes.includes(entry.freezes[i]!))
            : [trains ? 'full' : ''];
        for (const v of variants) lines.push(`  ${w} ${d}${v ? ` ${v}` : ''}`);
      }
    if (!entry.pytorch) continue;
    const runs = new Set<string>();
    for (const w of entry.workloads) {
      const mode = PYTORCH_MODES[w as keyof typeof PYTORCH_MODES];
      if (!mode) continue;
      for (const label of w === 'train-step' ? freezes : ['full']) {
        const variant = pytorchFreeze(label);
        if (!variant) continue;
        const args = pytorchArgs({
          modelDir: `<export of ${model.name}>`,
          mode,
          freeze: variant.freeze,
          loraRank: variant.loraRank,
          gradientCheckpointing: w === 'train-step' && gc,
          batch: model.batch,
          resolution: model.resolution,
          threads,
          steps: entry.steps,
          warmup: Math.max(1, entry.warmup),
          crossAttnLen: model.crossAttnLen,
        });
        runs.add(`  PyTorch: python3 ${path.join(referenceDir, 'bench_diffusers.py')} ${args.join(' ')}`);
      }
    }
    lines.push(...runs);
  }
  if (suite.dataLoader) lines.push(`data loader: batch ${suite.dataLoader.batch} at ${suite.dataLoader.resolution} px, ${suite.dataLoader.batches} batches`);
  if (suite.dataParallel) lines.push(`data-parallel throughput: ${suite.dataParallel.ranks.join(' and ')} ranks, batch ${suite.dataParallel.batch} per rank`);
  return lines;
}

/** The harness's models, --config resolution applied. */
function configuredModels(root: string, config: BenchConfig | undefined): Map<string, BenchModel> {
  const models = benchModels(path.join(root, 'test/fixtures/diffusers'), path.join(root, 'models'));
  const resolution = config?.resolution;
  if (resolution === undefined) return models;
  return new Map([...models].map(([name, m]) => [name, { ...m, resolution }]));
}

export async function runBench(options: BenchOptions): Promise<BenchFile> {
  const log = options.log ?? ((l: string) => console.log(l));
  const started = new Date();
  const t0 = performance.now();
  const machine = machineInfo();
  const models = configuredModels(options.root, options.config);
  const suite = options.suiteOverride ?? applyConfig(SUITES[options.suite], options.config ?? {}, new Set(models.keys()));
  const threads = options.config?.threads ?? Number(process.env.OMP_NUM_THREADS || os.cpus().length);
  await setThreads(threads);
  const info = await runtimeInfo();
  log(`difftune bench (${suite.name}): libtorch ${info.torchVersion} ${info.backend}, ${info.threads} thread(s), load ${machine.loadAverage.join(' ')}`);
  log(`allocator: CPU block cache ${info.cpuCache.source === 'difftune' ? 'on' : `off (${info.cpuCache.source})`}, malloc thresholds ${info.malloc.source}`);
  const threshold = options.config?.otherCpuThreshold ?? 0.3;
  const slowBf16 = slowBf16Reason(options.cpuinfo ?? readCpuinfo());
  if (slowBf16 !== null) log(`bf16: ${slowBf16}; bf16 rows are skipped`);
  const peak = await gemmPeak(suite.gemmN, threshold, slowBf16 === null);
  const noop = await noopRoundTripUs();
  log(
    `GEMM peak ${peak.fp32.toFixed(0)} GFLOP/s fp32, ${peak.bf16 === null ? 'n/a' : peak.bf16.toFixed(0)} bf16${peak.disturbed ? ' (disturbed)' : ''}; compute-thread round trip ${noop.toFixed(0)} µs`,
  );
  const referenceDir = options.referenceDir ?? process.env.DIFFTUNE_REFERENCE_DIR ?? path.resolve(options.root, '..', 'shared', 'reference');
  const wantsPytorch = suite.entries.some((e) => e.pytorch) && options.config?.pytorch !== false;
  const env: PytorchEnv = wantsPytorch
    ? detectPytorch(referenceDir)
    : { available: false, reason: 'not asked for (config pytorch: false or no entry needs it)' };
  log(env.available ? `PyTorch: torch ${env.torchVersion} with ${env.implementation}` : `PyTorch: unavailable — ${env.reason}`);

  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-bench-'));
  const settings: RunSettings = {
    threads,
    samplingSteps: suite.samplingSteps,
    loraRank: 4,
    channelsLast: options.config?.channelsLast ?? false,
    peak,
    tmpDir,
    log,
    warmup: 1,
    steps: 3,
    retries: suite.retries,
    otherCpuThreshold: threshold,
  };
  const results: BenchResult[] = [];
  try {
    for (const entry of suite.entries) {
      const model = models.get(entry.model);
      if (!model) throw new ConfigError(`suite ${suite.name}: unknown model "${entry.model}"; expected one of ${[...models.keys()].join(', ')}`);
      if (isPipelineModel(model) || isPipelineEntry(entry)) {
        const problem = entry.pytorch ? txt2imgProblem(env) : null;
        const t2iEnv = !entry.pytorch ? null : problem === null ? env : { ...env, available: false, reason: problem };
        const t2iSettings = {
          ...settings,
          steps: entry.steps,
          warmup: entry.warmup,
          samplingSteps: entry.txt2imgSteps ?? 20,
          vaeTiling: options.config?.vaeTiling,
          pipelineDir: options.config?.pipelineDir,
        };
        results.push(...(await benchPipelineEntry(model, t2iSettings, t2iEnv, log)));
      } else {
        results.push(...(await benchEntry(model, entry, suite, settings, env, slowBf16, log)));
      }
      await setThreads(threads);
    }
    if (suite.dataLoader) {
      log('data loader');
      results.push(await benchDataLoader(suite.dataLoader, settings));
    }
    if (suite.dataParallel) {
      log('data-parallel throughput (1 vs 2 ranks)');
      results.push(...(await benchDistThroughput(suite, options.root, log)));
    }
  } finally {
    fs.rmSync(tmpDir, { recursive: true, force: true });
  }
  const file: BenchFile = {
    format: 'difftune-bench/1',
    suite: suite.name,
    startedAt: started.toISOString(),
    durationS: (performance.now() - t0) / 1000,
    machine: {
      cpuModel: machine.cpuModel,
      cores: machine.cores,
      cpuFlags: machine.cpuFlags,
      memoryGb: machine.memoryGb,
      os: machine.os,
      node: machine.node,
      loadAverageStart: machine.loadAverage,
      loadAverageEnd: machineInfo().loadAverage,
    },
    runtime: {
      torchVersion: info.torchVersion,
      backend: info.backend,
      threads: info.threads,
      blas: blasLibraries(),
      parallelInfo: info.parallelInfo
        .split('\n')
        .filter((l) => /OpenMP|MKL|threads|ATen/i.test(l))
        .join('; ')
        .slice(0, 400),
      ompWaitPolicy: process.env.OMP_WAIT_POLICY ?? null,
      openblasCoretype: process.env.OPENBLAS_CORETYPE ?? null,
      channelsLast: settings.channelsLast,
    },
    gemm: { n: suite.gemmN, fp32Gflops: peak.fp32, bf16Gflops: peak.bf16, disturbed: peak.disturbed, otherCpu: peak.otherCpu },
    noopRoundTripUs: noop,
    pytorch: {
      available: env.available,
      reason: env.reason,
      python: env.python,
      torchVersion: env.torchVersion,
      implementation: env.implementation,
      blas: env.blas,
    },
    results,
    goals: evaluateGoals(results),
  };
  return benchFileSchema.parse(file);
}
