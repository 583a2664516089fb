/**
 * The PyTorch side: the real diffusers U-Net timed by ../shared/reference/bench_diffusers.py on the same
 * model folder (weights exported by difftune), with the same threads, batch and resolution. Runs as a
 * child process after difftune's own timing, never alongside it.
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { ProcessError } from '../errors';
import { packageRoot } from '../native/load';

export interface PytorchEnv {
  available: boolean;
  reason?: string;
  python?: string;
  torchVersion?: string;
  implementation?: string;
  script?: string;
  /** BLAS libraries the PyTorch process mapped (from its first run). */
  blas?: string[];
}

const HOW_TO =
  "install Debian's python3-torch (apt-get install -y python3-torch libopenblas0-openmp), fetch diffusers " +
  '(git copy of github.com/huggingface/diffusers) and run ../shared/reference/setup.sh <git dir> (exports v0.31.0 to /tmp/diffusers-src)';

/** Finds a Python with torch and an exported diffusers; says what is missing otherwise. */
export function detectPytorch(referenceDir: string): PytorchEnv {
  const python = process.env.PYTHON ?? '/usr/bin/python3';
  const script = path.join(referenceDir, 'bench_diffusers.py');
  if (!fs.existsSync(script)) return { available: false, reason: `no ${script} (set DIFFTUNE_REFERENCE_DIR to the reference folder); ${HOW_TO}` };
  const probe = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', timeout: 60_000 });
  if (probe.status !== 0)
    return {
      available: false,
      python,
      reason: `${python} cannot import torch (${(probe.stderr || String(probe.error ?? '')).trim().split('\n').pop()}); ${HOW_TO}`,
    };
  const torchVersion = probe.stdout.trim();
  const src = process.env.DIFFUSERS_SRC ?? '/tmp/diffusers-src';
  if (!fs.existsSync(path.join(src, 'src', 'diffusers'))) {
    return {
      available: false,
      python,
      torchVersion,
      reason: `torch ${torchVersion} found but no diffusers export at ${src}: fetch diffusers and run ../shared/reference/setup.sh <git dir>`,
    };
  }
  return { available: true, python, torchVersion, implementation: `diffusers (${src})`, script };
}

const lineSchema = z.object({
  median_s: z.number(),
  min_s: z.number(),
  max_s: z.number(),
  cpu_util: z.number().nullable(),
  other_cpu: z.number().nullable(),
  steal: z.number().nullable(),
  peak_rss_mb: z.number(),
  /** The warm-up and timed steps' own peak (null where the kernel cannot reset the peak; absent in older harnesses). */
  steps_peak_rss_mb: z.number().nullable().optional(),
  torch_version: z.string(),
  blas: z.array(z.string()).optional(),
});
export type PytorchLine = z.infer<typeof lineSchema>;

export interface PytorchRun {
  modelDir: string;
  mode: 'forward' | 'backward' | 'train';
  /** "lora": peft adapters of loraRank on to_q/k/v/out.0, as diffusers' train_text_to_image_lora.py (and difftune's default targets). */
  freeze: 'full' | 'decoder-only' | 'lora';
  loraRank?: number;
  /** diffusers' enable_gradient_checkpointing (train and backward modes). */
  gradientCheckpointing?: boolean;
  batch: number;
  resolution: number;
  threads: number;
  steps: number;
  warmup: number;
  crossAttnLen: number;
}

/** bench_diffusers.py's arguments for one run (after the script's path). */
export function pytorchArgs(run: PytorchRun): string[] {
  return [
    run.modelDir,
    '--mode',
    run.mode,
    '--freeze',
    run.freeze,
    '--batch',
    String(run.batch),
    '--resolution',
    String(run.resolution),
    '--threads',
    String(run.threads),
    '--steps',
    String(run.steps),
    '--warmup',
    String(run.warmup),
    ...(run.crossAttnLen > 0 ? ['--cross-attn-len', String(run.crossAttnLen)] : []),
    ...(run.freeze === 'lora' ? ['--lora-rank', String(run.loraRank ?? 4)] : []),
    ...(run.gradientCheckpointing === true ? ['--gradient-checkpointing'] : []),
  ];
}

/** Runs bench_diffusers.py once; resolves to its JSON line, or rejects with its stderr's tail. */
export function runPytorch(env: PytorchEnv, run: PytorchRun, timeoutMs = 600_000): Promise<PytorchLine> {
  if (!env.available || !env.script) return Promise.reject(new ProcessError(`cannot run bench_diffusers.py: ${env.reason ?? 'PyTorch is unavailable'}`));
  return runReferenceScript(env, env.script, pytorchArgs(run), run.threads, timeoutMs, lineSchema);
}

/**
 * The text-to-image harness: ours (test/interop/py, beside the interop scripts whose bootstrap it shares),
 * run against the reference folder that holds bench_diffusers.py.
 */
export function txt2imgScript(): string {
  return path.join(packageRoot(), 'test', 'interop', 'py', 'bench_txt2img.py');
}

/** Why diffusers' StableDiffusionPipeline cannot be timed here (no bench_txt2img.py, no transformers export), or null. */
export function txt2imgProblem(env: PytorchEnv): string | null {
  if (!env.available) return env.reason ?? 'PyTorch is unavailable';
  const script = txt2imgScript();
  if (!fs.existsSync(script)) return `no ${script} (the bench runs from a source checkout of difftune)`;
  const src = process.env.TRANSFORMERS_SRC ?? '/tmp/transformers-src';
  if (!fs.existsSync(path.join(src, 'src', 'transformers')))
    return `no transformers export at ${src} (the pipeline's CLIPTextModel): fetch github:NielsRogge/transformers and run ../shared/reference/setup_t2i.sh <git dir>`;
  return null;
}

/** One bench_txt2img.py run: StableDiffusionPipeline.__call__ on a pipeline folder, as difftune's txt2img row calls it. */
export interface PytorchTxt2ImgRun {
  pipelineDir: string;
  scheduler: string;
  steps: number;
  guidanceScale: number;
  height: number;
  width: number;
  prompt: string;
  negativePrompt: string;
  seed: number;
  vaeSlicing: boolean;
  vaeTiling: boolean;
  threads: number;
  runs: number;
  warmup: number;
}

export function pytorchTxt2ImgArgs(run: PytorchTxt2ImgRun): string[] {
  return [
    run.pipelineDir,
    '--scheduler',
    run.scheduler,
    '--steps',
    String(run.steps),
    '--guidance-scale',
    String(run.guidanceScale),
    '--height',
    String(run.height),
    '--width',
    String(run.width),
    '--prompt',
    run.prompt,
    '--negative-prompt',
    run.negativePrompt,
    '--seed',
    String(run.seed),
    '--threads',
    String(run.threads),
    '--runs',
    String(run.runs),
    '--warmup',
    String(run.warmup),
    ...(run.vaeSlicing ? ['--vae-slicing'] : []),
    ...(run.vaeTiling ? ['--vae-tiling'] : []),
  ];
}

const txt2imgLineSchema = lineSchema.extend({
  /** The median, min and max above are over the denoising steps. */
  step_times_s: z.array(z.number()),
  text_encode_s: z.number(),
  loop_s: z.number(),
  decode_s: z.number(),
  total_s: z.number(),
  load_s: z.number(),
  scheduler: z.string(),
  prediction_type: z.string().nullable(),
});
export type PytorchTxt2ImgLine = z.infer<typeof txt2imgLineSchema>;

export function runPytorchTxt2Img(env: PytorchEnv, run: PytorchTxt2ImgRun, timeoutMs = 600_000): Promise<PytorchTxt2ImgLine> {
  const problem = txt2imgProblem(env);
  if (problem !== null) return Promise.reject(new ProcessError(`cannot run bench_txt2img.py: ${problem}`));
  return runReferenceScript(env, txt2imgScript(), pytorchTxt2ImgArgs(run), run.threads, timeoutMs, txt2imgLineSchema);
}

/** Runs one reference script; resolves to its last stdout line parsed by `schema`, or rejects with its stderr's tail. */
function runReferenceScript<T>(env: PytorchEnv, script: string, scriptArgs: string[], threads: number, timeoutMs: number, schema: z.ZodType<T>): Promise<T> {
  const name = path.basename(script);
  if (!env.python) return Promise.reject(new ProcessError(`cannot run ${name}: ${env.reason ?? 'PyTorch is unavailable'}`));
  const args = [script, ...scriptArgs];
  return new Promise((resolve, reject) => {
    // DIFFTUNE_REFERENCE_DIR: where a script of ours (bench_txt2img.py) finds the harness it bootstraps from.
    const childEnv = { ...process.env, OMP_NUM_THREADS: String(threads), ...(env.script ? { DIFFTUNE_REFERENCE_DIR: path.dirname(env.script) } : {}) };
    const child = spawn(env.python!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new ProcessError(`cannot start ${name} with ${env.python}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0) {
        const how = signal === 'SIGKILL' ? `was killed (SIGKILL: its ${timeoutMs / 1000} s limit, or out of memory)` : `exited ${code ?? signal}`;
        reject(new ProcessError(`${name} ${how}: ${err.trim().split('\n').slice(-3).join(' | ')}`));
        return;
      }
      try {
        resolve(schema.parse(JSON.parse(line)));
      } catch (e) {
        reject(
          new ProcessError(`${name}: expected a JSON result as its last line but found ${JSON.stringify(line.slice(0, 200))} (${(e as Error).message})`, {
            cause: e,
          }),
        );
      }
    });
  });
}
