/**
 * Every way a header can be wrong gets a SafetensorsError naming the file and saying what is wrong;
 * pickle checkpoints are refused; the valid edge cases load.
 */

import { truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { DisposedError, InvalidArgumentError, SafetensorsError, UnsupportedFormatError } from '../../lib/errors';
import { SafetensorsFile } from '../../lib/checkpoint/safetensors';
import { parseHeader } from '../../lib/checkpoint/safetensors-format';
import { entry, rawSafetensors } from '../helpers/safetensors-bytes';
import { useTempDir } from '../helpers/temp-dir';

const tempDir = useTempDir('malformed');
let counter = 0;

function writeTemp(bytes: Uint8Array, name = `case-${counter++}.safetensors`): string {
  const file = path.join(tempDir(), name);
  writeFileSync(file, bytes);
  return file;
}

async function openError(bytes: Uint8Array, name?: string): Promise<{ error: unknown; file: string }> {
  const file = writeTemp(bytes, name);
  try {
    const opened = await SafetensorsFile.open(file);
    await opened.close();
  } catch (error) {
    return { error, file };
  }
  throw new Error(`expected ${file} to be rejected, but it opened`);
}

/** Asserts a SafetensorsError that names the file (and tensor, if given) and contains every snippet. */
async function expectMalformed(bytes: Uint8Array, snippets: string[], tensor?: string): Promise<SafetensorsError> {
  const { error, file } = await openError(bytes);
  expect(error).toBeInstanceOf(SafetensorsError);
  const e = error as SafetensorsError;
  expect(e.code).toBe('ERR_SAFETENSORS');
  expect(e.file).toBe(file);
  expect(e.message).toContain(file);
  expect(e.tensor).toBe(tensor);
  if (tensor !== undefined) expect(e.message).toContain(`"${tensor}"`);
  for (const snippet of snippets) expect(e.message).toContain(snippet);
  return e;
}

const f32x2 = entry('F32', [2], 0, 8);

describe('file and header length', () => {
  test('a file shorter than 8 bytes', async () => {
    await expectMalformed(Buffer.from([1, 2, 3, 4, 5]), ['file is 5 bytes', 'shorter than the 8-byte header length']);
  });

  test('an empty file', async () => {
    await expectMalformed(Buffer.alloc(0), ['file is 0 bytes']);
  });

  test('a header length past the end of the file', async () => {
    await expectMalformed(rawSafetensors('{}', 0, { headerLength: 1000n }), ['header length 1000 runs past the end of the file', 'the file is 10 bytes']);
  });

  test('a header length over the 100 MB cap', async () => {
    await expectMalformed(rawSafetensors('{}', 0, { headerLength: 100_000_001n }), ['header length is 100000001 bytes', 'over the limit of 100000000 bytes']);
  });

  test('a header length of 2^64 - 1', async () => {
    await expectMalformed(rawSafetensors('{}', 0, { headerLength: 2n ** 64n - 1n }), ['header length is 18446744073709551615 bytes']);
  });
});

describe('header text', () => {
  test('invalid UTF-8', async () => {
    const header = Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    await expectMalformed(rawSafetensors(header), ['not valid UTF-8', 'at file byte 14']);
  });

  test('not JSON', async () => {
    await expectMalformed(rawSafetensors('{"a": {"dtype": "F32",\n  "shape": [2] "data_offsets": [0, 8]}}', 8), [
      'header is not valid JSON',
      'expected "," or "}"',
      'line 2, column 16',
    ]);
  });

  test('an empty header', async () => {
    await expectMalformed(rawSafetensors(''), ['header is not valid JSON', 'end of input']);
  });

  test('trailing garbage after the object', async () => {
    await expectMalformed(rawSafetensors('{} x'), ['header is not valid JSON', 'after the end of the JSON value']);
  });

  test('a byte-order mark before the JSON', async () => {
    await expectMalformed(rawSafetensors(`\uFEFF{}`), ['header is not valid JSON']);
  });

  test('padding other than spaces (NUL bytes)', async () => {
    await expectMalformed(rawSafetensors(Buffer.from('{}\0\0\0\0\0\0')), ['header is not valid JSON', 'U+0000']);
  });

  test('nesting too deep', async () => {
    await expectMalformed(rawSafetensors(`{"a":${'['.repeat(100)}${']'.repeat(100)}}`), ['header is not valid JSON', 'Nesting deeper']);
  });

  test.each([
    ['an array', '[]', 'found []'],
    ['a string', '"F32"', 'found "F32"'],
    ['null', 'null', 'found null'],
    ['a number', '42', 'found 42 of type number'],
  ])('a header that is %s, not an object', async (_, text, foundText) => {
    await expectMalformed(rawSafetensors(text), ['header must be a JSON object', foundText]);
  });
});

describe('tensor entries', () => {
  test('an entry that is not an object', async () => {
    await expectMalformed(rawSafetensors({ w: [1, 2] }), ['entry must be an object', 'found [1,2]'], 'w');
  });

  test.each(['dtype', 'shape', 'data_offsets'])('an entry without "%s"', async (key) => {
    const e: Record<string, unknown> = { ...f32x2 };
    // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- the test removes each required field in turn
    delete e[key];
    await expectMalformed(rawSafetensors({ w: e }, 8), [`entry has no "${key}"`], 'w');
  });

  test('an unknown dtype', async () => {
    await expectMalformed(rawSafetensors({ w: entry('F128', [2], 0, 32) }, 32), ['unknown dtype "F128"', 'expected one of BOOL, U8'], 'w');
  });

  test('a dtype that is not a string', async () => {
    await expectMalformed(rawSafetensors({ w: { ...f32x2, dtype: 4 } }, 8), ['unknown dtype 4 of type number'], 'w');
  });

  test('a lower-case dtype', async () => {
    await expectMalformed(rawSafetensors({ w: { ...f32x2, dtype: 'f32' } }, 8), ['unknown dtype "f32"'], 'w');
  });

  test.each([
    ['a negative dimension', [2, -1], 'found [2,-1]', 'element 1'],
    ['a fractional dimension', [1.5], 'found [1.5]', 'element 0'],
    ['a string dimension', ['2'], 'found ["2"]', 'element 0'],
    ['a dimension over 2^53', [2 ** 60], 'found [1152921504606847000]', 'element 0'],
  ])('a shape with %s', async (_, shape, foundText, element) => {
    await expectMalformed(rawSafetensors({ w: { ...f32x2, shape } }, 8), ['"shape" must be an array of non-negative integers', foundText, element], 'w');
  });

  test('a shape that is not an array', async () => {
    await expectMalformed(rawSafetensors({ w: { ...f32x2, shape: '2x3' } }, 8), ['"shape" must be an array', 'found "2x3"'], 'w');
  });

  test.each([
    ['one number', [0], 'found [0]'],
    ['three numbers', [0, 4, 8], 'found [0,4,8]'],
    ['a negative offset', [-4, 4], 'found [-4,4]'],
    ['strings', ['0', '8'], 'found ["0","8"]'],
    ['a fraction', [0, 7.5], 'found [0,7.5]'],
  ])('data_offsets with %s', async (_, offsets, foundText) => {
    await expectMalformed(
      rawSafetensors({ w: { ...f32x2, data_offsets: offsets } }, 8),
      ['"data_offsets" must be [begin, end], two non-negative integers', foundText],
      'w',
    );
  });

  test('data_offsets with begin > end', async () => {
    await expectMalformed(rawSafetensors({ w: entry('F32', [0], 8, 0) }, 8), ['"data_offsets" [8, 0] has begin > end'], 'w');
  });

  test('a byte count that does not match shape × dtype size', async () => {
    await expectMalformed(
      rawSafetensors({ w: entry('F32', [2, 3], 0, 20) }, 20),
      ['shape [2, 3] of F32 needs 6 elements × 4 bytes = 24 bytes', 'data_offsets [0, 20] hold 20 bytes'],
      'w',
    );
  });

  test('a byte count off because of the dtype size', async () => {
    await expectMalformed(rawSafetensors({ w: entry('F16', [4], 0, 16) }, 16), ['needs 4 elements × 2 bytes = 8 bytes'], 'w');
  });

  test('offsets past the end of the data section', async () => {
    await expectMalformed(rawSafetensors({ w: entry('F32', [4], 0, 16) }, 8), ['data_offsets [0, 16] reach past the data section, which holds 8 bytes'], 'w');
  });
});

describe('coverage of the data section', () => {
  test('overlapping tensors', async () => {
    await expectMalformed(
      rawSafetensors({ a: entry('F32', [2], 0, 8), b: entry('F32', [2], 4, 12) }, 12),
      ['data_offsets [4, 12] overlap tensor "a" at [0, 8]'],
      'b',
    );
  });

  test('two tensors on the same bytes', async () => {
    await expectMalformed(rawSafetensors({ a: entry('F32', [2], 0, 8), b: entry('I32', [2], 0, 8) }, 8), ['overlap tensor "a"'], 'b');
  });

  test('an empty tensor inside another tensor', async () => {
    await expectMalformed(rawSafetensors({ a: entry('F32', [2], 0, 8), e: entry('F32', [0], 4, 4) }, 8), ['overlap tensor "a"'], 'e');
  });

  test('a gap between tensors', async () => {
    await expectMalformed(
      rawSafetensors({ a: entry('F32', [2], 0, 8), b: entry('F32', [2], 12, 20) }, 20),
      ['gap in the data section', 'the previous tensor "a" ends at 8', 'bytes [8, 12) belong to no tensor'],
      'b',
    );
  });

  test('a gap before the first tensor', async () => {
    await expectMalformed(rawSafetensors({ b: entry('F32', [2], 4, 12) }, 12), ['gap in the data section', 'the data section starts at 0'], 'b');
  });

  test('trailing bytes after the last tensor', async () => {
    await expectMalformed(rawSafetensors({ a: f32x2 }, 11), ['3 trailing bytes after the last tensor', 'the last tensor "a" ends at data offset 8']);
  });

  test('data bytes but no tensors', async () => {
    await expectMalformed(rawSafetensors({}, 4), ['4 trailing bytes', 'there are no tensors']);
  });
});

describe('duplicates and metadata', () => {
  test('a tensor name defined twice', async () => {
    const text = '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    await expectMalformed(rawSafetensors(text, 8), ['duplicate tensor name', 'more than once'], 'w');
  });

  test('a tensor name defined twice with different escapes', async () => {
    const text = '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"\\u0077":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}';
    await expectMalformed(rawSafetensors(text, 16), ['duplicate tensor name'], 'w');
  });

  test('a key repeated inside an entry', async () => {
    const text = '{"w":{"dtype":"F32","shape":[2],"dtype":"F16","data_offsets":[0,8]}}';
    await expectMalformed(rawSafetensors(text, 8), ['duplicate key "dtype" in the entry of tensor "w"']);
  });

  test('"__metadata__" twice', async () => {
    await expectMalformed(rawSafetensors('{"__metadata__":{},"__metadata__":{}}'), ['"__metadata__" key more than once']);
  });

  test('a metadata key twice', async () => {
    await expectMalformed(rawSafetensors('{"__metadata__":{"k":"a","k":"b"}}'), ['duplicate key "k" in "__metadata__"']);
  });

  test.each([
    ['an array', ['pt'], 'found ["pt"]'],
    ['a string', 'pt', 'found "pt"'],
    ['a number', 3, 'found 3 of type number'],
  ])('"__metadata__" that is %s', async (_, metadata, foundText) => {
    await expectMalformed(rawSafetensors({ __metadata__: metadata }), ['"__metadata__" must be an object of string values', foundText]);
  });

  test.each([
    ['a number', 1, 'holds 1 of type number'],
    ['an object', { a: 'b' }, 'holds {"a":"b"}'],
    ['null', null, 'holds null'],
  ])('a metadata value that is %s', async (_, value, foundText) => {
    await expectMalformed(rawSafetensors({ __metadata__: { format: 'pt', k: value } }), ['key "k"', foundText]);
  });
});

describe('pickle checkpoints are refused', () => {
  const pickleBody = Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]);

  test.each(['model.bin', 'model.ckpt', 'model.pt', 'model.pth', 'MODEL.PT'])('by extension: %s', async (name) => {
    // Even a valid safetensors body: the extension alone says pickle, and difftune never guesses.
    const { error, file } = await openError(rawSafetensors({ a: f32x2 }, 8), name);
    expect(error).toBeInstanceOf(UnsupportedFormatError);
    const message = (error as Error).message;
    expect(message).toContain(file);
    expect(message).toContain('arbitrary code');
    expect(message).toContain('from safetensors.torch import save_file');
    expect(message).toContain('weights_only=True');
    expect(message).toContain('safe_serialization=True');
  });

  test.each([2, 3, 4, 5])('by content: a protocol %i pickle named .safetensors', async (protocol) => {
    const body = Buffer.from(pickleBody);
    body[1] = protocol;
    const { error } = await openError(body);
    expect(error).toBeInstanceOf(UnsupportedFormatError);
    expect((error as Error).message).toContain(`a pickle (protocol ${protocol})`);
  });

  test('by content: a torch.save zip named .safetensors', async () => {
    const zip = Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(40)]);
    const { error } = await openError(zip);
    expect(error).toBeInstanceOf(UnsupportedFormatError);
    expect((error as Error).message).toContain('a zip archive');
  });

  test('a real safetensors file whose header length starts with bytes 0x80 0x02 is not mistaken for a pickle', async () => {
    const json = JSON.stringify({ a: f32x2 });
    const header = json + ' '.repeat(640 - json.length);
    const bytes = rawSafetensors(header, 8);
    expect([bytes[0], bytes[1]]).toEqual([0x80, 0x02]);
    const file = await SafetensorsFile.open(writeTemp(bytes));
    expect(file.names()).toEqual(['a']);
    await file.close();
  });
});

describe('valid edge cases load', () => {
  async function load(bytes: Uint8Array): Promise<SafetensorsFile> {
    return SafetensorsFile.open(writeTemp(bytes));
  }

  test('a 0-d tensor', async () => {
    const data = Buffer.alloc(4);
    data.writeFloatLE(2.5);
    const file = await load(rawSafetensors({ s: entry('F32', [], 0, 4) }, data));
    expect(file.info('s')).toMatchObject({ shape: [], numel: 1, byteLength: 4 });
    const { data: values } = await file.read('s');
    expect(Array.from(values as Float32Array)).toEqual([2.5]);
    await file.close();
  });

  test('empty tensors, including several at one offset and one between others', async () => {
    const header = {
      a: entry('F32', [1], 0, 4),
      e1: entry('F32', [0, 3], 4, 4),
      e2: entry('I64', [5, 0], 4, 4),
      b: entry('F32', [1], 4, 8),
      e3: entry('U8', [0], 8, 8),
    };
    const file = await load(rawSafetensors(header, 8));
    expect(file.names().sort()).toEqual(['a', 'b', 'e1', 'e2', 'e3']);
    expect(file.info('e1')).toMatchObject({ shape: [0, 3], numel: 0, byteLength: 0 });
    expect((await file.readBytes('e2')).byteLength).toBe(0);
    await file.close();
  });

  test('a header padded with trailing spaces', async () => {
    const json = JSON.stringify({ a: f32x2 });
    const padded = json + ' '.repeat(16 - (json.length % 8));
    const file = await load(rawSafetensors(padded, 8));
    expect(file.header.headerLength).toBe(padded.length);
    expect(file.header.headerLength % 8).toBe(0);
    expect(file.names()).toEqual(['a']);
    await file.close();
  });

  test('zero tensors', async () => {
    const file = await load(rawSafetensors('{}'));
    expect(file.names()).toEqual([]);
    expect(file.metadata).toBeUndefined();
    await file.close();
  });

  test('zero tensors with metadata', async () => {
    const file = await load(rawSafetensors({ __metadata__: { format: 'pt' } }));
    expect(file.metadata).toEqual({ format: 'pt' });
    expect(file.names()).toEqual([]);
    await file.close();
  });

  test('"__metadata__": null means no metadata (as in the Rust library)', async () => {
    const file = await load(rawSafetensors({ __metadata__: null, a: f32x2 }, 8));
    expect(file.metadata).toBeUndefined();
    await file.close();
  });

  test('unknown extra keys in an entry are ignored', async () => {
    const file = await load(rawSafetensors({ a: { ...f32x2, note: 'x' } }, 8));
    expect(file.info('a').dtype).toBe('F32');
    await file.close();
  });

  test('names that are special in JavaScript objects', async () => {
    const text = '{"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"constructor":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}';
    const file = await load(rawSafetensors(text, Buffer.from([7, 9])));
    expect(file.names()).toEqual(['__proto__', 'constructor']);
    expect([...(await file.readBytes('__proto__'))]).toEqual([7]);
    await file.close();
  });

  test('tensors in the file in a different order than in the header', async () => {
    const file = await load(rawSafetensors({ a: entry('U8', [1], 1, 2), b: entry('U8', [1], 0, 1) }, Buffer.from([1, 2])));
    expect(file.names()).toEqual(['b', 'a']);
    expect([...(await file.readBytes('a'))]).toEqual([2]);
    await file.close();
  });

  test('parseHeader works on a whole file buffer without touching the disk', () => {
    const bytes = rawSafetensors({ __metadata__: { k: 'v' }, a: f32x2 }, 8);
    const header = parseHeader('memory.safetensors', bytes, bytes.byteLength);
    expect(header.metadata).toEqual({ k: 'v' });
    expect(header.tensors.get('a')).toMatchObject({ begin: header.dataStart, end: header.dataStart + 8, dataOffsets: [0, 8] });
  });
});

describe('SafetensorsFile handle', () => {
  test('an unknown tensor name is an InvalidArgumentError naming the file and the name', async () => {
    const file = await SafetensorsFile.open(writeTemp(rawSafetensors({ a: f32x2 }, 8)));
    await expect(file.readBytes('nope')).rejects.toThrow(InvalidArgumentError);
    await expect(file.readBytes('nope')).rejects.toThrow(`${file.path} has no tensor named "nope"`);
    expect(() => file.info('nope')).toThrow(InvalidArgumentError);
    await file.close();
  });

  test('reads after close throw DisposedError; close twice is fine', async () => {
    const file = await SafetensorsFile.open(writeTemp(rawSafetensors({ a: f32x2 }, 8)));
    await file.close();
    await file.close();
    await expect(file.readBytes('a')).rejects.toThrow(DisposedError);
  });

  test('await using closes the file', async () => {
    let outer: SafetensorsFile | undefined;
    {
      await using file = await SafetensorsFile.open(writeTemp(rawSafetensors({ a: f32x2 }, 8)));
      outer = file;
      expect((await file.readBytes('a')).byteLength).toBe(8);
    }
    await expect(outer.readBytes('a')).rejects.toThrow(DisposedError);
  });

  test('a file truncated after opening gives a SafetensorsError on read', async () => {
    const name = writeTemp(rawSafetensors({ a: f32x2, b: entry('F32', [2], 8, 16) }, 16));
    const file = await SafetensorsFile.open(name);
    truncateSync(name, file.header.dataStart + 10);
    await expect(file.readBytes('b')).rejects.toThrow(SafetensorsError);
    await expect(file.readBytes('b')).rejects.toThrow('truncated');
    await file.close();
  });

  test('a directory is refused with an InvalidArgumentError', async () => {
    const dir = path.join(tempDir(), 'folder.safetensors');
    mkdirSync(dir);
    await expect(SafetensorsFile.open(dir)).rejects.toThrow(InvalidArgumentError);
  });

  test('a missing file rejects with ENOENT', async () => {
    await expect(SafetensorsFile.open(path.join(tempDir(), 'missing.safetensors'))).rejects.toMatchObject({ code: 'ERR_FILE_SYSTEM', errno: 'ENOENT' });
  });
});
