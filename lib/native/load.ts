/**
 * The one place that loads the native addon, lazily, on first use. Pure-TypeScript modules never
 * reach this. Preference: $DIFFTUNE_ADDON if set; otherwise the most recently built of
 * build-cmake/Release/difftune.node (cmake-js, `npm run build`) and build/Release/difftune.node
 * (node-gyp, `npm run build:gyp`), so whichever you built last is the one that runs.
 */
import * as fs from 'fs';
import * as path from 'path';
import { isMainThread } from 'worker_threads';
import { DifftuneError, DisposedError, InvalidArgumentError, NativeError, NativeLoadError, OutOfMemoryError, TorchError } from '../errors';
import { cpuFlags, readCpuinfo } from '../util/cpu';
import type { NativeAddon } from './types';

const ADDON_PATHS = ['build-cmake/Release/difftune.node', 'build/Release/difftune.node'];

let addon: NativeAddon | undefined;

/** The package root: the nearest folder above this file whose package.json is difftune's. */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest)) {
      try {
        if ((JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'difftune') return dir;
      } catch {
        // unreadable package.json: keep walking up
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new NativeLoadError(`cannot find difftune's package.json above ${__dirname}`);
    dir = parent;
  }
}

function candidates(root: string): string[] {
  const fromEnv = process.env.DIFFTUNE_ADDON;
  if (fromEnv) return [path.resolve(fromEnv)];
  const mtime = (p: string): number => {
    try {
      return fs.statSync(p).mtimeMs;
    } catch {
      return 0;
    }
  };
  return ADDON_PATHS.map((rel) => path.join(root, rel)).sort((a, b) => mtime(b) - mtime(a));
}

export function isNativeLoaded(): boolean {
  return addon !== undefined;
}

/** Loads the addon once; throws NativeLoadError listing every path tried and how to build. */
export function loadNative(): NativeAddon {
  if (addon) return addon;
  const root = packageRoot();
  const tried: string[] = [];
  for (const file of candidates(root)) {
    if (!fs.existsSync(file)) {
      tried.push(`${file}: not built`);
      continue;
    }
    try {
      applyOpenmpDefaults();
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      addon = require(file) as NativeAddon;
      parkComputeThreadsAtExit(addon);
      return addon;
    } catch (error) {
      tried.push(`${file}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  throw new NativeLoadError(
    [
      'the difftune native addon could not be loaded. Tried:',
      ...tried.map((t) => `  - ${t}`),
      'To build it, in the difftune folder run one of:',
      '  npm install          (resolves libtorch, installing it with apt on Debian as root, then builds)',
      '  npm run build        (cmake-js → build-cmake/Release/difftune.node)',
      '  npm run build:gyp    (node-gyp → build/Release/difftune.node)',
      'If libtorch cannot be found, set LIBTORCH=/path/to/libtorch or Torch_DIR=/path/to/TorchConfig.cmake-folder,',
      'or on Debian: sudo apt-get install libtorch-dev libopenblas0-openmp. "cannot open shared object file"',
      'means the libtorch the addon was built against has moved: rebuild with npm run build.',
    ].join('\n'),
  );
}

/**
 * OpenMP reads its settings once, when libgomp loads with the addon. Its default wait policy spins
 * idle workers between parallel regions; on a machine with few cores the spinning competes with
 * the serial work in between and with Node's own threads (measured: DDPM-CIFAR10 forward+backward at
 * batch 8 on 2 cores, 2.07 s spinning vs 1.56 s passive). A user's own OMP_WAIT_POLICY wins.
 */
function applyOpenmpDefaults(): void {
  if (process.env.OMP_WAIT_POLICY === undefined) process.env.OMP_WAIT_POLICY = 'PASSIVE';
  applyOpenblasCoretype();
}

/**
 * OpenBLAS (a DYNAMIC_ARCH build, as Debian's) picks its kernels from the CPU model when it loads; a
 * model it does not know (Debian 12's 0.3.21 on a 5th-gen Xeon, model 207, under a hypervisor that
 * names it "Intel Xeon Processor") falls back to Prescott's SSE3 kernels: sgemm at 32 instead of
 * ~150 GFLOP/s per core (measured with npm run bench's GEMM peak, 2 threads: 63 vs 307 GFLOP/s). Where
 * the CPU has the AVX-512 subsets SkylakeX's kernels use, name that core; a user's OPENBLAS_CORETYPE wins.
 */
function applyOpenblasCoretype(): void {
  if (process.env.OPENBLAS_CORETYPE !== undefined || process.platform !== 'linux') return;
  const flags = cpuFlags(readCpuinfo());
  if (['avx512f', 'avx512bw', 'avx512vl', 'avx512dq'].every((f) => flags.has(f))) process.env.OPENBLAS_CORETYPE = 'SkylakeX';
}

/**
 * process.exit() skips the environment's cleanup hooks and goes straight to C's exit(), whose static
 * destructors tear down libtorch's, oneDNN's and OpenMP's pools; a compute thread still inside a job
 * then crashes (SIGSEGV in dnnl_primitive_execute) or hangs. 'exit' is the last moment JS runs on the
 * way there: park every compute thread (let the running job finish, drop the queue). Worker threads
 * are left to their own environment teardown, which already waits for their thread.
 */
function parkComputeThreadsAtExit(native: NativeAddon): void {
  if (isMainThread) process.once('exit', () => native.prepareForExit());
}

interface NativeFailure {
  code?: unknown;
  message?: unknown;
}

/**
 * Turns an error thrown or rejected by the addon into difftune's typed error classes. `operation`
 * (e.g. "UNet forward of sample [1, 4, 64, 64]") is added to an out-of-memory message, which from the
 * allocator says only how much could not be allocated.
 */
export function translateNativeError(error: unknown, operation?: string): unknown {
  // Duck-typed, not instanceof: the addon's errors come from the main V8 context, which differs
  // from the caller's in vm sandboxes such as jest's.
  if (error instanceof DifftuneError || typeof error !== 'object' || error === null) return error;
  const { code, message } = error as NativeFailure;
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a failure without a string message: its own toString is the best text there is
  const text = typeof message === 'string' ? message : String(error);
  switch (code) {
    case 'ERR_INVALID_ARG':
      return new InvalidArgumentError(text, { cause: error });
    case 'ERR_DISPOSED': {
      const what = /^(.*) was used after dispose\(\)$/.exec(text);
      return new DisposedError(what?.[1] ?? 'a handle');
    }
    case 'ERR_TORCH':
      return new TorchError(text, { cause: error });
    case 'ERR_OUT_OF_MEMORY':
      return new OutOfMemoryError(operation === undefined ? text : `${text}, in ${operation}`, { cause: error });
    case 'ERR_NATIVE':
      return new NativeError(text, { cause: error });
    default:
      return error;
  }
}

/** Runs a synchronous native call, translating its errors; `operation` names it in an out-of-memory error. */
export function callSync<T>(fn: () => T, operation?: string): T {
  try {
    return fn();
  } catch (error) {
    throw translateNativeError(error, operation);
  }
}

/**
 * Runs an asynchronous native call; synchronous throws become rejections, errors are translated, and
 * `operation` names the call in an out-of-memory error.
 */
export async function callAsync<T>(fn: () => Promise<T>, operation?: string): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw translateNativeError(error, operation);
  }
}
