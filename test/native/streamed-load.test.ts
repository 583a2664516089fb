// Model folders stream their weights into the native model a batch at a time (no second copy of the
// weights): the strict check runs on the headers before any data is read, fp16 files are upcast per
// tensor, each batch is freed before the next is read, and the load reports what it read and how long it took.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { f16ArrayToF32, f32ArrayToF16 } from '../../lib/checkpoint/half';
import { writeSafetensors } from '../../lib/checkpoint/safetensors';
import { disposeStateDict, loadStateDict, streamStateDict, type StreamedTensorInfo } from '../../lib/checkpoint/state-dict';
import { InvalidArgumentError } from '../../lib/errors';
import { describeLoad } from '../../lib/models/native-model';
import { loadUNet, type UNet } from '../../lib/models/unet';
import type { Tensor } from '../../lib/native/tensor';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');
const COND = path.join(FIXTURES, 'unet2dcond-tiny');
const WEIGHTS = path.join(COND, 'diffusion_pytorch_model.safetensors');

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-stream-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function bytesOf(tensors: ReadonlyMap<string, Tensor>): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [n, t] of tensors) out.set(n, Buffer.from(t.toArray().buffer));
  return out;
}

/** The names whose bytes differ (or that one side lacks): jest's deep equality on megabytes of Buffers takes a minute. */
function differing(a: ReadonlyMap<string, Buffer>, b: ReadonlyMap<string, Buffer>): string[] {
  const names = new Set([...a.keys(), ...b.keys()]);
  return [...names].filter((n) => !(a.get(n)?.equals(b.get(n) ?? Buffer.alloc(0)) ?? false));
}

async function unetBytes(unet: UNet): Promise<Map<string, Buffer>> {
  const sd = await unet.stateDict();
  try {
    return bytesOf(sd);
  } finally {
    disposeStateDict(sd);
  }
}

test('loadUNet streams the file into the model bit for bit and reports the load', async () => {
  using unet = await loadUNet(COND);
  const file = await loadStateDict(WEIGHTS);
  try {
    expect(differing(await unetBytes(unet), bytesOf(file))).toEqual([]);
  } finally {
    disposeStateDict(file);
  }
  const stats = unet.loadStats!;
  const dataBytes = fs.statSync(WEIGHTS).size - 8 - fs.readFileSync(WEIGHTS).readUInt32LE(0);
  expect(stats).toMatchObject({ files: 1, tensors: (await unet.parameters()).length, bytes: dataBytes, fileDtypes: ['F32'] });
  expect(stats.seconds).toBeGreaterThan(0);
  expect(describeLoad(stats)).toMatch(/^\d+\.\d MB in \d+\.\d s \(\d+ tensors, F32\)$/);
});

test('an fp16 file is upcast tensor by tensor: exactly the float16 values, as float32', async () => {
  const dir = path.join(tmp, 'fp16');
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(COND, 'config.json'), path.join(dir, 'config.json'));
  const whole = await loadStateDict(WEIGHTS);
  const expected = new Map<string, Buffer>();
  try {
    const entries = [];
    for (const [n, t] of whole) {
      const half = f32ArrayToF16(t.toArray() as Float32Array);
      entries.push([n, { dtype: 'F16' as const, shape: t.shape, data: half }] as const);
      expected.set(n, Buffer.from(f16ArrayToF32(half).buffer));
    }
    await writeSafetensors(path.join(dir, 'diffusion_pytorch_model.fp16.safetensors'), entries);
  } finally {
    disposeStateDict(whole);
  }
  using unet = await loadUNet(dir, { variant: 'fp16' });
  expect(unet.loadStats?.fileDtypes).toEqual(['F16']);
  expect(differing(await unetBytes(unet), expected)).toEqual([]);
});

test('every header entry is checked before any data is read, and each batch is freed before the next', async () => {
  const seen: string[] = [];
  let prepared: readonly StreamedTensorInfo[] = [];
  let previous: Tensor[] = [];
  let batches = 0;
  const stats = await streamStateDict([WEIGHTS], {
    batchBytes: 4096,
    prepare: (infos) => {
      expect(seen).toEqual([]);
      prepared = infos;
      return Promise.resolve();
    },
    consume: (names, tensors) => {
      // The previous batch is gone: at most one batch of the checkpoint is alive at a time.
      expect(previous.every((t) => t.disposed)).toBe(true);
      const bytes = tensors.reduce((a, t) => a + t.byteLength, 0);
      // A batch closes once it reaches the limit: below it before its last tensor.
      expect(bytes - tensors[tensors.length - 1]!.byteLength).toBeLessThan(4096);
      seen.push(...names);
      previous = tensors;
      batches++;
      return Promise.resolve();
    },
  });
  expect(previous.every((t) => t.disposed)).toBe(true);
  expect(new Set(seen)).toEqual(new Set(prepared.map((i) => i.name)));
  expect(seen.length).toBe(prepared.length);
  expect(stats.tensors).toBe(prepared.length);
  expect(batches).toBeGreaterThan(3);
});

test('a check that fails reads no tensor data', async () => {
  const consume = jest.fn(() => Promise.resolve());
  await expect(
    streamStateDict([WEIGHTS], {
      prepare: () => Promise.reject(new InvalidArgumentError('refused')),
      consume,
    }),
  ).rejects.toThrow('refused');
  expect(consume).not.toHaveBeenCalled();
});

test('a file that does not match the config lists every problem at once, from the header alone', async () => {
  const dir = path.join(tmp, 'bad');
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(COND, 'config.json'), path.join(dir, 'config.json'));
  const whole = await loadStateDict(WEIGHTS);
  try {
    const entries = [];
    for (const [n, t] of whole) {
      if (n === 'conv_in.bias') continue;
      const data = t.toArray() as Float32Array;
      entries.push([n, { dtype: 'F32' as const, shape: n === 'conv_out.bias' ? [data.length, 1] : t.shape, data }] as const);
    }
    entries.push(['extra.weight', { dtype: 'F32' as const, shape: [1], data: new Float32Array([1]) }] as const);
    await writeSafetensors(path.join(dir, 'diffusion_pytorch_model.safetensors'), entries);
  } finally {
    disposeStateDict(whole);
  }
  const error = await loadUNet(dir).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(InvalidArgumentError);
  const message = (error as Error).message;
  expect(message).toContain('diffusion_pytorch_model.safetensors does not match the model');
  expect(message).toMatch(/missing weights \(1\):\s+conv_in\.bias/);
  expect(message).toMatch(/unexpected weights \(1\):\s+extra\.weight/);
  expect(message).toMatch(/wrongly shaped weights \(1\):\s+conv_out\.bias \(expected \[4\], found \[4, 1\]\)/);
});
