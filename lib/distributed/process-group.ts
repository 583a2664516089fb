/**
 * A data-parallel process group (torch.distributed c10d: Gloo on the CPU, NCCL for CUDA where the
 * addon has it). Collectives run on the compute thread in order with the training work; a peer that
 * exits or stops answering turns the next collective into an error naming the rank and the timeout.
 */
import { DisposedError } from '../errors';
import { callAsync, callSync, loadNative } from '../native/load';
import type { NativeProcessGroup, NativeProcessGroupCounters, NativeProcessGroupOptions } from '../native/types';

export type ProcessGroupOptions = NativeProcessGroupOptions;
export type ProcessGroupCounters = NativeProcessGroupCounters;

/** Which backends this build of the addon has. */
export function distCapabilities(): { gloo: boolean; nccl: boolean } {
  return loadNative().distCapabilities();
}

export class ProcessGroup {
  #native: NativeProcessGroup | undefined;

  private constructor(
    native: NativeProcessGroup,
    readonly rank: number,
    readonly worldSize: number,
    readonly backend: string,
  ) {
    this.#native = native;
  }

  /** Joins the group: resolves once every rank has connected to MASTER_ADDR:MASTER_PORT. */
  static async connect(options: ProcessGroupOptions): Promise<ProcessGroup> {
    const native = loadNative();
    const group = callSync(() => new native.NativeProcessGroup({ ...options }));
    try {
      await callAsync(() => group.connect());
      const backend = await callAsync(() => group.backend());
      return new ProcessGroup(group, options.rank, options.worldSize, backend);
    } catch (error) {
      group.dispose();
      throw error;
    }
  }

  /** The handle NativeTrainer.setProcessGroup takes. */
  get native(): NativeProcessGroup {
    if (this.#native === undefined || this.#native.disposed) throw new DisposedError('ProcessGroup');
    return this.#native;
  }

  /** Element-wise sums over the ranks. */
  async sum(values: readonly number[]): Promise<number[]> {
    const native = this.native;
    return callAsync(() => native.allreduceSum([...values]));
  }

  async barrier(): Promise<void> {
    const native = this.native;
    await callAsync(() => native.barrier());
  }

  async counters(): Promise<ProcessGroupCounters> {
    const native = this.native;
    return callAsync(() => native.counters());
  }

  /** Leaves the group (after the work already queued); dispose() follows. */
  async shutdown(): Promise<void> {
    if (this.#native === undefined) return;
    const native = this.#native;
    try {
      await callAsync(() => native.shutdown());
    } finally {
      this.dispose();
    }
  }

  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
