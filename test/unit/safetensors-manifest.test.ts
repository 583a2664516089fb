/**
 * Every .safetensors fixture against manifest.json, which Python's standard library wrote: header
 * fields, raw-byte sha256 per tensor, and for numeric dtypes math.fsum of the values and their squares.
 * Our FSum is the same correctly rounded algorithm, so the sums must match exactly.
 */

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { DTYPES, SafetensorsFile, decodeTensorData, isDType } from '../../lib/checkpoint/safetensors';
import { FSum } from '../helpers/fsum';

interface ManifestTensor {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
  sha256: string;
  sum?: number;
  sum_sq?: number;
}

interface ManifestFile {
  size: number;
  sha256: string;
  header_length: number;
  metadata: Record<string, string> | null;
  num_tensors: number;
  tensors: Record<string, ManifestTensor>;
}

const root = path.join(__dirname, '..', 'fixtures', 'diffusers');
const manifest = JSON.parse(readFileSync(path.join(root, 'manifest.json'), 'utf8')) as {
  num_files: number;
  num_tensors: number;
  files: Record<string, ManifestFile>;
};
const files = Object.entries(manifest.files);

function valuesAsDoubles(dtype: string, bytes: Uint8Array): ArrayLike<number> {
  if (!isDType(dtype)) throw new Error(`unexpected dtype ${dtype}`);
  const data = decodeTensorData(dtype, bytes);
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return Array.from(data, (v) => Number(v));
  return data;
}

test('the manifest lists the fixture files', () => {
  expect(files).toHaveLength(manifest.num_files);
  expect(files.reduce((n, [, f]) => n + Object.keys(f.tensors).length, 0)).toBe(manifest.num_tensors);
});

describe.each(files)('%s', (relative, expected) => {
  test('header, bytes and sums match the manifest', async () => {
    const file = await SafetensorsFile.open(path.join(root, relative));
    try {
      expect(file.size).toBe(expected.size);
      expect(file.header.headerLength).toBe(expected.header_length);
      expect(file.header.dataStart).toBe(8 + expected.header_length);
      expect(file.metadata).toEqual(expected.metadata ?? undefined);
      expect(file.names().sort()).toEqual(Object.keys(expected.tensors).sort());
      expect(file.tensors.size).toBe(expected.num_tensors);

      for (const [name, want] of Object.entries(expected.tensors)) {
        const info = file.info(name);
        expect({ name, dtype: info.dtype, shape: info.shape, offsets: info.dataOffsets }).toEqual({
          name,
          dtype: want.dtype,
          shape: want.shape,
          offsets: want.data_offsets,
        });
        expect(info.begin).toBe(8 + expected.header_length + want.data_offsets[0]);
        expect(info.byteLength).toBe(want.data_offsets[1] - want.data_offsets[0]);

        const bytes = await file.readBytes(name);
        expect({ name, sha256: createHash('sha256').update(bytes).digest('hex') }).toEqual({ name, sha256: want.sha256 });

        const kind = isDType(want.dtype) ? DTYPES[want.dtype].kind : 'unknown';
        if (kind === 'float' || kind === 'int') {
          const values = valuesAsDoubles(want.dtype, bytes);
          const sum = new FSum();
          const sumSq = new FSum();
          for (let i = 0; i < values.length; i++) {
            const v = values[i] as number;
            sum.add(v);
            sumSq.add(v * v);
          }
          expect({ name, sum: sum.value(), sum_sq: sumSq.value() }).toEqual({ name, sum: want.sum, sum_sq: want.sum_sq });
        }
      }
    } finally {
      await file.close();
    }
  });
});
