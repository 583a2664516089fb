/**
 * What finetune() needs to know about data parallelism, in one object: joined from the environment
 * (lib/distributed/env.ts) when a launcher or torchrun started this process, a no-op for a lone process.
 * Rank 0 alone logs, writes metrics, validates and writes checkpoints; every rank reads its shard of
 * each global batch, all-reduces its gradients (in the native step) and the step's metrics here.
 */
import * as os from 'node:os';
import { readDistEnv, threadsPerRank, type DistEnv } from './env';
import { ProcessGroup } from './process-group';

/**
 * What attach() hands the group to: lib/train/trainer.ts's Trainer satisfies it. Named by its one method
 * here because lib/train/ imports this folder, so this folder may not import lib/train/ back.
 */
export interface GroupMember {
  setProcessGroup(group: ProcessGroup): Promise<void>;
}

export interface StepTotals {
  lossSum: number;
  samples: number;
  /** Some rank was asked to stop (SIGINT/SIGTERM): every rank stops after the same step. */
  stop: boolean;
}

export interface DataParallel {
  readonly rank: number;
  readonly worldSize: number;
  /** Rank 0: the process that logs and writes. */
  readonly isMain: boolean;
  /** The loader's shard option (undefined alone). */
  readonly shard: { rank: number; worldSize: number } | undefined;
  /** torch threads when the recipe sets none: cores ÷ ranks on this node (undefined alone, or when OMP_NUM_THREADS is set). */
  readonly torchThreads: number | undefined;
  readonly group: ProcessGroup | undefined;
  /** Rank 0's trainable weights to every rank, then gradient all-reduce in every step. */
  attach(trainer: GroupMember): Promise<void>;
  /** Sums a step's loss, samples and stop requests over the ranks (one small all-reduce). */
  stepTotals(local: StepTotals): Promise<StepTotals>;
  /**
   * What each rank divides its loss sum by so that averaging the ranks' gradients gives the mean over the
   * step's samples on every rank: the global sample count ÷ world size (one scalar all-reduce); alone,
   * the local count.
   */
  lossDivisor(localSamples: number): Promise<number>;
  /** Whether to stop before the next step: the signal alone, or any rank's request at the last step. */
  shouldStop(signal: AbortSignal | undefined): boolean;
  /** Training is over on every rank: barrier, then leave the group. */
  finish(): Promise<void>;
}

class Alone implements DataParallel {
  readonly rank = 0;
  readonly worldSize = 1;
  readonly isMain = true;
  readonly shard = undefined;
  readonly torchThreads = undefined;
  readonly group = undefined;
  async attach(): Promise<void> {}
  async lossDivisor(localSamples: number): Promise<number> {
    return localSamples;
  }

  async stepTotals(local: StepTotals): Promise<StepTotals> {
    return local;
  }
  shouldStop(signal: AbortSignal | undefined): boolean {
    return signal?.aborted ?? false;
  }
  async finish(): Promise<void> {}
}

class Distributed implements DataParallel {
  readonly rank: number;
  readonly worldSize: number;
  readonly isMain: boolean;
  readonly shard: { rank: number; worldSize: number };
  readonly torchThreads: number | undefined;
  private stopRequested = false;

  constructor(
    env: DistEnv,
    readonly group: ProcessGroup,
    processEnv: NodeJS.ProcessEnv,
  ) {
    this.rank = env.rank;
    this.worldSize = env.worldSize;
    this.isMain = env.rank === 0;
    this.shard = { rank: env.rank, worldSize: env.worldSize };
    this.torchThreads = processEnv.OMP_NUM_THREADS ? undefined : threadsPerRank(os.availableParallelism(), env.localWorldSize);
  }

  async attach(trainer: GroupMember): Promise<void> {
    await trainer.setProcessGroup(this.group);
  }

  async lossDivisor(localSamples: number): Promise<number> {
    const [global] = await this.group.sum([localSamples]);
    return global! / this.worldSize;
  }

  async stepTotals(local: StepTotals): Promise<StepTotals> {
    const [lossSum, samples, stops] = await this.group.sum([local.lossSum, local.samples, local.stop ? 1 : 0]);
    this.stopRequested = stops! > 0;
    return { lossSum: lossSum!, samples: samples!, stop: this.stopRequested };
  }

  shouldStop(): boolean {
    return this.stopRequested;
  }

  async finish(): Promise<void> {
    await this.group.barrier();
    await this.group.shutdown();
  }
}

/** The data-parallel context of this process: a connected group when RANK/WORLD_SIZE/... say so. */
export async function joinDataParallel(options: { device?: string; env?: NodeJS.ProcessEnv } = {}): Promise<DataParallel> {
  const processEnv = options.env ?? process.env;
  const env = readDistEnv(processEnv);
  if (env === null) return new Alone();
  const group = await ProcessGroup.connect({
    rank: env.rank,
    worldSize: env.worldSize,
    masterAddr: env.masterAddr,
    masterPort: env.masterPort,
    timeoutMs: env.timeoutMs,
    backend: env.backend,
    device: options.device ?? 'cpu',
  });
  return new Distributed(env, group, processEnv);
}
