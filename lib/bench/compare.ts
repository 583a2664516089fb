/**
 * --compare a.json b.json: each workload both runs timed, b's median ÷ a's. Two runs on a shared machine
 * differ by noise as well as by code (~9% between idle repeats here), so the table says which rows were
 * disturbed in either run; within one run, the PyTorch column is the comparison to trust.
 */
import * as fs from 'fs';
import { ConfigError } from '../errors';
import { benchFileSchema, type BenchFile } from './schema';

export function readBenchFile(file: string): BenchFile {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ConfigError(`${file}: expected a bench.json written by npm run bench but cannot read it as JSON (${(error as Error).message})`, { cause: error });
  }
  const parsed = benchFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`${file}: not a difftune bench.json: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

export interface ComparisonRow {
  id: string;
  aMs: number;
  bMs: number;
  ratio: number;
  disturbed: boolean;
}

export function compareRuns(a: BenchFile, b: BenchFile): ComparisonRow[] {
  const rows: ComparisonRow[] = [];
  const byId = new Map(b.results.map((r) => [r.id, r]));
  for (const ra of a.results) {
    const rb = byId.get(ra.id);
    if (!ra.timing || !rb?.timing) continue;
    rows.push({
      id: ra.id,
      aMs: ra.timing.medianMs,
      bMs: rb.timing.medianMs,
      ratio: rb.timing.medianMs / ra.timing.medianMs,
      disturbed: Boolean(ra.noise?.disturbed || rb.noise?.disturbed),
    });
  }
  return rows;
}

export function formatComparison(a: BenchFile, b: BenchFile, aName: string, bName: string): string {
  const rows = compareRuns(a, b);
  const lines = [
    `a = ${aName} (${a.startedAt}, load ${a.machine.loadAverageStart.join(' ')}), b = ${bName} (${b.startedAt}, load ${b.machine.loadAverageStart.join(' ')})`,
    a.machine.cpuModel !== b.machine.cpuModel || a.runtime.threads !== b.runtime.threads
      ? `note: different machines or threads (${a.machine.cpuModel}/${a.runtime.threads} vs ${b.machine.cpuModel}/${b.runtime.threads})`
      : '',
    "Runs compared across time carry the machine's noise (repeats differ by ~10% here): trust ratios within one run more.",
    '',
    '| workload | a ms | b ms | b ÷ a | |',
    '|---|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.id} | ${r.aMs.toFixed(1)} | ${r.bMs.toFixed(1)} | ${r.ratio.toFixed(3)} | ${r.disturbed ? 'disturbed' : ''} |`),
  ].filter((l, i) => l !== '' || i > 1);
  if (rows.length === 0) lines.push('(no workload timed in both runs)');
  return `${lines.join('\n')}\n`;
}
