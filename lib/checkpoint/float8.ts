/**
 * Decoding of the 8-bit float dtypes safetensors stores (decode only: difftune reads such checkpoints
 * but does not produce them).
 */

import { f16ToF32 } from './half';

/** F8_E5M2: 5 exponent bits, 2 mantissa bits, with infinities; exactly the top byte of a half. */
export function f8e5m2ToF32(bits: number): number {
  return f16ToF32((bits & 0xff) << 8);
}

/**
 * F8_E4M3 as PyTorch's float8_e4m3fn: 4 exponent bits (bias 7), 3 mantissa bits, no infinities,
 * and NaN only at S.1111.111, so the largest finite value is 448.
 */
export function f8e4m3ToF32(bits: number): number {
  const sign = bits & 0x80 ? -1 : 1;
  const exp = (bits >>> 3) & 0xf;
  const mant = bits & 0x7;
  if (exp === 0xf && mant === 0x7) return NaN;
  if (exp === 0) return sign * mant * 2 ** -9;
  return sign * (8 + mant) * 2 ** (exp - 10);
}

/** F8_E8M0 (the MX block-scale format): an unsigned power of two 2^(bits - 127); 0xff is NaN. */
export function f8e8m0ToF32(bits: number): number {
  const exp = bits & 0xff;
  return exp === 0xff ? NaN : 2 ** (exp - 127);
}
