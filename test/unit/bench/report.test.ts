import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { benchConfigSchema, benchFileSchema, type BenchFile, type BenchResult } from '../../../lib/bench/schema';
import { evaluateGoals } from '../../../lib/bench/goals';
import { formatMarkdown, formatReadmeSummary, replaceReadmeBlock } from '../../../lib/bench/report';
import { compareRuns, readBenchFile } from '../../../lib/bench/compare';
import { applyConfig, SUITES } from '../../../lib/bench/suites';

function row(model: string, dtype: 'fp32' | 'bf16', ms: number, pytorchMs: number | null, extra: Partial<BenchResult> = {}): BenchResult {
  return {
    id: `${model}/train-step/${dtype}/full`,
    model,
    workload: 'train-step',
    dtype,
    freeze: 'full',
    batch: 8,
    resolution: 32,
    status: 'ok',
    timing: { medianMs: ms, minMs: ms, maxMs: ms, madPct: 0, timesMs: [ms], medianOver: 1 },
    lagP99Ms: 1,
    dataWait: 0.01,
    pytorch: pytorchMs === null ? { status: 'skipped', reason: 'no torch' } : { status: 'ok', dtype: 'fp32', medianMs: pytorchMs, ratio: ms / pytorchMs },
    ...extra,
  };
}

function file(results: BenchResult[]): BenchFile {
  return {
    format: 'difftune-bench/1',
    suite: 'quick',
    startedAt: '2026-01-01T00:00:00.000Z',
    durationS: 1,
    machine: {
      cpuModel: 'cpu',
      cores: 2,
      cpuFlags: { avx512f: true, avx512bf16: true, amxBf16: false },
      memoryGb: 8,
      os: 'Linux',
      node: 'v20',
      loadAverageStart: [0.1],
      loadAverageEnd: [0.2],
    },
    runtime: { torchVersion: '1.13.0', backend: 'cpu', threads: 2, blas: ['openblas'], parallelInfo: '', ompWaitPolicy: null, openblasCoretype: null },
    gemm: { n: 1536, fp32Gflops: 190, bf16Gflops: 100, disturbed: false, otherCpu: 0 },
    noopRoundTripUs: 10,
    pytorch: { available: true },
    results,
    goals: evaluateGoals(results),
  };
}

describe('bench goals, report and comparison', () => {
  it('evaluates the training-step goals against PyTorch, lag and data wait', () => {
    const goals = evaluateGoals([
      row('ddpm-cifar10', 'fp32', 900, 1000),
      row('mnist-small', 'fp32', 800, 1000),
      row('mnist-small', 'bf16', 500, 1000, { dataWait: 0.05, lagP99Ms: 30 }),
    ]);
    const by = new Map(goals.map((g) => [g.name, g]));
    expect(by.get('ddpm-cifar10 fp32 training step vs PyTorch')!.met).toBe(true);
    expect(by.get('mnist-small fp32 training step vs PyTorch')!.met).toBe(false);
    expect(by.get('mnist-small bf16 autocast training step vs PyTorch fp32')!.measured).toBeCloseTo(0.5);
    expect(by.get('sd15-unet-small fp32 training step vs PyTorch')!.met).toBeNull();
    expect(goals.find((g) => g.name.startsWith('event-loop'))!.met).toBe(false);
    expect(goals.find((g) => g.name.startsWith('data wait'))!.measured).toBeCloseTo(5);
  });

  it('writes a markdown row per result with the PyTorch ratio, and skipped rows with their reason', () => {
    const md = formatMarkdown(
      file([row('ddpm-cifar10', 'fp32', 900, 1000), { ...row('sd15-unet', 'fp32', 1, null), status: 'skipped', reason: 'needs a GPU', timing: undefined }]),
    );
    expect(md).toMatch(/\| ddpm-cifar10 \| train-step \| fp32 \| full \| 8 \| 900\.0 .*\| 0\.90× \(1000 ms\)/);
    expect(md).toMatch(/\| sd15-unet .*\| skipped .*needs a GPU \|/);
    expect(md).toContain('## Goals');
  });

  it('rewrites only the README block between the bench markers, with the summary table', () => {
    const summary = formatReadmeSummary(file([row('ddpm-cifar10', 'fp32', 900, 1000)]), 'runs/x/bench.json');
    expect(summary).toMatch(/\| ddpm-cifar10 \| train-step \| fp32 \| full \| 8 \| 900\.0 \| .* \| 0\.90 \|/);
    const readme = 'intro\n<!-- bench:begin -->\nold\n<!-- bench:end -->\nrest\n';
    const out = replaceReadmeBlock(readme, summary);
    expect(out.startsWith('intro\n<!-- bench:begin -->\nMeasured by')).toBe(true);
    expect(out.endsWith('<!-- bench:end -->\nrest\n')).toBe(true);
    expect(out).not.toContain('old');
    expect(() => replaceReadmeBlock('no markers', summary)).toThrow(/no <!-- bench:begin -->/);
  });

  it('round-trips through the schema and compares two runs by workload id', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-cmp-'));
    const a = path.join(dir, 'a.json');
    fs.writeFileSync(a, JSON.stringify(file([row('m', 'fp32', 100, null)])));
    const b = file([row('m', 'fp32', 150, null, { noise: { otherCpu: 1, steal: 0, ownCpu: 2, disturbedSteps: 3, attempts: 2, disturbed: true } })]);
    const rows = compareRuns(readBenchFile(a), benchFileSchema.parse(b));
    expect(rows).toEqual([{ id: 'm/train-step/fp32/full', aMs: 100, bMs: 150, ratio: 1.5, disturbed: true }]);
    fs.writeFileSync(a, JSON.stringify({ format: 'difftune-bench/1', suite: 'quick' }));
    expect(() => readBenchFile(a)).toThrow(/a\.json: not a difftune bench\.json: startedAt/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('validates --config and applies it to a suite', () => {
    expect(benchConfigSchema.safeParse({ steps: 0 }).success).toBe(false);
    expect(benchConfigSchema.safeParse({ stepz: 3 }).success).toBe(false);
    const known = new Set(SUITES.full.entries.map((e) => e.model));
    const s = applyConfig(SUITES.quick, benchConfigSchema.parse({ models: ['mnist-small', 'sd15-unet-small'], workloads: ['train-step'], steps: 2 }), known);
    expect(s.entries.map((e) => e.model)).toEqual(['mnist-small', 'sd15-unet-small']);
    expect(s.entries.every((e) => e.steps === 2 && e.workloads.join() === 'train-step')).toBe(true);
    expect(s.dataLoader).toBeNull();
    expect(() => applyConfig(SUITES.quick, { models: ['nope'] }, known)).toThrow(/models\[0\]: unknown model "nope"/);
  });
});
