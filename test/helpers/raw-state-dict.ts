/** Raw (byte-level) state dicts of .safetensors files, and comparing them bit for bit. */
import { SafetensorsFile } from '../../lib/checkpoint/safetensors';
import type { RawStateDict, RawTensor } from '../../lib/checkpoint/ldm-single-file';

/** Every tensor of a .safetensors file as raw bytes, in file order. */
export async function readRaw(file: string): Promise<RawStateDict> {
  const st = await SafetensorsFile.open(file);
  try {
    const out: RawStateDict = new Map();
    for (const [name, info] of st.tensors) out.set(name, { dtype: info.dtype, shape: info.shape, data: await st.readBytes(name) });
    return out;
  } finally {
    await st.close();
  }
}

/** Same dtype, shape and bytes. */
export function sameTensor(a: RawTensor | undefined, b: RawTensor | undefined): boolean {
  return (
    a !== undefined &&
    b !== undefined &&
    a.dtype === b.dtype &&
    a.shape.join() === b.shape.join() &&
    Buffer.compare(Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength), Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength)) === 0
  );
}

/** The keys of `a` and `b` and the tensors under them are identical (bytes, dtype, shape). */
export function expectSameStateDict(a: ReadonlyMap<string, RawTensor>, b: ReadonlyMap<string, RawTensor>): void {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  const differing = [...a.keys()].filter((k) => !sameTensor(a.get(k), b.get(k)));
  expect(differing).toEqual([]);
}
