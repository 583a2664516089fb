/**
 * The slot for distributed training's throughput (1 rank vs 2 ranks). lib/dist will expose a function
 * for it; until then the workload is reported as skipped with this reason. To wire it: import that
 * function here and return its measurement as a BenchResult (workload "dist-throughput").
 */
import type { BenchResult } from './schema';

export const DIST_THROUGHPUT_PENDING = 'lib/dist does not yet expose its 1-rank vs 2-rank throughput function (slot: lib/bench/dist-slot.ts)';

export async function benchDistThroughput(): Promise<BenchResult> {
  return { id: 'dist/dist-throughput/fp32', model: 'dist', workload: 'dist-throughput', dtype: 'fp32', freeze: null, batch: 0, resolution: 0, status: 'skipped', reason: DIST_THROUGHPUT_PENDING };
}
