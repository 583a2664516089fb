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
  // Issue 16: the real SD 1.5 U-Net's LoRA r4 step with gradient checkpointing, against diffusers + peft doing the same.
  const sd = results.find(
    (r) => r.model === 'sd15-unet' && r.workload === 'train-step' && r.dtype === 'fp32' && /^lora-r4\+gc$/.test(r.freeze ?? '') && r.status === 'ok',
  );
  if (sd) {
    const p = sd.pytorch?.status === 'ok' ? sd.pytorch : undefined;
    const why = `no PyTorch number (${sd.pytorch?.reason ?? 'not run'})`;
    goals.push({
      name: 'sd15-unet LoRA r4 + gradient checkpointing training step vs diffusers + peft',
      target: '≤ 1.0×',
      measured: p?.ratio ?? null,
      met: p?.ratio === undefined ? null : p.ratio <= 1.0,
      note: p ? `${sd.timing!.medianMs.toFixed(0)} ms vs ${p.medianMs!.toFixed(0)} ms` : why,
    });
    const theirs = p?.stepsPeakRssMb ?? p?.peakRssMb ?? null;
    const rss = theirs === null || sd.peakRssMb === undefined ? null : sd.peakRssMb / theirs;
    goals.push({
      name: 'sd15-unet LoRA r4 + gradient checkpointing peak RSS vs diffusers + peft',
      target: '≤ 0.8×',
      measured: rss,
      met: rss === null ? null : rss <= 0.8,
      note: rss === null ? why : `${sd.peakRssMb!.toFixed(0)} MB vs ${theirs!.toFixed(0)} MB over the steps`,
    });
  }
  // Issue 16: SD 2.1 768² txt2img (DPM-Solver++ 20 steps, guidance 7.5) against StableDiffusionPipeline, per denoising step.
  const t2i = results.find((r) => r.model === 'sd21-pipeline' && r.workload === 'txt2img' && r.status === 'ok');
  if (t2i) {
    const p = t2i.pytorch?.status === 'ok' ? t2i.pytorch : undefined;
    const size = `${t2i.txt2img?.height ?? t2i.resolution}²`;
    const ratio = p?.ratio ?? null;
    const whole = p?.txt2img && t2i.txt2img ? `; whole call ${(t2i.txt2img.totalMs / 1000).toFixed(0)} s vs ${(p.txt2img.totalMs / 1000).toFixed(0)} s` : '';
    goals.push({
      name: `SD 2.1 ${size} txt2img per step vs diffusers`,
      target: '≤ 1.0×',
      measured: ratio,
      met: ratio === null ? null : ratio <= 1.0,
      note: p
        ? `median step ${(t2i.timing!.medianMs / 1000).toFixed(2)} s vs ${(p.medianMs! / 1000).toFixed(2)} s over ${t2i.samplingSteps ?? '?'} steps${whole}`
        : `no PyTorch number (${t2i.pytorch?.reason ?? 'not run'})`,
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
