/**
 * The safetensors container format, as pure functions over bytes: the dtype table, header parsing with
 * the validation the Rust `safetensors` library applies, and header building.
 *
 * Layout: an 8-byte little-endian u64 N, N bytes of UTF-8 JSON, then the data section, which starts
 * at byte 8 + N and must be tiled exactly by the tensors' byte ranges.
 */

import { z } from 'zod';
import { InvalidArgumentError, SafetensorsError, describeValue } from '../errors';
import { type JsonValue, JsonSyntaxError, parseJson } from '../util/json-parser';

export type DTypeKind = 'float' | 'int' | 'bool';

export interface DTypeInfo {
  /** Bytes per element. */
  readonly bytes: number;
  readonly kind: DTypeKind;
}

export const DTYPES = {
  BOOL: { bytes: 1, kind: 'bool' },
  U8: { bytes: 1, kind: 'int' },
  I8: { bytes: 1, kind: 'int' },
  I16: { bytes: 2, kind: 'int' },
  U16: { bytes: 2, kind: 'int' },
  F16: { bytes: 2, kind: 'float' },
  BF16: { bytes: 2, kind: 'float' },
  I32: { bytes: 4, kind: 'int' },
  U32: { bytes: 4, kind: 'int' },
  F32: { bytes: 4, kind: 'float' },
  F64: { bytes: 8, kind: 'float' },
  I64: { bytes: 8, kind: 'int' },
  U64: { bytes: 8, kind: 'int' },
  F8_E4M3: { bytes: 1, kind: 'float' },
  F8_E5M2: { bytes: 1, kind: 'float' },
  F8_E8M0: { bytes: 1, kind: 'float' },
} as const satisfies Record<string, DTypeInfo>;

export type DType = keyof typeof DTYPES;

export const DTYPE_NAMES: readonly DType[] = Object.freeze(Object.keys(DTYPES) as DType[]);

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.hasOwn(DTYPES, value);
}

export function dtypeInfo(dtype: DType): DTypeInfo {
  return DTYPES[dtype];
}

/** Bytes of the little-endian u64 header length that starts every file. */
export const HEADER_PREFIX_BYTES = 8;

/** The Rust library's limit on N; a larger value means the file is not safetensors (or is hostile). */
export const MAX_HEADER_LENGTH = 100_000_000;

/** The reserved header key holding the string-to-string metadata. */
export const METADATA_KEY = '__metadata__';

export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Product of the shape (1 for a 0-d tensor). */
  readonly numel: number;
  /** [begin, end) relative to the start of the data section, exactly as the header stores them. */
  readonly dataOffsets: readonly [number, number];
  /** Absolute offset in the file of the tensor's first byte: dataStart + dataOffsets[0]. */
  readonly begin: number;
  /** Absolute offset in the file just past the tensor's last byte: dataStart + dataOffsets[1]. */
  readonly end: number;
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  /** N, the JSON length in bytes (including any trailing space padding). */
  readonly headerLength: number;
  /** 8 + N: where the data section starts in the file. */
  readonly dataStart: number;
  /** Bytes of the data section: file size − dataStart. */
  readonly dataLength: number;
  readonly metadata: Readonly<Record<string, string>> | undefined;
  /** Every tensor, in file order (ascending data offset). */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
}

const dtypeList = DTYPE_NAMES.join(', ');

/** A value as shown in an error message: JSON for strings, arrays and objects, describeValue otherwise. */
function found(value: unknown): string {
  if (typeof value === 'string') {
    const json = JSON.stringify(value);
    return json.length > 80 ? `${json.slice(0, 76)}..."` : json;
  }
  if (value !== null && typeof value === 'object' && !ArrayBuffer.isView(value)) {
    // JSON.stringify gives undefined for an object whose toJSON returns undefined.
    const json = (JSON.stringify(value) as string | undefined) ?? Object.prototype.toString.call(value);
    return json.length > 80 ? `${json.slice(0, 77)}...` : json;
  }
  return describeValue(value);
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * Reads and checks N from the first 8 bytes. `prefix` needs at least 8 bytes unless the file is
 * shorter than that.
 */
export function readHeaderLength(file: string, prefix: Uint8Array, fileSize: number): number {
  if (fileSize < HEADER_PREFIX_BYTES) {
    throw new SafetensorsError(
      file,
      `file is ${fileSize} bytes, shorter than the ${HEADER_PREFIX_BYTES}-byte header length every safetensors file starts with`,
    );
  }
  if (prefix.byteLength < HEADER_PREFIX_BYTES) {
    throw new InvalidArgumentError(`readHeaderLength needs the first ${HEADER_PREFIX_BYTES} bytes of ${file}, got ${prefix.byteLength}`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, HEADER_PREFIX_BYTES).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_LENGTH)) {
    throw new SafetensorsError(
      file,
      `header length is ${n} bytes, over the limit of ${MAX_HEADER_LENGTH} bytes; the first 8 bytes are not a plausible safetensors header length`,
    );
  }
  const headerLength = Number(n);
  if (HEADER_PREFIX_BYTES + headerLength > fileSize) {
    throw new SafetensorsError(
      file,
      `header length ${headerLength} runs past the end of the file: the header needs bytes ${HEADER_PREFIX_BYTES} to ${HEADER_PREFIX_BYTES + headerLength} but the file is ${fileSize} bytes`,
    );
  }
  return headerLength;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Parses and validates a header. `headerBytes` starts at byte 0 of the file and holds at least the
 * 8 + N header bytes (more is ignored, so a whole file works too); `fileSize` is the file's full size.
 */
export function parseHeader(file: string, headerBytes: Uint8Array, fileSize: number): SafetensorsHeader {
  const headerLength = readHeaderLength(file, headerBytes, fileSize);
  const dataStart = HEADER_PREFIX_BYTES + headerLength;
  if (headerBytes.byteLength < dataStart) {
    throw new InvalidArgumentError(`parseHeader needs the first ${dataStart} bytes of ${file}, got ${headerBytes.byteLength}`);
  }
  const dataLength = fileSize - dataStart;

  let text: string;
  try {
    text = utf8.decode(headerBytes.subarray(HEADER_PREFIX_BYTES, dataStart));
  } catch {
    throw new SafetensorsError(file, `header (bytes ${HEADER_PREFIX_BYTES} to ${dataStart}) is not valid UTF-8${invalidUtf8At(headerBytes, dataStart)}`);
  }

  const root = parseHeaderJson(file, text);
  if (root === null || typeof root !== 'object' || Array.isArray(root)) {
    throw new SafetensorsError(file, `header must be a JSON object mapping tensor names to {"dtype", "shape", "data_offsets"}, found ${found(root)}`);
  }

  let metadata: Readonly<Record<string, string>> | undefined;
  const entries: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(root)) {
    if (name === METADATA_KEY) metadata = checkMetadata(file, entry);
    else entries.push(checkEntry(file, name, entry, dataStart, dataLength));
  }
  checkTiling(file, entries, dataStart, dataLength, fileSize);
  return Object.freeze({
    headerLength,
    dataStart,
    dataLength,
    metadata,
    tensors: new Map(entries.map((info) => [info.name, info])),
  });
}

/** ` at header byte K` for the first byte that breaks UTF-8, found with a second, non-fatal decode. */
function invalidUtf8At(headerBytes: Uint8Array, dataStart: number): string {
  const lossy = new TextDecoder('utf-8', { ignoreBOM: true }).decode(headerBytes.subarray(HEADER_PREFIX_BYTES, dataStart));
  const index = lossy.indexOf('\uFFFD');
  if (index < 0) return '';
  const byteOffset = Buffer.byteLength(lossy.slice(0, index), 'utf8');
  return ` at file byte ${HEADER_PREFIX_BYTES + byteOffset}`;
}

function parseHeaderJson(file: string, text: string): JsonValue {
  try {
    return parseJson(text, {
      maxDepth: 64,
      onDuplicateKey: (key, path) => {
        if (path.length === 0) {
          if (key === METADATA_KEY) throw new SafetensorsError(file, `the header has the "${METADATA_KEY}" key more than once`);
          throw new SafetensorsError(
            file,
            'duplicate tensor name: the header defines it more than once (JSON.parse would silently keep only the last definition)',
            key,
          );
        }
        const where = path[0] === METADATA_KEY ? `"${METADATA_KEY}"` : `the entry of tensor "${path[0] ?? ''}"`;
        throw new SafetensorsError(file, `duplicate key "${key}" in ${where}; every key must appear once`);
      },
    });
  } catch (error) {
    if (error instanceof JsonSyntaxError) throw new SafetensorsError(file, `header is not valid JSON: ${error.message}`);
    throw error;
  }
}

const metadataSchema = z.record(z.string(), z.string());

function checkMetadata(file: string, value: JsonValue): Readonly<Record<string, string>> | undefined {
  // The Rust library reads "__metadata__" as Option<HashMap<String, String>>, so null means "none".
  if (value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError(file, `"${METADATA_KEY}" must be an object of string values, found ${found(value)}`);
  }
  const result = metadataSchema.safeParse(value);
  if (!result.success) {
    const key = String(result.error.issues[0]?.path[0] ?? '');
    throw new SafetensorsError(file, `"${METADATA_KEY}" must be an object of string values, but key "${key}" holds ${found(value[key])}`);
  }
  // Copy key by key: zod's result is a plain object, where a "__proto__" key would be lost.
  const out: Record<string, string> = {};
  for (const [key, item] of Object.entries(value)) {
    Object.defineProperty(out, key, { value: item, enumerable: true });
  }
  return Object.freeze(out);
}

const nonNegativeInt = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const shapeSchema = z.array(nonNegativeInt);
const offsetsSchema = z.tuple([nonNegativeInt, nonNegativeInt]);

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return '';
  return issue.path.length > 0 ? ` (element ${issue.path.join('.')}: ${issue.message})` : ` (${issue.message})`;
}

function checkEntry(file: string, name: string, entry: JsonValue, dataStart: number, dataLength: number): TensorInfo {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
    throw new SafetensorsError(file, `entry must be an object {"dtype", "shape", "data_offsets"}, found ${found(entry)}`, name);
  }
  for (const key of ['dtype', 'shape', 'data_offsets']) {
    if (!Object.hasOwn(entry, key)) throw new SafetensorsError(file, `entry has no "${key}"; expected {"dtype", "shape", "data_offsets"}`, name);
  }
  const { dtype, shape, data_offsets: offsets } = entry;
  if (!isDType(dtype)) {
    throw new SafetensorsError(file, `unknown dtype ${found(dtype)}; expected one of ${dtypeList}`, name);
  }
  const shapeResult = shapeSchema.safeParse(shape);
  if (!shapeResult.success) {
    throw new SafetensorsError(file, `"shape" must be an array of non-negative integers, found ${found(shape)}${firstIssue(shapeResult.error)}`, name);
  }
  const offsetsResult = offsetsSchema.safeParse(offsets);
  if (!offsetsResult.success) {
    throw new SafetensorsError(
      file,
      `"data_offsets" must be [begin, end], two non-negative integers, found ${found(offsets)}${firstIssue(offsetsResult.error)}`,
      name,
    );
  }
  const dims = shapeResult.data;
  const [begin, end] = offsetsResult.data;
  if (begin > end) {
    throw new SafetensorsError(file, `"data_offsets" [${begin}, ${end}] has begin > end; expected begin <= end`, name);
  }
  const size = DTYPES[dtype].bytes;
  // BigInt: a product of safe integers can exceed 2^53 before a 0 dimension brings it back to 0.
  const numel = dims.reduce((acc, dim) => acc * BigInt(dim), 1n);
  const expectedBytes = numel * BigInt(size);
  if (expectedBytes !== BigInt(end - begin)) {
    throw new SafetensorsError(
      file,
      `shape ${formatShape(dims)} of ${dtype} needs ${numel} elements × ${size} bytes = ${expectedBytes} bytes, but data_offsets [${begin}, ${end}] hold ${end - begin} bytes`,
      name,
    );
  }
  if (end > dataLength) {
    throw new SafetensorsError(
      file,
      `data_offsets [${begin}, ${end}] reach past the data section, which holds ${dataLength} bytes (file bytes ${dataStart} to ${dataStart + dataLength})`,
      name,
    );
  }
  return Object.freeze({
    name,
    dtype,
    shape: Object.freeze(dims),
    numel: Number(numel),
    dataOffsets: Object.freeze([begin, end] as [number, number]),
    begin: dataStart + begin,
    end: dataStart + end,
    byteLength: end - begin,
  });
}

/** Sorts `entries` in place by offset and checks that they tile [0, dataLength) exactly. */
function checkTiling(file: string, entries: TensorInfo[], dataStart: number, dataLength: number, fileSize: number): void {
  // Empty tensors first at a shared offset, as in the Rust library, so they never count as overlaps.
  entries.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let cursor = 0;
  let previous: TensorInfo | undefined;
  for (const info of entries) {
    const [begin, end] = info.dataOffsets;
    if (begin < cursor && previous !== undefined) {
      throw new SafetensorsError(
        file,
        `data_offsets [${begin}, ${end}] overlap tensor "${previous.name}" at [${previous.dataOffsets[0]}, ${previous.dataOffsets[1]}]; tensors must not share bytes`,
        info.name,
      );
    }
    if (begin > cursor) {
      const before = previous === undefined ? 'the data section starts at 0' : `the previous tensor "${previous.name}" ends at ${cursor}`;
      throw new SafetensorsError(
        file,
        `gap in the data section: data_offsets [${begin}, ${end}] start at ${begin} but ${before}; bytes [${cursor}, ${begin}) belong to no tensor, and tensors must cover the data section contiguously`,
        info.name,
      );
    }
    cursor = end;
    if (end > begin || previous === undefined) previous = info;
  }
  if (cursor !== dataLength) {
    const last =
      previous === undefined ? 'there are no tensors' : `the last tensor "${previous.name}" ends at data offset ${cursor} (file byte ${dataStart + cursor})`;
    throw new SafetensorsError(
      file,
      `${dataLength - cursor} trailing bytes after the last tensor: ${last}, but the file is ${fileSize} bytes; expected it to end exactly where the tensor data ends`,
    );
  }
}

export interface HeaderEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

/** Bytes of a tensor of this dtype and shape, or an InvalidArgumentError naming `where`. */
export function tensorByteLength(dtype: unknown, shape: unknown, where: string): number {
  if (!isDType(dtype)) throw new InvalidArgumentError(`${where}: unknown dtype ${found(dtype)}; expected one of ${dtypeList}`);
  const result = shapeSchema.safeParse(shape);
  if (!result.success) {
    throw new InvalidArgumentError(`${where}: shape must be an array of non-negative integers, found ${found(shape)}${firstIssue(result.error)}`);
  }
  const bytes = result.data.reduce((acc, dim) => acc * BigInt(dim), BigInt(DTYPES[dtype].bytes));
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InvalidArgumentError(`${where}: shape ${formatShape(result.data)} of ${dtype} needs ${bytes} bytes, more than a file can address here`);
  }
  return Number(bytes);
}

/**
 * The first 8 + N bytes of a file holding `entries` in the given order, back to back from data offset 0:
 * the u64 length, then compact JSON with "__metadata__" first, padded with spaces so that N (and so
 * the data start) is a multiple of 8, as the Rust library writes it.
 */
export function buildHeader(entries: Iterable<HeaderEntry>, metadata?: Readonly<Record<string, string>>): Buffer {
  const parts: string[] = [];
  if (metadata !== undefined) {
    const fields: string[] = [];
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') {
        throw new InvalidArgumentError(`metadata value for key "${key}" must be a string, found ${found(value)}`);
      }
      fields.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`);
    }
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${fields.join(',')}}`);
  }
  const seen = new Set<string>();
  let offset = 0;
  for (const { name, dtype, shape } of entries) {
    if (typeof name !== 'string') throw new InvalidArgumentError(`tensor names must be strings, found ${found(name)}`);
    if (name === METADATA_KEY) throw new InvalidArgumentError(`"${METADATA_KEY}" is reserved for metadata and cannot name a tensor`);
    if (seen.has(name)) throw new InvalidArgumentError(`tensor "${name}" appears twice; tensor names must be unique`);
    seen.add(name);
    const bytes = tensorByteLength(dtype, shape, `tensor "${name}"`);
    const entry = { dtype, shape: [...shape], data_offsets: [offset, offset + bytes] };
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(entry)}`);
    offset += bytes;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padding = (8 - (json.byteLength % 8)) % 8;
  const out = Buffer.alloc(HEADER_PREFIX_BYTES + json.byteLength + padding, 0x20);
  out.writeBigUInt64LE(BigInt(json.byteLength + padding), 0);
  json.copy(out, HEADER_PREFIX_BYTES);
  return out;
}
