/**
 * Raw little-endian tensor bytes <-> JS typed arrays, per safetensors dtype.
 */

import { InvalidArgumentError, UnsupportedDtypeError, describeValue } from '../errors';
import { f8e4m3ToF32, f8e5m2ToF32, f8e8m0ToF32 } from './float8';
import { bf16ArrayToF32, f16ArrayToF32, f32ArrayToBf16, f32ArrayToF16 } from './half';
import { DTYPES, type DType } from './safetensors-format';

export type TensorArray =
  Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

/** The JS array decodeTensorData returns for each dtype. */
export interface DecodedArrayOf {
  BOOL: Uint8Array;
  U8: Uint8Array;
  I8: Int8Array;
  I16: Int16Array;
  U16: Uint16Array;
  F16: Float32Array;
  BF16: Float32Array;
  I32: Int32Array;
  U32: Uint32Array;
  F32: Float32Array;
  F64: Float64Array;
  I64: BigInt64Array;
  U64: BigUint64Array;
  F8_E4M3: Float32Array;
  F8_E5M2: Float32Array;
  F8_E8M0: Float32Array;
}

const hostIsLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * An ArrayBuffer slice of `bytes` in host byte order, aligned for `elementBytes`-sized elements:
 * `bytes`' own memory when that already works, otherwise a copy.
 */
function hostOrderBuffer(bytes: Uint8Array, elementBytes: number): { buffer: ArrayBufferLike; byteOffset: number } {
  if (hostIsLittleEndian && bytes.byteOffset % elementBytes === 0) return { buffer: bytes.buffer, byteOffset: bytes.byteOffset };
  const copy = Buffer.from(bytes);
  if (!hostIsLittleEndian) {
    if (elementBytes === 2) copy.swap16();
    else if (elementBytes === 4) copy.swap32();
    else if (elementBytes === 8) copy.swap64();
  }
  // Buffer.from(Uint8Array) copies into a pooled slab for small sizes; slice off an own ArrayBuffer.
  const own = copy.buffer.slice(copy.byteOffset, copy.byteOffset + copy.byteLength);
  return { buffer: own, byteOffset: 0 };
}

/**
 * Decodes a tensor's raw little-endian bytes. Integer, BOOL and F32/F64 tensors get the matching typed
 * array, which shares memory with `bytes` when its offset is aligned (little-endian hosts) and is a
 * copy otherwise; F16, BF16 and the F8 dtypes are converted to a new Float32Array (exactly).
 */
export function decodeTensorData<D extends DType>(dtype: D, bytes: Uint8Array): DecodedArrayOf[D];
export function decodeTensorData(dtype: DType, bytes: Uint8Array): TensorArray {
  const info = DTYPES[dtype] as { bytes: number } | undefined;
  if (info === undefined) throw new InvalidArgumentError(`Expected a safetensors dtype but received ${describeValue(dtype)}`);
  if (bytes.byteLength % info.bytes !== 0) {
    throw new InvalidArgumentError(`${dtype} data must be a multiple of ${info.bytes} bytes, got ${bytes.byteLength}`);
  }
  const length = bytes.byteLength / info.bytes;
  const view = <T>(make: new (buffer: ArrayBufferLike, byteOffset: number, length: number) => T): T => {
    const { buffer, byteOffset } = hostOrderBuffer(bytes, info.bytes);
    return new make(buffer, byteOffset, length);
  };
  switch (dtype) {
    case 'BOOL':
    case 'U8':
      return new Uint8Array(bytes.buffer, bytes.byteOffset, length);
    case 'I8':
      return new Int8Array(bytes.buffer, bytes.byteOffset, length);
    case 'I16':
      return view(Int16Array);
    case 'U16':
      return view(Uint16Array);
    case 'I32':
      return view(Int32Array);
    case 'U32':
      return view(Uint32Array);
    case 'F32':
      return view(Float32Array);
    case 'F64':
      return view(Float64Array);
    case 'I64':
      return view(BigInt64Array);
    case 'U64':
      return view(BigUint64Array);
    case 'F16':
      return f16ArrayToF32(view(Uint16Array));
    case 'BF16':
      return bf16ArrayToF32(view(Uint16Array));
    case 'F8_E4M3':
      return mapBytes(bytes, f8e4m3ToF32);
    case 'F8_E5M2':
      return mapBytes(bytes, f8e5m2ToF32);
    case 'F8_E8M0':
      return mapBytes(bytes, f8e8m0ToF32);
  }
}

function mapBytes(bytes: Uint8Array, decode: (bits: number) => number): Float32Array {
  const out = new Float32Array(bytes.byteLength);
  for (let i = 0; i < bytes.byteLength; i++) out[i] = decode(bytes[i] as number);
  return out;
}

const intRanges: Partial<Record<DType, readonly [number, number]>> = {
  BOOL: [0, 1],
  U8: [0, 0xff],
  I8: [-0x80, 0x7f],
  U16: [0, 0xffff],
  I16: [-0x8000, 0x7fff],
  U32: [0, 0xffffffff],
  I32: [-0x80000000, 0x7fffffff],
};

function asBytes(array: ArrayBufferView): Uint8Array {
  const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  if (hostIsLittleEndian) return bytes;
  const size = (array as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1;
  const copy = Buffer.from(bytes);
  if (size === 2) copy.swap16();
  else if (size === 4) copy.swap32();
  else if (size === 8) copy.swap64();
  return copy;
}

/**
 * Little-endian bytes of `values` as `dtype`, for writeSafetensors. Floats are rounded to nearest even
 * for F16/BF16/F32; integers must be exact and in range (BOOL takes booleans or 0/1); I64/U64 take
 * bigints or safe integers. F8 dtypes are not encoded here: pass their raw bytes.
 */
export function encodeTensorData(dtype: DType, values: ArrayLike<number | bigint | boolean>): Uint8Array {
  const n = values.length;
  const at = (i: number): number | bigint | boolean => values[i] as number | bigint | boolean;
  const bad = (i: number, what: string): InvalidArgumentError =>
    new InvalidArgumentError(`Expected ${what} for element ${i} of ${dtype} data but received ${describeValue(at(i))}`);
  const numbers = (): number[] => {
    const out = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const v = at(i);
      if (typeof v !== 'number') throw bad(i, 'a number');
      out[i] = v;
    }
    return out;
  };
  switch (dtype) {
    case 'F32':
      return asBytes(Float32Array.from(numbers()));
    case 'F64':
      return asBytes(Float64Array.from(numbers()));
    case 'F16':
      return asBytes(f32ArrayToF16(numbers()));
    case 'BF16':
      return asBytes(f32ArrayToBf16(numbers()));
    case 'I64':
    case 'U64': {
      const out = dtype === 'I64' ? new BigInt64Array(n) : new BigUint64Array(n);
      const [lo, hi] = dtype === 'I64' ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n];
      for (let i = 0; i < n; i++) {
        const v = at(i);
        if (typeof v === 'number' && !Number.isSafeInteger(v)) throw bad(i, 'a safe integer or a bigint');
        if (typeof v !== 'number' && typeof v !== 'bigint') throw bad(i, 'an integer or a bigint');
        const big = BigInt(v);
        if (big < lo || big > hi) throw bad(i, `an integer in [${lo}, ${hi}]`);
        out[i] = big;
      }
      return asBytes(out);
    }
    case 'F8_E4M3':
    case 'F8_E5M2':
    case 'F8_E8M0':
      throw new UnsupportedDtypeError(`encodeTensorData cannot encode ${dtype}; pass the raw ${dtype} bytes as data instead`);
    default: {
      const [lo, hi] = intRanges[dtype] as readonly [number, number];
      const out = new Array<number>(n);
      for (let i = 0; i < n; i++) {
        const raw = at(i);
        const v = dtype === 'BOOL' && typeof raw === 'boolean' ? Number(raw) : raw;
        if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
          throw bad(i, dtype === 'BOOL' ? 'a boolean or 0/1' : `an integer in [${lo}, ${hi}]`);
        }
        out[i] = v;
      }
      const arrays = { BOOL: Uint8Array, U8: Uint8Array, I8: Int8Array, U16: Uint16Array, I16: Int16Array, U32: Uint32Array, I32: Int32Array };
      return asBytes(arrays[dtype].from(out));
    }
  }
}
