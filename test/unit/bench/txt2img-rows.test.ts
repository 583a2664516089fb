// The txt2img workload's plan, PyTorch command, goal and report (issue 16: SD 2.1 768² txt2img, 20 steps,
// per step against diffusers' StableDiffusionPipeline). Pure: nothing is loaded or timed.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { evaluateGoals } from '../../../lib/bench/goals';
import { benchModels } from '../../../lib/bench/presets';
import { pytorchTxt2ImgArgs, txt2imgProblem } from '../../../lib/bench/pytorch';
import { formatMarkdown, formatReadmeSummary } from '../../../lib/bench/report';
import { planBench } from '../../../lib/bench/run';
import { benchConfigSchema, benchFileSchema, type BenchFile, type BenchResult } from '../../../lib/bench/schema';
import { applyConfig, SUITES } from '../../../lib/bench/suites';

const root = path.resolve(__dirname, '..', '..', '..');
const known = new Set(benchModels(path.join(root, 'test/fixtures/diffusers'), path.join(root, 'models')).keys());

const SD21_PYTORCH =
  "  PyTorch: DIFFTUNE_REFERENCE_DIR=/ref python3 test/interop/py/bench_txt2img.py <scratch>/sd21-pipeline --scheduler DPMSolverMultistepScheduler --steps 20 --guidance-scale 7.5 --height 768 --width 768 --prompt 'a photograph of an astronaut riding a horse on the moon, highly detailed' --negative-prompt 'blurry, low quality' --seed 0 --threads 2 --runs 1 --warmup 0";

test('the sd21 suite: one SD 2.1 768² txt2img call per side, 20 steps; the quick suite has no pipeline', () => {
  expect(SUITES.sd21.entries).toEqual([
    { model: 'sd21-pipeline', workloads: ['txt2img'], dtypes: ['fp32'], freezes: [], steps: 1, warmup: 0, samplingLoops: 1, pytorch: true, txt2imgSteps: 20 },
  ]);
  expect(SUITES.sd21.retries).toBe(0);
  expect(SUITES.quick.entries.some((e) => e.workloads.includes('txt2img'))).toBe(false);
  expect(SUITES.full.entries.find((e) => e.model === 'sd-pipeline-tiny')?.workloads).toEqual(['txt2img']);
  const model = benchModels(path.join(root, 'test/fixtures/diffusers'), path.join(root, 'models')).get('sd21-pipeline')!;
  expect(model).toMatchObject({ batch: 1, resolution: 768, source: { kind: 'init-pipeline', seed: 0 } });
  if (model.source.kind !== 'init-pipeline') throw new Error('sd21-pipeline is written by init-pipeline');
  // The real SD 2.1 (768, v-prediction) configs.
  const scheduler = JSON.parse(fs.readFileSync(path.join(model.source.configDir, 'scheduler/scheduler_config.json'), 'utf8')) as { prediction_type: string };
  expect(scheduler.prediction_type).toBe('v_prediction');
});

test('the sd21 plan: the folder init-pipeline writes, the call, and bench_txt2img.py with the same settings', () => {
  const plan = planBench({ suite: 'sd21', root, referenceDir: '/ref', config: { threads: 2 } });
  expect(plan).toContain('  folder: npm run init-pipeline -- --config test/fixtures/real-configs/sd-v2-1 --out <scratch>/sd21-pipeline --seed 0');
  expect(plan).toContain('  txt2img fp32: 20 steps at 768×768, DPMSolverMultistepScheduler, guidance 7.5, seed 0, VAE tiling off (both sides)');
  expect(plan).toContain(SD21_PYTORCH);
});

test('--config scales the call down (steps, size), names an existing folder, or turns VAE tiling on for both sides', () => {
  const config = benchConfigSchema.parse({ threads: 2, samplingSteps: 2, resolution: 256, pipelineDir: '/models/sd21', vaeTiling: true });
  const plan = planBench({ suite: 'sd21', root, referenceDir: '/ref', config });
  expect(plan.some((l) => l.startsWith('  folder:'))).toBe(false);
  expect(plan).toContain('  txt2img fp32: 2 steps at 256×256, DPMSolverMultistepScheduler, guidance 7.5, seed 0, VAE tiling on (both sides)');
  const cmd = plan.find((l) => l.startsWith('  PyTorch:'))!;
  expect(cmd).toContain('bench_txt2img.py /models/sd21 --scheduler DPMSolverMultistepScheduler --steps 2 --guidance-scale 7.5 --height 256 --width 256');
  expect(cmd.endsWith('--vae-tiling')).toBe(true);
  // samplingSteps reaches the pipeline entry.
  expect(applyConfig(SUITES.sd21, config, known).entries[0]!.txt2imgSteps).toBe(2);
});

test('a pipeline entry takes no U-Net workloads from --config, and a U-Net entry no txt2img', () => {
  const onlyForward = applyConfig(SUITES.sd21, benchConfigSchema.parse({ workloads: ['forward'] }), known);
  expect(onlyForward.entries).toEqual([]);
  const both = applyConfig(SUITES.full, benchConfigSchema.parse({ models: ['mnist-small', 'sd-pipeline-tiny'], workloads: ['forward', 'txt2img'] }), known);
  expect(both.entries.map((e) => [e.model, e.workloads])).toEqual([
    ['mnist-small', ['forward']],
    ['sd-pipeline-tiny', ['txt2img']],
  ]);
  // A pipeline named with another suite gets its own entry, not a U-Net one.
  const named = applyConfig(SUITES.quick, benchConfigSchema.parse({ models: ['sd21-pipeline'] }), known);
  expect(named.entries[0]).toMatchObject({ model: 'sd21-pipeline', workloads: ['txt2img'], txt2imgSteps: 20 });
});

test('bench_txt2img.py arguments; why it cannot run', () => {
  const run = {
    pipelineDir: '/p',
    scheduler: 'DPMSolverMultistepScheduler',
    steps: 20,
    guidanceScale: 7.5,
    height: 768,
    width: 768,
    prompt: 'a cat',
    negativePrompt: '',
    seed: 0,
    vaeSlicing: false,
    vaeTiling: false,
    threads: 2,
    runs: 1,
    warmup: 0,
  };
  const args = pytorchTxt2ImgArgs(run);
  expect(args.slice(args.indexOf('--negative-prompt'), args.indexOf('--negative-prompt') + 2)).toEqual(['--negative-prompt', '']);
  expect(args).not.toContain('--vae-slicing');
  expect(pytorchTxt2ImgArgs({ ...run, vaeSlicing: true }).slice(-1)).toEqual(['--vae-slicing']);
  expect(txt2imgProblem({ available: false, reason: 'no torch' })).toBe('no torch');
  // The script is ours (a checkout has it); the transformers export (CLIPTextModel) is what can be missing.
  expect(fs.existsSync(path.join(root, 'test/interop/py/bench_txt2img.py'))).toBe(true);
  const ref = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-ref-'));
  const saved = process.env.TRANSFORMERS_SRC;
  process.env.TRANSFORMERS_SRC = ref;
  try {
    expect(txt2imgProblem({ available: true, python: 'python3', script: path.join(ref, 'bench_diffusers.py') })).toBe(
      `no transformers export at ${ref} (the pipeline's CLIPTextModel): fetch github:NielsRogge/transformers and run ../shared/reference/setup_t2i.sh <git dir>`,
    );
  } finally {
    if (saved === undefined) delete process.env.TRANSFORMERS_SRC;
    else process.env.TRANSFORMERS_SRC = saved;
    fs.rmSync(ref, { recursive: true, force: true });
  }
});

function sd21Row(stepMs: number, pytorch: { stepMs: number } | null): BenchResult {
  const call = {
    scheduler: 'DPMSolverMultistepScheduler',
    predictionType: 'v_prediction',
    steps: 20,
    guidanceScale: 7.5,
    height: 768,
    width: 768,
    prompt: 'p',
    negativePrompt: 'n',
    seed: 0,
    vaeSlicing: false,
    vaeTiling: false,
    runs: 1,
  };
  return {
    id: 'sd21-pipeline/txt2img/fp32',
    model: 'sd21-pipeline',
    workload: 'txt2img',
    dtype: 'fp32',
    freeze: null,
    batch: 1,
    resolution: 768,
    status: 'ok',
    samplingSteps: 20,
    timing: { medianMs: stepMs, minMs: stepMs, maxMs: stepMs, madPct: 0, timesMs: Array.from({ length: 20 }, () => stepMs), medianOver: 20 },
    imagesPerS: 1 / ((20 * stepMs + 60_000) / 1000),
    peakRssMb: 9000,
    txt2img: { ...call, textEncodeMs: 400, loopMs: 20 * stepMs, decodeMs: 59_000, totalMs: 20 * stepMs + 60_000, loadMs: 30_000 },
    pytorch:
      pytorch === null
        ? { status: 'skipped', reason: 'no transformers export' }
        : {
            status: 'ok',
            implementation: 'diffusers StableDiffusionPipeline',
            dtype: 'fp32',
            medianMs: pytorch.stepMs,
            ratio: stepMs / pytorch.stepMs,
            peakRssMb: 16_000,
            stepsPeakRssMb: 12_000,
            txt2img: { textEncodeMs: 500, loopMs: 20 * pytorch.stepMs, decodeMs: 70_000, totalMs: 20 * pytorch.stepMs + 71_000, loadMs: 45_000 },
          },
  };
}

test('the SD 2.1 goal compares the median denoising step with diffusers', () => {
  const goal = (r: BenchResult) => evaluateGoals([r]).find((g) => g.name.startsWith('SD 2.1'));
  const met = goal(sd21Row(30_000, { stepMs: 40_000 }))!;
  expect(met).toMatchObject({ name: 'SD 2.1 768² txt2img per step vs diffusers', target: '≤ 1.0×', met: true });
  expect(met.measured).toBeCloseTo(0.75);
  expect(met.note).toBe('median step 30.00 s vs 40.00 s over 20 steps; whole call 660 s vs 871 s');
  expect(goal(sd21Row(45_000, { stepMs: 40_000 }))!.met).toBe(false);
  expect(goal(sd21Row(30_000, null))).toMatchObject({ measured: null, met: null, note: 'no PyTorch number (no transformers export)' });
  expect(evaluateGoals([]).some((g) => g.name.startsWith('SD 2.1'))).toBe(false);
});

test('bench.md and the README summary show the txt2img row per step, and each call phase by phase on both sides', () => {
  const results = [sd21Row(30_000, { stepMs: 40_000 })];
  const file = {
    format: 'difftune-bench/1',
    suite: 'sd21',
    startedAt: '2026-01-01T00:00:00.000Z',
    durationS: 2000,
    machine: {
      cpuModel: 'cpu',
      cores: 2,
      cpuFlags: { avx512f: false, avx512bf16: false, amxBf16: false },
      memoryGb: 24,
      os: 'linux',
      node: 'v20',
      loadAverageStart: [0],
      loadAverageEnd: [0],
    },
    runtime: { torchVersion: '1.13.0', backend: 'cpu', threads: 2, blas: [], parallelInfo: '', ompWaitPolicy: null, openblasCoretype: null },
    gemm: { n: 1536, fp32Gflops: 190, bf16Gflops: null, disturbed: false, otherCpu: 0 },
    noopRoundTripUs: 10,
    pytorch: { available: true },
    results,
    goals: evaluateGoals(results),
  } satisfies BenchFile;
  expect(benchFileSchema.safeParse(file).success).toBe(true);
  const md = formatMarkdown(file);
  expect(md).toMatch(/\| sd21-pipeline \| txt2img \(20 steps, 768²; per step\) \| fp32 \| {2}\| 1 \| 30000\.0 .*\| 0\.75× \(40000 ms, RSS 12000 MB\) \|/);
  expect(md).toContain('| sd21-pipeline | difftune | 30.0 | 0.400 | 600.0 | 30.0 | 59.0 | 660.0 | 9000 |');
  expect(md).toContain('| sd21-pipeline | diffusers | 45.0 | 0.500 | 800.0 | 40.0 | 70.0 | 871.0 | 12000 |');
  expect(md).toContain('| SD 2.1 768² txt2img per step vs diffusers | ≤ 1.0× | 0.75 | yes |');
  expect(formatReadmeSummary(file, 'runs/bench-sd21/bench.json')).toContain('| sd21-pipeline | txt2img (20 steps, 768²; per step) | fp32 |  | 1 | 30000.0 |');
});
