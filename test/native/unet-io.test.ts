// Loading and saving diffusers U-Net folders: bit-exact round trips, sharded and variant weights,
// and one clear error for every kind of mismatch.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SafetensorsFile, writeSafetensors } from '../../lib/checkpoint/safetensors';
import { disposeStateDict, loadStateDict } from '../../lib/checkpoint/state-dict';
import { parseLenientJson } from '../../lib/config/json';
import { ConfigError, FileSystemError, InvalidArgumentError, UnsupportedFormatError } from '../../lib/errors';
import { loadUNet, UNet } from '../../lib/models/unet';
import { Tensor } from '../../lib/native/tensor';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');
const TINY = path.join(FIXTURES, 'unet2d-tiny');
const COND = path.join(FIXTURES, 'unet2dcond-tiny');

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-unet-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function copyModel(from: string, to: string): void {
  fs.mkdirSync(to, { recursive: true });
  for (const f of ['config.json', 'diffusion_pytorch_model.safetensors']) fs.copyFileSync(path.join(from, f), path.join(to, f));
}

function readJson(file: string): Record<string, unknown> {
  return parseLenientJson(fs.readFileSync(file, 'utf8'), file) as Record<string, unknown>;
}

test.each([TINY, COND])('save → load is bit-exact and the config round-trips (%s)', async (dir) => {
  using unet = await loadUNet(dir);
  const out = path.join(tmp, 'saved');
  await unet.save(out);
  const original = await SafetensorsFile.open(path.join(dir, 'diffusion_pytorch_model.safetensors'));
  const saved = await SafetensorsFile.open(path.join(out, 'diffusion_pytorch_model.safetensors'));
  try {
    expect(saved.names().sort()).toEqual(original.names().sort());
    expect(saved.metadata).toEqual({ format: 'pt' });
    for (const name of original.names()) expect((await saved.readBytes(name)).equals(await original.readBytes(name))).toBe(true);
  } finally {
    await original.close();
    await saved.close();
  }
  const before = readJson(path.join(dir, 'config.json'));
  const after = readJson(path.join(out, 'config.json'));
  for (const [k, v] of Object.entries(before)) if (k !== '_diffusers_version' && k !== 'sample_size') expect([k, after[k]]).toEqual([k, v]);
  // The fixtures were written by diffusers v0.31: the same keys, none that release would warn about (UNet2DModel's mid_block_type).
  expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort());
  using again = await loadUNet(out);
  expect(again.configJson()).toEqual(unet.configJson());
});

test('a sharded checkpoint (index.json) loads the same weights', async () => {
  const dir = path.join(tmp, 'sharded');
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(TINY, 'config.json'), path.join(dir, 'config.json'));
  const whole = await loadStateDict(path.join(TINY, 'diffusion_pytorch_model.safetensors'));
  const names = [...whole.keys()];
  const halves = [names.slice(0, 50), names.slice(50)];
  const weightMap: Record<string, string> = {};
  for (const [i, part] of halves.entries()) {
    const file = `diffusion_pytorch_model-0000${i + 1}-of-00002.safetensors`;
    const entries = await Promise.all(
      part.map(async (n) => [n, { dtype: 'F32' as const, shape: whole.get(n)!.shape, data: await whole.get(n)!.data() }] as const),
    );
    await writeSafetensors(path.join(dir, file), entries);
    for (const n of part) weightMap[n] = file;
  }
  fs.writeFileSync(path.join(dir, 'diffusion_pytorch_model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  disposeStateDict(whole);
  using a = await loadUNet(TINY);
  using b = await loadUNet(dir);
  using x = Tensor.from(
    new Float32Array(3 * 16 * 16).map((_, i) => Math.sin(i)),
    [1, 3, 16, 16],
  );
  using t = Tensor.from(new BigInt64Array([5n]), [1]);
  using ya = await a.forward(x, t);
  using yb = await b.forward(x, t);
  expect(Buffer.from(ya.toArray().buffer).equals(Buffer.from(yb.toArray().buffer))).toBe(true);
});

test('an fp16 variant is read and upcast to float32', async () => {
  const dir = path.join(tmp, 'fp16');
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(TINY, 'config.json'), path.join(dir, 'config.json'));
  const whole = await loadStateDict(path.join(TINY, 'diffusion_pytorch_model.safetensors'));
  const entries = [];
  for (const [n, t] of whole) {
    using half = await t.to('cpu', 'float16');
    entries.push([n, { dtype: 'F16' as const, shape: t.shape, data: await half.data({ raw: true }) }] as const);
  }
  await writeSafetensors(path.join(dir, 'diffusion_pytorch_model.fp16.safetensors'), entries);
  disposeStateDict(whole);
  await expect(loadUNet(dir)).rejects.toThrow(/variant: "fp16"/);
  using unet = await loadUNet(dir, { variant: 'fp16' });
  const params = await unet.parameters();
  expect(params.every((p) => p.dtype === 'float32')).toBe(true);
});

/** The tiny U-Net's weights in float16, as raw safetensors entries in state-dict order. */
async function fp16Entries() {
  const whole = await loadStateDict(path.join(TINY, 'diffusion_pytorch_model.safetensors'));
  try {
    const entries = [];
    for (const [n, t] of whole) {
      using half = await t.to('cpu', 'float16');
      entries.push([n, { dtype: 'F16' as const, shape: t.shape, data: await half.data({ raw: true }) }] as const);
    }
    return entries;
  } finally {
    disposeStateDict(whole);
  }
}

async function stateDictBytes(unet: UNet): Promise<Map<string, Buffer>> {
  const sd = await unet.stateDict();
  try {
    const out = new Map<string, Buffer>();
    for (const [n, t] of sd) out.set(n, Buffer.from(t.toArray().buffer));
    return out;
  } finally {
    disposeStateDict(sd);
  }
}

test.each([
  // diffusers v0.31 save_pretrained(variant="fp16", max_shard_size=...)
  ['v0.31', 'diffusion_pytorch_model.safetensors.index.fp16.json', (k: number) => `diffusion_pytorch_model.fp16-0000${k}-of-00002.safetensors`],
  // v0.29 and v0.30: the same index, transformers-style shard names
  ['v0.29–v0.30', 'diffusion_pytorch_model.safetensors.index.fp16.json', (k: number) => `diffusion_pytorch_model-0000${k}-of-00002.fp16.safetensors`],
  // the deprecated index name diffusers v0.31 still reads (_fetch_index_file_legacy)
  ['legacy', 'diffusion_pytorch_model.safetensors.fp16.index.json', (k: number) => `diffusion_pytorch_model-0000${k}-of-00002.fp16.safetensors`],
])('a sharded fp16 variant named as diffusers %s names it loads the same weights as the single fp16 file', async (_, indexName, shardName) => {
  const entries = await fp16Entries();
  const single = path.join(tmp, 'single');
  fs.mkdirSync(single);
  fs.copyFileSync(path.join(TINY, 'config.json'), path.join(single, 'config.json'));
  await writeSafetensors(path.join(single, 'diffusion_pytorch_model.fp16.safetensors'), entries);
  const dir = path.join(tmp, 'sharded');
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(TINY, 'config.json'), path.join(dir, 'config.json'));
  const weightMap: Record<string, string> = {};
  const halves = [entries.slice(0, 50), entries.slice(50)];
  for (const [i, part] of halves.entries()) {
    await writeSafetensors(path.join(dir, shardName(i + 1)), part);
    for (const [n] of part) weightMap[n] = shardName(i + 1);
  }
  fs.writeFileSync(path.join(dir, indexName), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  await expect(loadUNet(dir)).rejects.toThrow(/variant: "fp16"/);
  using a = await loadUNet(single, { variant: 'fp16' });
  using b = await loadUNet(dir, { variant: 'fp16' });
  const [wa, wb] = [await stateDictBytes(a), await stateDictBytes(b)];
  expect([...wb.keys()].sort()).toEqual([...wa.keys()].sort());
  for (const [n, bytes] of wa) expect([n, wb.get(n)!.equals(bytes)]).toEqual([n, true]);
});

describe("transformer depths in diffusers' nested form", () => {
  // A small three-level U-Net, cross-attention everywhere, one resnet per down level (two per up level).
  const base = {
    _class_name: 'UNet2DConditionModel',
    block_out_channels: [8, 16, 16],
    down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
    up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    layers_per_block: 1,
    norm_num_groups: 4,
    cross_attention_dim: 8,
    attention_head_dim: 2,
    transformer_layers_per_block: [1, 2, 3],
  };
  const shapes = async (raw: Record<string, unknown>): Promise<Array<[string, number[]]>> => {
    using unet = await UNet.fromConfig(raw);
    return (await unet.parameters()).map((p) => [p.name, p.shape] as [string, number[]]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  };
  /** The number of transformer_blocks of each attention, "up_blocks.0.attentions.1" → 2. */
  const depths = (params: Array<[string, number[]]>): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const [name] of params) {
      const m = /^(.*\.attentions\.\d+)\.transformer_blocks\.(\d+)\./.exec(name);
      if (m) out[m[1]!] = Math.max(out[m[1]!] ?? 0, Number(m[2]) + 1);
    }
    return out;
  };

  test('reverse_transformer_layers_per_block [[3,3],[2,2],[1,1]] builds the parameters of the flat [3,2,1]', async () => {
    const nested = await shapes({
      ...base,
      reverse_transformer_layers_per_block: [
        [3, 3],
        [2, 2],
        [1, 1],
      ],
    });
    expect(nested).toEqual(await shapes({ ...base, reverse_transformer_layers_per_block: [3, 2, 1] }));
    expect(depths(nested)).toEqual({
      'down_blocks.0.attentions.0': 1,
      'down_blocks.1.attentions.0': 2,
      'down_blocks.2.attentions.0': 3,
      'mid_block.attentions.0': 3,
      'up_blocks.0.attentions.0': 3,
      'up_blocks.0.attentions.1': 3,
      'up_blocks.1.attentions.0': 2,
      'up_blocks.1.attentions.1': 2,
      'up_blocks.2.attentions.0': 1,
      'up_blocks.2.attentions.1': 1,
    });
  });

  test('per-layer depths build each attention as deep as its own entry says, and survive save → load', async () => {
    const raw = { ...base, transformer_layers_per_block: [[2, 9], 1, [4, 1]], reverse_transformer_layers_per_block: [[1, 2], 3, [2, 1, 5]] };
    const params = await shapes(raw);
    expect(depths(params)).toEqual({
      'down_blocks.0.attentions.0': 2,
      'down_blocks.1.attentions.0': 1,
      'down_blocks.2.attentions.0': 4,
      // diffusers: the mid block takes transformer_layers_per_block[-1], its first depth when nested.
      'mid_block.attentions.0': 4,
      'up_blocks.0.attentions.0': 1,
      'up_blocks.0.attentions.1': 2,
      'up_blocks.1.attentions.0': 3,
      'up_blocks.1.attentions.1': 3,
      'up_blocks.2.attentions.0': 2,
      'up_blocks.2.attentions.1': 1,
    });
    using unet = await UNet.fromConfig(raw, { seed: 3 });
    const out = path.join(tmp, 'nested');
    await unet.save(out);
    expect(readJson(path.join(out, 'config.json')).reverse_transformer_layers_per_block).toEqual([[1, 2], 3, [2, 1, 5]]);
    using again = await loadUNet(out);
    expect((await again.parameters()).map((p) => p.name).sort()).toEqual(params.map(([n]) => n));
  });
});

describe('clear errors', () => {
  test('a missing weight, an unexpected one and a wrongly shaped one are listed together', async () => {
    using unet = await loadUNet(TINY);
    const sd = await unet.stateDict();
    sd.get('conv_in.weight')!.dispose();
    sd.delete('conv_in.weight');
    sd.set('extra.weight', Tensor.from(new Float32Array(1), [1]));
    sd.get('conv_out.bias')!.dispose();
    sd.set('conv_out.bias', Tensor.from(new Float32Array(7), [7]));
    const error = await unet.loadStateDict(sd, 'my.safetensors').catch((e: unknown) => e as Error);
    disposeStateDict(sd);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toMatch(/my\.safetensors does not match the model's config/);
    expect((error as Error).message).toMatch(/missing weights \(1\):\n\s+conv_in\.weight/);
    expect((error as Error).message).toMatch(/unexpected weights \(1\):\n\s+extra\.weight/);
    expect((error as Error).message).toMatch(/conv_out\.bias \(expected \[3\], found \[7\]\)/);
  });

  test('a weights file from another config names the file', async () => {
    const dir = path.join(tmp, 'mixed');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(TINY, 'config.json'), path.join(dir, 'config.json'));
    fs.copyFileSync(path.join(COND, 'diffusion_pytorch_model.safetensors'), path.join(dir, 'diffusion_pytorch_model.safetensors'));
    await expect(loadUNet(dir)).rejects.toThrow(/diffusion_pytorch_model\.safetensors does not match the model's config/);
  });

  test.each([
    [{ down_block_types: ['SkipDownBlock2D', 'AttnDownBlock2D'] }, /"down_block_types\[0\]" is "SkipDownBlock2D", which difftune does not support/],
    [{ time_embedding_type: 'learned' }, /"time_embedding_type"/],
    [{ resnet_time_scale_shift: 'spatial' }, /"resnet_time_scale_shift"/],
    [{ norm_num_groups: 7 }, /"norm_num_groups" 7 does not divide "block_out_channels\[0\]" 32/],
    [{ block_out_channels: [32] }, /must have the same length/],
    [{ _class_name: 'UNet3DConditionModel' }, /"_class_name" must be "UNet2DModel" or "UNet2DConditionModel"/],
  ])('unsupported option %j', async (change, message) => {
    const dir = path.join(tmp, 'bad');
    copyModel(TINY, dir);
    const config = { ...readJson(path.join(TINY, 'config.json')), ...change };
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
    const error = await loadUNet(dir).catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).toContain(path.join(dir, 'config.json'));
  });

  test('SD options beyond 1.x/2.x are refused by name', async () => {
    const dir = path.join(tmp, 'sdxl');
    copyModel(COND, dir);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...readJson(path.join(COND, 'config.json')), addition_embed_type: 'text_time' }));
    await expect(loadUNet(dir)).rejects.toThrow(/"addition_embed_type"/);
  });

  // fs.existsSync reads a symlink loop as "missing": the error said the folder had no weights or config.
  test('a symlink loop in place of the weights or the config is named as a loop', async () => {
    const dir = path.join(tmp, 'loop');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(TINY, 'config.json'), path.join(dir, 'config.json'));
    const weights = path.join(dir, 'diffusion_pytorch_model.safetensors');
    fs.symlinkSync(path.join(dir, 'other'), weights);
    fs.symlinkSync(weights, path.join(dir, 'other'));
    const loop = `too many levels of symbolic links (a symlink loop?) (ELOOP)`;
    await expect(loadUNet(dir)).rejects.toThrow(new FileSystemError(weights, 'ELOOP', `cannot access ${weights}: ${loop}`));
    fs.rmSync(path.join(dir, 'config.json'));
    fs.symlinkSync(weights, path.join(dir, 'config.json'));
    await expect(loadUNet(dir)).rejects.toThrow(`cannot access ${path.join(dir, 'config.json')}: ${loop}`);
  });

  test('missing files and pickle checkpoints', async () => {
    await expect(loadUNet(path.join(tmp, 'nope'))).rejects.toThrow(/has no config\.json/);
    const dir = path.join(tmp, 'pickle');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(TINY, 'config.json'), path.join(dir, 'config.json'));
    fs.writeFileSync(path.join(dir, 'diffusion_pytorch_model.bin'), Buffer.from([0x80, 0x02]));
    await expect(loadUNet(dir)).rejects.toThrow(UnsupportedFormatError);
  });

  test('wrong inputs to forward say what was expected', async () => {
    using unet = await loadUNet(COND);
    using x = Tensor.from(new Float32Array(4 * 8 * 8), [1, 4, 8, 8]);
    using t = Tensor.from(new BigInt64Array([1n]), [1]);
    using badCtx = Tensor.from(new Float32Array(5 * 16), [1, 5, 16]);
    using wrongChannels = Tensor.from(new Float32Array(3 * 8 * 8), [1, 3, 8, 8]);
    await expect(unet.forward(x, t)).rejects.toThrow(/Expected encoder_hidden_states of shape \[1, tokens, 32\] but received none/);
    await expect(unet.forward(x, t, { encoderHiddenStates: badCtx })).rejects.toThrow(/but received \[1, 5, 16\]/);
    await expect(unet.forward(wrongChannels, t, { encoderHiddenStates: badCtx })).rejects.toThrow(/Expected a sample of shape \[batch, 4, height, width\]/);
    using labels = Tensor.from(new BigInt64Array([1n]), [1]);
    await expect(unet.forward(x, t, { classLabels: labels })).rejects.toThrow();
  });

  // These reached libtorch as raw text ("received undefined", "cannot reshape tensor of 0 elements",
  // "Input type (long int) and bias type (float) should be the same") or computed NaN silently.
  test('an array, an empty batch, an int64 sample and a NaN timestep are refused by name', async () => {
    using unet = await loadUNet(TINY);
    using t = Tensor.from(new BigInt64Array([1n]), [1]);
    using x = Tensor.from(new Float32Array(3 * 16 * 16), [1, 3, 16, 16]);
    const array = [[0, 1]] as unknown as Tensor;
    await expect(unet.forward(array, t)).rejects.toThrow(new InvalidArgumentError('Expected a Tensor for sample but received an array of length 1'));
    await expect(unet.forward(x, [5] as unknown as Tensor)).rejects.toThrow('Expected a Tensor for timestep but received an array of length 1');
    await expect(unet.forwardBackwardMse(x, t, array)).rejects.toThrow('Expected a Tensor for target but received an array of length 1');
    using empty = Tensor.from(new Float32Array(0), [0, 3, 16, 16]);
    using noSteps = Tensor.from(new BigInt64Array(0), [0]);
    await expect(unet.forward(empty, noSteps)).rejects.toThrow(
      new InvalidArgumentError('Expected at least one item (batch ≥ 1) in sample but received a batch of 0 (shape [0, 3, 16, 16])'),
    );
    using ints = Tensor.from(new BigInt64Array(3 * 16 * 16), [1, 3, 16, 16]);
    await expect(unet.forward(ints, t)).rejects.toThrow(
      new InvalidArgumentError(
        'Expected a floating-point tensor (float32, bfloat16 or float16) for sample but received a tensor of dtype int64 and shape [1, 3, 16, 16]',
      ),
    );
    await expect(unet.forwardBackwardMse(ints, t, x)).rejects.toThrow(/Expected a floating-point tensor .* for sample/);
    using nan = Tensor.from(new Float32Array([NaN]), [1]);
    await expect(unet.forward(x, nan)).rejects.toThrow(
      new InvalidArgumentError('Expected finite values for timestep but received NaN (a timestep tensor of shape [1])'),
    );
    using inf = Tensor.from(new Float32Array([1, -Infinity]), [2]);
    using x2 = Tensor.from(new Float32Array(2 * 3 * 16 * 16), [2, 3, 16, 16]);
    await expect(unet.forward(x2, inf)).rejects.toThrow('Expected finite values for timestep but received -Infinity');
    // Finite float timesteps (Euler's) still work.
    using half = Tensor.from(new Float32Array([10.5]), [1]);
    using out = await unet.forward(x, half);
    expect(out.shape).toEqual([1, 3, 16, 16]);
  });

  test('class labels outside the embedding table are refused', async () => {
    using unet = await loadUNet(path.join(FIXTURES, 'unet2d-classcond'));
    using x = Tensor.from(new Float32Array(16 * 16), [1, 1, 16, 16]);
    using t = Tensor.from(new BigInt64Array([1n]), [1]);
    using label = Tensor.from(new BigInt64Array([10n]), [1]);
    await expect(unet.forward(x, t, { classLabels: label })).rejects.toThrow(/Expected class labels in \[0, 9\] but received a label 10/);
    await expect(unet.forward(x, t)).rejects.toThrow(/class_labels should be provided/);
  });
});

test('a model built from a config is initialised like torch.nn, reproducibly from its seed', async () => {
  const config = readJson(path.join(TINY, 'config.json'));
  using a = await UNet.fromConfig(config, { seed: 7 });
  using b = await UNet.fromConfig(config, { seed: 7 });
  using c = await UNet.fromConfig(config, { seed: 8 });
  const [sa, sb, sc] = [await a.stateDict(), await b.stateDict(), await c.stateDict()];
  const w = (sd: Map<string, Tensor>) => Array.from(sd.get('conv_in.weight')!.toArray() as Float32Array);
  expect(w(sa)).toEqual(w(sb));
  expect(w(sa)).not.toEqual(w(sc));
  // kaiming_uniform(a=√5): |w| ≤ 1/√fan_in with fan_in = 3·3·3; norms start at weight 1, bias 0.
  expect(Math.max(...w(sa).map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(27));
  expect(Array.from<number | bigint>(sa.get('conv_norm_out.weight')!.toArray())).toEqual(new Array(32).fill(1));
  for (const sd of [sa, sb, sc]) disposeStateDict(sd);
});
