/**
 * Data-parallel throughput for the bench: the demo's base model (models/mnist-ddpm) fine-tuned on MNIST
 * by 1 and 2 worker processes through the launcher (processes, rendezvous, Gloo all-reduce: what a real
 * run pays), per-rank batch fixed, so the global batch grows with the ranks. lib/bench/data-parallel.ts measures;
 * this turns its numbers into bench rows. On the 2-core dev machine 2 ranks share the same cores: the
 * figure is for the record, not a speed-up.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { benchDataParallel } from './data-parallel';
import type { BenchResult } from './schema';
import type { Suite } from './suites';

function row(ranks: number, fields: Partial<BenchResult>): BenchResult {
  return {
    id: `mnist-ddpm/dist-throughput/fp32/ranks-${ranks}`,
    model: `mnist-ddpm (${ranks} rank${ranks === 1 ? '' : 's'})`,
    workload: 'dist-throughput',
    dtype: 'fp32',
    freeze: 'full',
    batch: 0,
    resolution: 28,
    status: 'ok',
    ...fields,
  };
}

export async function benchDistThroughput(suite: Suite, root: string, log: (line: string) => void): Promise<BenchResult[]> {
  const dp = suite.dataParallel;
  if (!dp) return [row(0, { id: 'dist/dist-throughput/fp32', model: 'dist', status: 'skipped', reason: 'not in this suite (or filtered out by the config)' })];
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'difftune-bench-dp-'));
  try {
    const recipeFile = path.join(work, 'recipe.json');
    const recipe = {
      model: { pretrained: path.join(root, 'models', 'mnist-ddpm') },
      data: { source: 'mnist', resolution: 28, channels: 1, split: 'train', limit: 1024 },
      train: { steps: dp.steps + dp.warmup, batchSize: dp.batch, lr: 1e-4, seed: 0 },
      output: path.join(work, 'out'),
    };
    await fs.writeFile(recipeFile, JSON.stringify(recipe, null, 2));
    const results = await benchDataParallel({ recipeFile, ranks: dp.ranks, steps: dp.steps, warmupSteps: dp.warmup, workDir: work, onLog: log });
    return results.map((r) => {
      const ms = r.secondsPerStep * 1000;
      return row(r.ranks, {
        batch: r.globalBatch,
        warmup: dp.warmup,
        // The launcher's runs report mean step time over the timed steps (from metrics.jsonl), not per-step times.
        timing: { medianMs: ms, minMs: ms, maxMs: ms, madPct: 0, timesMs: [ms], medianOver: dp.steps },
        imagesPerS: r.imagesPerSecond,
      });
    });
  } catch (error) {
    return [row(0, { id: 'dist/dist-throughput/fp32', model: 'dist', status: 'failed', reason: error instanceof Error ? error.message : String(error) })];
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
