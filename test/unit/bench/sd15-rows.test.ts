// The full suite's real SD 1.5 rows on the CPU: a forward at 64² latents and the LoRA r4 step with
// gradient checkpointing, the same step in diffusers + peft (bench_diffusers.py's flags), peak RSS on
// both sides and the goals. Pure: nothing is timed.
import * as path from 'path';
import { evaluateGoals } from '../../../lib/bench/goals';
import { pytorchArgs } from '../../../lib/bench/pytorch';
import { formatMarkdown } from '../../../lib/bench/report';
import { planBench } from '../../../lib/bench/run';
import { benchConfigSchema, type BenchFile, type BenchResult } from '../../../lib/bench/schema';
import { applyConfig, SUITES } from '../../../lib/bench/suites';

const root = path.resolve(__dirname, '..', '..', '..');

test('the full suite times sd15-unet on the CPU: forward and LoRA r4 with gradient checkpointing, against diffusers + peft', () => {
  const entry = SUITES.full.entries.find((e) => e.model === 'sd15-unet')!;
  expect(entry).toMatchObject({ workloads: ['forward', 'train-step'], dtypes: ['fp32'], freezes: ['lora'], gradientCheckpointing: true, pytorch: true });
  // The quick suite stays within its minutes: no SD 1.5 step there.
  expect(SUITES.quick.entries.some((e) => e.model === 'sd15-unet')).toBe(false);
  const plan = planBench({ suite: 'full', root, referenceDir: '/ref', config: { models: ['sd15-unet'], threads: 2 } });
  expect(plan).toContain('  forward fp32');
  expect(plan).toContain('  train-step fp32 lora-r4+gc');
  expect(plan).toContain(
    '  PyTorch: python3 /ref/bench_diffusers.py <export of sd15-unet> --mode train --freeze lora --batch 1 --resolution 64 --threads 2 --steps 2 --warmup 1 --cross-attn-len 77 --lora-rank 4 --gradient-checkpointing',
  );
  expect(plan.some((l) => l.includes('--mode forward --freeze full --batch 1 --resolution 64'))).toBe(true);
});

test('--config gradientCheckpointing turns it on for every training row; bench_diffusers gets the same flags', () => {
  const known = new Set(SUITES.full.entries.map((e) => e.model));
  const s = applyConfig(SUITES.quick, benchConfigSchema.parse({ models: ['mnist-small'], gradientCheckpointing: true }), known);
  expect(s.entries[0]!.gradientCheckpointing).toBe(true);
  const base = { modelDir: 'm', mode: 'train' as const, batch: 1, resolution: 64, threads: 2, steps: 2, warmup: 1, crossAttnLen: 0 };
  expect(pytorchArgs({ ...base, freeze: 'full' })).not.toContain('--gradient-checkpointing');
  expect(pytorchArgs({ ...base, freeze: 'lora', loraRank: 8, gradientCheckpointing: true }).slice(-3)).toEqual([
    '--lora-rank',
    '8',
    '--gradient-checkpointing',
  ]);
});

function sdRow(ms: number, rssMb: number, pytorch: { ms: number; rssMb: number } | null): BenchResult {
  return {
    id: 'sd15-unet/train-step/fp32/lora-r4+gc',
    model: 'sd15-unet',
    workload: 'train-step',
    dtype: 'fp32',
    freeze: 'lora-r4+gc',
    gradientCheckpointing: true,
    batch: 1,
    resolution: 64,
    status: 'ok',
    timing: { medianMs: ms, minMs: ms, maxMs: ms, madPct: 0, timesMs: [ms], medianOver: 1 },
    peakRssMb: rssMb,
    pytorch:
      pytorch === null
        ? { status: 'skipped', reason: 'no torch' }
        : { status: 'ok', dtype: 'fp32', medianMs: pytorch.ms, ratio: ms / pytorch.ms, peakRssMb: pytorch.rssMb + 3000, stepsPeakRssMb: pytorch.rssMb },
  };
}

test("the SD 1.5 LoRA goals: time against diffusers + peft, and peak RSS against their steps' peak", () => {
  const goals = evaluateGoals([sdRow(50_000, 5_000, { ms: 55_000, rssMb: 6_900 })]);
  const time = goals.find((g) => g.name.startsWith('sd15-unet LoRA r4 + gradient checkpointing training step'))!;
  const rss = goals.find((g) => g.name.startsWith('sd15-unet LoRA r4 + gradient checkpointing peak RSS'))!;
  expect(time).toMatchObject({ target: '≤ 1.0×', met: true });
  expect(time.measured).toBeCloseTo(50 / 55);
  expect(rss).toMatchObject({ target: '≤ 0.8×', met: true, note: '5000 MB vs 6900 MB over the steps' });
  expect(rss.measured).toBeCloseTo(5000 / 6900);
  const none = evaluateGoals([sdRow(50_000, 5_000, null)]);
  expect(none.filter((g) => g.name.startsWith('sd15-unet LoRA')).map((g) => g.met)).toEqual([null, null]);
  // Without an SD 1.5 row there is no SD 1.5 goal.
  expect(evaluateGoals([]).some((g) => g.name.startsWith('sd15-unet LoRA'))).toBe(false);
});

test('bench.md shows both peaks: difftune in its column, PyTorch in its cell', () => {
  const results = [sdRow(50_000, 5_000, { ms: 55_000, rssMb: 6_900 })];
  const file = {
    format: 'difftune-bench/1',
    suite: 'full',
    startedAt: '2026-01-01T00:00:00.000Z',
    durationS: 1,
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
  expect(formatMarkdown(file)).toMatch(
    /\| sd15-unet \| train-step \| fp32 \| lora-r4\+gc \| 1 \| 50000\.0 .*\| 5000 \| .*\| 0\.91× \(55000 ms, RSS 6900 MB\) \|/,
  );
});
