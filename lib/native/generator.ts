/**
 * A seedable random generator (a libtorch CPU generator): pass it to scheduler steps that draw noise
 * so sampling is reproducible, and save/restore its state to resume exactly. Numbers are drawn on the
 * CPU and copied to the target device, so a seed gives the same noise everywhere.
 */
import { DisposedError, expected } from '../errors';
import { callAsync, callSync, loadNative } from './load';
import { Tensor } from './tensor';
import type { NativeGenerator } from './types';

const MAX_SEED = (1n << 64n) - 1n;

function checkSeed(seed: unknown, param: string): number | bigint {
  if (typeof seed === 'bigint' && seed >= 0n && seed <= MAX_SEED) return seed;
  if (typeof seed === 'number' && Number.isSafeInteger(seed) && seed >= 0) return seed;
  throw expected('a non-negative safe integer or a BigInt below 2^64', param, seed);
}

export class Generator {
  #native: NativeGenerator | undefined;

  constructor(seed: number | bigint) {
    const checked = checkSeed(seed, 'seed');
    const native = loadNative();
    this.#native = callSync(() => new native.NativeGenerator(checked));
  }

  private live(): NativeGenerator {
    if (this.#native === undefined || this.#native.disposed) throw new DisposedError('Generator');
    return this.#native;
  }

  /** @internal The native handle, for other lib wrappers. */
  get native(): NativeGenerator {
    return this.live();
  }

  /** The seed it was created or last reseeded with. */
  get seed(): bigint {
    return callSync(() => this.live().initialSeed);
  }

  get disposed(): boolean {
    return this.#native === undefined || this.#native.disposed;
  }

  /** Reseeds, after the work already submitted to the compute thread. */
  async manualSeed(seed: number | bigint): Promise<void> {
    const checked = checkSeed(seed, 'seed');
    const native = this.live();
    await callAsync(() => native.manualSeed(checked));
  }

  /** The full generator state (bytes), to store with a training checkpoint. */
  async getState(): Promise<Uint8Array> {
    const native = this.live();
    const state = new Tensor(await callAsync(() => native.getState()));
    try {
      return state.toArray() as Uint8Array;
    } finally {
      state.dispose();
    }
  }

  /** Restores a state from getState(); the next numbers are those that followed it. */
  async setState(state: Uint8Array): Promise<void> {
    // Not instanceof: arrays from the addon belong to the main realm, which differs in vm sandboxes (jest).
    if (!ArrayBuffer.isView(state) || Object.prototype.toString.call(state) !== '[object Uint8Array]')
      throw expected('a Uint8Array from Generator.getState()', 'state', state);
    const native = this.live();
    using t = Tensor.from(state, [state.length], { dtype: 'uint8' });
    await callAsync(() => native.setState(t.native));
  }

  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
