/**
 * IEEE half (F16) and bfloat16 (BF16) conversions to and from JS numbers.
 *
 * Encoding rounds the exact double to nearest, ties to even, in one step: going through float32 first
 * (Math.fround) would round twice and can land one ulp off for doubles that are not float32 values.
 */

const scratch = new DataView(new ArrayBuffer(8));

/** 2^n for -1022 <= n <= 1023, built from the exponent bits so it is exact by construction. */
function pow2(n: number): number {
  scratch.setUint32(0, (n + 1023) << 20);
  scratch.setUint32(4, 0);
  return scratch.getFloat64(0);
}

/** floor(log2(a)) for a positive normal double, read from its exponent bits (Math.log2 can be off by one). */
function exponentOf(a: number): number {
  scratch.setFloat64(0, a);
  return ((scratch.getUint32(0) >>> 20) & 0x7ff) - 1023;
}

function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const rest = x - floor;
  if (rest > 0.5) return floor + 1;
  if (rest < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * Bits of `value` in a binary format with an implicit leading 1, `expBits` exponent bits and
 * `mantBits` stored mantissa bits, with infinities and NaN at the all-ones exponent (F16, BF16, F8_E5M2).
 */
export function encodeIeeeBits(value: number, expBits: number, mantBits: number): number {
  const bias = (1 << (expBits - 1)) - 1;
  const expAllOnes = (1 << expBits) - 1;
  const infBits = expAllOnes << mantBits;
  if (Number.isNaN(value)) return infBits | (1 << (mantBits - 1));
  const sign = value < 0 || Object.is(value, -0) ? 1 << (expBits + mantBits) : 0;
  const a = Math.abs(value);
  if (a === Infinity) return sign | infBits;
  const minNormalExp = 1 - bias;
  if (a < pow2(minNormalExp)) {
    // Subnormal: a count of the smallest subnormal step. Rounding up to 1 << mantBits yields the
    // smallest normal, whose encoding is exactly that integer.
    return sign | roundHalfEven(a * pow2(mantBits - minNormalExp));
  }
  let exp = exponentOf(a);
  let mant = roundHalfEven(a * pow2(mantBits - exp));
  if (mant === 2 ** (mantBits + 1)) {
    exp += 1;
    mant = 2 ** mantBits;
  }
  if (exp + bias >= expAllOnes) return sign | infBits;
  return sign | ((exp + bias) << mantBits) | (mant - 2 ** mantBits);
}

/** The value of IEEE half-precision bits (the low 16 bits of `bits`). */
export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** Half-precision bits of `value`, rounded to nearest even; overflow gives ±Infinity, NaN gives 0x7e00. */
export function f32ToF16(value: number): number {
  return encodeIeeeBits(value, 5, 10);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** The value of bfloat16 bits (the low 16 bits of `bits`): the top half of a float32. */
export function bf16ToF32(bits: number): number {
  u32Scratch[0] = (bits & 0xffff) << 16;
  return f32Scratch[0] as number;
}

/** bfloat16 bits of `value`, rounded to nearest even; overflow gives ±Infinity, NaN gives 0x7fc0. */
export function f32ToBf16(value: number): number {
  return encodeIeeeBits(value, 8, 7);
}

let f16Table: Float32Array | undefined;

/** Every half value decoded once: decoding whole tensors by lookup is several times faster. */
function halfTable(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16ToF32(i);
  }
  return f16Table;
}

/** Decodes an array of half bits to float32 (exact: every half value is a float32 value). */
export function f16ArrayToF32(bits: Uint16Array): Float32Array {
  const table = halfTable();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i] as number] as number;
  return out;
}

/** Decodes an array of bfloat16 bits to float32 (exact). */
export function bf16ArrayToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = (bits[i] as number) << 16;
  return out;
}

/** Encodes numbers as half bits, each rounded to nearest even. */
export function f32ArrayToF16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16(values[i] as number);
  return out;
}

/** Encodes numbers as bfloat16 bits, each rounded to nearest even. */
export function f32ArrayToBf16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToBf16(values[i] as number);
  return out;
}
