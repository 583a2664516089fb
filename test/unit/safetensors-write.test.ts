/**
 * writeSafetensors: bit-exact round trips for every dtype, the layout and header the Rust library
 * writes, argument validation, and atomic replacement (a failed write leaves the old file and no temp).
 */

import * as crypto from 'node:crypto';
import { existsSync, mkdirSync, promises as fsp, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '../../lib/errors';
import { DTYPES, DTYPE_NAMES, type DType, SafetensorsFile, type TensorToWrite, encodeTensorData, writeSafetensors } from '../../lib/checkpoint/safetensors';
import { buildHeader, parseHeader } from '../../lib/checkpoint/safetensors-format';
import { useTempDir } from '../helpers/temp-dir';

const tempDir = useTempDir('write');
let counter = 0;
const fresh = (name = 'model.safetensors'): string => {
  const dir = path.join(tempDir(), `case-${counter++}`);
  mkdirSync(dir);
  return path.join(dir, name);
};

function randomTensor(dtype: DType, shape: number[]): TensorToWrite {
  const numel = shape.reduce((a, b) => a * b, 1);
  return { dtype, shape, data: crypto.randomBytes(numel * DTYPES[dtype].bytes) };
}

/** Files in the target's folder other than the target: temp files a failed write left behind. */
function leftovers(target: string): string[] {
  return readdirSync(path.dirname(target)).filter((name) => name !== path.basename(target));
}

afterEach(() => {
  jest.restoreAllMocks();
});

describe('round trip', () => {
  test('every dtype, as matrices, 0-d and empty tensors, is read back bit for bit', async () => {
    const target = fresh();
    const tensors = new Map<string, TensorToWrite>();
    for (const dtype of DTYPE_NAMES) {
      tensors.set(`${dtype}/matrix`, randomTensor(dtype, [3, 5]));
      tensors.set(`${dtype}/scalar`, randomTensor(dtype, []));
      tensors.set(`${dtype}/empty`, randomTensor(dtype, [0, 4]));
      tensors.set(`${dtype}/odd`, randomTensor(dtype, [7]));
    }
    await writeSafetensors(target, tensors, { format: 'pt', note: 'ünïcödé ✓' });

    const file = await SafetensorsFile.open(target);
    expect(file.metadata).toEqual({ format: 'pt', note: 'ünïcödé ✓' });
    expect(file.names().sort()).toEqual([...tensors.keys()].sort());
    for (const [name, tensor] of tensors) {
      const info = file.info(name);
      expect({ name, dtype: info.dtype, shape: info.shape }).toEqual({ name, dtype: tensor.dtype, shape: tensor.shape });
      expect(Buffer.compare(await file.readBytes(name), Buffer.from(tensor.data as Uint8Array))).toBe(0);
      // The layout aligns every tensor to its element size within the file.
      expect(info.begin % DTYPES[info.dtype].bytes).toBe(0);
    }
    expect(file.header.dataStart % 8).toBe(0);
    await file.close();
  });

  test('the written file passes parseHeader on the raw bytes and has no trailing bytes', async () => {
    const target = fresh();
    await writeSafetensors(target, { a: randomTensor('F16', [3]), b: randomTensor('I64', [2]) });
    const bytes = readFileSync(target);
    const header = parseHeader(target, bytes, bytes.byteLength);
    expect(header.dataStart + 6 + 16).toBe(bytes.byteLength);
    expect(header.metadata).toBeUndefined();
  });

  test('a file with no tensors and no metadata', async () => {
    const target = fresh();
    await writeSafetensors(target, []);
    expect(readFileSync(target).subarray(8).toString()).toBe('{}      ');
    const file = await SafetensorsFile.open(target);
    expect(file.names()).toEqual([]);
    await file.close();
  });

  test('decoded values survive a round trip through encodeTensorData', async () => {
    const target = fresh();
    const f32 = [1.5, -0, Infinity, -3.25e-20, 65504];
    const i64 = [0n, -1n, 2n ** 63n - 1n, -(2n ** 63n)];
    await writeSafetensors(target, {
      f32: { dtype: 'F32', shape: [5], data: encodeTensorData('F32', f32) },
      f16: { dtype: 'F16', shape: [5], data: encodeTensorData('F16', f32) },
      bf16: { dtype: 'BF16', shape: [5], data: encodeTensorData('BF16', [1, 2, 3, 1 / 3, -7]) },
      i64: { dtype: 'I64', shape: [2, 2], data: encodeTensorData('I64', i64) },
      u16: { dtype: 'U16', shape: [3], data: encodeTensorData('U16', [0, 1, 65535]) },
      bool: { dtype: 'BOOL', shape: [3], data: encodeTensorData('BOOL', [true, false, 1]) },
    });
    const file = await SafetensorsFile.open(target);
    expect(Array.from((await file.read('f32')).data as Float32Array)).toEqual(f32.map(Math.fround));
    expect(Array.from((await file.read('f16')).data as Float32Array)).toEqual([1.5, -0, Infinity, -0, 65504]);
    expect(Array.from((await file.read('bf16')).data as Float32Array)).toEqual([1, 2, 3, 0.333984375, -7]);
    expect(Array.from((await file.read('i64')).data as BigInt64Array)).toEqual(i64);
    expect(Array.from((await file.read('u16')).data as Uint16Array)).toEqual([0, 1, 65535]);
    expect(Array.from((await file.read('bool')).data as Uint8Array)).toEqual([1, 0, 1]);
    await file.close();
  });

  test('typed arrays other than Uint8Array, and views at an offset, are written as their bytes', async () => {
    const target = fresh();
    const backing = new Float32Array([9, 1, 2, 3]);
    await writeSafetensors(target, [['x', { dtype: 'F32', shape: [3], data: backing.subarray(1) }]]);
    const file = await SafetensorsFile.open(target);
    expect(Array.from((await file.read('x')).data as Float32Array)).toEqual([1, 2, 3]);
    await file.close();
  });

  test('accepts a Map, an array of pairs, a generator and a plain object alike', async () => {
    const t = randomTensor('U8', [2]);
    function* pairs(): Generator<[string, TensorToWrite]> {
      yield ['g', t];
    }
    for (const input of [new Map([['g', t]]), [['g', t] as const], pairs(), { g: t }]) {
      const target = fresh();
      await writeSafetensors(target, input);
      const file = await SafetensorsFile.open(target);
      expect(file.names()).toEqual(['g']);
      await file.close();
    }
  });
});

describe('layout and header', () => {
  test('tensors are ordered by element size (largest first), then by name, as the Rust library does', async () => {
    const target = fresh();
    await writeSafetensors(target, {
      b8: randomTensor('U8', [1]),
      a8: randomTensor('I8', [3]),
      z32: randomTensor('F32', [1]),
      y64: randomTensor('F64', [1]),
      a16: randomTensor('F16', [1]),
      a32: randomTensor('I32', [1]),
    });
    const file = await SafetensorsFile.open(target);
    expect(file.names()).toEqual(['y64', 'a32', 'z32', 'a16', 'a8', 'b8']);
    await file.close();
  });

  test('names sort by UTF-8 bytes, not UTF-16 code units', async () => {
    const target = fresh();
    // U+FF21 sorts after U+1F600 in UTF-16 (0xFF21 > 0xD83D) but before it in UTF-8.
    await writeSafetensors(target, { '\u{1F600}': randomTensor('U8', [1]), '\uFF21': randomTensor('U8', [1]) });
    const file = await SafetensorsFile.open(target);
    expect(file.names()).toEqual(['\uFF21', '\u{1F600}']);
    await file.close();
  });

  test('buildHeader writes compact JSON, metadata first, padded with spaces to a multiple of 8', () => {
    const header = buildHeader(
      [
        { name: 'w', dtype: 'F32', shape: [2, 3] },
        { name: 'b', dtype: 'F16', shape: [3] },
      ],
      { format: 'pt' },
    );
    const json =
      '{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"F16","shape":[3],"data_offsets":[24,30]}}';
    const padded = json + ' '.repeat((8 - (json.length % 8)) % 8);
    expect(header.readBigUInt64LE(0)).toBe(BigInt(padded.length));
    expect(header.subarray(8).toString('utf8')).toBe(padded);
    expect(header.byteLength % 8).toBe(0);
  });

  test('buildHeader rejects what a reader would reject', () => {
    expect(() => buildHeader([{ name: '__metadata__', dtype: 'F32', shape: [] }])).toThrow(InvalidArgumentError);
    expect(() =>
      buildHeader([
        { name: 'a', dtype: 'F32', shape: [] },
        { name: 'a', dtype: 'F32', shape: [] },
      ]),
    ).toThrow('appears twice');
    expect(() => buildHeader([{ name: 'a', dtype: 'Q4' as DType, shape: [] }])).toThrow('unknown dtype "Q4"');
    expect(() => buildHeader([], { k: 1 as unknown as string })).toThrow('metadata value for key "k" must be a string');
  });
});

describe('argument validation', () => {
  const ok = randomTensor('F32', [2]);
  test.each<[string, unknown, string]>([
    ['an unknown dtype', { a: { dtype: 'F128', shape: [2], data: new Uint8Array(8) } }, 'unknown dtype "F128"'],
    ['a negative dimension', { a: { dtype: 'F32', shape: [-2], data: new Uint8Array(8) } }, 'shape must be an array of non-negative integers'],
    ['data of the wrong length', { ok, a: { dtype: 'F32', shape: [2, 3], data: new Uint8Array(20) } }, 'needs 24 bytes of data, got 20'],
    ['data that is not a typed array', { a: { dtype: 'U8', shape: [2], data: [1, 2] } }, 'Expected a Uint8Array'],
    ['a tensor named __metadata__', { __metadata__: ok }, 'is reserved for metadata'],
    [
      'a duplicate name',
      [
        ['a', ok],
        ['a', ok],
      ],
      'is given twice',
    ],
    ['a non-string name', [[7, ok]], 'Expected a string tensor name'],
    ['a tensor that is not an object', { a: 5 }, 'Expected an object { dtype, shape, data }'],
  ])('%s is an InvalidArgumentError', async (_, tensors, message) => {
    const target = fresh();
    const attempt = writeSafetensors(target, tensors as Record<string, TensorToWrite>);
    await expect(attempt).rejects.toThrow(InvalidArgumentError);
    await expect(writeSafetensors(target, tensors as Record<string, TensorToWrite>)).rejects.toThrow(message);
    await expect(writeSafetensors(target, tensors as Record<string, TensorToWrite>)).rejects.toThrow(target);
    expect(existsSync(target)).toBe(false);
    expect(leftovers(target)).toEqual([]);
  });

  test('a metadata value that is not a string', async () => {
    const target = fresh();
    await expect(writeSafetensors(target, { ok }, { epoch: 3 as unknown as string })).rejects.toThrow('metadata key "epoch"');
    expect(existsSync(target)).toBe(false);
  });
});

describe('atomic replacement', () => {
  const original = Buffer.from('the previous checkpoint');

  function existing(): string {
    const target = fresh();
    writeFileSync(target, original);
    return target;
  }

  function expectUntouched(target: string): void {
    expect(readFileSync(target)).toEqual(original);
    expect(leftovers(target)).toEqual([]);
  }

  test('replacing an existing file works and leaves no temp file', async () => {
    const target = existing();
    await writeSafetensors(target, { a: randomTensor('U8', [4]) });
    const file = await SafetensorsFile.open(target);
    expect(file.names()).toEqual(['a']);
    await file.close();
    expect(leftovers(target)).toEqual([]);
  });

  test('an invalid entry found mid-way leaves the previous file intact', async () => {
    const target = existing();
    const tensors: [string, TensorToWrite][] = [
      ['a', randomTensor('F32', [4])],
      ['b', randomTensor('F32', [4])],
      ['c', { dtype: 'F32', shape: [4], data: new Uint8Array(3) }],
      ['d', randomTensor('F32', [4])],
    ];
    await expect(writeSafetensors(target, tensors)).rejects.toThrow('tensor "c"');
    expectUntouched(target);
  });

  test('an iterator that throws mid-way leaves the previous file intact', async () => {
    const target = existing();
    function* failing(): Generator<[string, TensorToWrite]> {
      yield ['a', randomTensor('F32', [4])];
      throw new Error('source failed');
    }
    await expect(writeSafetensors(target, failing())).rejects.toThrow('source failed');
    expectUntouched(target);
  });

  test('a write error mid-stream (disk full) removes the temp file and keeps the previous file', async () => {
    const target = existing();
    const realOpen = fsp.open.bind(fsp);
    jest.spyOn(fsp, 'open').mockImplementation(async (...args: Parameters<typeof fsp.open>) => {
      const handle = await realOpen(...args);
      const realWrite = handle.write.bind(handle) as (...a: unknown[]) => Promise<unknown>;
      let calls = 0;
      Object.defineProperty(handle, 'write', {
        value: async (...a: unknown[]) => {
          calls += 1;
          if (calls === 3) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          return realWrite(...a);
        },
      });
      return handle;
    });
    const tensors = { a: randomTensor('F32', [4]), b: randomTensor('F32', [4]), c: randomTensor('F32', [4]) };
    await expect(writeSafetensors(target, tensors)).rejects.toMatchObject({ code: 'ERR_FILE_SYSTEM', errno: 'ENOSPC' });
    expectUntouched(target);
  });

  test('a failed rename removes the temp file and keeps the previous file', async () => {
    const target = existing();
    const renames: string[] = [];
    jest.spyOn(fsp, 'rename').mockImplementation(async (from) => {
      renames.push(String(from));
      throw Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' });
    });
    await expect(writeSafetensors(target, { a: randomTensor('U8', [1]) })).rejects.toMatchObject({ code: 'ERR_FILE_SYSTEM', errno: 'EIO' });
    expect(renames).toHaveLength(1);
    expect(path.dirname(renames[0] as string)).toBe(path.dirname(target));
    expect(path.basename(renames[0] as string)).toMatch(new RegExp(`^\\.model\\.safetensors\\.tmp-${process.pid}-[0-9a-f]{12}$`));
    expectUntouched(target);
  });

  test('a folder in place of the target: the folder stays, no temp file remains', async () => {
    const target = fresh();
    mkdirSync(target);
    writeFileSync(path.join(target, 'inside.txt'), 'keep');
    await expect(writeSafetensors(target, { a: randomTensor('U8', [1]) })).rejects.toThrow();
    expect(readFileSync(path.join(target, 'inside.txt'), 'utf8')).toBe('keep');
    expect(leftovers(target)).toEqual([]);
  });

  test('a folder in place of the temp path: the write fails, the folder and the previous file stay', async () => {
    const target = existing();
    const tensor = randomTensor('U8', [1]);
    const fixed = Buffer.from('0123456789ab', 'hex');
    // The module object itself: the `import * as` namespace has read-only bindings that cannot be spied on.
    const cryptoModule = jest.requireActual<typeof crypto>('node:crypto');
    jest.spyOn(cryptoModule, 'randomBytes').mockImplementation(() => fixed);
    const tempPath = path.join(path.dirname(target), `.model.safetensors.tmp-${process.pid}-${fixed.toString('hex')}`);
    mkdirSync(tempPath);
    await expect(writeSafetensors(target, { a: tensor })).rejects.toMatchObject({ code: 'ERR_FILE_SYSTEM', errno: 'EEXIST' });
    expect(readFileSync(target)).toEqual(original);
    expect(existsSync(tempPath)).toBe(true);
    expect(leftovers(target)).toEqual([path.basename(tempPath)]);
  });

  test('a missing folder fails without creating anything', async () => {
    const target = path.join(tempDir(), 'no-such-folder', 'model.safetensors');
    await expect(writeSafetensors(target, { a: randomTensor('U8', [1]) })).rejects.toMatchObject({ code: 'ERR_FILE_SYSTEM', errno: 'ENOENT' });
    expect(existsSync(path.dirname(target))).toBe(false);
  });
});
