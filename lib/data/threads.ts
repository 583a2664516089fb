/**
 * The thread budget: torch's intra-op threads (the training step, the consumer) plus images decoded at
 * once must not exceed the cores — on 2 cores oversubscription turns a 20 ms step into hundreds.
 * Default: a quarter of the cores (at least one) decode, the rest run torch; on 2 cores that is 1 + 1.
 * libvips runs one thread per image (sharp.concurrency(1)): parallelism comes from decoding several
 * images at once, which keeps the count exact. OMP_NUM_THREADS, when set, fixes torch's share.
 */
import * as os from 'node:os';

export interface ThreadPlan {
  readonly cores: number;
  readonly torchThreads: number;
  readonly decodeConcurrency: number;
  /** Why the plan may oversubscribe or be capped, one line each. */
  readonly warnings: string[];
}

export interface ThreadRequest {
  readonly cores?: number;
  readonly torchThreads?: number;
  readonly decodeConcurrency?: number;
  /** Defaults to process.env. */
  readonly env?: NodeJS.ProcessEnv;
}

function envInt(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  const n = Number(value);
  return n > 0 ? n : undefined;
}

export function planThreads(request: ThreadRequest = {}): ThreadPlan {
  const env = request.env ?? process.env;
  const cores = Math.max(1, request.cores ?? os.availableParallelism());
  const warnings: string[] = [];
  const torchGiven = request.torchThreads ?? envInt(env.OMP_NUM_THREADS);
  let decode = request.decodeConcurrency ?? (torchGiven !== undefined ? Math.max(1, cores - torchGiven) : Math.max(1, Math.floor(cores / 4)));
  const torch = torchGiven ?? Math.max(1, cores - decode);
  // One core cannot give each side its own: 1 + 1 is the least there is, not worth a warning.
  if (torch + decode > Math.max(cores, 2))
    warnings.push(`${torch} torch threads + ${decode} decoders exceed the ${cores} cores: steps will slow down while images decode`);
  const pool = envInt(env.UV_THREADPOOL_SIZE) ?? 4;
  if (decode > pool) {
    warnings.push(`decodeConcurrency ${decode} is capped by the libuv thread pool (${pool}); set UV_THREADPOOL_SIZE before starting node`);
    decode = pool;
  }
  return { cores, torchThreads: torch, decodeConcurrency: decode, warnings };
}
