/**
 * Comparing a computed tensor with an expected one the way the fixtures' README prescribes. This reads
 * both back and measures them; it is verification, not model math, so it lives in TypeScript. Pure
 * apart from reading the tensors.
 */
import { NativeError } from '../errors';
import type { Tensor } from '../native/tensor';

/** One compared tensor (or scalar) of a case. */
export interface Check {
  /** What was compared, e.g. "step_003/prev_sample". */
  name: string;
  /** max|got − expected| / max|expected| (Infinity on NaN or a shape mismatch). */
  rel: number;
  bound: number;
  pass: boolean;
  /** Why it failed when the numbers alone do not say (shape or length mismatch). */
  note?: string;
}

type Numeric = ArrayLike<number> | ArrayLike<bigint>;

function toNumber(v: number | bigint): number {
  return typeof v === 'bigint' ? Number(v) : v;
}

/** max|got − expected| / max|expected|; max|got − expected| itself when expected is all zeros. */
export function relError(got: Numeric, expected: Numeric): number {
  if (got.length !== expected.length) return Infinity;
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < got.length; i++) {
    const g = toNumber(got[i]!);
    const e = toNumber(expected[i]!);
    const d = Math.abs(g - e);
    if (Number.isNaN(d)) return Infinity;
    if (d > maxDiff) maxDiff = d;
    const a = Math.abs(e);
    if (a > maxRef) maxRef = a;
  }
  return maxRef === 0 ? maxDiff : maxDiff / maxRef;
}

export function checkNumbers(name: string, got: Numeric, expected: Numeric, bound: number): Check {
  if (got.length !== expected.length) {
    return { name, rel: Infinity, bound, pass: false, note: `${got.length} values computed, ${expected.length} expected` };
  }
  const rel = relError(got, expected);
  return { name, rel, bound, pass: rel <= bound };
}

export function checkScalar(name: string, got: number, expected: number, bound: number): Check {
  return checkNumbers(name, [got], [expected], bound);
}

export async function checkTensor(name: string, got: Tensor, expected: Tensor, bound: number): Promise<Check> {
  const gotShape = got.shape;
  const expectedShape = expected.shape;
  if (gotShape.length !== expectedShape.length || gotShape.some((d, i) => d !== expectedShape[i])) {
    return { name, rel: Infinity, bound, pass: false, note: `shape [${gotShape.join(', ')}] computed, [${expectedShape.join(', ')}] expected` };
  }
  return checkNumbers(name, await got.data(), await expected.data(), bound);
}

/** One check per expected parameter gradient (`expected`: parameter name → tensor key, read by `get`). */
export async function checkGradParams(
  got: ReadonlyMap<string, Tensor>,
  expected: Readonly<Record<string, string>>,
  get: (k: string) => Tensor,
  bound: number,
): Promise<Check[]> {
  const checks: Check[] = [];
  for (const [name, k] of Object.entries(expected)) {
    const g = got.get(name);
    if (g === undefined) throw new NativeError(`expected a gradient for parameter ${name} (the case compares it) but the model returned none`);
    checks.push(await checkTensor(`grad_params/${name}`, g, get(k), bound));
  }
  return checks;
}
