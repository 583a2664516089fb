/** Builds .safetensors files byte by byte, so tests can produce exactly the malformation they need. */

export interface RawFileOptions {
  /** The u64 written in the first 8 bytes; defaults to the header's real byte length. */
  readonly headerLength?: bigint;
}

/** 8-byte little-endian length, the header (JSON text, or an object to stringify, or raw bytes), then data. */
export function rawSafetensors(header: string | object | Uint8Array, data: Uint8Array | number = 0, options: RawFileOptions = {}): Buffer {
  const headerBytes = header instanceof Uint8Array ? Buffer.from(header) : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(options.headerLength ?? BigInt(headerBytes.byteLength), 0);
  const body = typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data);
  return Buffer.concat([prefix, headerBytes, body]);
}

/** A header entry. */
export function entry(dtype: string, shape: number[], begin: number, end: number): { dtype: string; shape: number[]; data_offsets: [number, number] } {
  return { dtype, shape, data_offsets: [begin, end] };
}
