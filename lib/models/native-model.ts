/**
 * What every model class (UNet, AutoencoderKL, CLIPTextModel) does with its native handle, written
 * once: creating it (initialised or loaded, then moved; disposed again if a step fails), the
 * use-after-dispose check, parameter listings, state dicts in and out, and disposal.
 */
import { DisposedError } from '../errors';
import type { StateDict } from '../checkpoint/state-dict';
import type { ComputeDType } from '../native/dtype';
import { callAsync } from '../native/load';
import { Tensor } from '../native/tensor';
import type { NativeModelHandle, NativeNamedTensors, NativeParameterInfo } from '../native/types';
import { checkModelFits, type ModelSize } from './memory-check';

export { checkTensor } from '../native/tensor';

export function toTensorMap(named: NativeNamedTensors): Map<string, Tensor> {
  return new Map(named.names.map((n, i) => [n, new Tensor(named.tensors[i]!)]));
}

/** Hands `weights` to the native model (names and tensors side by side). */
export async function loadWeightsInto(handle: NativeModelHandle, weights: StateDict, source: string): Promise<void> {
  const names = [...weights.keys()];
  await callAsync(() => handle.loadStateDict(names, names.map((n) => weights.get(n)!.native), source));
}

/**
 * A native model from `create()`, prepared by `setup` (initialise or load weights) and moved to
 * `device`/`dtype` unless that is cpu/float32; if any step fails the handle is disposed. A config whose
 * weights cannot fit in memory is refused first (`size`), before anything is allocated.
 */
export async function createNativeModel<H extends NativeModelHandle, C extends object>(
  size: ModelSize<C>,
  create: () => Promise<H>,
  setup: (handle: H) => Promise<void>,
  device: string,
  dtype: ComputeDType,
): Promise<H> {
  checkModelFits(size);
  const handle = await callAsync(create, `creating a ${size.model} from ${size.source}`);
  try {
    await callAsync(() => setup(handle), `initialising or loading the ${size.model}'s weights`);
    if (device !== 'cpu' || dtype !== 'float32') await callAsync(() => handle.to(device, dtype), `moving the ${size.model} to ${device} ${dtype}`);
  } catch (error) {
    handle.dispose();
    throw error;
  }
  return handle;
}

/** The handle-owning part of a model class; `name` is what a DisposedError calls it. */
export abstract class NativeModel<H extends NativeModelHandle> {
  #native: H | undefined;
  readonly #name: string;

  protected constructor(native: H, name: string) {
    this.#native = native;
    this.#name = name;
  }

  /** The live handle, or a DisposedError. */
  protected live(): H {
    if (this.#native === undefined || this.#native.disposed) throw new DisposedError(this.#name);
    return this.#native;
  }

  protected isDisposed(): boolean {
    return this.#native === undefined || this.#native.disposed;
  }

  /** The weights as the native model takes them (a model may rename legacy keys here). */
  protected prepareWeights(weights: StateDict, _source: string): StateDict {
    return weights;
  }

  async parameters(): Promise<NativeParameterInfo[]> {
    const native = this.live();
    return callAsync(() => native.parameters());
  }

  /** Copies of the weights under the reference library's keys. */
  async stateDict(): Promise<StateDict> {
    const native = this.live();
    return toTensorMap(await callAsync(() => native.stateDict()));
  }

  /**
   * Replaces the weights. Strict: every key, right shapes (the VAE renames legacy attention names; the
   * text encoder accepts and ignores text_model.embeddings.position_ids).
   */
  async loadStateDict(weights: StateDict, source = 'state dict'): Promise<void> {
    const native = this.live();
    await loadWeightsInto(native, this.prepareWeights(weights, source), source);
  }

  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
