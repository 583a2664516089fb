/**
 * Safetensors files ⇄ native tensors: a state dict is a Map from diffusers key to Tensor.
 * Dtypes libtorch 1.13 lacks (U16/U32/U64, F8_*) stay raw bytes in the TypeScript layer and are
 * refused here, where a tensor must be made of them.
 */
import { fromSafetensorsDtype, toSafetensorsDtype } from '../native/dtype';
import { Tensor } from '../native/tensor';
import type { DType } from '../native/dtype';
import { InvalidArgumentError, UnsupportedDtypeError } from '../errors';
import { METADATA_KEY } from './safetensors-format';
import { writeSafetensorsStreamed } from './safetensors-stream';
import { SafetensorsFile, type DType as SafetensorsDType } from './safetensors';

export type StateDict = Map<string, Tensor>;

export interface LoadStateDictOptions {
  /** Only these tensors (default: all). */
  names?: readonly string[];
  /** Default "cpu". */
  device?: string;
}

/** Reads tensors from a .safetensors file into native tensors (one read per tensor, by offset). */
export async function loadStateDict(path: string, options: LoadStateDictOptions = {}): Promise<StateDict> {
  const file = await SafetensorsFile.open(path);
  const out: StateDict = new Map();
  try {
    const names = options.names ?? file.names();
    for (const name of names) {
      const info = file.info(name);
      const dtype = fromSafetensorsDtype(info.dtype);
      if (dtype === undefined) {
        throw new UnsupportedDtypeError(
          `${path}: tensor "${name}" has dtype ${info.dtype}, which libtorch tensors in difftune cannot hold ` +
            '(U16/U32/U64/F8 are read and written as raw bytes only; see SafetensorsFile.readBytes)',
        );
      }
      const bytes = await file.readBytes(name);
      out.set(name, await Tensor.fromAsync(bytes, info.shape, { dtype, device: options.device ?? 'cpu' }));
    }
    return out;
  } catch (error) {
    for (const t of out.values()) t.dispose();
    throw error;
  } finally {
    await file.close();
  }
}

/** A tensor of a file being streamed, as its header describes it (under the name the caller's rename gave it). */
export interface StreamedTensorInfo {
  readonly file: string;
  /** The name in the file. */
  readonly fileName: string;
  /** The name the model knows it by (fileName unless renamed). */
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly byteLength: number;
}

/** What a streamed load read: how much, from how many files, in how long. */
export interface LoadStats {
  files: number;
  tensors: number;
  bytes: number;
  /** The dtypes the files stored (F32, F16, BF16, ...), each once. */
  fileDtypes: string[];
  seconds: number;
}

export interface StreamStateDictOptions {
  /** Renames one file's tensors (e.g. legacy keys), throwing on a name given twice. */
  rename?: <T>(entries: ReadonlyMap<string, T>, file: string) => Map<string, T>;
  /** Sees every tensor's header entry before any data is read (a strict check belongs here). */
  prepare: (tensors: readonly StreamedTensorInfo[]) => Promise<void>;
  /** Gets each batch of native tensors (the files' dtypes, on the CPU); they are disposed when it resolves. */
  consume: (names: string[], tensors: Tensor[]) => Promise<void>;
  /** Bytes read before handing over a batch (default 64 MiB; a larger tensor is a batch of its own). */
  batchBytes?: number;
}

const STREAM_BATCH_BYTES = 64 * 1024 * 1024;

/**
 * Streams the tensors of `files` (one model's single file or shards) without ever holding them all: each
 * tensor is read into one reused buffer, copied into a native tensor, and handed over in batches of about
 * `batchBytes`, which are disposed before the next batch is read. Peak memory beyond the caller's own is
 * the largest tensor plus one batch, whatever the checkpoint's size.
 */
export async function streamStateDict(files: readonly string[], options: StreamStateDictOptions): Promise<LoadStats> {
  const started = performance.now();
  const opened: SafetensorsFile[] = [];
  try {
    for (const path of files) opened.push(await SafetensorsFile.open(path));
    const infos: Array<StreamedTensorInfo & { handle: SafetensorsFile; order: number; begin: number }> = [];
    for (const [order, file] of opened.entries()) {
      const byName = new Map(file.names().map((n) => [n, n]));
      const renamed = options.rename ? options.rename(byName, file.path) : byName;
      for (const [name, fileName] of renamed) {
        const info = file.info(fileName);
        const dtype = fromSafetensorsDtype(info.dtype);
        if (dtype === undefined) {
          throw new UnsupportedDtypeError(
            `${file.path}: tensor "${fileName}" has dtype ${info.dtype}, which libtorch tensors in difftune cannot hold ` +
              '(U16/U32/U64/F8 are read and written as raw bytes only; see SafetensorsFile.readBytes)',
          );
        }
        infos.push({ file: file.path, fileName, name, dtype, shape: info.shape, byteLength: info.byteLength, handle: file, order, begin: info.begin });
      }
    }
    await options.prepare(infos);
    // File order (ascending offsets) within each file: sequential reads.
    infos.sort((a, b) => a.order - b.order || a.begin - b.begin);
    const scratch = Buffer.allocUnsafeSlow(Math.max(1, ...infos.map((i) => i.byteLength)));
    const limit = options.batchBytes ?? STREAM_BATCH_BYTES;
    let names: string[] = [];
    let tensors: Tensor[] = [];
    let pending = 0;
    const flush = async (): Promise<void> => {
      try {
        if (tensors.length > 0) await options.consume(names, tensors);
      } finally {
        for (const t of tensors) t.dispose();
        names = [];
        tensors = [];
        pending = 0;
      }
    };
    try {
      for (const info of infos) {
        const bytes = await info.handle.readInto(info.fileName, scratch);
        // Tensor.from copies: the scratch buffer is free for the next read at once.
        tensors.push(Tensor.from(bytes, info.shape, { dtype: info.dtype }));
        names.push(info.name);
        pending += info.byteLength;
        if (pending >= limit) await flush();
      }
      await flush();
    } finally {
      for (const t of tensors) t.dispose();
    }
    return {
      files: files.length,
      tensors: infos.length,
      bytes: infos.reduce((a, i) => a + i.byteLength, 0),
      fileDtypes: [...new Set(opened.flatMap((f) => [...f.tensors.values()].map((t) => t.dtype)))],
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    for (const f of opened) await f.close();
  }
}

/**
 * Writes tensors to a .safetensors file atomically, each tensor's bytes read back on the compute thread
 * only when it is written (writeSafetensorsStreamed): a 3.4 GB U-Net never has a second copy in JS.
 */
export async function saveStateDict(path: string, tensors: ReadonlyMap<string, Tensor>, metadata?: Readonly<Record<string, string>>): Promise<void> {
  const entries = [...tensors].map(([name, tensor]) => {
    if (name === METADATA_KEY) throw new InvalidArgumentError(`${path}: tensor "${name}": "${METADATA_KEY}" is reserved for metadata and cannot name a tensor`);
    return { name, dtype: toSafetensorsDtype(tensor.dtype) as SafetensorsDType, shape: tensor.shape, tensor };
  });
  await writeSafetensorsStreamed(path, entries, (entry) => entry.tensor.data({ raw: true }), metadata);
}

export function disposeStateDict(stateDict: StateDict): void {
  for (const t of stateDict.values()) t.dispose();
  stateDict.clear();
}
