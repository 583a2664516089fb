// Text-to-image: the pipeline reproduces diffusers' StableDiffusionPipeline (sd-pipeline-tiny, every
// case: token ids, embeddings, every step, the decoded image), and a captioned image folder fine-tunes
// the tiny pipeline end to end with the text encoder and VAE frozen and the latent cache reused.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { Writable } from 'stream';
import { releasePipelineCaseModels, registerPipelineCases } from '../../lib/conformance/pipeline-cases';
import { FixtureSet } from '../../lib/conformance/fixture-set';
import { CaseRegistry } from '../../lib/conformance/registry';
import { loadStableDiffusion } from '../../lib/models/stable-diffusion';
import { txt2img } from '../../lib/sample/txt2img';
import { runSampleCli } from '../../lib/sample/cli';
import { pipelineEntries } from '../../lib/checkpoint/pipeline-folder';
import { saveStateDict } from '../../lib/checkpoint/state-dict';
import { Generator } from '../../lib/native/generator';
import { randn } from '../../lib/native/ops';
import { finetune } from '../../lib/train/finetune';

const ROOT = path.join(__dirname, '..', '..');
const PIPELINE = path.join(ROOT, 'test', 'fixtures', 'diffusers', 'sd-pipeline-tiny');
const SHAPES = path.join(ROOT, 'recipes', 'data', 'shapes');

afterAll(() => releasePipelineCaseModels());

describe('sd-pipeline-tiny: every txt2img case of diffusers’ StableDiffusionPipeline', () => {
  const registry = new CaseRegistry();
  registerPipelineCases(registry);
  for (const name of ['txt2img', 'txt2img_default_size', 'txt2img_clip_skip']) {
    test(name, async () => {
      const set = await FixtureSet.open(PIPELINE);
      const c = set.cases.find((x) => x.name === name)!;
      const checks = await registry.get(c.type)!(set, c);
      const failed = checks.filter((k) => !k.pass).map((k) => `${k.name}: ${k.rel} > ${k.bound} ${k.note ?? ''}`);
      expect(failed).toEqual([]);
      // Everything the case pins down was compared: ids, embeddings, 5 steps × 5 values, the decode.
      expect(checks.length).toBeGreaterThanOrEqual(2 + 1 + 2 + 5 * 5 + 5);
    });
  }
});

test('guidance off runs a single batch; bad options are named', async () => {
  using sd = await loadStableDiffusion(PIPELINE);
  const r = await txt2img(sd, { prompt: 'a cat', guidanceScale: 1, steps: 2, seed: 1 });
  try {
    expect(r.images.shape).toEqual([1, 3, 32, 32]);
    expect(r.negativePromptEmbeds).toBeUndefined();
  } finally {
    r.dispose();
  }
  await expect(txt2img(sd, { prompt: 'a cat', height: 31 })).rejects.toThrow(/options.height/);
  await expect(txt2img(sd, { prompt: ['a', 'b'], negativePrompt: ['x', 'y', 'z'], steps: 1 })).rejects.toThrow(/2 negative prompts/);
  await expect(txt2img(sd, { prompt: [] as string[] })).rejects.toThrow(/options.prompt/);
});

test('latents size the image unless a height/width is given; wrong-sized latents name both shapes and the size that fits', async () => {
  using sd = await loadStableDiffusion(PIPELINE);
  using generator = new Generator(3);
  using wide = await randn([1, 4, 8, 12], { generator });
  const r = await txt2img(sd, { prompt: 'a cat', guidanceScale: 1, steps: 1, latents: wide });
  try {
    expect(r.images.shape).toEqual([1, 3, 16, 24]);
  } finally {
    r.dispose();
  }
  await expect(txt2img(sd, { prompt: 'a cat', height: 32, width: 32, steps: 1, latents: wide })).rejects.toThrow(
    /options.latents: expected shape \[1, 4, 16, 16\].* but received \[1, 4, 8, 12\]; height 16 and width 24 \(--height\/--width\) would fit/,
  );
  using two = await randn([2, 4, 8, 12], { generator });
  await expect(txt2img(sd, { prompt: 'a cat', steps: 1, latents: two })).rejects.toThrow(
    /expected shape \[1, 4, 8, 12\] \(\[prompts 1, .* received \[2, 4, 8, 12\]$/,
  );
});

test('npm run sample on a pipeline folder writes a PNG from prompts; the same seed gives the same image', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-t2i-'));
  const sink = () => {
    let text = '';
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        text += chunk.toString();
        done();
      },
    });
    return Object.assign(stream, { text: () => text });
  };
  const runs = [];
  for (const file of ['a.png', 'b.png']) {
    const out = sink();
    const err = sink();
    const code = await runSampleCli(
      ['--model', PIPELINE, '--prompt', 'a red circle', '--negative-prompt', 'blurry', '--steps', '3', '--seed', '5', '--out', path.join(dir, file)],
      out,
      err,
    );
    expect({ code, err: code === 0 ? '' : err.text() }).toEqual({ code: 0, err: '' });
    runs.push(await sharp(path.join(dir, file)).raw().toBuffer({ resolveWithObject: true }));
  }
  // Initial latents from a file reproduce an image exactly, whatever the seed.
  using generator = new Generator(11);
  using latents = await randn([1, 4, 16, 16], { generator });
  await saveStateDict(path.join(dir, 'latents.safetensors'), new Map([['latents', latents]]));
  for (const [file, seed] of [
    ['l1.png', '1'],
    ['l2.png', '2'],
  ] as const) {
    expect(
      await runSampleCli(
        [
          '--model',
          PIPELINE,
          '--prompt',
          'a red circle',
          '--steps',
          '2',
          '--seed',
          seed,
          '--latents',
          path.join(dir, 'latents.safetensors'),
          '--out',
          path.join(dir, file),
        ],
        sink(),
        sink(),
      ),
    ).toBe(0);
  }
  expect(fs.readFileSync(path.join(dir, 'l1.png')).equals(fs.readFileSync(path.join(dir, 'l2.png')))).toBe(true);
  expect(runs[0]!.info.width).toBe(32);
  expect(runs[0]!.info.height).toBe(32);
  expect(Buffer.compare(runs[0]!.data, runs[1]!.data)).toBe(0);
  const err = sink();
  expect(await runSampleCli(['--model', PIPELINE, '--out', path.join(dir, 'c.png')], sink(), err)).toBe(1);
  expect(err.text()).toMatch(/--prompt/);
});

describe('text-to-image fine-tuning on a captioned image folder', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-t2i-train-'));
  const recipe = (output: string, extra: Record<string, unknown> = {}) => ({
    model: { pretrained: PIPELINE },
    data: { path: path.join(SHAPES, 'train'), resolution: 32, channels: 3, captionDropout: 0.2 },
    train: { steps: 3, batchSize: 4, lr: 1e-4, seed: 0 },
    validation: { every: 3, samples: 4, data: { path: path.join(SHAPES, 'test'), resolution: 32, channels: 3 } },
    textToImage: { cacheDir: path.join(work, 'cache') },
    output,
    ...extra,
  });

  test('trains the U-Net only, keeps the text encoder and VAE bit-identical, and reuses cached latents', async () => {
    const first = await finetune(recipe(path.join(work, 'run1')), { verifyFrozen: true });
    expect(first.status).toBe('completed');
    expect(Number.isFinite(first.finalLoss)).toBe(true);
    const t = first.textToImage!;
    expect(t.frozenAfter).toEqual(t.frozenBefore);
    // 12 images × (3 steps of 4 / 12 per epoch) + 4 held-out: every latent encoded once.
    expect(t.cache.vaeEncoded).toBe(12 + 4);
    // The output is a whole pipeline: the trained U-Net beside the untouched text encoder and VAE.
    for (const part of ['text_encoder/model.safetensors', 'vae/diffusion_pytorch_model.safetensors']) {
      expect(fs.readFileSync(path.join(work, 'run1', part)).equals(fs.readFileSync(path.join(PIPELINE, part)))).toBe(true);
    }
    expect(
      fs
        .readFileSync(path.join(work, 'run1', 'unet', 'diffusion_pytorch_model.safetensors'))
        .equals(fs.readFileSync(path.join(PIPELINE, 'unet', 'diffusion_pytorch_model.safetensors'))),
    ).toBe(false);

    // A second run with the same cache folder reads every latent from disk: the VAE encodes nothing.
    const second = await finetune(recipe(path.join(work, 'run2')));
    expect(second.textToImage!.cache.vaeEncoded).toBe(0);
    expect(second.textToImage!.cache.latentHits).toBeGreaterThan(0);
    // ... and trains identically: the cache holds the same distributions the VAE computes.
    expect(second.finalLoss).toBe(first.finalLoss);
    expect(second.validation).toEqual(first.validation);

    // A damaged cache entry is recomputed (and rewritten), never trusted.
    const latentDir = path.join(work, 'cache', 'latents');
    const entries = fs
      .readdirSync(latentDir, { recursive: true })
      .map(String)
      .filter((f) => f.endsWith('.safetensors'));
    expect(entries.length).toBe(16);
    fs.writeFileSync(path.join(latentDir, entries[0]!), 'not a safetensors file');
    const repaired = await finetune(recipe(path.join(work, 'run2b')));
    expect(repaired.textToImage!.cache.vaeEncoded).toBe(1);
    expect(repaired.finalLoss).toBe(first.finalLoss);

    // Another transform (here: a different resolution) is another key: nothing stale is read.
    const third = await finetune(
      recipe(path.join(work, 'run3'), { data: { path: path.join(SHAPES, 'train'), resolution: 24, channels: 3 }, validation: { every: 0 } }),
    );
    expect(third.textToImage!.cache.vaeEncoded).toBe(12);
  }, 120_000);

  test('the default cache lives in <output>/.cache, outside the pipeline files; the output is a pipeline sized at the trained latent size', async () => {
    const out = path.join(work, 'default-cache');
    const r = await finetune({ ...recipe(out, { validation: { every: 0 } }), textToImage: {}, train: { steps: 1, batchSize: 4, lr: 1e-4, seed: 0 } });
    expect(r.status).toBe('completed');
    expect(fs.readdirSync(path.join(out, '.cache'))).toContain('latents');
    expect(fs.existsSync(path.join(out, 'cache'))).toBe(false);
    expect((await pipelineEntries(out)).sort()).toEqual(['model_index.json', 'scheduler', 'text_encoder', 'tokenizer', 'unet', 'vae']);
    using sd = await loadStableDiffusion(out);
    expect(sd.unet.config.sample_size).toBe(32 / sd.vae.vaeScaleFactor);
  }, 60_000);

  test('LoRA on a pipeline: adapters only (no half pipeline around them), sampled through the base folder', async () => {
    const out = path.join(work, 'lora');
    const r = await finetune(recipe(out, { lora: { rank: 4 }, validation: { every: 0 } }), { verifyFrozen: true });
    expect(r.status).toBe('completed');
    expect(r.textToImage!.frozenAfter).toEqual(r.textToImage!.frozenBefore);
    expect(fs.existsSync(path.join(out, 'pytorch_lora_weights.safetensors'))).toBe(true);
    expect(fs.existsSync(path.join(out, 'model_index.json'))).toBe(false);
    const png = path.join(work, 'lora.png');
    expect(
      await runSampleCli(
        ['--model', PIPELINE, '--lora', path.join(out, 'pytorch_lora_weights.safetensors'), '--prompt', 'a red circle', '--steps', '2', '--out', png],
        new Writable({ write: (_c, _e, done) => done() }),
        new Writable({ write: (_c, _e, done) => done() }),
      ),
    ).toBe(0);
    expect(fs.statSync(png).size).toBeGreaterThan(0);
  }, 60_000);

  test('cacheLatents false encodes every batch through the VAE and trains as the cached run does', async () => {
    const short = (output: string, cacheLatents: boolean) =>
      recipe(output, { train: { steps: 2, batchSize: 4, lr: 1e-4, seed: 0 }, validation: { every: 0 }, textToImage: { cacheLatents } });
    const uncached = await finetune(short(path.join(work, 'uncached'), false));
    expect(uncached.status).toBe('completed');
    expect(uncached.textToImage!.cache).toMatchObject({ latentHits: 0, latentMisses: 8, vaeEncoded: 8 });
    // Same latent distributions and the same per-step draws: the cache changes speed, never the run.
    const cached = await finetune(short(path.join(work, 'cached'), true));
    expect(uncached.finalLoss).toBe(cached.finalLoss);
  }, 60_000);

  test('a dataset without captions is refused with a clear message', async () => {
    const plain = path.join(work, 'plain');
    fs.mkdirSync(plain, { recursive: true });
    for (const f of ['red-circle.png', 'blue-square.png']) fs.copyFileSync(path.join(SHAPES, 'train', f), path.join(plain, f));
    await expect(
      finetune(recipe(path.join(work, 'run4'), { data: { path: plain, resolution: 32, channels: 3, layout: 'plain' }, validation: { every: 0 } })),
    ).rejects.toThrow(/captioned images/);
  }, 60_000);
});

describe('a Stable Diffusion 2.x-style pipeline: v-prediction, linear projections, upcast attention, gelu text encoder, "!" padding, clip skip', () => {
  // Assembled from the fixtures: sd-pipeline-tiny's VAE and text encoder (hidden_act switched to gelu, as
  // OpenCLIP), the unet2dcond-sd2ish U-Net with its v-prediction Euler scheduler, and SD 2.x's tokenizer pad "!".
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-sd2-'));
  const sd2 = path.join(dir, 'pipeline');
  beforeAll(() => {
    fs.cpSync(PIPELINE, sd2, { recursive: true, filter: (src) => !src.endsWith('cases.json') && !src.endsWith('cases.safetensors') });
    fs.rmSync(path.join(sd2, 'unet'), { recursive: true });
    fs.rmSync(path.join(sd2, 'scheduler'), { recursive: true });
    const unet = path.join(PIPELINE, '..', 'unet2dcond-sd2ish');
    fs.mkdirSync(path.join(sd2, 'unet'));
    for (const f of ['config.json', 'diffusion_pytorch_model.safetensors']) fs.copyFileSync(path.join(unet, f), path.join(sd2, 'unet', f));
    fs.cpSync(path.join(unet, 'scheduler'), path.join(sd2, 'scheduler'), { recursive: true });
    const index = JSON.parse(fs.readFileSync(path.join(sd2, 'model_index.json'), 'utf8'));
    index.scheduler = ['diffusers', 'EulerDiscreteScheduler'];
    fs.writeFileSync(path.join(sd2, 'model_index.json'), JSON.stringify(index));
    const te = path.join(sd2, 'text_encoder', 'config.json');
    fs.writeFileSync(te, JSON.stringify({ ...JSON.parse(fs.readFileSync(te, 'utf8')), hidden_act: 'gelu' }));
    for (const f of ['special_tokens_map.json', 'tokenizer_config.json']) {
      const file = path.join(sd2, 'tokenizer', f);
      fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), pad_token: '!' }));
    }
  });

  test('samples with clip skip and fine-tunes with the scheduler’s v-prediction', async () => {
    {
      using sd = await loadStableDiffusion(sd2);
      expect(sd.tokenizer.padId).toBe(0); // "!" is id 0, as in CLIP's vocabulary
      expect(sd.scheduler.config.prediction_type).toBe('v_prediction');
      const r = await txt2img(sd, { prompt: 'a red circle!', negativePrompt: 'blurry', steps: 3, seed: 1, clipSkip: 1 });
      try {
        expect(r.images.shape).toEqual([1, 3, 32, 32]);
        expect(Array.from((await r.images.data()) as Float32Array).every(Number.isFinite)).toBe(true);
      } finally {
        r.dispose();
      }
    }
    const result = await finetune(
      {
        model: { pretrained: sd2 },
        data: { path: path.join(SHAPES, 'train'), resolution: 32, channels: 3 },
        train: { steps: 2, batchSize: 4, lr: 1e-4, seed: 0 },
        textToImage: { clipSkip: 1 },
        output: path.join(dir, 'out'),
      },
      { verifyFrozen: true },
    );
    expect(result.status).toBe('completed');
    expect(Number.isFinite(result.finalLoss)).toBe(true);
    expect(result.textToImage!.frozenAfter).toEqual(result.textToImage!.frozenBefore);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'out', 'scheduler', 'scheduler_config.json'), 'utf8')).prediction_type).toBe('v_prediction');
  }, 120_000);
});
