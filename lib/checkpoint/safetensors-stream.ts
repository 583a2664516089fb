/**
 * Writing a .safetensors file one tensor at a time: the header is built from the tensors' names,
 * dtypes and shapes alone, then each tensor's bytes are asked for, written and dropped before the next,
 * so a multi-gigabyte file never needs its tensors in memory together (writeSafetensors takes them all
 * at once). The layout is writeSafetensors' (the Rust library's): the bytes are the same for the same tensors.
 */
import { InvalidArgumentError } from '../errors';
import { writeAll, writeFileAtomically } from '../util/atomic-write';
import { buildHeader, DTYPES, type HeaderEntry, tensorByteLength } from './safetensors-format';

/**
 * Tensors in the order the Rust library lays them out, as writeSafetensors does: by element size,
 * largest first, then by name in UTF-8 byte order (so each starts aligned to its element size).
 */
export function safetensorsFileOrder<T extends HeaderEntry>(entries: readonly T[]): T[] {
  const named = entries.map((e) => ({ e, utf8: Buffer.from(e.name, 'utf8') }));
  named.sort((a, b) => DTYPES[b.e.dtype].bytes - DTYPES[a.e.dtype].bytes || Buffer.compare(a.utf8, b.utf8));
  return named.map((n) => n.e);
}

/**
 * Writes `entries` to `path` atomically (see writeFileAtomically), calling `produce` for each tensor's
 * raw little-endian bytes in file order (safetensorsFileOrder) and writing them before asking for the
 * next. A producer that returns the wrong number of bytes fails the write (the target is left untouched).
 */
export async function writeSafetensorsStreamed<T extends HeaderEntry>(
  path: string,
  entries: readonly T[],
  produce: (entry: T) => Promise<ArrayBufferView>,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  const ordered = safetensorsFileOrder(entries);
  const header = buildHeader(ordered, metadata);
  await writeFileAtomically(path, async (handle) => {
    await writeAll(handle, header);
    for (const entry of ordered) {
      const data = await produce(entry);
      const expected = tensorByteLength(entry.dtype, entry.shape, `${path}: tensor "${entry.name}"`);
      if (data.byteLength !== expected) {
        throw new InvalidArgumentError(
          `${path}: tensor "${entry.name}": shape [${entry.shape.join(', ')}] of ${entry.dtype} needs ${expected} bytes, the producer gave ${data.byteLength}`,
        );
      }
      await writeAll(handle, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
  });
}
