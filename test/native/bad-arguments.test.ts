// Calls the raw addon (bypassing the TypeScript checks) with wrong types, shapes and dtypes: every
// call must throw or reject with a JS Error naming the parameter — never abort or crash the process.
import { loadNative } from '../../lib/native/load';
import type { NativeAddon } from '../../lib/native/types';

const native: NativeAddon = loadNative();
type AnyFn = (...args: unknown[]) => unknown;

const garbage: unknown[] = [
  undefined,
  null,
  0,
  -1,
  1.5,
  NaN,
  Infinity,
  2 ** 60,
  'x',
  '',
  true,
  {},
  [],
  [-1],
  [1.5],
  ['a'],
  [1, 2, 3, 4, 5, 6, 7, 8, 9],
  Symbol('s'),
  () => 1,
  10n,
  new Float32Array(3),
  new ArrayBuffer(4),
  Buffer.from('abc'),
  { n: 'x' },
  { n: 1e9, reps: 1, device: 'cpu', dtype: 'float32' },
];

async function settle(fn: () => unknown): Promise<Error | undefined> {
  try {
    await fn();
    return undefined;
  } catch (error) {
    return error as Error;
  }
}

test('NativeTensor.fromBytes: each bad argument is a TypeError naming it', async () => {
  const fromBytes = native.NativeTensor.fromBytes as unknown as AnyFn;
  const cases: Array<[unknown[], RegExp]> = [
    [[], /Expected a TypedArray, Buffer, DataView or ArrayBuffer for data but received undefined/],
    [[42, [1], 'float32'], /for data but received 42 of type number/],
    [[new Float32Array(1), 'x', 'float32'], /Expected an array of at most 8 non-negative integers for shape but received "x"/],
    [[new Float32Array(1), [-1], 'float32'], /Expected an integer in \[0, \d+\] for shape\[0\] but received -1 of type number/],
    [[new Float32Array(1), [0.5], 'float32'], /for shape\[0\] but received 0.5 of type number/],
    [[new Float32Array(1), [1], 'float8'], /for dtype but received "float8" of type string/],
    [[new Float32Array(1), [1], 5], /for dtype but received 5 of type number/],
    [[new Float32Array(1), [2], 'float32'], /Expected 8 bytes for data \(shape × dtype size\) but received 4 bytes/],
    [[new Float32Array(1), [1, 2, 3, 4, 5, 6, 7, 8, 9], 'float32'], /at most 8/],
    [[new Float32Array(1), [2 ** 40, 2 ** 40], 'float32'], /fewer than 2\^53 elements/],
  ];
  for (const [args, message] of cases) {
    const error = await settle(() => fromBytes(...args));
    // By name: the addon's errors belong to the main context, not to jest's sandbox realm.
    expect(error?.name).toBe('TypeError');
    expect((error as Error & { code?: string }).code).toBe('ERR_INVALID_ARG');
    expect(error?.message).toMatch(message);
  }
});

test('every entry point survives garbage in every position', async () => {
  const t = native.NativeTensor.fromBytes(new Float32Array([1, 2]), [2], 'float32');
  const entries: Array<[string, AnyFn]> = [
    ['fromBytes', native.NativeTensor.fromBytes as unknown as AnyFn],
    ['setThreads', native.setThreads as unknown as AnyFn],
    ['gemmBenchmark', native.gemmBenchmark as unknown as AnyFn],
    ['readSync', t.readSync.bind(t) as AnyFn],
    ['read', t.read.bind(t) as AnyFn],
    ['to', t.to.bind(t) as AnyFn],
  ];
  for (const [name, fn] of entries) {
    for (const a of garbage) {
      for (const b of [undefined, a]) {
        const error = await settle(() => fn(a, b, a));
        if (error !== undefined) {
          expect(error.name).toMatch(/Error$/);
          expect(typeof error.message).toBe('string');
          expect(error.message.length).toBeGreaterThan(5);
        }
      }
    }
    expect(name).toBeTruthy();
  }
  // The handle still works after all that.
  expect(Array.from(t.readSync() as Float32Array)).toEqual([1, 2]);
  t.dispose();
});

test('a disposed native handle rejects every use with ERR_DISPOSED', async () => {
  const t = native.NativeTensor.fromBytes(new Float32Array([1]), [1], 'float32');
  t.dispose();
  for (const use of [() => t.shape, () => t.dtype, () => t.readSync(), () => t.read(), () => t.to('cpu')]) {
    const error = (await settle(use)) as Error & { code?: string };
    expect(error.code).toBe('ERR_DISPOSED');
  }
});

test('the constructor cannot be called directly', () => {
  const Ctor = native.NativeTensor as unknown as new (...args: unknown[]) => unknown;
  expect(() => new Ctor()).toThrow(/cannot be constructed directly/);
  expect(() => new Ctor({})).toThrow(/cannot be constructed directly/);
});

test('a native tensor of a foreign class is refused where a tensor is expected', async () => {
  const error = await settle(() => (native.gemmBenchmark as unknown as AnyFn)('nope'));
  expect(error?.message).toMatch(/Expected an object for options but received "nope"/);
});
