/** Half (F16), bfloat16 and float8 conversions: known values, round-to-nearest-even, inf/NaN, subnormals. */

import { bf16ArrayToF32, bf16ToF32, f16ArrayToF32, f16ToF32, f32ArrayToBf16, f32ArrayToF16, f32ToBf16, f32ToF16 } from '../../lib/checkpoint/half';
import { f8e4m3ToF32, f8e5m2ToF32, f8e8m0ToF32 } from '../../lib/checkpoint/float8';
import { decodeTensorData } from '../../lib/checkpoint/tensor-data';

const isF16NaN = (bits: number): boolean => (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0;
const isBf16NaN = (bits: number): boolean => (bits & 0x7f80) === 0x7f80 && (bits & 0x7f) !== 0;

describe('f16', () => {
  test.each<[number, number]>([
    [0x0000, 0],
    [0x3c00, 1],
    [0xc000, -2],
    [0x3555, 0.333251953125],
    [0x7bff, 65504],
    [0xfbff, -65504],
    [0x0400, 2 ** -14],
    [0x0001, 2 ** -24],
    [0x03ff, 1023 * 2 ** -24],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ])('f16ToF32(0x%s) and back', (bits, value) => {
    expect(f16ToF32(bits)).toBe(value);
    expect(f32ToF16(value)).toBe(bits);
  });

  test('signed zero', () => {
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
    expect(f32ToF16(-0)).toBe(0x8000);
    expect(f32ToF16(0)).toBe(0x0000);
  });

  test('NaN', () => {
    expect(f16ToF32(0x7e00)).toBeNaN();
    expect(f16ToF32(0x7c01)).toBeNaN();
    expect(f16ToF32(0xfe00)).toBeNaN();
    expect(f32ToF16(NaN)).toBe(0x7e00);
  });

  test('overflow: 65519 rounds to 65504, 65520 (the halfway point) rounds to Infinity', () => {
    expect(f32ToF16(65519)).toBe(0x7bff);
    expect(f32ToF16(65520)).toBe(0x7c00);
    expect(f32ToF16(-65520)).toBe(0xfc00);
    expect(f32ToF16(1e10)).toBe(0x7c00);
    expect(f32ToF16(Number.MAX_VALUE)).toBe(0x7c00);
  });

  test('ties go to even', () => {
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00);
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f32ToF16(1 + 2 ** -11 + 2 ** -30)).toBe(0x3c01);
    expect(f32ToF16(-(1 + 2 ** -11))).toBe(0xbc00);
  });

  test('one rounding from the double, not two through float32', () => {
    // Math.fround would make this exactly the 1/1+ulp midpoint, which then ties down to 1.
    expect(f32ToF16(1 + 2 ** -11 + 2 ** -40)).toBe(0x3c01);
  });

  test('subnormals and underflow', () => {
    expect(f32ToF16(2 ** -25)).toBe(0x0000);
    expect(f32ToF16(2 ** -25 + 2 ** -40)).toBe(0x0001);
    expect(f32ToF16(3 * 2 ** -25)).toBe(0x0002);
    expect(f32ToF16(-(2 ** -26))).toBe(0x8000);
    expect(f32ToF16(1023.5 * 2 ** -24)).toBe(0x0400);
    expect(f32ToF16(Number.MIN_VALUE)).toBe(0x0000);
    expect(f32ToF16(2 ** -14 - 2 ** -30)).toBe(0x0400);
  });

  test('every bit pattern survives decode then encode', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = f16ToF32(bits);
      const back = f32ToF16(value);
      if (Number.isNaN(value)) {
        if (!isF16NaN(back)) throw new Error(`NaN 0x${bits.toString(16)} encoded as 0x${back.toString(16)}`);
      } else if (back !== bits) {
        throw new Error(`0x${bits.toString(16)} -> ${value} -> 0x${back.toString(16)}`);
      }
    }
  });

  test('every midpoint between neighbours ties to even, and just off it rounds to the nearer one', () => {
    for (let bits = 0; bits < 0x7bff; bits++) {
      const lo = f16ToF32(bits);
      const hi = f16ToF32(bits + 1);
      const mid = (lo + hi) / 2;
      const even = bits % 2 === 0 ? bits : bits + 1;
      const ulp = (hi - lo) / 1024;
      const got = [f32ToF16(mid), f32ToF16(mid - ulp), f32ToF16(mid + ulp), f32ToF16(-mid)];
      const want = [even, bits, bits + 1, even | 0x8000];
      if (got.join() !== want.join()) throw new Error(`around 0x${bits.toString(16)}: got ${got.join()} want ${want.join()}`);
    }
  });

  test('array conversions match the scalar ones', () => {
    const all = new Uint16Array(0x10000).map((_, i) => i);
    const decoded = f16ArrayToF32(all);
    for (let bits = 0; bits < 0x10000; bits++) {
      const want = Math.fround(f16ToF32(bits));
      if (!Object.is(decoded[bits], want)) throw new Error(`0x${bits.toString(16)}: ${decoded[bits]} vs ${want}`);
    }
    expect(Array.from(f32ArrayToF16([1, -2, 65520, 2 ** -24]))).toEqual([0x3c00, 0xc000, 0x7c00, 0x0001]);
  });
});

describe('bf16', () => {
  test.each<[number, number]>([
    [0x0000, 0],
    [0x3f80, 1],
    [0xc000, -2],
    [0x3eab, 0.333984375],
    [0x7f7f, (2 - 2 ** -7) * 2 ** 127],
    [0x0080, 2 ** -126],
    [0x0001, 2 ** -133],
    [0x7f80, Infinity],
    [0xff80, -Infinity],
  ])('bf16ToF32(0x%s) and back', (bits, value) => {
    expect(bf16ToF32(bits)).toBe(value);
    expect(f32ToBf16(value)).toBe(bits);
  });

  test('NaN, signed zero, overflow', () => {
    expect(bf16ToF32(0x7fc0)).toBeNaN();
    expect(bf16ToF32(0xffc1)).toBeNaN();
    expect(f32ToBf16(NaN)).toBe(0x7fc0);
    expect(f32ToBf16(-0)).toBe(0x8000);
    // float32's largest value rounds up past bfloat16's largest, to Infinity (as in PyTorch).
    expect(f32ToBf16(3.4028234663852886e38)).toBe(0x7f80);
  });

  test('ties go to even, subnormals round too', () => {
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80);
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(f32ToBf16(1 + 2 ** -8 + 2 ** -40)).toBe(0x3f81);
    expect(f32ToBf16(2 ** -134)).toBe(0x0000);
    expect(f32ToBf16(3 * 2 ** -134)).toBe(0x0002);
  });

  test('agrees with the float32 bit trick PyTorch uses, on random float32 values', () => {
    const words = new Uint32Array(200_000);
    for (let i = 0; i < words.length; i++) words[i] = (Math.random() * 2 ** 32) >>> 0;
    const floats = new Float32Array(words.buffer);
    for (let i = 0; i < words.length; i++) {
      const w = words[i] as number;
      const value = floats[i] as number;
      if (Number.isNaN(value)) continue;
      const want = ((w + 0x7fff + ((w >>> 16) & 1)) >>> 16) & 0xffff;
      const got = f32ToBf16(value);
      if (got !== want) throw new Error(`0x${w.toString(16)} (${value}): got 0x${got.toString(16)} want 0x${want.toString(16)}`);
    }
  });

  test('every bit pattern survives decode then encode, and arrays match scalars', () => {
    const all = new Uint16Array(0x10000).map((_, i) => i);
    const decoded = bf16ArrayToF32(all);
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = bf16ToF32(bits);
      if (!Object.is(decoded[bits], value)) throw new Error(`array decode differs at 0x${bits.toString(16)}`);
      const back = f32ToBf16(value);
      if (Number.isNaN(value) ? !isBf16NaN(back) : back !== bits) throw new Error(`0x${bits.toString(16)} -> 0x${back.toString(16)}`);
    }
    expect(Array.from(f32ArrayToBf16([1, 1 + 2 ** -8]))).toEqual([0x3f80, 0x3f80]);
  });
});

describe('float8 decoding', () => {
  test('F8_E4M3 (e4m3fn): no infinities, 448 is the largest value, only S.1111.111 is NaN', () => {
    expect(f8e4m3ToF32(0x38)).toBe(1);
    expect(f8e4m3ToF32(0x7e)).toBe(448);
    expect(f8e4m3ToF32(0xfe)).toBe(-448);
    expect(f8e4m3ToF32(0x7f)).toBeNaN();
    expect(f8e4m3ToF32(0xff)).toBeNaN();
    expect(f8e4m3ToF32(0x78)).toBe(256);
    expect(f8e4m3ToF32(0x01)).toBe(2 ** -9);
    expect(f8e4m3ToF32(0x08)).toBe(2 ** -6);
    expect(Object.is(f8e4m3ToF32(0x80), -0)).toBe(true);
  });

  test('F8_E5M2: the top byte of a half', () => {
    expect(f8e5m2ToF32(0x3c)).toBe(1);
    expect(f8e5m2ToF32(0x7b)).toBe(57344);
    expect(f8e5m2ToF32(0x7c)).toBe(Infinity);
    expect(f8e5m2ToF32(0x7d)).toBeNaN();
    expect(f8e5m2ToF32(0x01)).toBe(2 ** -16);
  });

  test('F8_E8M0: powers of two', () => {
    expect(f8e8m0ToF32(127)).toBe(1);
    expect(f8e8m0ToF32(130)).toBe(8);
    expect(f8e8m0ToF32(0)).toBe(2 ** -127);
    expect(f8e8m0ToF32(0xff)).toBeNaN();
  });
});

describe('decodeTensorData', () => {
  test('F16 and BF16 bytes decode through the conversions', () => {
    const bytes = Buffer.from([0x00, 0x3c, 0x00, 0xc0]);
    expect(Array.from(decodeTensorData('F16', bytes))).toEqual([1, -2]);
    expect(Array.from(decodeTensorData('BF16', Buffer.from([0x80, 0x3f, 0x00, 0xc0])))).toEqual([1, -2]);
  });

  test('an unaligned buffer is copied, an aligned one is shared', () => {
    const backing = new Uint8Array(13);
    new DataView(backing.buffer).setFloat32(1, 1.5, true);
    const unaligned = decodeTensorData('F32', backing.subarray(1, 5));
    expect(Array.from(unaligned)).toEqual([1.5]);
    expect(unaligned.buffer).not.toBe(backing.buffer);
    const aligned = decodeTensorData('F32', backing.subarray(4, 12));
    expect(aligned.buffer).toBe(backing.buffer);
  });

  test('I64 and U64 decode to bigints', () => {
    const bytes = Buffer.alloc(16);
    bytes.writeBigInt64LE(-5n, 0);
    bytes.writeBigUInt64LE(2n ** 64n - 1n, 8);
    expect(Array.from(decodeTensorData('I64', bytes))).toEqual([-5n, -1n]);
    expect(Array.from(decodeTensorData('U64', bytes))).toEqual([2n ** 64n - 5n, 2n ** 64n - 1n]);
  });

  test('a byte count that is not a multiple of the element size is rejected', () => {
    expect(() => decodeTensorData('F32', new Uint8Array(6))).toThrow('multiple of 4 bytes, got 6');
  });
});
