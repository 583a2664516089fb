/**
 * What every model class (UNet, AutoencoderKL, CLIPTextModel) does with its native handle, written
 * once: creating it (initialised or loaded, then moved; disposed again if a step fails), the
 * use-after-dispose check, parameter listings, state dicts in and out, and disposal.
 */
import { DisposedError } from '../errors';
import { streamStateDict, type LoadStats, type StateDict, type StreamStateDictOptions } from '../checkpoint/state-dict';
import type { ComputeDType } from '../native/dtype';
import { callAsync } from '../native/load';
import { Tensor } from '../native/tensor';
import type { NativeLoraMethods, NativeModelHandle, NativeNamedTensors, NativeParameterInfo } from '../native/types';
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
 * Streams the weights of `files` (a model's single file or shards) into `handle`: the whole set is
 * checked strictly against the model from the headers first (one error lists every missing, unexpected
 * and wrongly shaped tensor, before any data is read), then the tensors are read and copied into the
 * parameters a batch at a time (fp16/bf16 files converted per tensor), so no second copy of the weights
 * is ever held: a 3.4 GB U-Net loads in about its own size plus one batch. `source` names the weights in errors.
 */
export async function streamWeightsInto(
  handle: NativeModelHandle,
  files: readonly string[],
  source: string,
  rename?: StreamStateDictOptions['rename'],
): Promise<LoadStats> {
  return streamStateDict(files, {
    rename,
    prepare: (infos) =>
      callAsync(() =>
        handle.checkStateDict(
          infos.map((i) => i.name),
          infos.map((i) => [...i.shape]),
          infos.map((i) => i.dtype),
          source,
        ),
      ),
    consume: (names, tensors) => callAsync(() => handle.copyWeights(names, tensors.map((t) => t.native), source)),
  });
}

/** "3.44 GB in 4.1 s (686 tensors, F32)": a load as a log line states it. */
export function describeLoad(stats: LoadStats): string {
  const gb = stats.bytes / 1e9;
  const size = gb >= 1 ? `${gb.toFixed(2)} GB` : `${(stats.bytes / 1e6).toFixed(1)} MB`;
  return `${size} in ${stats.seconds.toFixed(1)} s (${stats.tensors} tensors${stats.files > 1 ? ` in ${stats.files} files` : ''}, ${stats.fileDtypes.join('/')})`;
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
  /** How the weights were read when the model was loaded from files (undefined when built otherwise). */
  loadStats: LoadStats | undefined;

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

/** What addLora takes on every model with native adapters (native/nn/lora: the U-Net, the CLIP text encoder). */
export interface LoraAddOptions {
  targets: readonly string[];
  rank: number;
  alpha?: number;
  dropout?: number;
  init?: 'kaiming' | 'gaussian';
  seed?: number;
}

/** One adapter as JS sees it: layer, A (lora_A / lora_down), B (lora_B / lora_up), alpha. */
export interface LoraEntry {
  module: string;
  A: Tensor;
  B: Tensor;
  alpha: number;
}

/** The adapter calls every model's wrapper shares, written once as the native side's binding/lora_methods is. */
export const loraCalls = {
  async add(native: NativeLoraMethods, options: LoraAddOptions): Promise<void> {
    const o = { targets: [...options.targets], rank: options.rank, alpha: options.alpha ?? options.rank, dropout: options.dropout ?? 0, init: options.init ?? 'kaiming', seed: options.seed ?? 0 };
    await callAsync(() => native.addLora(o));
  },
  async set(native: NativeLoraMethods, entries: readonly LoraEntry[], dropout: number): Promise<void> {
    const list = entries.map((e) => ({ module: e.module, A: e.A.native, B: e.B.native, alpha: e.alpha }));
    await callAsync(() => native.setLora(list, dropout));
  },
  async entries(native: NativeLoraMethods): Promise<LoraEntry[]> {
    return (await callAsync(() => native.loraEntries())).map((e) => ({ module: e.module, A: new Tensor(e.A), B: new Tensor(e.B), alpha: e.alpha }));
  },
};
