/**
 * writeSafetensorsStreamed: the same bytes as writeSafetensors for the same tensors (layout, header,
 * metadata), each tensor asked for once, in file order, only after the previous one was written; a
 * producer giving the wrong byte count fails the write and leaves an existing file untouched.
 */
import * as crypto from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { DTYPES, type DType, type TensorToWrite, writeSafetensors } from '../../../lib/checkpoint/safetensors';
import { safetensorsFileOrder, writeSafetensorsStreamed } from '../../../lib/checkpoint/safetensors-stream';
import { InvalidArgumentError } from '../../../lib/errors';
import { useTempDir } from '../../helpers/temp-dir';

const tmp = useTempDir('stream');

function tensor(dtype: DType, shape: number[]): TensorToWrite {
  return { dtype, shape, data: crypto.randomBytes(shape.reduce((a, b) => a * b, 1) * DTYPES[dtype].bytes) };
}

const tensors = new Map<string, TensorToWrite>([
  ['zeta.weight', tensor('F16', [3, 5])],
  ['alpha.bias', tensor('F32', [7])],
  ['ünïcode', tensor('F32', [2, 2])],
  ['Beta', tensor('I64', [3])],
  ['scalar', tensor('BF16', [])],
  ['empty', tensor('U8', [0, 4])],
]);
const entries = [...tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape }));

test('writes the bytes writeSafetensors writes, asking for each tensor once, in file order', async () => {
  const reference = path.join(tmp(), 'reference.safetensors');
  await writeSafetensors(reference, tensors, { format: 'pt' });
  const streamed = path.join(tmp(), 'streamed.safetensors');
  const asked: string[] = [];
  await writeSafetensorsStreamed(
    streamed,
    entries,
    async (e) => {
      asked.push(e.name);
      await new Promise((resolve) => setImmediate(resolve));
      return tensors.get(e.name)!.data;
    },
    { format: 'pt' },
  );
  expect(Buffer.compare(readFileSync(streamed), readFileSync(reference))).toBe(0);
  expect(asked).toEqual(safetensorsFileOrder(entries).map((e) => e.name));
  expect(asked.slice(0, 1)).toEqual(['Beta']); // 8-byte elements first, then 4, 2, 1; by UTF-8 name within
});

test('a producer giving the wrong byte count fails the write and leaves the old file', async () => {
  const target = path.join(tmp(), 'kept.safetensors');
  writeFileSync(target, 'old');
  await expect(
    writeSafetensorsStreamed(target, entries, async (e) => (e.name === 'alpha.bias' ? new Uint8Array(3) : tensors.get(e.name)!.data)),
  ).rejects.toThrow(InvalidArgumentError);
  await expect(writeSafetensorsStreamed(target, entries, async () => new Uint8Array(1))).rejects.toThrow(
    /tensor "Beta": shape \[3\] of I64 needs 24 bytes, the producer gave 1/,
  );
  expect(readFileSync(target, 'utf8')).toBe('old');
  expect(readdirSync(tmp()).filter((f) => f.includes('kept.safetensors.tmp'))).toEqual([]);
});
