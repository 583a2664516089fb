/**
 * The environment contract between a launcher and its workers: torchrun's variables (RANK,
 * WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), so a worker runs the same under
 * `npm run finetune -- --nproc-per-node N`, under torchrun, or under any scheduler that sets them;
 * plus difftune's own DIFFTUNE_DIST_TIMEOUT (seconds) and DIFFTUNE_DIST_BACKEND. Pure TypeScript.
 */
import * as os from 'node:os';
import { z } from 'zod';
import { ConfigError } from '../errors';

export interface DistEnv {
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly localWorldSize: number;
  readonly masterAddr: string;
  readonly masterPort: number;
  /** A rendezvous or collective waiting longer than this fails (a lost peer becomes an error). */
  readonly timeoutMs: number;
  readonly backend: 'auto' | 'gloo' | 'nccl';
}

/** Default DIFFTUNE_DIST_TIMEOUT: long enough for rank 0 to write a checkpoint while the others wait. */
export const DEFAULT_TIMEOUT_SECONDS = 600;

const intString = (min: number, max: number) =>
  z.string().regex(/^\d+$/, 'expected a non-negative integer').transform(Number).pipe(z.number().int().min(min).max(max));

const schema = z.object({
  RANK: intString(0, 1 << 20),
  WORLD_SIZE: intString(1, 1 << 20),
  LOCAL_RANK: intString(0, 1 << 20).optional(),
  LOCAL_WORLD_SIZE: intString(1, 1 << 20).optional(),
  MASTER_ADDR: z.string().min(1),
  MASTER_PORT: intString(1, 65535),
  DIFFTUNE_DIST_TIMEOUT: z
    .string()
    .regex(/^\d+(\.\d+)?$/, 'expected a number of seconds')
    .transform(Number)
    .pipe(z.number().positive())
    .optional(),
  DIFFTUNE_DIST_BACKEND: z.enum(['auto', 'gloo', 'nccl']).optional(),
});

/**
 * The worker's place in the group, or null when this process trains alone (WORLD_SIZE unset or 1).
 * Errors name the variable, what was expected and what was found.
 */
export function readDistEnv(env: NodeJS.ProcessEnv = process.env): DistEnv | null {
  if (env.WORLD_SIZE === undefined || env.WORLD_SIZE === '1') return null;
  const picked = Object.fromEntries(Object.keys(schema.shape).map((k) => [k, env[k] === '' ? undefined : env[k]]));
  const parsed = schema.safeParse(picked);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0]);
    throw new ConfigError(
      `environment variable ${name}: ${issue.message} (found ${JSON.stringify(env[name] ?? null)}); a data-parallel worker needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT as torchrun sets them`,
    );
  }
  const e = parsed.data;
  if (e.RANK >= e.WORLD_SIZE)
    throw new ConfigError(`environment variable RANK: expected a rank in [0, ${e.WORLD_SIZE}) for WORLD_SIZE ${e.WORLD_SIZE} but found ${e.RANK}`);
  const localWorldSize = e.LOCAL_WORLD_SIZE ?? e.WORLD_SIZE;
  const localRank = e.LOCAL_RANK ?? e.RANK % localWorldSize;
  if (localRank >= localWorldSize) throw new ConfigError(`environment variable LOCAL_RANK: expected a rank in [0, ${localWorldSize}) but found ${localRank}`);
  return {
    rank: e.RANK,
    worldSize: e.WORLD_SIZE,
    localRank,
    localWorldSize,
    masterAddr: e.MASTER_ADDR,
    masterPort: e.MASTER_PORT,
    timeoutMs: Math.round((e.DIFFTUNE_DIST_TIMEOUT ?? DEFAULT_TIMEOUT_SECONDS) * 1000),
    backend: e.DIFFTUNE_DIST_BACKEND ?? 'auto',
  };
}

/** Where a launched worker stands: torchrun's variables for it. */
export interface WorkerPlace extends Pick<DistEnv, 'rank' | 'worldSize' | 'localRank' | 'localWorldSize' | 'masterAddr' | 'masterPort'> {
  readonly timeoutSeconds?: number;
  readonly backend?: DistEnv['backend'];
  /** torch threads of each worker; default cores ÷ workers on this node (at least 1). */
  readonly threads?: number;
}

/** The variables a launcher gives one worker (added to its own environment). */
export function workerEnv(place: WorkerPlace, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...base,
    RANK: String(place.rank),
    WORLD_SIZE: String(place.worldSize),
    LOCAL_RANK: String(place.localRank),
    LOCAL_WORLD_SIZE: String(place.localWorldSize),
    MASTER_ADDR: place.masterAddr,
    MASTER_PORT: String(place.masterPort),
    OMP_NUM_THREADS: String(place.threads ?? threadsPerRank(os.availableParallelism(), place.localWorldSize)),
  };
  if (place.timeoutSeconds !== undefined) env.DIFFTUNE_DIST_TIMEOUT = String(place.timeoutSeconds);
  if (place.backend !== undefined) env.DIFFTUNE_DIST_BACKEND = place.backend;
  return env;
}

/** torch threads per worker when nothing sets them: the cores shared out among this node's workers. */
export function threadsPerRank(cores: number, localWorldSize: number): number {
  return Math.max(1, Math.floor(cores / Math.max(1, localWorldSize)));
}
