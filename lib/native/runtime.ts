/** Facts about the libtorch in use and the compute thread's settings. */
import { DEVICE_FORMS, isDeviceString } from '../config/device';
import { expected } from '../errors';
import { callAsync, callSync, loadNative } from './load';
import type { NativeGemmResult, NativeRuntimeInfo } from './types';

export interface RuntimeInfo {
  torchVersion: string;
  /** "cuda" when this libtorch has CUDA and a GPU is visible, else "cpu". */
  backend: 'cuda' | 'cpu';
  cudaDeviceCount: number;
  /** torch's intra-op threads on the compute thread. */
  threads: number;
  /** libtorch's own account of its parallel backend (OpenMP, MKL, ...). */
  parallelInfo: string;
  buildConfig: string;
  /**
   * Whether libtorch may use oneDNN's kernels now: false when it was built without them, or when bf16
   * work ran under a cap on oneDNN's ISA below AVX-512 (ONEDNN_MAX_CPU_ISA, as used to run an AVX-512
   * machine as an AVX2 one): libtorch 1.13 ignores the cap for bf16, so difftune then switches oneDNN off.
   */
  onednn: boolean;
  napiVersion: number;
  /** glibc malloc's thresholds (README: Memory): difftune's fixed 1 MiB mmap threshold, or the user's own. */
  malloc: NativeRuntimeInfo['malloc'];
  /** The cache of large CPU blocks in front of the OS (README: Memory): hits, misses, what it keeps. */
  cpuCache: NativeRuntimeInfo['cpuCache'];
}

export async function runtimeInfo(): Promise<RuntimeInfo> {
  const native = loadNative();
  const info = callSync(() => native.runtimeInfo());
  const threads = await callAsync(() => native.getThreads());
  return {
    torchVersion: info.torchVersion,
    backend: info.cudaAvailable ? 'cuda' : 'cpu',
    cudaDeviceCount: info.cudaDeviceCount,
    threads,
    parallelInfo: info.parallelInfo,
    buildConfig: info.buildConfig,
    onednn: info.onednn,
    napiVersion: info.napiVersion,
    malloc: info.malloc,
    cpuCache: info.cpuCache,
  };
}

/**
 * Returns the blocks the CPU cache keeps for reuse to the OS (live tensors stay): for the end of a run,
 * so a process that goes on to other work does not hold the run's peak.
 */
export function releaseCpuCache(): void {
  const native = loadNative();
  callSync(() => native.releaseCpuCache());
}

/**
 * Why `device` cannot be used here, or undefined when it can: a malformed string, or a CUDA device that
 * this libtorch cannot reach, with what runtimeInfo() reports. Callers prefix the field that named it
 * ("options.device", "recipe.json: model.device") and throw their own error class.
 */
export function deviceProblem(device: unknown): string | undefined {
  if (!isDeviceString(device)) return `expected ${DEVICE_FORMS} but received ${typeof device === 'string' ? `"${device}"` : typeof device}`;
  if (device === 'cpu') return undefined;
  const info = callSync(() => loadNative().runtimeInfo());
  const index = device === 'cuda' ? 0 : Number(device.slice('cuda:'.length));
  if (info.cudaAvailable && index < info.cudaDeviceCount) return undefined;
  const reported = `runtimeInfo() reports backend "${info.cudaAvailable ? 'cuda' : 'cpu'}" with ${info.cudaDeviceCount} CUDA device(s) (libtorch ${info.torchVersion})`;
  const fix = info.cudaAvailable ? `use cuda:0 to cuda:${info.cudaDeviceCount - 1}` : 'use "cpu", or build difftune against a CUDA libtorch (README: GPUs)';
  return `"${device}" is not available: ${reported}; ${fix}`;
}

/** Sets torch's intra-op threads (they apply to the compute thread, where all torch work runs). */
export async function setThreads(threads: number): Promise<number> {
  if (!Number.isSafeInteger(threads) || threads < 1 || threads > 1024) throw expected('an integer in [1, 1024]', 'threads', threads);
  const native = loadNative();
  return callAsync(() => native.setThreads(threads));
}

export interface GemmOptions {
  n?: number;
  reps?: number;
  device?: string;
  dtype?: 'float32' | 'bfloat16' | 'float16';
}

/** Times an n×n×n matrix multiply on the compute thread: the machine's practical GEMM peak. */
export async function gemmBenchmark(options: GemmOptions = {}): Promise<NativeGemmResult> {
  const native = loadNative();
  const full = { n: options.n ?? 1024, reps: options.reps ?? 5, device: options.device ?? 'cpu', dtype: options.dtype ?? 'float32' };
  return callAsync(() => native.gemmBenchmark(full));
}
