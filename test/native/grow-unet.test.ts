// Growing a U-Net to twice its resolution (docs/grow-unet.md): at initialisation the grown model g
// satisfies avgpool2×2(g(up2 x, t, c)) = f(x, t, c) within 1e-5 (relative to max|f|) for the fixture
// U-Nets and the shipped MNIST model; the grown folder reloads to identical outputs and passes our
// config schema; what the construction cannot cover is refused naming the field.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { disposeStateDict, loadStateDict, type StateDict } from '../../lib/checkpoint/state-dict';
import { parseLenientJson } from '../../lib/config/json';
import { parseUNetConfig } from '../../lib/config/unet';
import { Rng } from '../../lib/data/random';
import { ConfigError } from '../../lib/errors';
import { growUNet, growUNetConfig, growUNetParts } from '../../lib/models/grow';
import { growModelFolder } from '../../lib/models/grow-folder';
import { runGrowCli } from '../../lib/models/grow-cli';
import { loadUNet, UNet, type ForwardOptions } from '../../lib/models/unet';
import { Tensor } from '../../lib/native/tensor';

const ROOT = path.join(__dirname, '..', '..');
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'diffusers');
const TINY = path.join(FIXTURES, 'unet2d-tiny');
const COND = path.join(FIXTURES, 'unet2dcond-tiny');
const CLASSCOND = path.join(FIXTURES, 'unet2d-classcond');
const MNIST = path.join(ROOT, 'models', 'mnist-ddpm');

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-grow-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function readJson(file: string): Record<string, unknown> {
  return parseLenientJson(fs.readFileSync(file, 'utf8'), file) as Record<string, unknown>;
}

function randomArray(n: number, rng: Rng): Float32Array {
  return Float32Array.from({ length: n }, () => 2 * rng.float() - 1);
}

/** Nearest ×2 of [planes, h, w], written independently of lib/models/grow-check.ts. */
function up2(x: Float32Array, planes: number, h: number, w: number): Float32Array {
  const out = new Float32Array(x.length * 4);
  out.forEach((_, k) => {
    const j = k % (2 * w);
    const i = Math.floor(k / (2 * w)) % (2 * h);
    const p = Math.floor(k / (4 * h * w));
    out[k] = x[(p * h + Math.floor(i / 2)) * w + Math.floor(j / 2)]!;
  });
  return out;
}

function pool2(x: Float32Array, planes: number, h: number, w: number): Float32Array {
  const out = new Float32Array(planes * h * w);
  for (let k = 0; k < x.length; k++) {
    const j = k % (2 * w);
    const i = Math.floor(k / (2 * w)) % (2 * h);
    const p = Math.floor(k / (4 * h * w));
    out[(p * h + Math.floor(i / 2)) * w + Math.floor(j / 2)]! += x[k]! / 4;
  }
  return out;
}

/** The conditioning a model takes, random: encoder states for text-style U-Nets, labels for class-conditional ones. */
function conditioning(unet: UNet, batch: number, rng: Rng): ForwardOptions {
  const c = unet.config;
  const options: ForwardOptions = {};
  if (c.num_class_embeds !== null)
    options.classLabels = Tensor.from(
      BigInt64Array.from({ length: batch }, () => BigInt(rng.int(c.num_class_embeds!))),
      [batch],
    );
  if (c._class_name === 'UNet2DConditionModel') {
    const dim = c.cross_attention_dim as number;
    options.encoderHiddenStates = Tensor.from(randomArray(batch * 5 * dim, rng), [batch, 5, dim]);
  }
  return options;
}

async function out(unet: UNet, x: Float32Array, shape: number[], t: number, cond: ForwardOptions): Promise<Float32Array> {
  using sample = Tensor.from(x, shape);
  using ts = Tensor.from(new Float32Array(shape[0]!).fill(t), [shape[0]!]);
  using y = await unet.forward(sample, ts, cond);
  return (await y.data()) as Float32Array;
}

/** max |avgpool(g(up2 x)) − f(x)| / max |f(x)| over timesteps, and whether g's outputs are finite. */
async function propertyError(f: UNet, g: UNet, r: number, seed: number): Promise<number[]> {
  const rng = new Rng(seed);
  const batch = 2;
  const cin = f.config.in_channels;
  const cout = f.config.out_channels;
  const errors: number[] = [];
  for (const t of [0, 1, 250, 999]) {
    const x = randomArray(batch * cin * r * r, rng);
    const cond = conditioning(f, batch, rng);
    try {
      const fx = await out(f, x, [batch, cin, r, r], t, cond);
      const gx = await out(g, up2(x, batch * cin, r, r), [batch, cin, 2 * r, 2 * r], t, cond);
      expect(gx.length).toBe(4 * fx.length);
      const pooled = pool2(gx, batch * cout, r, r);
      let diff = 0;
      let scale = 0;
      for (let i = 0; i < fx.length; i++) {
        diff = Math.max(diff, Math.abs(pooled[i]! - fx[i]!));
        scale = Math.max(scale, Math.abs(fx[i]!));
      }
      expect(scale).toBeGreaterThan(0);
      errors.push(diff / scale);
    } finally {
      cond.classLabels?.dispose();
      cond.encoderHiddenStates?.dispose();
    }
  }
  return errors;
}

test('the test helpers: pool2 undoes up2', () => {
  const x = randomArray(2 * 3 * 5, new Rng(0));
  expect(pool2(up2(x, 2, 3, 5), 2, 3, 5)).toEqual(x);
});

test.each([
  ['unet2d-tiny', TINY, 16],
  ['unet2dcond-tiny (encoder states)', COND, 16],
  ['unet2d-classcond (class labels)', CLASSCOND, 16],
  ['models/mnist-ddpm', path.join(MNIST, 'unet'), 28],
])('%s: avgpool(g(up2 x)) = f(x) within 1e-5 at several timesteps', async (_name, dir, r) => {
  using f = await loadUNet(dir);
  using g = await growUNet(f);
  expect(g.config.block_out_channels).toEqual([f.config.block_out_channels[0], ...f.config.block_out_channels]);
  expect(g.config.down_block_types[0]).toBe('DownBlock2D');
  expect(g.config.up_block_types.at(-1)).toBe('UpBlock2D');
  const errors = await propertyError(f, g, r, 1);
  for (const e of errors) expect(e).toBeLessThanOrEqual(1e-5);
  // The same construction at another input size (any multiple of the old model's downsampling).
  for (const e of await propertyError(f, g, r === 28 ? 12 : 8, 2)) expect(e).toBeLessThanOrEqual(1e-5);
});

test('the property test can fail: a perturbed grown conv_out breaks it', async () => {
  using f = await loadUNet(TINY);
  const weights = await f.stateDict();
  const grown = await growUNetParts(f.configJson(), weights);
  try {
    const w = grown.weights.get('conv_out.weight')!;
    const values = (await w.data()) as Float32Array;
    values[4]! += 0.05;
    grown.weights.set('conv_out.weight', Tensor.from(values, w.shape, { dtype: 'float32' }));
    w.dispose();
    using g = await UNet.fromConfig(grown.config);
    await g.loadStateDict(grown.weights);
    expect(Math.max(...(await propertyError(f, g, 16, 3)))).toBeGreaterThan(1e-4);
  } finally {
    disposeStateDict(weights);
    disposeStateDict(grown.weights);
  }
});

test('grow a pipeline folder (models/mnist-ddpm): same layout, config passes the schema, reload gives identical outputs', async () => {
  const outDir = path.join(tmp, 'grown');
  const grown = await growModelFolder(MNIST, outDir, { resolution: 28 });
  expect(grown.unetDir).toBe(path.join(outDir, 'unet'));
  expect(fs.existsSync(path.join(outDir, 'model_index.json'))).toBe(true);
  expect(fs.existsSync(path.join(outDir, 'scheduler', 'scheduler_config.json'))).toBe(true);
  expect(fs.existsSync(path.join(outDir, 'README.md'))).toBe(false); // the old model card describes the old model

  const config = readJson(path.join(outDir, 'unet', 'config.json'));
  const parsed = parseUNetConfig(config, 'grown config.json');
  expect(parsed.unknownKeys).toEqual([]);
  // One new top level as wide as the first: [32, 64, 64] → [32, 32, 64, 64] (read from the shipped model, which pretrain:mnist may change).
  const shipped = readJson(path.join(MNIST, 'unet', 'config.json')).block_out_channels as number[];
  expect(config.block_out_channels).toEqual([shipped[0], ...shipped]);
  expect(config.sample_size).toBe(56); // twice models/mnist-ddpm's sample_size (28)
  expect(config.down_block_types).toEqual(['DownBlock2D', 'DownBlock2D', 'DownBlock2D', 'AttnDownBlock2D']);
  expect(config.up_block_types).toEqual(['AttnUpBlock2D', 'UpBlock2D', 'UpBlock2D', 'UpBlock2D']);

  // The folder's weights are exactly growUNet's, and a reload computes the same outputs bit for bit.
  using f = await loadUNet(path.join(MNIST, 'unet'));
  using inMemory = await growUNet(f);
  using reloaded = await loadUNet(grown.unetDir);
  const rng = new Rng(4);
  const x = randomArray(2 * 56 * 56, rng);
  const a = await out(inMemory, x, [2, 1, 56, 56], 300, {});
  const b = await out(reloaded, x, [2, 1, 56, 56], 300, {});
  expect(b).toEqual(a);
  const saved = path.join(tmp, 'saved-again');
  await reloaded.save(saved);
  using again = await loadUNet(saved);
  expect(await out(again, x, [2, 1, 56, 56], 300, {})).toEqual(a);
  await expect(growModelFolder(MNIST, outDir)).rejects.toThrow(/exists and is not empty/);
});

test('grow a U-Net folder (unet2dcond-tiny): a U-Net folder with its scheduler, sample_size doubled, per-level lists extended', async () => {
  const outDir = path.join(tmp, 'cond');
  const grown = await growModelFolder(COND, outDir);
  expect(grown.unetDir).toBe(outDir);
  expect(fs.existsSync(path.join(outDir, 'scheduler'))).toBe(fs.existsSync(path.join(COND, 'scheduler')));
  const config = readJson(path.join(outDir, 'config.json'));
  expect(config.sample_size).toBe(32);
  parseUNetConfig(config, 'grown');

  const raw = {
    ...readJson(path.join(COND, 'config.json')),
    attention_head_dim: [2, 4],
    cross_attention_dim: [32, 32],
    transformer_layers_per_block: [1, 2],
    only_cross_attention: [false, true],
    layers_per_block: [1, 2],
    reverse_transformer_layers_per_block: [3, 1],
  };
  const g = growUNetConfig(raw);
  expect(g.attention_head_dim).toEqual([2, 2, 4]);
  expect(g.cross_attention_dim).toEqual([32, 32, 32]);
  expect(g.transformer_layers_per_block).toEqual([1, 1, 2]);
  expect(g.only_cross_attention).toEqual([false, false, true]);
  expect(g.layers_per_block).toEqual([1, 1, 2]);
  expect(g.reverse_transformer_layers_per_block).toEqual([3, 1, 1]);
  expect(g.mid_block_type).toBe('UNetMidBlock2DCrossAttn');
});

test('bf16 weights: grown tensors stay bf16, and the property holds up to bf16 rounding', async () => {
  const weights = await loadStateDict(path.join(TINY, 'diffusion_pytorch_model.safetensors'));
  const bf16: StateDict = new Map();
  try {
    for (const [k, t] of weights) bf16.set(k, await t.to('cpu', 'bfloat16'));
    const grown = await growUNetParts(readJson(path.join(TINY, 'config.json')), bf16);
    try {
      for (const [k, t] of grown.weights) expect([k, t.dtype]).toEqual([k, 'bfloat16']);
      // f from the same bf16-rounded weights, both computing in float32.
      using f = await UNet.fromConfig(readJson(path.join(TINY, 'config.json')));
      await f.loadStateDict(bf16);
      using g = await UNet.fromConfig(grown.config);
      await g.loadStateDict(grown.weights);
      const errors = await propertyError(f, g, 16, 5);
      for (const e of errors) expect(e).toBeLessThan(3e-2);
    } finally {
      disposeStateDict(grown.weights);
    }
  } finally {
    disposeStateDict(weights);
    disposeStateDict(bf16);
  }
});

describe('refusals name the field', () => {
  const tiny = () => readJson(path.join(TINY, 'config.json'));
  const cond = () => readJson(path.join(COND, 'config.json'));
  test.each([
    ['downsample_padding 0', () => ({ ...tiny(), downsample_padding: 0 }), /"downsample_padding" is 0/],
    [
      '4·in_channels > C0',
      () => ({ ...tiny(), in_channels: 9 }),
      /"in_channels" is 9: .*4 × in_channels \(36\) must be at most block_out_channels\[0\] \(32\)/,
    ],
    ['conv_in_kernel 1', () => ({ ...cond(), conv_in_kernel: 1 }), /"conv_in_kernel" is 1/],
    ['conv_out_kernel 5', () => ({ ...cond(), conv_out_kernel: 5 }), /"conv_out_kernel" is 5/],
    [
      'ResnetDownsampleBlock2D',
      () => ({ ...tiny(), down_block_types: ['ResnetDownsampleBlock2D', 'AttnDownBlock2D'] }),
      /"down_block_types\[0\]" is "ResnetDownsampleBlock2D"/,
    ],
    ['resnet downsampling', () => ({ ...tiny(), downsample_type: 'resnet' }), /"downsample_type"/],
    ['SkipUpBlock2D', () => ({ ...tiny(), up_block_types: ['AttnUpBlock2D', 'SkipUpBlock2D'] }), /"up_block_types\[1\]" is "SkipUpBlock2D"/],
    ['sample_size "big"', () => ({ ...tiny(), sample_size: 'big' }), /x\/config.json: "sample_size": .*found "big"/],
  ])('%s', (_name, make, message) => {
    expect(() => growUNetConfig(make(), { source: 'x/config.json' })).toThrow(ConfigError);
    expect(() => growUNetConfig(make(), { source: 'x/config.json' })).toThrow(message);
  });

  test('weights that do not match the config: the missing or misshapen tensor is named', async () => {
    const weights = await loadStateDict(path.join(TINY, 'diffusion_pytorch_model.safetensors'));
    try {
      const config = tiny();
      weights.get('conv_in.weight')!.dispose();
      weights.delete('conv_in.weight');
      await expect(growUNetParts(config, weights)).rejects.toThrow(/the weights have no "conv_in.weight"/);
      weights.set('conv_in.weight', Tensor.from(new Float32Array(32 * 3 * 9), [32, 3, 3, 3]));
      await expect(growUNetParts({ ...config, out_channels: 4 }, weights)).rejects.toThrow(
        /"conv_out.weight" has shape \[3, 32, 3, 3\], expected \[4, 32, 3, 3\]/,
      );
    } finally {
      disposeStateDict(weights);
    }
  });
});

test('npm run grow (the CLI): writes the folder and prints the measured error; bad arguments exit 1 with a message', async () => {
  const chunks: string[] = [];
  const errs: string[] = [];
  const sink = (into: string[]) => ({ write: (s: string) => into.push(s) }) as unknown as NodeJS.WritableStream;
  const code = await runGrowCli(['--model', TINY, '--out', path.join(tmp, 'cli')], sink(chunks) as never, sink(errs) as never);
  expect(errs.join('')).toBe('');
  expect(code).toBe(0);
  const text = chunks.join('');
  const measured = [...text.matchAll(/\/ max\|f\(x\)\| = ([0-9.e+-]+)/g)].map((m) => Number(m[1]));
  expect(measured).toHaveLength(4);
  for (const e of measured) expect(e).toBeLessThanOrEqual(1e-5);
  expect(await runGrowCli(['--model', path.join(tmp, 'nope'), '--out', path.join(tmp, 'x')], sink(chunks) as never, sink(errs) as never)).toBe(1);
  expect(errs.join('')).toMatch(/^grow: --model: .*nope is not a folder/);
  expect(await runGrowCli(['--model', TINY], sink(chunks) as never, sink(errs) as never)).toBe(1);
  expect(errs.join('')).toMatch(/--out <folder> is required/);
});
