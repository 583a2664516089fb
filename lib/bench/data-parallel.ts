/**
 * Data-parallel throughput: the same recipe trained by 1, 2, … worker processes through the launcher
 * (so each run pays what a real one pays: processes, rendezvous, all-reduce), timed from metrics.jsonl
 * after a few warm-up steps. For `npm run bench`; `train.batchSize` stays per rank, so the global batch
 * grows with the ranks and images/s compares the configurations' throughput.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { parseLenientJson } from '../config/json';
import { InvalidArgumentError, ProcessError } from '../errors';
import { launchWorkers } from '../distributed/launch';

export interface DataParallelBenchOptions {
  /** A recipe file (relative paths in it resolve against its folder, as for npm run finetune). */
  recipeFile: string;
  /** World sizes to measure, one node each (default [1, 2]). */
  ranks?: readonly number[];
  /** Timed optimizer steps per configuration (default 10), after `warmupSteps` (default 2). */
  steps?: number;
  warmupSteps?: number;
  /** Extra `--set key=value` overrides for every run. */
  sets?: readonly string[];
  /** Where the runs write (default: a temporary folder, removed afterwards). */
  workDir?: string;
  timeoutSeconds?: number;
  /** Informational lines (what runs now). */
  onLog?: (line: string) => void;
}

export interface DataParallelBenchResult {
  ranks: number;
  /** Samples per optimizer step over all ranks: batchSize × gradientAccumulation × ranks. */
  globalBatch: number;
  secondsPerStep: number;
  imagesPerSecond: number;
  /** Launch to exit, start-up included. */
  wallSeconds: number;
}

const sink = () => new Writable({ write: (_chunk, _enc, done) => done() });

/** Trains the recipe once per world size and reports steady-state throughput. */
export async function benchDataParallel(options: DataParallelBenchOptions): Promise<DataParallelBenchResult[]> {
  const ranksList = options.ranks ?? [1, 2];
  const steps = options.steps ?? 10;
  const warmup = options.warmupSteps ?? 2;
  if (!Number.isInteger(steps) || steps < 1) throw new InvalidArgumentError(`options.steps: expected a positive integer but received ${steps}`);
  const raw = parseLenientJson(await fs.readFile(options.recipeFile, 'utf8'), options.recipeFile) as {
    train?: { batchSize?: number; gradientAccumulation?: number };
  };
  const perRank = (raw.train?.batchSize ?? 1) * (raw.train?.gradientAccumulation ?? 1);
  const workDir = options.workDir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'difftune-dp-bench-')));
  const results: DataParallelBenchResult[] = [];
  try {
    for (const ranks of ranksList) {
      const output = path.join(workDir, `ranks-${ranks}`);
      await fs.rm(output, { recursive: true, force: true });
      const args = [
        '--recipe',
        options.recipeFile,
        '--set',
        `output=${output}`,
        '--set',
        `train.steps=${warmup + steps}`,
        '--set',
        'validation.every=0',
        '--set',
        'checkpoint.every=0',
      ];
      for (const s of options.sets ?? []) args.push('--set', s);
      options.onLog?.(`data-parallel bench: ${ranks} rank(s), ${warmup} + ${steps} steps`);
      const errors: string[] = [];
      const err = new Writable({
        write: (chunk, _enc, done) => {
          errors.push(String(chunk));
          done();
        },
      });
      const started = performance.now();
      const code = await launchWorkers(
        { nprocPerNode: ranks, nnodes: 1, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: 0, timeoutSeconds: options.timeoutSeconds },
        args,
        sink(),
        err,
      );
      const wallSeconds = (performance.now() - started) / 1000;
      if (code !== 0)
        throw new ProcessError(`data-parallel bench with ${ranks} rank(s) failed (exit ${code}): ${errors.join('').trim().split('\n').slice(-3).join(' | ')}`);
      const lines = (await fs.readFile(path.join(output, 'metrics.jsonl'), 'utf8')).trim().split('\n');
      const times = lines.map((l) => JSON.parse(l) as { time: string; step: number; loss?: number }).filter((m) => m.loss !== undefined);
      const first = times.find((m) => m.step === warmup);
      const last = times.find((m) => m.step === warmup + steps);
      if (!first || !last)
        throw new ProcessError(
          `data-parallel bench with ${ranks} rank(s): expected steps ${warmup} and ${warmup + steps} in ${path.join(output, 'metrics.jsonl')} but step ${[!first && warmup, !last && warmup + steps].filter((s) => s !== false).join(' and ')} is missing`,
        );
      const secondsPerStep = (Date.parse(last.time) - Date.parse(first.time)) / 1000 / steps;
      const globalBatch = perRank * ranks;
      results.push({ ranks, globalBatch, secondsPerStep, imagesPerSecond: globalBatch / secondsPerStep, wallSeconds });
    }
  } finally {
    if (options.workDir === undefined) await fs.rm(workDir, { recursive: true, force: true });
  }
  return results;
}
