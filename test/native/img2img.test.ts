// img2img: the pipeline reproduces diffusers' StableDiffusionImg2ImgPipeline (sd-img2img-tiny, every case:
// the preprocessed image, the VAE's latent distribution and draw, the schedule cut by strength, the noised
// start, every step, the decoded image), from the stored noise and from the seed alone; the options and the
// npm run sample flags.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { Writable } from 'stream';
import { FixtureSet } from '../../lib/conformance/fixture-set';
import { registerPipelineCases, releasePipelineCaseModels } from '../../lib/conformance/pipeline-cases';
import { CaseRegistry } from '../../lib/conformance/registry';
import { loadStableDiffusion } from '../../lib/models/stable-diffusion';
import { Generator } from '../../lib/native/generator';
import { randn } from '../../lib/native/ops';
import { Tensor } from '../../lib/native/tensor';
import { runSampleCli } from '../../lib/sample/cli';
import { img2img, img2imgTimesteps } from '../../lib/sample/img2img';

const ROOT = path.join(__dirname, '..', '..');
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'diffusers');
const PIPELINE = path.join(FIXTURES, 'sd-pipeline-tiny');
const SET = path.join(FIXTURES, 'sd-img2img-tiny');

afterAll(() => releasePipelineCaseModels());

describe('sd-img2img-tiny: every case of diffusers’ StableDiffusionImg2ImgPipeline', () => {
  const registry = new CaseRegistry();
  registerPipelineCases(registry);
  for (const [name, steps, runs] of [
    ['img2img', 4, 2],
    ['img2img_resize_strength_1', 5, 2],
    ['img2img_ddim_eta', 3, 1], // its steps draw noise too: from the seed only
    ['img2img_heun', 3, 2], // order 2: the cut keeps 2 of 4 steps, 3 model evaluations
  ] as const) {
    test(name, async () => {
      const set = await FixtureSet.open(SET);
      const c = set.cases.find((x) => x.name === name)!;
      const checks = await registry.get(c.type)!(set, c);
      const failed = checks.filter((k) => !k.pass).map((k) => `${k.name}: ${k.rel} > ${k.bound} ${k.note ?? ''}`);
      expect(failed).toEqual([]);
      // ids; per run (given noise, then seed): 9 start checks, 5 per step, 7 outputs.
      expect(checks.length).toBe(2 + runs * (9 + 5 * steps + 7));
    });
  }
});

test('strength cuts the schedule as get_timesteps does (PNDM repeats a timestep)', () => {
  const pndm5 = [801, 601, 601, 401, 201, 1];
  expect(img2imgTimesteps(pndm5, 5, 0.6)).toEqual([601, 401, 201, 1]);
  expect(img2imgTimesteps(pndm5, 5, 1)).toEqual(pndm5);
  expect(img2imgTimesteps([750, 500, 250, 0], 4, 0.74)).toEqual([250, 0]); // ⌊2.96⌋ = 2
  expect(img2imgTimesteps([750, 500, 250, 0], 4, 0.1)).toEqual([]);
  // Heun (order 2): t0, then every later timestep twice; diffusers v0.31 slices at t_start · order (checked there).
  expect(img2imgTimesteps([999, 666, 666, 333, 333, 0, 0], 4, 0.5, 2)).toEqual([333, 0, 0]);
});

test('8-bit images equal their tensor / 255; bad options are named', async () => {
  using sd = await loadStableDiffusion(PIPELINE);
  const pixels = Uint8Array.from({ length: 16 * 20 * 3 }, (_, i) => (i * 37) % 256);
  const values = new Float32Array(3 * 16 * 20);
  for (let p = 0; p < 16 * 20; p++) for (let c = 0; c < 3; c++) values[c * 320 + p] = pixels[p * 3 + c]! / 255;
  using tensor = Tensor.from(values, [1, 3, 16, 20]);
  const options = { prompt: 'a cat', steps: 3, strength: 0.7, seed: 2 };
  const a = await img2img(sd, { ...options, image: { count: 1, height: 16, width: 20, channels: 3, pixels } });
  const b = await img2img(sd, { ...options, image: tensor });
  try {
    expect(a.images.shape).toEqual([1, 3, 16, 20]);
    expect(a.timesteps).toEqual(sd.scheduler.timesteps.slice(1)); // PNDM's 3 steps are 4 timesteps; ⌊3 · 0.7⌋ = 2 steps run: from index 1
    expect(Buffer.from((await a.images.data()).buffer).equals(Buffer.from((await b.images.data()).buffer))).toBe(true);
  } finally {
    a.dispose();
    b.dispose();
  }
  await expect(img2img(sd, { ...options, image: tensor, strength: 1.5 })).rejects.toThrow(/options.strength/);
  // PNDM's schedule has one timestep more than steps, so some step always runs; DDIM's does not.
  using ddim = await loadStableDiffusion(PIPELINE, { schedulerClass: 'DDIMScheduler' });
  await expect(img2img(ddim, { ...options, image: tensor, strength: 0.2 })).rejects.toThrow(/options.strength: 0.2 × 3 steps leaves no denoising step/);
  await expect(img2img(sd, { ...options, prompt: ['a', 'b', 'c'], image: await twoImages() })).rejects.toThrow(
    /options.image: expected 1 image, or one per prompt \(3\), or a divisor of 3, but found 2/,
  );
  using wrong = await randn([1, 4, 4, 4], { generator: new Generator(0) });
  await expect(img2img(sd, { ...options, image: tensor, noise: wrong })).rejects.toThrow(/options.noise: expected shape \[1, 4, 8, 10\]/);
  using gray = Tensor.from(new Float32Array(16 * 20), [1, 1, 16, 20]);
  await expect(img2img(sd, { ...options, image: gray })).rejects.toThrow(
    /options.image: expected a Tensor of shape \[B, 3, H, W\] or \[3, H, W\] \(RGB\) but received shape \[1, 1, 16, 20\]/,
  );
});

async function twoImages(): Promise<Tensor> {
  return randn([2, 3, 16, 16], { generator: new Generator(1) }).then(async (t) => {
    const data = Float32Array.from((await t.data()) as Float32Array, (v) => Math.min(1, Math.max(0, v / 4 + 0.5)));
    t.dispose();
    return Tensor.from(data, [2, 3, 16, 16]);
  });
}

test('npm run sample --init-image: a PNG of the image’s size (cut to the VAE’s multiple); the same seed gives the same image', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-i2i-'));
  const photo = path.join(dir, 'photo.png');
  const raw = Buffer.from(Uint8Array.from({ length: 29 * 37 * 3 }, (_, i) => (i * 13) % 256));
  await sharp(raw, { raw: { width: 37, height: 29, channels: 3 } })
    .png()
    .toFile(photo);
  const sink = () => {
    let text = '';
    return Object.assign(
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          text += chunk.toString();
          done();
        },
      }),
      { text: () => text },
    );
  };
  const outs = [];
  for (const file of ['a.png', 'b.png']) {
    const out = sink();
    const err = sink();
    const code = await runSampleCli(
      [
        '--model',
        PIPELINE,
        '--init-image',
        photo,
        '--strength',
        '0.6',
        '--prompt',
        'a red circle',
        '--steps',
        '4',
        '--seed',
        '3',
        '--out',
        path.join(dir, file),
      ],
      out,
      err,
    );
    expect({ code, err: code === 0 ? '' : err.text() }).toEqual({ code: 0, err: '' });
    expect(out.text()).toMatch(/wrote .*a?b?\.png \(1 image, PNDMScheduler, 4 steps, strength 0\.6/);
    outs.push(await sharp(path.join(dir, file)).raw().toBuffer({ resolveWithObject: true }));
  }
  expect([outs[0]!.info.width, outs[0]!.info.height]).toEqual([36, 28]);
  expect(Buffer.compare(outs[0]!.data, outs[1]!.data)).toBe(0);
  const err = sink();
  expect(await runSampleCli(['--model', PIPELINE, '--strength', '0.5', '--prompt', 'x', '--out', path.join(dir, 'c.png')], sink(), err)).toBe(1);
  expect(err.text()).toMatch(/--strength: only with --init-image/);
  const err2 = sink();
  expect(
    await runSampleCli(['--model', PIPELINE, '--init-image', photo, '--latents', photo, '--prompt', 'x', '--out', path.join(dir, 'd.png')], sink(), err2),
  ).toBe(1);
  expect(err2.text()).toMatch(/--latents: not with --init-image/);
});
