/**
 * What the frozen models (AutoencoderKL, CLIPTextModel) share: device/dtype options and moves, the
 * disposed flag, reading a config.json and the refusal of pickle weights.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError, expected, InvalidArgumentError, UnsupportedFormatError } from '../errors';
import { parseLenientJson, type JsonValue } from '../config/json';
import type { ComputeDType } from '../native/dtype';
import { callAsync } from '../native/load';
import { deviceProblem } from '../native/runtime';
import type { NativeModelHandle } from '../native/types';
import { NativeModel } from './native-model';

export interface ModelOptions {
  /** "cpu" (default), "cuda", "cuda:1", ... */
  device?: string;
  /** Parameter dtype (default float32). float16 needs CUDA: libtorch 1.13 has no CPU fp16 convolution. */
  dtype?: ComputeDType;
}

export function checkModelOptions(options: ModelOptions): { device: string; dtype: ComputeDType } {
  if (options === null || typeof options !== 'object') throw expected('an options object', 'options', options);
  const device = options.device ?? 'cpu';
  const dtype = options.dtype ?? 'float32';
  const problem = deviceProblem(device);
  if (problem !== undefined) throw new InvalidArgumentError(`options.device: ${problem}`);
  if (!['float32', 'bfloat16', 'float16'].includes(dtype)) throw expected('"float32", "bfloat16" or "float16"', 'options.dtype', dtype);
  if (dtype === 'float16' && device === 'cpu') {
    throw new InvalidArgumentError('float16 weights cannot compute on the CPU (libtorch has no CPU fp16 kernels for these layers): use dtype "float32" or "bfloat16" on CPU, or device "cuda"');
  }
  return { device, dtype };
}

/** `<dir>/config.json`, parsed (Python-style JSON allowed), with a clear error when absent. */
export function readConfigJson(dir: string, what: string): { file: string; raw: JsonValue } {
  if (typeof dir !== 'string' || dir.length === 0) throw expected('a model folder path', 'dir', dir);
  const file = path.join(dir, 'config.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${dir} has no readable config.json (${(error as Error).message}): expected a ${what} folder`);
  }
  return { file, raw: parseLenientJson(text, file) };
}

/** Refuses a folder that holds only pickle weights, naming the class to convert it with. */
export function refusePickles(dir: string, pickles: readonly string[], howToConvert: string): void {
  const found = pickles.filter((f) => fs.existsSync(path.join(dir, f)));
  if (found.length === 0) return;
  throw new UnsupportedFormatError(
    `${path.join(dir, found[0]!)} is a PyTorch pickle checkpoint, which difftune never loads (pickles can run arbitrary code). ` +
      `Convert it once: ${howToConvert}`,
  );
}

/** A frozen model's handle with the device and dtype its weights live on. */
export abstract class FrozenModel<H extends NativeModelHandle> extends NativeModel<H> {
  #device: string;
  #dtype: ComputeDType;

  protected constructor(native: H, name: string, device: string, dtype: ComputeDType) {
    super(native, name);
    this.#device = device;
    this.#dtype = dtype;
  }

  get device(): string {
    return this.#device;
  }

  get dtype(): ComputeDType {
    return this.#dtype;
  }

  /** Moves the weights to another device and/or dtype. */
  async to(options: ModelOptions): Promise<void> {
    const { device, dtype } = checkModelOptions({ device: this.#device, dtype: this.#dtype, ...options });
    const native = this.live();
    await callAsync(() => native.to(device, dtype));
    this.#device = device;
    this.#dtype = dtype;
  }

  get disposed(): boolean {
    return this.isDisposed();
  }
}
