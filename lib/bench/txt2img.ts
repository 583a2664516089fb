/**
 * The txt2img workload: whole Stable Diffusion pipeline calls — difftune's txt2img (lib/sample, which is
 * StableDiffusionPipeline.__call__ step for step) here, diffusers' own pipeline in
 * test/interop/py/bench_txt2img.py (run against the reference harness) — on the same folder, threads, prompt, negative prompt, seed,
 * scheduler, steps, guidance and size. Each call is split into text encoding, the denoising steps (the
 * row's timing: the goal compares the median step) and the VAE decode, the same way on both sides.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError } from '../errors';
import { initPipeline } from '../models/init-pipeline';
import { loadStableDiffusion, type StableDiffusion } from '../models/stable-diffusion';
import { releaseCpuCache } from '../native/runtime';
import { txt2img } from '../sample/txt2img';
import { countFlops } from './flops';
import { median, measure, measuredFields } from './measure';
import type { BenchModel } from './presets';
import { type PytorchEnv, type PytorchTxt2ImgLine, pytorchTxt2ImgArgs, runPytorchTxt2Img, type PytorchTxt2ImgRun, txt2imgScript } from './pytorch';
import type { BenchConfig, BenchResult, Txt2ImgCall, Txt2ImgPhases } from './schema';
import type { SuiteEntry } from './suites';
import type { RunSettings } from './workloads';

/** What every txt2img row's call does, on both sides (issue 16: DPM-Solver++ 20 steps, guidance 7.5, batch 1). */
export const TXT2IMG_CALL = {
  scheduler: 'DPMSolverMultistepScheduler',
  guidanceScale: 7.5,
  prompt: 'a photograph of an astronaut riding a horse on the moon, highly detailed',
  negativePrompt: 'blurry, low quality',
  seed: 0,
} as const;

export interface Txt2ImgSettings extends RunSettings {
  /** Denoising steps of one call (the suite's samplingSteps). */
  samplingSteps: number;
  /** Decode in tiles on both sides (diffusers' enable_vae_tiling); default off. */
  vaeTiling?: boolean;
  /** An existing folder for an init-pipeline model instead of writing one (--config pipelineDir). */
  pipelineDir?: string;
}

/** The pipeline folder a model runs from; `written` when this run wrote it (into tmpDir) and must delete it. */
export async function pipelineFolder(
  model: BenchModel,
  settings: Pick<Txt2ImgSettings, 'tmpDir' | 'pipelineDir' | 'log'>,
): Promise<{ dir: string; written: boolean }> {
  const source = model.source;
  if (source.kind === 'pipeline') return { dir: source.dir, written: false };
  if (source.kind !== 'init-pipeline')
    throw new ConfigError(`txt2img: model "${model.name}" is a lone U-Net; expected a pipeline model (sd-pipeline-tiny, sd21-pipeline)`);
  if (settings.pipelineDir !== undefined) {
    if (!fs.existsSync(path.join(settings.pipelineDir, 'model_index.json')))
      throw new ConfigError(
        `config pipelineDir: expected a Stable Diffusion pipeline folder with model_index.json at ${settings.pipelineDir} (npm run init-pipeline -- --config ${source.configDir} --out <dir> writes one) but found none`,
      );
    return { dir: settings.pipelineDir, written: false };
  }
  const dir = path.join(settings.tmpDir, model.name);
  settings.log(`  writing ${model.name} from ${path.relative(process.cwd(), source.configDir) || source.configDir} (init-pipeline, seed ${source.seed})`);
  await initPipeline(source.configDir, dir, { seed: source.seed, log: (l) => settings.log(`    ${l}`) });
  return { dir, written: true };
}

/** One call's phase times (ms): text encoding, each denoising step, decode, the whole call. */
interface CallTimes {
  textEncodeMs: number;
  stepsMs: number[];
  decodeMs: number;
  totalMs: number;
  /** When the last text encoding ended, or the last step: where the next step's time starts. */
  mark: number;
}

/**
 * `target` with `key` wrapped so that each call's duration goes to `add`. A Proxy rather than editing the
 * object: the pipeline runs unchanged, and the methods keep their own `this` (private fields included).
 */
function timedMethod<T extends object>(target: T, key: keyof T & string, add: (ms: number, end: number) => void): T {
  const method = Reflect.get(target, key, target) as unknown;
  if (typeof method !== 'function') throw new ConfigError(`txt2img timing: expected ${key} to be a method`);
  const timed = async (...args: unknown[]): Promise<unknown> => {
    const t0 = performance.now();
    const out: unknown = await (method as (...a: unknown[]) => Promise<unknown>).apply(target, args);
    const end = performance.now();
    add(end - t0, end);
    return out;
  };
  return new Proxy(target, {
    get(t, p) {
      if (p === key) return timed;
      const v = Reflect.get(t, p, t) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

/** `sd` whose text encoder's embed and VAE's decode report into `current()`'s record. */
function timedPipeline(sd: StableDiffusion, current: () => CallTimes): StableDiffusion {
  return {
    ...sd,
    textEncoder: timedMethod(sd.textEncoder, 'embed', (ms, end) => {
      const c = current();
      c.textEncodeMs += ms;
      c.mark = end;
    }),
    vae: timedMethod(sd.vae, 'decode', (ms) => (current().decodeMs += ms)),
  };
}

function stepStats(stepsMs: readonly number[]): NonNullable<BenchResult['timing']> {
  const med = median(stepsMs);
  return {
    medianMs: med,
    minMs: Math.min(...stepsMs),
    maxMs: Math.max(...stepsMs),
    madPct: (100 * median(stepsMs.map((t) => Math.abs(t - med)))) / med,
    timesMs: stepsMs.map((t) => Math.round(t * 1000) / 1000),
    medianOver: stepsMs.length,
  };
}

/** The median call's phases (by total time). */
function medianCall(calls: readonly CallTimes[]): CallTimes {
  const sorted = [...calls].sort((a, b) => a.totalMs - b.totalMs);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

export function txt2imgCall(
  model: BenchModel,
  settings: Pick<Txt2ImgSettings, 'samplingSteps' | 'vaeTiling' | 'steps'>,
  predictionType: string | null,
): Txt2ImgCall {
  return {
    ...TXT2IMG_CALL,
    predictionType,
    steps: settings.samplingSteps,
    height: model.resolution,
    width: model.resolution,
    // Batch 1: slicing (one image at a time) would change nothing.
    vaeSlicing: false,
    vaeTiling: settings.vaeTiling ?? false,
    runs: settings.steps,
  };
}

/**
 * difftune's side: `settings.warmup` untimed calls, then `settings.steps` timed ones (one is the default:
 * a call at 768² takes minutes). No retries — a disturbed run is flagged, not repeated.
 */
export async function benchTxt2Img(sd: StableDiffusion, model: BenchModel, settings: Txt2ImgSettings, loadMs: number): Promise<BenchResult> {
  const predictionType = (sd.scheduler.toJSON() as { prediction_type?: string }).prediction_type ?? null;
  const call = txt2imgCall(model, settings, predictionType);
  const calls: CallTimes[] = [];
  const current = (): CallTimes => calls[calls.length - 1]!;
  const timed = timedPipeline(sd, current);
  let encoderSeqLen = model.crossAttnLen;
  const step = async (): Promise<void> => {
    const c: CallTimes = { textEncodeMs: 0, stepsMs: [], decodeMs: 0, totalMs: 0, mark: performance.now() };
    calls.push(c);
    const t0 = performance.now();
    const result = await txt2img(timed, {
      prompt: call.prompt,
      negativePrompt: call.negativePrompt,
      guidanceScale: call.guidanceScale,
      steps: call.steps,
      seed: call.seed,
      height: call.height,
      width: call.width,
      vaeSlicing: call.vaeSlicing,
      vaeTiling: call.vaeTiling,
      onStep: () => {
        const now = performance.now();
        c.stepsMs.push(now - c.mark);
        c.mark = now;
      },
    });
    c.totalMs = performance.now() - t0;
    encoderSeqLen = result.promptEmbeds.shape[1] ?? encoderSeqLen;
    result.dispose();
  };
  const m = await measure(step, { ...settings, retries: 0 });
  const timedCalls = calls.slice(-settings.steps);
  const stepsMs = timedCalls.flatMap((c) => c.stepsMs);
  const mid = medianCall(timedCalls);
  const factor = sd.vae.vaeScaleFactor;
  const count = countFlops(await sd.unet.parameters(), {
    levels: sd.unet.config.block_out_channels.length,
    height: call.height / factor,
    width: call.width / factor,
    // Guidance doubles the U-Net's batch: [negative; prompt].
    batch: model.batch * (call.guidanceScale > 1 ? 2 : 1),
    encoderSeqLen,
  });
  const timing = stepStats(stepsMs);
  const gflops = count.forward / 1e9 / (timing.medianMs / 1000);
  const phases: Txt2ImgPhases = {
    textEncodeMs: mid.textEncodeMs,
    loopMs: mid.stepsMs.reduce((a, b) => a + b, 0),
    decodeMs: mid.decodeMs,
    totalMs: mid.totalMs,
    loadMs,
  };
  const params = (await Promise.all([sd.unet.parameters(), sd.vae.parameters(), sd.textEncoder.parameters()]))
    .flat()
    .reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  return {
    id: `${model.name}/txt2img/fp32`,
    model: model.name,
    workload: 'txt2img',
    dtype: 'fp32',
    freeze: null,
    batch: model.batch,
    resolution: model.resolution,
    status: 'ok',
    params,
    samplingSteps: call.steps,
    warmup: settings.warmup,
    ...measuredFields(m),
    timing,
    imagesPerS: model.batch / (mid.totalMs / 1000),
    gflopPerStep: count.forward / 1e9,
    gflops,
    peakFraction: settings.peak.fp32 ? gflops / settings.peak.fp32 : null,
    convShare: count.conv / count.forward,
    dataWait: null,
    txt2img: { ...call, ...phases },
  };
}

function pytorchPhases(line: PytorchTxt2ImgLine): Txt2ImgPhases {
  return {
    textEncodeMs: line.text_encode_s * 1000,
    loopMs: line.loop_s * 1000,
    decodeMs: line.decode_s * 1000,
    totalMs: line.total_s * 1000,
    loadMs: line.load_s * 1000,
  };
}

/** diffusers' side of a txt2img row, on the same folder; fills row.pytorch. */
export async function pytorchTxt2Img(env: PytorchEnv, row: BenchResult, run: PytorchTxt2ImgRun, timeoutMs: number, log: (l: string) => void): Promise<void> {
  if (!env.available) {
    row.pytorch = { status: 'skipped', reason: env.reason };
    return;
  }
  try {
    log(`  PyTorch ${row.model} txt2img (StableDiffusionPipeline, ${run.steps} steps at ${run.height}×${run.width})`);
    const line = await runPytorchTxt2Img(env, run, timeoutMs);
    env.blas ??= line.blas;
    const medianMs = line.median_s * 1000;
    row.pytorch = {
      status: 'ok',
      implementation: 'diffusers StableDiffusionPipeline',
      dtype: 'fp32',
      medianMs,
      minMs: line.min_s * 1000,
      maxMs: line.max_s * 1000,
      ratio: row.timing ? row.timing.medianMs / medianMs : undefined,
      cpuUtil: line.cpu_util,
      otherCpu: line.other_cpu,
      steal: line.steal,
      peakRssMb: line.peak_rss_mb,
      stepsPeakRssMb: line.steps_peak_rss_mb ?? null,
      txt2img: pytorchPhases(line),
    };
  } catch (error) {
    row.pytorch = { status: 'failed', reason: (error as Error).message };
  }
}

/**
 * One pipeline model's txt2img row: its folder (written here for init-pipeline models), difftune's calls,
 * then — with difftune's pipeline freed first, so the two never hold the weights at once — diffusers' calls.
 */
export async function benchPipelineEntry(
  model: BenchModel,
  settings: Txt2ImgSettings,
  env: PytorchEnv | null,
  log: (l: string) => void,
): Promise<BenchResult[]> {
  const { dir, written } = await pipelineFolder(model, settings);
  try {
    let row: BenchResult;
    const t0 = performance.now();
    log(`${model.name}: loading ${dir} (${model.note})`);
    const sd = await loadStableDiffusion(dir, { schedulerClass: TXT2IMG_CALL.scheduler });
    try {
      const loadMs = performance.now() - t0;
      log(`  txt2img fp32 (${settings.samplingSteps} steps, ${model.resolution}², loaded in ${(loadMs / 1000).toFixed(1)} s)`);
      row = await benchTxt2Img(sd, model, settings, loadMs);
      const p = row.txt2img!;
      log(
        `    median step ${row.timing!.medianMs.toFixed(0)} ms; text ${p.textEncodeMs.toFixed(0)} ms, loop ${p.loopMs.toFixed(0)} ms, decode ${p.decodeMs.toFixed(0)} ms, total ${p.totalMs.toFixed(0)} ms; peak RSS ${row.peakRssMb!.toFixed(0)} MB`,
      );
    } catch (error) {
      row = {
        id: `${model.name}/txt2img/fp32`,
        model: model.name,
        workload: 'txt2img',
        dtype: 'fp32',
        freeze: null,
        batch: model.batch,
        resolution: model.resolution,
        status: 'failed',
        reason: (error as Error).message,
      };
      log(`    failed: ${(error as Error).message}`);
    } finally {
      sd.dispose();
      releaseCpuCache();
    }
    if (env !== null && row.status === 'ok' && row.txt2img) {
      const c = row.txt2img;
      await pytorchTxt2Img(
        env,
        row,
        { pipelineDir: dir, ...c, threads: settings.threads, warmup: settings.warmup },
        1000 * (model.pytorchTimeoutS ?? 600),
        log,
      );
    }
    return [row];
  } finally {
    if (written) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A shell word as the plan prints it (quoted when it holds anything but plain characters). */
const shellWord = (w: string): string => (/^[\w@%+=:,./<>-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`);

/** The plan of a pipeline entry: its folder, the txt2img call, and bench_txt2img.py's command. */
export function planTxt2Img(model: BenchModel, entry: SuiteEntry, threads: number, referenceDir: string, config: BenchConfig | undefined): string[] {
  const settings = { samplingSteps: entry.txt2imgSteps ?? 20, vaeTiling: config?.vaeTiling, steps: entry.steps };
  const call = txt2imgCall(model, settings, null);
  const src = model.source;
  const folder = src.kind === 'init-pipeline' ? (config?.pipelineDir ?? `<scratch>/${model.name}`) : src.kind === 'pipeline' ? src.dir : '<not a pipeline>';
  const lines = [`${model.name} (${model.note}): batch ${model.batch}, ${entry.warmup} warm-up + ${entry.steps} timed call(s)`];
  if (src.kind === 'init-pipeline' && config?.pipelineDir === undefined)
    lines.push(
      `  folder: npm run init-pipeline -- --config ${path.relative(process.cwd(), src.configDir) || src.configDir} --out ${folder} --seed ${src.seed}`,
    );
  lines.push(
    `  txt2img fp32: ${call.steps} steps at ${call.height}×${call.width}, ${call.scheduler}, guidance ${call.guidanceScale}, seed ${call.seed}, VAE tiling ${call.vaeTiling ? 'on' : 'off'} (both sides)`,
  );
  if (!entry.pytorch) return lines;
  const args = pytorchTxt2ImgArgs({ pipelineDir: folder, ...call, threads, runs: entry.steps, warmup: entry.warmup });
  const script = path.relative(process.cwd(), txt2imgScript()) || txt2imgScript();
  lines.push(`  PyTorch: DIFFTUNE_REFERENCE_DIR=${shellWord(referenceDir)} python3 ${shellWord(script)} ${args.map(shellWord).join(' ')}`);
  return lines;
}
