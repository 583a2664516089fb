/** bench.md: the run's facts, one table row per workload, the goals. Pure: a BenchFile in, text out. */
import { ConfigError } from '../errors';
import type { BenchFile, BenchResult } from './schema';

const f = (x: number | null | undefined, digits = 1): string => (x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits));

function pct(x: number | null | undefined): string {
  return x === null || x === undefined ? '—' : `${(100 * x).toFixed(x < 0.1 ? 1 : 0)}%`;
}

function pytorchCell(r: BenchResult): string {
  const p = r.pytorch;
  if (!p) return '—';
  if (p.status !== 'ok') return p.status;
  const rss = p.stepsPeakRssMb ?? p.peakRssMb;
  return `${f(p.ratio, 2)}× (${f(p.medianMs, 0)} ms${r.dtype !== p.dtype ? ` ${p.dtype}` : ''}${rss === undefined || rss === null ? '' : `, RSS ${f(rss, 0)} MB`})`;
}

/** The workload column: sampling and txt2img rows say their steps (and txt2img its size: its median is per denoising step). */
function workloadLabel(r: BenchResult): string {
  if (r.workload === 'sample') return `sample (${r.samplingSteps} steps)`;
  if (r.workload === 'txt2img') return `txt2img (${r.samplingSteps} steps, ${r.txt2img?.height ?? r.resolution}²; per step)`;
  return r.workload;
}

const seconds = (ms: number | undefined): string => (ms === undefined ? '—' : (ms / 1000).toFixed(ms < 1000 ? 3 : ms < 10_000 ? 2 : 1));

/** bench.md's section on txt2img rows: each call's phases and peak RSS, difftune's and diffusers' side by side. */
function txt2imgSection(file: BenchFile): string[] {
  const rows = file.results.filter((r) => r.workload === 'txt2img' && r.status === 'ok' && r.txt2img);
  if (rows.length === 0) return [];
  const lines = [
    '## Text-to-image pipeline calls',
    '',
    '| model | side | load s | text encode s | denoising loop s | median step s | VAE decode s | whole call s | peak RSS MB |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const c = r.txt2img!;
    lines.push(
      `| ${r.model} | difftune | ${seconds(c.loadMs)} | ${seconds(c.textEncodeMs)} | ${seconds(c.loopMs)} | ${seconds(r.timing?.medianMs)} | ${seconds(c.decodeMs)} | ${seconds(c.totalMs)} | ${f(r.peakRssMb, 0)} |`,
    );
    const p = r.pytorch;
    if (p?.status === 'ok' && p.txt2img) {
      const q = p.txt2img;
      lines.push(
        `| ${r.model} | diffusers | ${seconds(q.loadMs)} | ${seconds(q.textEncodeMs)} | ${seconds(q.loopMs)} | ${seconds(p.medianMs)} | ${seconds(q.decodeMs)} | ${seconds(q.totalMs)} | ${f(p.stepsPeakRssMb ?? p.peakRssMb, 0)} |`,
      );
    } else lines.push(`| ${r.model} | diffusers | ${p?.status ?? 'not run'} | | | | | | ${p?.reason ?? ''} |`);
  }
  const c = rows[0]!.txt2img!;
  lines.push(
    '',
    `Each call: ${JSON.stringify(c.prompt)}, negative ${JSON.stringify(c.negativePrompt)}, ${c.scheduler} (${c.predictionType ?? 'prediction type of the folder'}), guidance ${c.guidanceScale}, seed ${c.seed}, batch ${rows[0]!.batch}, VAE slicing ${c.vaeSlicing ? 'on' : 'off'}, tiling ${c.vaeTiling ? 'on' : 'off'}, on both sides; ${c.runs} timed call(s) per side. The first step also holds set_timesteps and the initial noise. Peak RSS: over the calls (weights included), load excluded where the kernel allows the reset.`,
    '',
  );
  return lines;
}

function flags(r: BenchResult): string {
  const out: string[] = [];
  if (r.noise?.disturbed) out.push(`disturbed (other ${f(r.noise.otherCpu, 2)} cores)`);
  else if (r.noise && r.noise.attempts > 1) out.push(`repeated ×${r.noise.attempts}`);
  if (r.pytorch?.status === 'ok' && ((r.pytorch.otherCpu ?? 0) > 0.3 || (r.pytorch.steal ?? 0) > 0.05))
    out.push(`PyTorch disturbed (other ${f(r.pytorch.otherCpu, 2)})`);
  return out.join('; ');
}

export function formatMarkdown(file: BenchFile): string {
  const m = file.machine;
  const lines: string[] = [];
  lines.push(`# difftune benchmarks (${file.suite})`, '');
  lines.push(
    `${file.startedAt}, ${f(file.durationS, 0)} s. ${m.cpuModel}, ${m.cores} cores${m.cpuFlags.avx512bf16 ? ' (AVX-512 bf16)' : ''}, ${m.memoryGb} GB; load average ${m.loadAverageStart.join(' ')} → ${m.loadAverageEnd.join(' ')}.`,
  );
  lines.push(
    `libtorch ${file.runtime.torchVersion} (${file.runtime.backend}), ${file.runtime.threads} thread(s), BLAS ${file.runtime.blas.join(', ') || 'unknown'}${file.runtime.openblasCoretype ? ` (OPENBLAS_CORETYPE ${file.runtime.openblasCoretype}, PyTorch too)` : ''}, OMP_WAIT_POLICY ${file.runtime.ompWaitPolicy ?? 'unset'}${file.runtime.channelsLast ? ', U-Nets channels-last' : ''}. Node ${m.node}.`,
  );
  lines.push(
    `GEMM peak (n = ${file.gemm.n}): ${f(file.gemm.fp32Gflops, 0)} GFLOP/s fp32, ${f(file.gemm.bf16Gflops, 0)} bf16${file.gemm.disturbed ? ' (disturbed: other processes used the CPU, % peak is inflated)' : ''}. Compute-thread round trip of an empty job: ${f(file.noopRoundTripUs, 0)} µs.`,
  );
  lines.push(
    file.pytorch.available
      ? `PyTorch: torch ${file.pytorch.torchVersion}, ${file.pytorch.implementation}, same threads and weights${file.pytorch.blas ? `; its BLAS ${file.pytorch.blas.join(', ')}` : ''}.`
      : `PyTorch: not run — ${file.pytorch.reason}.`,
  );
  lines.push('');
  lines.push(
    '| model | workload | dtype | train | batch | median ms | min–max ms | img/s | GFLOP/s | % peak | RSS MB | data wait | lag p50/p99 ms | JS ms/step | PyTorch | flags |',
  );
  lines.push('|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|');
  for (const r of file.results) {
    if (r.status !== 'ok' || !r.timing) {
      lines.push(`| ${r.model} | ${r.workload} | ${r.dtype} | ${r.freeze ?? ''} | ${r.batch || ''} | ${r.status} | | | | | | | | | | ${r.reason ?? ''} |`);
      continue;
    }
    const t = r.timing;
    const workload = workloadLabel(r);
    lines.push(
      `| ${r.model} | ${workload} | ${r.dtype} | ${r.freeze ?? ''} | ${r.batch} | ${f(t.medianMs)} | ${f(t.minMs)}–${f(t.maxMs)} | ${f(r.imagesPerS)} | ${f(r.gflops, 0)} | ${pct(r.peakFraction)} | ${f(r.peakRssMb, 0)} | ${pct(r.dataWait)} | ${f(r.lagP50Ms, 2)}/${f(r.lagP99Ms, 2)} | ${f(r.jsCpuMsPerStep, 2)} | ${pytorchCell(r)} | ${flags(r)} |`,
    );
  }
  lines.push(
    '',
    "PyTorch: difftune ÷ PyTorch median (lower is better); bf16 rows are compared with PyTorch's fp32 step. % peak: achieved GFLOP/s (FLOPs counted from the layer shapes) ÷ the GEMM peak of the same dtype in this run. JS ms/step: on-CPU time of the JS thread per step (orchestration and N-API marshalling, outside native compute). Disturbed: other processes used more than the threshold of CPU while timing (repeated, least disturbed pass kept).",
    '',
  );
  lines.push(...txt2imgSection(file));
  lines.push('## Goals', '', '| goal | target | measured | met | note |', '|---|---|---:|---|---|');
  for (const g of file.goals) lines.push(`| ${g.name} | ${g.target} | ${f(g.measured, 2)} | ${g.met === null ? '—' : g.met ? 'yes' : 'no'} | ${g.note} |`);
  return `${lines.join('\n')}\n`;
}

/**
 * The README's summary of a run: its workloads with the PyTorch column (for the full suite only the realistic
 * models, bf16 only for the training step), then the goals. Shorter than bench.md (no lag, RSS or JS columns).
 */
export function formatReadmeSummary(file: BenchFile, source: string): string {
  const m = file.machine;
  const lines = [
    `Measured by \`npm run bench -- --suite ${file.suite}\` on ${file.startedAt.slice(0, 10)} (${source}; ${m.cores}-core ${m.cpuModel}, libtorch ${file.runtime.torchVersion}, ${file.runtime.threads} threads, ${f(file.durationS, 0)} s, load average ${m.loadAverageStart[0]} at the start; GEMM peak ${f(file.gemm.fp32Gflops, 0)} GFLOP/s fp32, ${f(file.gemm.bf16Gflops, 0)} bf16${file.pytorch.available ? `; PyTorch ${file.pytorch.torchVersion} + diffusers` : ''}):`,
    '',
    '| model | workload | dtype | train | batch | median ms | img/s | GFLOP/s (% peak) | ÷ PyTorch |',
    '|---|---|---|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of file.results) {
    if (r.status !== 'ok' || !r.timing || r.workload === 'data-loader') continue;
    // The tiny fixtures and bf16 beyond the training step stay in bench.md.
    if (file.suite === 'full' && (r.model.endsWith('-tiny') || (r.dtype === 'bf16' && r.workload !== 'train-step'))) continue;
    const workload = workloadLabel(r);
    const ratio = r.pytorch?.status === 'ok' ? `${f(r.pytorch.ratio, 2)}${r.noise?.disturbed ? ' (disturbed)' : ''}` : r.noise?.disturbed ? 'disturbed' : '—';
    lines.push(
      `| ${r.model} | ${workload} | ${r.dtype} | ${r.freeze ?? ''} | ${r.batch} | ${f(r.timing.medianMs)} | ${f(r.imagesPerS)} | ${f(r.gflops, 0)} (${pct(r.peakFraction)}) | ${ratio} |`,
    );
  }
  const loader = file.results.find((r) => r.workload === 'data-loader' && r.status === 'ok');
  if (loader)
    lines.push(
      '',
      `Data loader alone: ${f(loader.batchesPerS)} batches/s (${f(loader.imagesPerS, 0)} images/s) at batch ${loader.batch}, resolution ${loader.resolution}.`,
    );
  lines.push('', '| goal | target | measured | met |', '|---|---|---:|---|');
  for (const g of file.goals) lines.push(`| ${g.name} | ${g.target} | ${f(g.measured, 2)} | ${g.met === null ? '—' : g.met ? 'yes' : 'no'} |`);
  return lines.join('\n');
}

/** Replaces what stands between the README's bench markers. */
export function replaceReadmeBlock(readme: string, block: string, name = 'bench'): string {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const i = readme.indexOf(begin);
  const j = readme.indexOf(end);
  if (i < 0 || j < i)
    throw new ConfigError(`README.md: expected a ${begin} … ${end} block to replace but found ${i < 0 ? `no ${begin}` : `no ${end} after it`}`);
  return `${readme.slice(0, i + begin.length)}\n${block}\n${readme.slice(j)}`;
}
