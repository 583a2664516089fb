/**
 * Reading and writing .safetensors files from disk. Reading keeps the file open and reads each tensor's
 * byte range on demand, so opening a multi-gigabyte checkpoint costs only its header.
 */

import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { DisposedError, InvalidArgumentError, SafetensorsError, UnsupportedFormatError, describeValue, expected } from '../errors';
import { writeAll, writeFileAtomically } from '../util/atomic-write';
import { fileSystemError, withFileErrors } from '../util/fs-errors';
import {
  DTYPES,
  type DType,
  HEADER_PREFIX_BYTES,
  METADATA_KEY,
  MAX_HEADER_LENGTH,
  type SafetensorsHeader,
  type TensorInfo,
  buildHeader,
  parseHeader,
  readHeaderLength,
  tensorByteLength,
} from './safetensors-format';
import { type DecodedArrayOf, decodeTensorData } from './tensor-data';

export { DTYPES, DTYPE_NAMES, type DType, type DTypeInfo, type TensorInfo, type SafetensorsHeader, isDType } from './safetensors-format';
export { decodeTensorData, encodeTensorData, type TensorArray, type DecodedArrayOf } from './tensor-data';
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './half';

/** A tensor read from a file and decoded (see decodeTensorData for the array type per dtype). */
export interface DecodedTensor<D extends DType = DType> {
  readonly name: string;
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: DecodedArrayOf[D];
}

const PICKLE_EXTENSIONS = ['.bin', '.ckpt', '.pt', '.pth'];

function pickleRefusal(path: string, why: string): UnsupportedFormatError {
  return new UnsupportedFormatError(
    `${path}: ${why}. difftune never loads pickle checkpoints (.bin, .ckpt, .pt, .pth): unpickling a file can run arbitrary code. ` +
      'Convert it to safetensors once, in Python:\n' +
      '  import torch; from safetensors.torch import save_file\n' +
      `  save_file(torch.load(${JSON.stringify(path)}, map_location="cpu", weights_only=True), "model.safetensors")\n` +
      '(for a Stable Diffusion .ckpt, whose weights sit under "state_dict", save torch.load(...)["state_dict"]), ' +
      'or load the diffusers model and call save_pretrained(..., safe_serialization=True).',
  );
}

/**
 * Whether the first bytes look like a pickle (protocol 2-5 opcode PROTO) or a zip (torch.save's default
 * container). Such a prefix can also be a legitimate safetensors header length (0x80 0x02 ... is
 * N = 640 + ...), so it only counts when the bytes do not read as a plausible safetensors start.
 */
function pickleSignature(prefix: Uint8Array, fileSize: number): string | undefined {
  let kind: string | undefined;
  if (prefix[0] === 0x80 && (prefix[1] ?? 0) >= 2 && (prefix[1] ?? 0) <= 5) kind = `a pickle (protocol ${prefix[1] ?? 0})`;
  else if (prefix[0] === 0x50 && prefix[1] === 0x4b && prefix[2] === 0x03 && prefix[3] === 0x04) kind = 'a zip archive (torch.save format)';
  if (kind === undefined) return undefined;
  if (prefix.byteLength > HEADER_PREFIX_BYTES) {
    const n = new DataView(prefix.buffer, prefix.byteOffset, HEADER_PREFIX_BYTES).getBigUint64(0, true);
    const plausible = n <= BigInt(MAX_HEADER_LENGTH) && BigInt(HEADER_PREFIX_BYTES) + n <= BigInt(fileSize) && prefix[HEADER_PREFIX_BYTES] === 0x7b;
    if (plausible) return undefined;
  }
  return kind;
}

async function readFully(handle: FileHandle, target: Uint8Array, position: number, file: string, what: string): Promise<void> {
  const chunk = 1 << 30;
  let done = 0;
  while (done < target.byteLength) {
    const length = Math.min(chunk, target.byteLength - done);
    const { bytesRead } = await handle.read(target, done, length, position + done);
    if (bytesRead === 0) {
      throw new SafetensorsError(
        file,
        `file ended at byte ${position + done} while reading ${what} (bytes ${position} to ${position + target.byteLength}); was it truncated after it was opened?`,
      );
    }
    done += bytesRead;
  }
}

export class SafetensorsFile implements AsyncDisposable {
  readonly path: string;
  /** File size in bytes when opened. */
  readonly size: number;
  readonly header: SafetensorsHeader;
  private handle: FileHandle | undefined;

  private constructor(path: string, size: number, header: SafetensorsHeader, handle: FileHandle) {
    this.path = path;
    this.size = size;
    this.header = header;
    this.handle = handle;
  }

  /**
   * Opens `path` and reads and validates its header (not its data). Refuses pickle checkpoints with an
   * UnsupportedFormatError and malformed files with a SafetensorsError.
   */
  static async open(path: string): Promise<SafetensorsFile> {
    if (typeof path !== 'string' || path.length === 0) throw expected('a non-empty file path', 'path', path);
    const lower = path.toLowerCase();
    const extension = PICKLE_EXTENSIONS.find((ext) => lower.endsWith(ext));
    if (extension !== undefined) throw pickleRefusal(path, `a ${extension} file is a PyTorch pickle checkpoint`);

    const handle = await withFileErrors(path, 'read', () => fs.open(path, 'r'));
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw new InvalidArgumentError(`${path} is not a regular file (a directory?); expected a .safetensors file`);
      const size = stat.size;
      const prefix = new Uint8Array(Math.min(size, HEADER_PREFIX_BYTES + 1));
      await readFully(handle, prefix, 0, path, 'the header length');
      const signature = pickleSignature(prefix, size);
      if (signature !== undefined) throw pickleRefusal(path, `the file starts like ${signature}, not like a safetensors file`);
      const headerLength = readHeaderLength(path, prefix, size);
      const headerBytes = new Uint8Array(HEADER_PREFIX_BYTES + headerLength);
      await readFully(handle, headerBytes, 0, path, 'the header');
      return new SafetensorsFile(path, size, parseHeader(path, headerBytes, size), handle);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw fileSystemError(error, path, 'read');
    }
  }

  get metadata(): Readonly<Record<string, string>> | undefined {
    return this.header.metadata;
  }

  /** Every tensor by name, in file order. */
  get tensors(): ReadonlyMap<string, TensorInfo> {
    return this.header.tensors;
  }

  /** Tensor names in file order (ascending offset). */
  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  /** The header entry of `name`; an InvalidArgumentError naming the file if there is none. */
  info(name: string): TensorInfo {
    const info = this.header.tensors.get(name);
    if (info === undefined) {
      throw new InvalidArgumentError(
        `${this.path} has no tensor named ${typeof name === 'string' ? JSON.stringify(name) : describeValue(name)} (it has ${this.header.tensors.size} tensors)`,
      );
    }
    return info;
  }

  /** The raw little-endian bytes of one tensor, read from disk into a new Buffer of its own. */
  async readBytes(name: string): Promise<Buffer> {
    const handle = this.openHandle();
    const info = this.info(name);
    // allocUnsafeSlow: an own ArrayBuffer at offset 0, so typed-array views of it are always aligned.
    const out = Buffer.allocUnsafeSlow(info.byteLength);
    await withFileErrors(this.path, 'read', () => readFully(handle, out, info.begin, this.path, `tensor "${name}"`));
    return out;
  }

  /**
   * The raw bytes of one tensor read into the start of `target` (a buffer reused across tensors, so that a
   * large checkpoint streams through one allocation); returns the filled view of `target`. With `range`,
   * only those bytes of the tensor (e.g. one row block of a fused q/k/v) are read.
   */
  async readInto(name: string, target: Uint8Array, range?: { readonly offset: number; readonly length: number }): Promise<Uint8Array> {
    const handle = this.openHandle();
    const info = this.info(name);
    const { offset, length } = range ?? { offset: 0, length: info.byteLength };
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > info.byteLength) {
      throw new InvalidArgumentError(
        `Expected a byte range within tensor "${name}" of ${this.path} (${info.byteLength} bytes) but received offset ${offset}, length ${length}`,
      );
    }
    if (target.byteLength < length) {
      throw new InvalidArgumentError(`Expected a buffer of at least ${length} bytes for tensor "${name}" of ${this.path} but received ${target.byteLength}`);
    }
    const out = target.subarray(0, length);
    await withFileErrors(this.path, 'read', () => readFully(handle, out, info.begin + offset, this.path, `tensor "${name}"`));
    return out;
  }

  /** One tensor decoded into a typed array (see decodeTensorData). */
  async read(name: string): Promise<DecodedTensor> {
    const info = this.info(name);
    const bytes = await this.readBytes(name);
    return { name, dtype: info.dtype, shape: info.shape, data: decodeTensorData(info.dtype, bytes) };
  }

  /** Closes the file; later reads throw DisposedError. Safe to call more than once. */
  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private openHandle(): FileHandle {
    if (this.handle === undefined) throw new DisposedError(`SafetensorsFile ${this.path}`);
    return this.handle;
  }
}

/** What writeSafetensors takes per tensor. `data` holds the raw little-endian bytes (any typed array on a little-endian host). */
export interface TensorToWrite {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: ArrayBufferView;
}

export type TensorsToWrite = Iterable<readonly [string, TensorToWrite]> | Readonly<Record<string, TensorToWrite>>;

interface PlannedTensor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly bytes: Uint8Array;
  readonly nameUtf8: Buffer;
}

function planTensors(path: string, tensors: TensorsToWrite): PlannedTensor[] {
  if (tensors === null || typeof tensors !== 'object') throw expected('an iterable of [name, tensor] pairs or an object of tensors', 'tensors', tensors);
  const pairs: Iterable<readonly [string, TensorToWrite]> =
    Symbol.iterator in tensors ? (tensors as Iterable<readonly [string, TensorToWrite]>) : Object.entries(tensors);
  const planned: PlannedTensor[] = [];
  const seen = new Set<string>();
  for (const pair of pairs) {
    if (!Array.isArray(pair) || pair.length !== 2) throw expected('a [name, tensor] pair', `an entry of tensors for ${path}`, pair);
    const [name, tensor] = pair as readonly [unknown, unknown];
    if (typeof name !== 'string') throw expected('a string tensor name', `a tensor name for ${path}`, name);
    const where = `${path}: tensor "${name}"`;
    if (name === METADATA_KEY) throw new InvalidArgumentError(`${where}: "${METADATA_KEY}" is reserved for metadata and cannot name a tensor`);
    if (seen.has(name)) throw new InvalidArgumentError(`${where} is given twice; tensor names must be unique`);
    seen.add(name);
    if (tensor === null || typeof tensor !== 'object') throw expected('an object { dtype, shape, data }', where, tensor);
    const { dtype, shape, data } = tensor as Partial<Record<keyof TensorToWrite, unknown>>;
    const byteLength = tensorByteLength(dtype, shape, where);
    if (!ArrayBuffer.isView(data)) throw expected('a Uint8Array (or other typed array) of raw little-endian bytes', `${where} data`, data);
    if (data.byteLength !== byteLength) {
      throw new InvalidArgumentError(
        `${where}: shape [${(shape as number[]).join(', ')}] of ${String(dtype)} needs ${byteLength} bytes of data, got ${data.byteLength}`,
      );
    }
    planned.push({
      name,
      dtype: dtype as DType,
      shape: [...(shape as number[])],
      bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      nameUtf8: Buffer.from(name, 'utf8'),
    });
  }
  return planned;
}

function checkMetadata(path: string, metadata: unknown): Readonly<Record<string, string>> | undefined {
  if (metadata === undefined || metadata === null) return undefined;
  if (typeof metadata !== 'object' || Array.isArray(metadata)) throw expected('an object of string values', `metadata for ${path}`, metadata);
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') throw expected('a string', `metadata key "${key}" for ${path}`, value);
  }
  return metadata as Readonly<Record<string, string>>;
}

/**
 * Writes a .safetensors file atomically (temp file in the same folder, fsync, rename, fsync of the
 * folder): on failure an existing file at `path` is untouched and no temp file is left.
 *
 * Every entry is validated before anything is written. Tensors are laid out as the Rust library does:
 * by element size, largest first, then by name (UTF-8 byte order), so every tensor starts at an offset
 * aligned to its element size (the data section starts at a multiple of 8). Data is streamed tensor by
 * tensor, never concatenated.
 */
export async function writeSafetensors(path: string, tensors: TensorsToWrite, metadata?: Readonly<Record<string, string>>): Promise<void> {
  if (typeof path !== 'string' || path.length === 0) throw expected('a non-empty file path', 'path', path);
  const planned = planTensors(path, tensors);
  const checkedMetadata = checkMetadata(path, metadata);
  planned.sort((a, b) => DTYPES[b.dtype].bytes - DTYPES[a.dtype].bytes || Buffer.compare(a.nameUtf8, b.nameUtf8));
  const header = buildHeader(planned, checkedMetadata);
  await writeFileAtomically(path, async (handle) => {
    await writeAll(handle, header);
    for (const tensor of planned) await writeAll(handle, tensor.bytes);
  });
}
