/**
 * The whole native surface, declared once. Only lib/native/load.ts loads the addon; everything else
 * talks to it through these types (and most code through the wrappers in lib/native/*.ts).
 */

export type NativeDType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';

/** What a tensor reads back as: half types as Float32Array (or Uint16Array raw), int64 as BigInt64Array, bool as Uint8Array. */
export type NativeTypedArray =
  | Float32Array
  | Float64Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: NativeDType;
  /** "cpu", "cuda:0", ... */
  readonly device: string;
  /** numel × element size. */
  readonly byteLength: number;
  readonly disposed: boolean;
  /** Copies a CPU tensor into a new typed array on the calling thread (small tensors). */
  readSync(raw?: boolean): NativeTypedArray;
  /** Copies on the compute thread (any device); the array aliases a private copy, no second copy. */
  read(raw?: boolean): Promise<NativeTypedArray>;
  /** A new tensor on `device` with `dtype` (default: the same), always a copy. */
  to(device: string, dtype?: NativeDType): Promise<NativeTensor>;
  /** Drops the native reference now; idempotent. */
  dispose(): void;
}

export interface NativeTensorStatic {
  /** A new CPU tensor holding a copy of the bytes (little-endian, row-major). */
  fromBytes(data: ArrayBufferView | ArrayBuffer, shape: readonly number[], dtype: NativeDType): NativeTensor;
}

export interface NativeRuntimeInfo {
  torchVersion: string;
  torchMajor: number;
  torchMinor: number;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  parallelInfo: string;
  buildConfig: string;
  napiVersion: number;
}

export interface NativeGemmOptions {
  n: number;
  reps: number;
  device: string;
  dtype: 'float32' | 'bfloat16' | 'float16';
}

export interface NativeGemmResult {
  /** Median seconds of one n×n×n multiply. */
  seconds: number;
  gflops: number;
}

export interface NativeAddon {
  NativeTensor: NativeTensorStatic;
  runtimeInfo(): NativeRuntimeInfo;
  /** Sets torch's intra-op threads on the compute thread; resolves to the count in effect. */
  setThreads(threads: number): Promise<number>;
  getThreads(): Promise<number>;
  gemmBenchmark(options: NativeGemmOptions): Promise<NativeGemmResult>;
  /** Jobs submitted to the compute thread and not yet completed. */
  pendingJobs(): number;
}
