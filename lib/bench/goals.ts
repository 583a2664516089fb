/** The performance goals (reported, never asserted), evaluated from one run's results. */
import type { BenchResult, Goal } from './schema';

const TRAIN_RATIO_GOALS: Array<[string, number]> = [
  ['ddpm-cifar10', 1.0],
  ['mnist-small', 0.7],
  ['sd15-unet-small', 0.7],
];

function trainRow(results: readonly BenchResult[], model: string, dtype: 'fp32' | 'bf16'): BenchResult | undefined {
  return results.find((r) => r.model === model && r.workload === 'train-step' && r.dtype === dtype && r.freeze === 'full' && r.status === 'ok');
}

export function evaluateGoals(results: readonly BenchResult[]): Goal[] {
  const goals: Goal[] = [];
  for (const [model, target] of TRAIN_RATIO_GOALS) {
    const r = trainRow(results, model, 'fp32');
    const ratio = r?.pytorch?.ratio ?? null;
    goals.push({
      name: `${model} fp32 training step vs PyTorch`,
      target: `≤ ${target.toFixed(1)}×`,
      measured: ratio,
      met: ratio === null ? null : ratio <= target,
      note:
        ratio === null
          ? r
            ? `no PyTorch number (${r.pytorch?.reason ?? 'not run'})`
            : 'not in this run'
          : `${r!.timing!.medianMs.toFixed(0)} ms vs ${r!.pytorch!.medianMs!.toFixed(0)} ms`,
    });
  }
  for (const [model] of TRAIN_RATIO_GOALS) {
    const r = trainRow(results, model, 'bf16');
    if (!r) continue;
    const ratio = r.pytorch?.ratio ?? null;
    goals.push({
      name: `${model} bf16 autocast training step vs PyTorch fp32`,
      target: '≤ 0.6×',
      measured: ratio,
      met: ratio === null ? null : ratio <= 0.6,
      note:
        ratio === null
          ? `no PyTorch number (${r.pytorch?.reason ?? 'not run'})`
          : `${r.timing!.medianMs.toFixed(0)} ms vs ${r.pytorch!.medianMs!.toFixed(0)} ms`,
    });
  }
  const timed = results.filter((r) => r.status === 'ok' && r.lagP99Ms !== undefined);
  const worstLag = timed.reduce<BenchResult | undefined>((w, r) => (w === undefined || r.lagP99Ms! > w.lagP99Ms! ? r : w), undefined);
  goals.push({
    name: 'event-loop lag p99 while steps run (worst workload)',
    target: '≤ 20 ms',
    measured: worstLag?.lagP99Ms ?? null,
    met: worstLag ? worstLag.lagP99Ms! <= 20 : null,
    note: worstLag ? worstLag.id : 'nothing timed',
  });
  const fed = results.filter((r) => r.status === 'ok' && typeof r.dataWait === 'number');
  const worstWait = fed.reduce<BenchResult | undefined>((w, r) => (w === undefined || r.dataWait! > w.dataWait! ? r : w), undefined);
  goals.push({
    name: 'data wait ÷ training step time (worst workload)',
    target: '≤ 2%',
    measured: worstWait ? worstWait.dataWait! * 100 : null,
    met: worstWait ? worstWait.dataWait! <= 0.02 : null,
    note: worstWait ? `${worstWait.id} (percent)` : 'no training step with a data loader',
  });
  return goals;
}
