/**
 * The timing loop every workload goes through: warm-up, then each step timed alone, with what the
 * machine did meanwhile (other processes' CPU, steal), the event loop's lag, the JS thread's on-CPU
 * time and the peak RSS. A disturbed pass is repeated (up to `retries`) and the least disturbed kept.
 */
import { monitorEventLoopDelay } from 'perf_hooks';
import { disturbance, peakRssMb, resetPeakRss, sampleCpu, threadCpuNs } from './system';

/** One step; returns the milliseconds it waited for data, when it has a data loader. */
// eslint-disable-next-line @typescript-eslint/no-invalid-void-type -- a step without a data loader is any plain `async () => {}`
export type Step = () => Promise<{ dataWaitMs?: number } | void>;

export interface MeasureOptions {
  warmup: number;
  steps: number;
  retries: number;
  /** Cores' worth of other processes' CPU above which an interval is disturbed. */
  otherCpuThreshold: number;
  /** Steal (fraction of a core) above which an interval is disturbed. */
  stealThreshold?: number;
}

export interface Measurement {
  timesMs: number[];
  medianMs: number;
  minMs: number;
  maxMs: number;
  madPct: number;
  medianOver: number;
  noise: { otherCpu: number | null; steal: number | null; ownCpu: number | null; disturbedSteps: number; attempts: number; disturbed: boolean };
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  jsCpuMsPerStep: number | null;
  dataWait: number | null;
  peakRssMb: number;
  peakRssIsolated: boolean;
}

/** The fields of a bench.json result row that come straight from a measurement (all but dataWait). */
export function measuredFields(m: Measurement): Pick<
  Measurement,
  'peakRssMb' | 'peakRssIsolated' | 'lagP50Ms' | 'lagP99Ms' | 'lagMaxMs' | 'jsCpuMsPerStep' | 'noise'
> & {
  timing: Pick<Measurement, 'medianMs' | 'minMs' | 'maxMs' | 'madPct' | 'timesMs' | 'medianOver'>;
} {
  return {
    timing: { medianMs: m.medianMs, minMs: m.minMs, maxMs: m.maxMs, madPct: m.madPct, timesMs: m.timesMs, medianOver: m.medianOver },
    peakRssMb: m.peakRssMb,
    peakRssIsolated: m.peakRssIsolated,
    lagP50Ms: m.lagP50Ms,
    lagP99Ms: m.lagP99Ms,
    lagMaxMs: m.lagMaxMs,
    jsCpuMsPerStep: m.jsCpuMsPerStep,
    noise: m.noise,
  };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** The histogram records each timer interval; the lag is what exceeds the resolution. */
const LAG_RESOLUTION_MS = 10;

/** Steps shorter than this are not judged one by one: /proc/stat counts in 10 ms ticks. */
const MIN_STEP_MS_TO_JUDGE = 50;

interface Pass {
  timesMs: number[];
  clean: boolean[];
  otherCpu: number | null;
  steal: number | null;
  ownCpu: number | null;
  lag: { p50: number; p99: number; max: number };
  jsCpuNs: number | null;
  dataWaitMs: number;
  sawData: boolean;
}

async function timedPass(step: Step, options: MeasureOptions): Promise<Pass> {
  const stealMax = options.stealThreshold ?? 0.05;
  // A 10 ms timer: finer sampling would itself cost the JS thread a wake-up per millisecond.
  const histogram = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
  const timesMs: number[] = [];
  const clean: boolean[] = [];
  let dataWaitMs = 0;
  let sawData = false;
  const first = sampleCpu();
  const ns0 = threadCpuNs();
  histogram.enable();
  let prev = first;
  for (let i = 0; i < options.steps; i++) {
    const t0 = performance.now();
    const r = await step();
    const ms = performance.now() - t0;
    const now = sampleCpu();
    const d = disturbance(prev, now);
    prev = now;
    timesMs.push(ms);
    clean.push(ms < MIN_STEP_MS_TO_JUDGE || d === null || (d.otherCpu <= options.otherCpuThreshold && d.steal <= stealMax));
    if (r && r.dataWaitMs !== undefined) {
      sawData = true;
      dataWaitMs += r.dataWaitMs;
    }
  }
  histogram.disable();
  const ns1 = threadCpuNs();
  const d = disturbance(first, sampleCpu());
  const ms = (x: number): number => (Number.isFinite(x) ? Math.max(0, x / 1e6 - LAG_RESOLUTION_MS) : 0);
  return {
    timesMs,
    clean,
    otherCpu: d?.otherCpu ?? null,
    steal: d?.steal ?? null,
    ownCpu: d?.ownCpu ?? null,
    lag: { p50: ms(histogram.percentile(50)), p99: ms(histogram.percentile(99)), max: ms(histogram.max) },
    jsCpuNs: ns0 !== null && ns1 !== null ? ns1 - ns0 : null,
    dataWaitMs,
    sawData,
  };
}

function isDisturbed(p: Pass, options: MeasureOptions): boolean {
  const dirty = p.clean.filter((c) => !c).length;
  return (p.otherCpu ?? 0) > options.otherCpuThreshold || (p.steal ?? 0) > (options.stealThreshold ?? 0.05) || dirty > p.clean.length / 4;
}

export async function measure(step: Step, options: MeasureOptions): Promise<Measurement> {
  const isolated = resetPeakRss();
  for (let i = 0; i < options.warmup; i++) await step();
  let best: Pass | undefined;
  let attempts = 0;
  for (;;) {
    attempts++;
    const pass = await timedPass(step, options);
    if (best === undefined || (pass.otherCpu ?? 0) < (best.otherCpu ?? 0)) best = pass;
    if (!isDisturbed(pass, options) || attempts > options.retries) break;
  }
  const p = best;
  const cleanTimes = p.timesMs.filter((_, i) => p.clean[i]);
  const over = cleanTimes.length >= Math.max(3, p.timesMs.length / 2) ? cleanTimes : p.timesMs;
  const med = median(over);
  const mad = median(over.map((t) => Math.abs(t - med)));
  const total = p.timesMs.reduce((a, b) => a + b, 0);
  return {
    timesMs: p.timesMs.map((t) => Math.round(t * 1000) / 1000),
    medianMs: med,
    minMs: Math.min(...p.timesMs),
    maxMs: Math.max(...p.timesMs),
    madPct: (100 * mad) / med,
    medianOver: over.length,
    noise: {
      otherCpu: p.otherCpu,
      steal: p.steal,
      ownCpu: p.ownCpu,
      disturbedSteps: p.clean.filter((c) => !c).length,
      attempts,
      disturbed: isDisturbed(p, options),
    },
    lagP50Ms: p.lag.p50,
    lagP99Ms: p.lag.p99,
    lagMaxMs: p.lag.max,
    jsCpuMsPerStep: p.jsCpuNs === null ? null : p.jsCpuNs / 1e6 / p.timesMs.length,
    dataWait: p.sawData ? p.dataWaitMs / total : null,
    peakRssMb: peakRssMb(),
    peakRssIsolated: isolated,
  };
}
