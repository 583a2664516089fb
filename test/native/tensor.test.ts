import { DisposedError, InvalidArgumentError } from '../../lib/errors';
import { DTYPES, DTYPE_BYTES, type DType } from '../../lib/native/dtype';
import { Tensor } from '../../lib/native/tensor';
import { runtimeInfo } from '../../lib/native/runtime';

function sampleBytes(dtype: DType, numel: number): Uint8Array {
  const bytes = new Uint8Array(numel * DTYPE_BYTES[dtype]);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 37 + 11) & 0xff;
  if (dtype === 'bool') for (let i = 0; i < bytes.length; i++) bytes[i] = i % 3 === 0 ? 1 : 0;
  // Keep half/float patterns away from NaN payloads, whose bits a conversion may canonicalise.
  if (dtype === 'float16' || dtype === 'bfloat16') for (let i = 1; i < bytes.length; i += 2) bytes[i]! &= 0x3f;
  if (dtype === 'float32') for (let i = 3; i < bytes.length; i += 4) bytes[i]! &= 0x3f;
  if (dtype === 'float64') for (let i = 7; i < bytes.length; i += 8) bytes[i]! &= 0x3f;
  return bytes;
}

function rawBytes(array: ArrayBufferView): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

describe('Tensor round trip', () => {
  test.each(DTYPES)('%s: bytes in = bytes out, sync and async', async (dtype) => {
    const bytes = sampleBytes(dtype, 24);
    using t = Tensor.from(bytes, [2, 3, 4], { dtype });
    expect(t.shape).toEqual([2, 3, 4]);
    expect(t.dtype).toBe(dtype);
    expect(t.device).toBe('cpu');
    expect(t.byteLength).toBe(bytes.length);
    const half = dtype === 'float16' || dtype === 'bfloat16';
    const sync = t.toArray({ raw: half });
    const async = await t.data({ raw: half });
    expect(rawBytes(sync)).toEqual(bytes);
    expect(rawBytes(async)).toEqual(bytes);
  });

  test('typed array classes match the dtype', () => {
    const kinds: Array<[DType, string]> = [
      ['float32', 'Float32Array'],
      ['float64', 'Float64Array'],
      ['float16', 'Float32Array'],
      ['bfloat16', 'Float32Array'],
      ['int64', 'BigInt64Array'],
      ['int32', 'Int32Array'],
      ['int16', 'Int16Array'],
      ['int8', 'Int8Array'],
      ['uint8', 'Uint8Array'],
      ['bool', 'Uint8Array'],
    ];
    for (const [dtype, name] of kinds) {
      using t = Tensor.from(sampleBytes(dtype, 4), [4], { dtype });
      expect(t.toArray().constructor.name).toBe(name);
    }
  });

  test('float16 and bfloat16 read back as float32 values by default', async () => {
    // 1.0, -2.0, 0.5, 65504 in IEEE half; 1.0, -2.0, 0.5, 3.0 in bfloat16.
    using h = Tensor.from(new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7bff]), [4], { dtype: 'float16' });
    expect(Array.from<number | bigint>(h.toArray())).toEqual([1, -2, 0.5, 65504]);
    using b = Tensor.from(new Uint16Array([0x3f80, 0xc000, 0x3f00, 0x4040]), [4], { dtype: 'bfloat16' });
    expect(Array.from<number | bigint>(await b.data())).toEqual([1, -2, 0.5, 3]);
  });

  test('dtype is inferred from the array type', () => {
    using a = Tensor.from(new BigInt64Array([1n, -5n]), [2]);
    expect(a.dtype).toBe('int64');
    expect(Array.from<number | bigint>(a.toArray())).toEqual([1n, -5n]);
    using f = Tensor.from(new Float64Array([1.5]), [1]);
    expect(f.dtype).toBe('float64');
  });

  test('0-d and empty tensors', async () => {
    using scalar = Tensor.from(new Float32Array([7]), []);
    expect(scalar.shape).toEqual([]);
    expect(Array.from<number | bigint>(await scalar.data())).toEqual([7]);
    using empty = Tensor.from(new Float32Array(0), [0, 3]);
    expect(empty.shape).toEqual([0, 3]);
    expect(empty.toArray().length).toBe(0);
    expect((await empty.data()).length).toBe(0);
  });

  test('to() copies, converts dtype, and never aliases the source', async () => {
    using a = Tensor.from(new Float32Array([1.25, 2.5, -3]), [3]);
    using b = await a.to('cpu', 'float64');
    expect(b.dtype).toBe('float64');
    expect(Array.from<number | bigint>(b.toArray())).toEqual([1.25, 2.5, -3]);
    using c = await a.to('cpu');
    a.dispose();
    expect(Array.from<number | bigint>(c.toArray())).toEqual([1.25, 2.5, -3]);
  });

  test('the input buffer is copied, not referenced', () => {
    const data = new Float32Array([1, 2]);
    using t = Tensor.from(data, [2]);
    data[0] = 99;
    expect(Array.from<number | bigint>(t.toArray())).toEqual([1, 2]);
  });
});

describe('Tensor lifecycle', () => {
  test('dispose is idempotent and use after dispose throws DisposedError', async () => {
    const t = Tensor.from(new Float32Array([1]), [1]);
    t.dispose();
    t.dispose();
    expect(t.disposed).toBe(true);
    expect(() => t.shape).toThrow(DisposedError);
    expect(() => t.toArray()).toThrow(DisposedError);
    await expect(t.data()).rejects.toThrow(DisposedError);
    await expect(t.to('cpu')).rejects.toThrow(DisposedError);
    expect(String(t)).toBe('Tensor(disposed)');
  });

  test('`using` disposes at the end of the block', () => {
    let escaped: Tensor | undefined;
    {
      using t = Tensor.from(new Float32Array([1]), [1]);
      escaped = t;
      expect(escaped.disposed).toBe(false);
    }
    expect(escaped.disposed).toBe(true);
  });

  test('an async read in flight survives dispose of the handle', async () => {
    const t = Tensor.from(new Float32Array(1 << 16).fill(3), [1 << 16]);
    const pending = t.data();
    t.dispose();
    const values = await pending;
    expect(values.length).toBe(1 << 16);
    expect(values[123]).toBe(3);
  });
});

describe('Tensor argument errors', () => {
  test('wrong byte length names shape and dtype', () => {
    expect(() => Tensor.from(new Float32Array(5), [2, 3])).toThrow(
      /Expected 24 bytes of data for shape \[2, 3\] and dtype float32 for data but received a Float32Array of 20 bytes/,
    );
  });
  test('bad shape, dtype, device', () => {
    expect(() => Tensor.from(new Float32Array(1), [-1])).toThrow(InvalidArgumentError);
    expect(() => Tensor.from(new Float32Array(1), [1.5])).toThrow(/Expected an array of at most 8 non-negative integers for shape/);
    expect(() => Tensor.from(new Float32Array(1), [1], { dtype: 'float8' as DType })).toThrow(/for options.dtype but received "float8"/);
    expect(() => Tensor.from(new Uint16Array(1), [1])).toThrow(/options.dtype/);
    expect(() => Tensor.from([1, 2] as unknown as Float32Array, [2])).toThrow(/Expected a TypedArray or Buffer for data but received an array of length 2/);
  });
  test('an unknown device is a clear error; a CUDA device is refused exactly where runtimeInfo() reports none', async () => {
    using t = Tensor.from(new Float32Array(1), [1]);
    await expect(t.to('tpu')).rejects.toThrow(InvalidArgumentError);
    const info = await runtimeInfo();
    if (info.backend === 'cuda') {
      using moved = await t.to('cuda:0');
      expect(moved.device).toBe('cuda:0');
    } else {
      await expect(t.to('cuda:0')).rejects.toThrow(/device: "cuda:0" is not available: runtimeInfo\(\) reports backend "cpu" with 0 CUDA device/);
    }
    // Past the last GPU on any machine.
    await expect(t.to(`cuda:${info.cudaDeviceCount}`)).rejects.toThrow(InvalidArgumentError);
  });
});
