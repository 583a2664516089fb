/**
 * Typed errors. Every error difftune throws is a DifftuneError with a stable `code`, so callers can
 * branch on the class or the code; messages say what was expected, what was found, and where.
 */

export type ErrorCode =
  | 'ERR_INVALID_ARG'
  | 'ERR_DISPOSED'
  | 'ERR_NATIVE_LOAD'
  | 'ERR_TORCH'
  | 'ERR_OUT_OF_MEMORY'
  | 'ERR_NATIVE'
  | 'ERR_SAFETENSORS'
  | 'ERR_UNSUPPORTED_FORMAT'
  | 'ERR_CONFIG'
  | 'ERR_UNSUPPORTED_DTYPE'
  | 'ERR_DATASET'
  | 'ERR_PROCESS'
  | 'ERR_INTERNAL'
  | 'ERR_TRAINING'
  | 'ERR_FILE_SYSTEM';

export class DifftuneError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A value from the caller has the wrong type, shape, range or dtype. */
export class InvalidArgumentError extends DifftuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_INVALID_ARG', message, options);
  }
}

/** A handle (tensor, model, trainer) was used after dispose(). */
export class DisposedError extends DifftuneError {
  constructor(what: string) {
    super('ERR_DISPOSED', `${what} was used after dispose()`);
  }
}

/** The native addon could not be loaded; the message lists what was tried and how to build it. */
export class NativeLoadError extends DifftuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NATIVE_LOAD', message, options);
  }
}

/** libtorch raised an error (shape mismatch inside an op, unsupported op on a device, ...). */
export class TorchError extends DifftuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_TORCH', message, options);
  }
}

/** An allocation failed on the CPU or the GPU. Smaller batches, bf16 or checkpointing may help. */
export class OutOfMemoryError extends DifftuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_OUT_OF_MEMORY', message, options);
  }
}

/** Any other failure inside the native code. */
export class NativeError extends DifftuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NATIVE', message, options);
  }
}

/** A safetensors file is malformed; the message names the file and, where known, the tensor. */
export class SafetensorsError extends DifftuneError {
  readonly file: string;
  readonly tensor: string | undefined;
  constructor(file: string, message: string, tensor?: string) {
    super('ERR_SAFETENSORS', `${file}${tensor === undefined ? '' : ` (tensor "${tensor}")`}: ${message}`);
    this.file = file;
    this.tensor = tensor;
  }
}

/** A file in a format difftune refuses to read (e.g. pickled .bin/.ckpt). */
export class UnsupportedFormatError extends DifftuneError {
  constructor(message: string) {
    super('ERR_UNSUPPORTED_FORMAT', message);
  }
}

/** A config (model, scheduler, recipe) is invalid; the message names the file and field path. */
export class ConfigError extends DifftuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CONFIG', message, options);
  }
}

/** A dtype that cannot be used here (e.g. U16 made into a libtorch 1.13 tensor). */
export class UnsupportedDtypeError extends DifftuneError {
  constructor(message: string) {
    super('ERR_UNSUPPORTED_DTYPE', message);
  }
}

/**
 * A dataset cannot be used: a bad metadata line, a file name escaping the dataset folder, no images
 * left after filtering, an unreadable image with onBadImage "fail". The message names file and line.
 */
export class DatasetError extends DifftuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_DATASET', message, options);
  }
}

/**
 * A file or folder could not be read or written: permission denied, a read-only or full file system, a
 * symlink loop, a file where a folder belongs, a pseudo file system (/proc, /sys) as an output. `path` is
 * the file or folder the caller named (never an internal temp file); `errno` the system's code (EACCES,
 * ENOSPC, ...), undefined when difftune itself refused the path.
 */
export class FileSystemError extends DifftuneError {
  readonly path: string;
  readonly errno: string | undefined;
  constructor(path: string, errno: string | undefined, message: string, options?: { cause?: unknown }) {
    super('ERR_FILE_SYSTEM', message, options);
    this.path = path;
    this.errno = errno;
  }
}

/**
 * A child process difftune runs (a data-parallel worker, the PyTorch bench script) could not start,
 * failed, or printed something unusable; the message names the process, its exit code and its last lines.
 */
export class ProcessError extends DifftuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_PROCESS', message, options);
  }
}

/**
 * Training itself went wrong, not its inputs: the loss or the gradients stayed non-finite for
 * train.maxSkippedSteps steps in a row (a learning rate too high, no gradient clipping, bad data).
 */
export class TrainingError extends DifftuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_TRAINING', message, options);
  }
}

/** Something that cannot happen did: a bug in difftune (or its platform), not in the caller's input. */
export class InternalError extends DifftuneError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_INTERNAL', `${message} (an internal error: please report it)`, options);
  }
}

/**
 * What a CLI prints for an error that ends it: `<prefix>: <message> (<code>)` — the code on the first
 * line so a multi-line message still leads with it; the stack too with `stack` (the --stack flag).
 */
export function formatCliError(prefix: string, error: unknown, stack = false): string {
  if (!(error instanceof Error)) return `${prefix}: ${String(error)}`;
  const code = error instanceof DifftuneError ? ` (${error.code})` : '';
  const [first = '', ...rest] = error.message.split('\n');
  const text = `${prefix}: ${first}${code}${rest.map((l) => `\n${l}`).join('')}`;
  const frames = stack && error.stack !== undefined ? error.stack.split('\n').filter((l) => /^\s+at /.test(l)) : [];
  return frames.length > 0 ? `${text}\n${frames.join('\n')}` : text;
}

/** Text for an arbitrary value in an error message: `-1 of type number`, `"abc" of type string`. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name} of ${value.byteLength} bytes`;
  switch (typeof value) {
    case 'string':
      return `${JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)} of type string`;
    case 'number':
    case 'bigint':
    case 'boolean':
      return `${String(value)} of type ${typeof value}`;
    case 'function':
      return 'a function';
    default:
      return `an object (${Object.prototype.toString.call(value).slice(8, -1)})`;
  }
}

/** Builds the standard argument error: `Expected <what> for <param> but received <value>`. */
export function expected(what: string, param: string, value: unknown): InvalidArgumentError {
  return new InvalidArgumentError(`Expected ${what} for ${param} but received ${describeValue(value)}`);
}
