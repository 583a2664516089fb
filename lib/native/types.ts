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

export interface NativeParameterInfo {
  name: string;
  shape: number[];
  dtype: NativeDType;
  requiresGrad: boolean;
}

export interface NativeNamedTensors {
  names: string[];
  tensors: NativeTensor[];
}

export interface NativeUNetInputs {
  sample: NativeTensor;
  timestep: NativeTensor;
  encoderHiddenStates?: NativeTensor;
  classLabels?: NativeTensor;
}

export interface NativeBackwardResult {
  output: NativeTensor;
  loss: NativeTensor;
  gradSample: NativeTensor;
  gradEncoderHiddenStates?: NativeTensor;
  gradParams: NativeNamedTensors;
}

/** A U-Net (UNet2DModel or UNet2DConditionModel) living on the compute thread. */
export interface NativeUNet {
  readonly disposed: boolean;
  parameters(): Promise<NativeParameterInfo[]>;
  /** Strict: one error lists every missing, unexpected and wrongly shaped weight. */
  loadStateDict(names: string[], tensors: NativeTensor[], source: string): Promise<void>;
  stateDict(): Promise<NativeNamedTensors>;
  to(device: string, dtype: NativeDType): Promise<void>;
  initialize(seed: number): Promise<void>;
  setTraining(training: boolean): Promise<void>;
  forward(inputs: NativeUNetInputs): Promise<NativeTensor>;
  /** loss = mean((unet(inputs) − target)²), backward; gradients of `gradNames` (all if omitted). */
  forwardBackwardMse(inputs: NativeUNetInputs, target: NativeTensor, gradNames?: string[]): Promise<NativeBackwardResult>;
  dispose(): void;
}

export interface NativeUNetStatic {
  /** The flat config of lib/config/unet.ts (NativeUNetConfig). */
  create(config: object): Promise<NativeUNet>;
}

export interface NativeAddon {
  NativeTensor: NativeTensorStatic;
  NativeUNet: NativeUNetStatic;
  runtimeInfo(): NativeRuntimeInfo;
  /** Sets torch's intra-op threads on the compute thread; resolves to the count in effect. */
  setThreads(threads: number): Promise<number>;
  getThreads(): Promise<number>;
  gemmBenchmark(options: NativeGemmOptions): Promise<NativeGemmResult>;
  /** Jobs submitted to the compute thread and not yet completed. */
  pendingJobs(): number;
}
