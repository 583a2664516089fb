// AutoencoderKL: every vae-tiny case diffusers computed (encode, decode, non-square forward, decode
// backward) within the fixtures README's tolerances (outputs 2e-5, gradients 5e-5); the pipeline's
// vae/ folder; legacy attention names; save → load; and clear errors for bad input.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SafetensorsFile } from '../../lib/checkpoint/safetensors';
import { disposeStateDict, loadStateDict } from '../../lib/checkpoint/state-dict';
import { CaseRegistry } from '../../lib/conformance/registry';
import { runFixtureSet } from '../../lib/conformance/run';
import { registerVaeCases, releaseVaeCaseModels } from '../../lib/conformance/vae-cases';
import { ConfigError, InvalidArgumentError, UnsupportedFormatError } from '../../lib/errors';
import { AutoencoderKL, loadVae } from '../../lib/models/vae';
import { Generator } from '../../lib/native/generator';
import { Tensor } from '../../lib/native/tensor';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');
const TINY = path.join(FIXTURES, 'vae-tiny');
const PIPELINE_VAE = path.join(FIXTURES, 'sd-pipeline-tiny', 'vae');

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-vae-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));
afterAll(() => releaseVaeCaseModels());

function zeros(shape: number[]): Tensor {
  return Tensor.from(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
}

function ramp(shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from(
    Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37)),
    shape,
  );
}

test('vae-tiny: every case passes', async () => {
  const registry = registerVaeCases(new CaseRegistry());
  const report = await runFixtureSet(TINY, registry);
  expect(report.cases.map((c) => c.name)).toEqual(['encode', 'decode', 'forward_nonsquare', 'backward_decode_mse']);
  for (const c of report.cases) process.stdout.write(`${c.name}: worst ${c.worst?.name} rel ${c.worst?.rel.toExponential(2)}\n`);
  const failures = report.cases
    .filter((c) => c.status !== 'pass')
    .map((c) => `${c.name}: ${c.status} ${c.message ?? ''} ${c.worst ? `${c.worst.name} rel ${c.worst.rel}` : ''}`);
  expect(failures).toEqual([]);
});

test('the sd-pipeline-tiny vae/ folder loads and maps 32×48 images to 16×24 latents and back', async () => {
  using vae = await loadVae(PIPELINE_VAE);
  expect(vae.scalingFactor).toBe(0.18215);
  expect(vae.vaeScaleFactor).toBe(2);
  expect(vae.unknownKeys).toEqual([]);
  using images = ramp([1, 3, 32, 48]);
  const dist = await vae.encode(images);
  expect(dist.mean.shape).toEqual([1, 4, 16, 24]);
  expect(dist.std).toBeUndefined();
  using decoded = await vae.decode(dist.mean);
  expect(decoded.shape).toEqual([1, 3, 32, 48]);
  dist.mean.dispose();
  dist.logvar.dispose();
  // Other weights than vae-tiny: the same image encodes differently.
  using tiny = await loadVae(TINY);
  const other = await tiny.encode(images);
  const a = (await (await vae.encode(images)).mean.data()) as Float32Array;
  const b = (await other.mean.data()) as Float32Array;
  expect(Math.max(...a.map((v, i) => Math.abs(v - b[i]!)))).toBeGreaterThan(1e-3);
});

test('sampleLatents draws mean + std·noise from a generator, reproducibly, and scales on request', async () => {
  using vae = await loadVae(TINY);
  using images = ramp([2, 3, 16, 16]);
  const dist = await vae.encode(images, { std: true });
  using g1 = new Generator(7);
  using g2 = new Generator(7);
  using a = await vae.sampleLatents(dist, { generator: g1 });
  using b = await vae.sampleLatents(dist, { generator: g2, scaled: true });
  const av = (await a.data()) as Float32Array;
  const bv = (await b.data()) as Float32Array;
  av.forEach((v, i) => expect(bv[i]).toBeCloseTo(v * 0.18215, 6));
  const mean = (await dist.mean.data()) as Float32Array;
  expect(av.some((v, i) => Math.abs(v - mean[i]!) > 1e-3)).toBe(true);
  using fromMode = await vae.sampleLatents(dist, { noise: zeros([2, 4, 8, 8]) });
  expect(Array.from((await fromMode.data()) as Float32Array)).toEqual(Array.from(mean));
  for (const t of [dist.mean, dist.logvar, dist.std]) t?.dispose();
});

test('legacy attention names (query, key, value, proj_attn) load like the current ones', async () => {
  using vae = await loadVae(TINY);
  const weights = await loadStateDict(path.join(TINY, 'diffusion_pytorch_model.safetensors'));
  const legacy = new Map<string, Tensor>();
  const rename: Record<string, string> = { to_q: 'query', to_k: 'key', to_v: 'value', 'to_out.0': 'proj_attn' };
  for (const [name, t] of weights) {
    const m = /^(.*\.attentions\.0)\.(to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/.exec(name);
    legacy.set(m ? `${m[1]}.${rename[m[2]!]}.${m[3]}` : name, t);
  }
  expect([...legacy.keys()].filter((k) => k.includes('proj_attn')).length).toBe(4);
  fs.mkdirSync(path.join(tmp, 'legacy'));
  fs.copyFileSync(path.join(TINY, 'config.json'), path.join(tmp, 'legacy', 'config.json'));
  const { saveStateDict } = await import('../../lib/checkpoint/state-dict');
  await saveStateDict(path.join(tmp, 'legacy', 'diffusion_pytorch_model.safetensors'), legacy, { format: 'pt' });
  using old = await loadVae(path.join(tmp, 'legacy'));
  using images = ramp([1, 3, 16, 16]);
  using x = await vae.forward(images);
  using y = await old.forward(images);
  expect(Array.from((await y.data()) as Float32Array)).toEqual(Array.from((await x.data()) as Float32Array));
  // Old and new name for one tensor: refused, naming it.
  legacy.set('encoder.mid_block.attentions.0.to_q.weight', weights.get('encoder.mid_block.attentions.0.to_q.weight')!);
  await expect(old.loadStateDict(legacy, 'mixed')).rejects.toThrow(/encoder\.mid_block\.attentions\.0\.to_q\.weight" is given twice/);
  disposeStateDict(weights);
});

test('save → load is bit-exact; unknown config keys are kept', async () => {
  const config = JSON.parse(fs.readFileSync(path.join(TINY, 'config.json'), 'utf8')) as Record<string, unknown>;
  using vae = await AutoencoderKL.fromConfig({ ...config, some_future_key: [1, 2] }, { seed: 3 });
  expect(vae.unknownKeys).toEqual(['some_future_key']);
  const out = path.join(tmp, 'saved');
  await vae.save(out);
  const saved = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  expect(saved.some_future_key).toEqual([1, 2]);
  expect(saved._class_name).toBe('AutoencoderKL');
  using back = await loadVae(out);
  const a = await vae.stateDict();
  const b = await back.stateDict();
  expect([...b.keys()]).toEqual([...a.keys()]);
  for (const [k, t] of a)
    expect(Buffer.from(((await b.get(k)!.data()) as Float32Array).buffer)).toEqual(Buffer.from(((await t.data()) as Float32Array).buffer));
  const file = await SafetensorsFile.open(path.join(out, 'diffusion_pytorch_model.safetensors'));
  try {
    expect(file.names().length).toBe(124);
  } finally {
    await file.close();
  }
  disposeStateDict(a);
  disposeStateDict(b);
});

test('bad input is a clear error, never a crash', async () => {
  using vae = await loadVae(TINY);
  using wrongChannels = zeros([1, 4, 16, 16]);
  await expect(vae.encode(wrongChannels)).rejects.toThrow(/Expected images of shape \[batch, 3, height, width\] but received \[1, 4, 16, 16\]/);
  using threeD = zeros([3, 16, 16]);
  await expect(vae.forward(threeD)).rejects.toThrow(/Expected images of shape/);
  using ints = Tensor.from(new BigInt64Array(3 * 16 * 16), [1, 3, 16, 16]);
  await expect(vae.encode(ints)).rejects.toThrow(/floating-point tensor for images/);
  using tiny = zeros([1, 3, 1, 1]);
  await expect(vae.encode(tiny)).rejects.toThrow(/height and width of at least 2/);
  using latents = zeros([1, 3, 8, 8]);
  await expect(vae.decode(latents)).rejects.toThrow(/Expected latents of shape \[batch, 4, height, width\]/);
  await expect(vae.decode('nope' as unknown as Tensor)).rejects.toThrow(InvalidArgumentError);
  using z = zeros([1, 4, 8, 8]);
  using badTarget = zeros([1, 3, 8, 8]);
  await expect(vae.decodeBackwardMse(z, badTarget)).rejects.toThrow(/Expected a target of shape \[1, 3, 16, 16\]/);
  using target = zeros([1, 3, 16, 16]);
  await expect(vae.decodeBackwardMse(z, target, { gradNames: ['decoder.nope.weight'] })).rejects.toThrow(/not a parameter/);
  await expect(vae.to({ dtype: 'float16' })).rejects.toThrow(/float16/);
  vae.dispose();
  await expect(vae.decode(z)).rejects.toThrow(/AutoencoderKL was used after dispose/);
});

test('bad configs and folders are clear errors', async () => {
  const config = JSON.parse(fs.readFileSync(path.join(TINY, 'config.json'), 'utf8')) as Record<string, unknown>;
  await expect(AutoencoderKL.fromConfig({ ...config, down_block_types: ['DownBlock2D', 'DownEncoderBlock2D'] }, { source: 'vae/config.json' })).rejects.toThrow(
    /vae\/config.json: "down_block_types.0"/,
  );
  await expect(AutoencoderKL.fromConfig({ ...config, norm_num_groups: 5 })).rejects.toThrow(/"norm_num_groups" 5 does not divide "block_out_channels\[0\]" 16/);
  await expect(AutoencoderKL.fromConfig({ ...config, up_block_types: ['UpDecoderBlock2D'] })).rejects.toThrow(ConfigError);
  await expect(AutoencoderKL.fromConfig({ ...config, latent_channels: 0 })).rejects.toThrow(/"latent_channels"/);
  await expect(AutoencoderKL.fromConfig({ ...config, _class_name: 'UNet2DModel' })).rejects.toThrow(/"_class_name" must be "AutoencoderKL"/);
  await expect(loadVae(path.join(tmp, 'missing'))).rejects.toThrow(/has no readable config.json/);
  // Weights of another shape: every mismatch listed.
  const dir = path.join(tmp, 'wide');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, latent_channels: 8 }));
  fs.copyFileSync(path.join(TINY, 'diffusion_pytorch_model.safetensors'), path.join(dir, 'diffusion_pytorch_model.safetensors'));
  await expect(loadVae(dir)).rejects.toThrow(
    /wrongly shaped weights \(7\):[\s\S]*decoder\.conv_in\.weight \(expected \[32, 8, 3, 3\], found \[32, 4, 3, 3\]\)/,
  );
  // Pickles are refused.
  const pickled = path.join(tmp, 'pickled');
  fs.mkdirSync(pickled);
  fs.copyFileSync(path.join(TINY, 'config.json'), path.join(pickled, 'config.json'));
  fs.writeFileSync(path.join(pickled, 'diffusion_pytorch_model.bin'), Buffer.from([0x80, 0x02]));
  await expect(loadVae(pickled)).rejects.toThrow(UnsupportedFormatError);
});
