/**
 * The public Tensor handle over a native libtorch tensor. Validates eagerly (errors name the
 * parameter), disposes deterministically (dispose() / `using`), and throws DisposedError after.
 */
import { DisposedError, expected, InvalidArgumentError } from '../errors';
import { DTYPE_BYTES, DTYPES, isDType, type DType } from './dtype';
import { callAsync, callSync, loadNative } from './load';
import type { NativeTensor, NativeTypedArray } from './types';
import { deviceProblem } from './runtime';

export interface TensorOptions {
  /** Default: inferred from the array type (Float32Array → float32, BigInt64Array → int64, ...). */
  dtype?: DType;
  /** Default "cpu". Other devices copy through the compute thread: use Tensor.fromAsync. */
  device?: string;
}

export interface ReadOptions {
  /** float16/bfloat16 as their raw 16-bit patterns (Uint16Array) instead of Float32Array. */
  raw?: boolean;
}

function inferDType(data: unknown): DType | undefined {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array) return 'uint8';
  return undefined;
}

function checkShape(shape: unknown): number[] {
  if (!Array.isArray(shape) || shape.length > 8 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw expected('an array of at most 8 non-negative integers', 'shape', shape);
  }
  return shape as number[];
}

export class Tensor {
  #native: NativeTensor | undefined;

  /** @internal Wraps a native handle; use Tensor.from / Tensor.fromAsync. */
  constructor(native: NativeTensor) {
    this.#native = native;
  }

  /**
   * A new CPU tensor holding a copy of `data`. `data` is a TypedArray/Buffer whose bytes are the
   * elements (little-endian, row-major); for float16/bfloat16 pass the raw 16-bit patterns.
   */
  static from(data: ArrayBufferView, shape: readonly number[], options: TensorOptions = {}): Tensor {
    if (!ArrayBuffer.isView(data)) throw expected('a TypedArray or Buffer', 'data', data);
    const dims = checkShape(shape);
    const dtype = options.dtype ?? inferDType(data);
    if (dtype === undefined) throw expected('options.dtype (it cannot be inferred from this array type)', 'options.dtype', data);
    if (!isDType(dtype)) throw expected(`one of ${DTYPES.join(', ')}`, 'options.dtype', dtype);
    const device = options.device ?? 'cpu';
    if (device !== 'cpu') throw expected('"cpu" (use Tensor.fromAsync for other devices)', 'options.device', device);
    const numel = dims.reduce((a, b) => a * b, 1);
    if (numel * DTYPE_BYTES[dtype] !== data.byteLength) {
      throw expected(`${numel * DTYPE_BYTES[dtype]} bytes of data for shape [${dims.join(', ')}] and dtype ${dtype}`, 'data', data);
    }
    const native = loadNative();
    return new Tensor(callSync(() => native.NativeTensor.fromBytes(data, dims, dtype)));
  }

  /** Like from(), then moved to options.device on the compute thread. */
  static async fromAsync(data: ArrayBufferView, shape: readonly number[], options: TensorOptions = {}): Promise<Tensor> {
    const cpu = Tensor.from(data, shape, { ...options, device: 'cpu' });
    const device = options.device ?? 'cpu';
    if (device === 'cpu') return cpu;
    try {
      return await cpu.to(device);
    } finally {
      cpu.dispose();
    }
  }

  private live(): NativeTensor {
    if (this.#native === undefined || this.#native.disposed) throw new DisposedError('Tensor');
    return this.#native;
  }

  /** @internal The native handle, for other lib/native wrappers. */
  get native(): NativeTensor {
    return this.live();
  }

  get shape(): number[] {
    return callSync(() => this.live().shape);
  }

  get dtype(): DType {
    return callSync(() => this.live().dtype);
  }

  get device(): string {
    return callSync(() => this.live().device);
  }

  get byteLength(): number {
    return callSync(() => this.live().byteLength);
  }

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  get disposed(): boolean {
    return this.#native === undefined || this.#native.disposed;
  }

  /**
   * A copy of the elements, synchronously: CPU tensors only (keep to small ones on the main thread); a
   * tensor on a GPU is refused, since its copy would block the JS thread: read it with data().
   */
  toArray(options: ReadOptions = {}): NativeTypedArray {
    return callSync(() => this.live().readSync(options.raw ?? false));
  }

  /** A copy of the elements, made on the compute thread (any device, any size). */
  async data(options: ReadOptions = {}): Promise<NativeTypedArray> {
    const native = this.live();
    return callAsync(() => native.read(options.raw ?? false));
  }

  /** A new tensor on `device` and/or with `dtype`; always a copy. */
  async to(device: string, dtype?: DType): Promise<Tensor> {
    const problem = deviceProblem(device);
    if (problem !== undefined) throw new InvalidArgumentError(`device: ${problem}`);
    if (dtype !== undefined && !isDType(dtype)) throw expected(`one of ${DTYPES.join(', ')}`, 'dtype', dtype);
    const native = this.live();
    return new Tensor(await callAsync(() => native.to(device, dtype)));
  }

  /** Releases the native memory now. Idempotent. */
  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return this.disposed ? 'Tensor(disposed)' : `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }
}

/**
 * `value` as a Tensor, or an error naming `param` and what came instead ("an array of length 4"): read
 * through `.native`, an array would reach the addon as undefined.
 */
export function checkTensor(value: unknown, param: string): Tensor {
  if (!(value instanceof Tensor)) throw expected('a Tensor', param, value);
  return value;
}
