// DreamBooth with prior preservation on the tiny Stable Diffusion pipeline: the trainer's weighted loss is
// instance MSE + weight × class MSE (and its gradient the same sum), class images are generated once and
// reused until a generation setting changes, short runs train with LoRA and full weights, a resumed run
// equals an uninterrupted one and accumulation equals a larger batch.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { PassThrough, Writable } from 'stream';
import { SafetensorsFile } from '../../lib/checkpoint/safetensors';
import { disposeStateDict } from '../../lib/checkpoint/state-dict';
import { loadUNet } from '../../lib/models/unet';
import { Tensor } from '../../lib/native/tensor';
import { loadScheduler } from '../../lib/schedulers/scheduler';
import { CLASS_IMAGES_FILE, classGenerationSettings, ensureClassImages, type ClassImagesRequest } from '../../lib/train/class-images';
import { runFinetuneCli } from '../../lib/train/cli';
import { DREAMBOOTH_STATE_FILE } from '../../lib/train/dreambooth';
import { finetune } from '../../lib/train/finetune';
import { Trainer } from '../../lib/train/trainer';
import { float32SumBound, floatsOf, relativeDistance } from '../helpers/run-distance';

const ROOT = path.join(__dirname, '..', '..');
const PIPELINE = path.join(ROOT, 'test', 'fixtures', 'diffusers', 'sd-pipeline-tiny');
const SHAPES = path.join(ROOT, 'recipes', 'data', 'shapes', 'train');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-dreambooth-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** n deterministic float32 samples of `shape`, sample k depending on (first + k) only. */
function synthetic(n: number, first: number, shape: readonly number[], scale: number): Tensor {
  const per = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n * per);
  for (let k = 0; k < n; k++) for (let j = 0; j < per; j++) data[k * per + j] = Math.sin(((first + k) * 7919 + j) * 0.37) * scale;
  return Tensor.from(data, [n, ...shape]);
}

async function sdTrainer(): Promise<{ trainer: Trainer; dispose(): void }> {
  const unet = await loadUNet(path.join(PIPELINE, 'unet'));
  using scheduler = await loadScheduler(path.join(PIPELINE, 'scheduler'));
  using alphasCumprod = await scheduler.alphasCumprod();
  const params = await unet.parameters();
  const trainer = await Trainer.create(unet, {
    trainable: params.map((p) => ({ name: p.name, lrMultiplier: 1, weightDecay: true })),
    alphasCumprod,
    predictionType: 'epsilon',
    seed: 7,
    ema: false,
    mixedPrecision: 'no',
    // No clipping: the first moments below are the raw gradients (times 1 − β1).
    maxGradNorm: 0,
  });
  return {
    trainer,
    dispose: () => {
      trainer.dispose();
      unet.dispose();
    },
  };
}

describe('the weighted loss: instance MSE + priorLossWeight × class MSE', () => {
  // n instance samples and n class samples, concatenated in one batch as train_dreambooth.py does.
  const n = 3;
  const w = 0.75; // exact in float32: w·loss rounds once
  const latents = () => synthetic(2 * n, 0, [4, 16, 16], 0.9);
  const context = () => synthetic(2 * n, 100, [77, 32], 1);
  const indices = [0, 1, 2, 2 ** 50, 2 ** 50 + 1, 2 ** 50 + 2];
  const ones = (k: number) => Array.from({ length: k }, () => 1);
  const zeros = (k: number) => Array.from({ length: k }, () => 0);

  test('on a fixed batch, the joint loss equals the halves summed apart, within float32 summation error', async () => {
    const s = await sdTrainer();
    using pixels = latents();
    using encoderHiddenStates = context();
    const micro = (lossWeights: number[]) =>
      s.trainer.accumulate({ pixels, encoderHiddenStates, sampleIndices: indices, step: 0, totalSamples: n, lossWeights });
    // The same forward each time (the weights do not change before step()), summed with other weights:
    // the instance half alone, the class half alone, then both with the class half weighted.
    const instance = (await micro([...ones(n), ...zeros(n)])).lossSum;
    const classHalf = (await micro([...zeros(n), ...ones(n)])).lossSum;
    const joint = (await micro([...ones(n), ...zeros(n).map(() => w)])).lossSum;
    const expected = instance + w * classHalf;
    // Each sum of m non-negative float32 terms is within (m − 1)·2^-24 of its exact value, relative; the
    // joint sum has 2n terms (each w·loss rounded once more), each half n: at most 4n·2^-24 in all.
    expect(Math.abs(joint - expected) / expected).toBeLessThanOrEqual(float32SumBound(4 * n));
    // Not trivially equal: the class half is not the instance half, and the weight matters.
    expect(Math.abs(classHalf - instance) / expected).toBeGreaterThan(100 * float32SumBound(4 * n));
    s.dispose();
  }, 60_000);

  test('each half computed in its own batch gives the same losses, and the weighted gradient is the sum of the halves’ gradients', async () => {
    // Instance and class halves as separate batches (their own forwards): the per-sample losses depend on
    // the sample's (seed, step, index) only, so they match the joint batch's up to the float32 rounding
    // of the forward's sums, which a different batch size may group differently: at most the deepest
    // sum's 2^-24 per term (a convolution's weight sums over batch × H × W = 2n × 16 × 16 products).
    const bound = float32SumBound(2 * n * 16 * 16);
    const joint = await sdTrainer();
    const split = await sdTrainer();
    using pixels = latents();
    using encoderHiddenStates = context();
    const jointLoss = (
      await joint.trainer.accumulate({
        pixels,
        encoderHiddenStates,
        sampleIndices: indices,
        step: 0,
        totalSamples: n,
        lossWeights: [...ones(n), ...zeros(n).map(() => w)],
      })
    ).lossSum;
    using instPixels = synthetic(n, 0, [4, 16, 16], 0.9);
    using instContext = synthetic(n, 100, [77, 32], 1);
    using classPixels = synthetic(n, n, [4, 16, 16], 0.9);
    using classContext = synthetic(n, 100 + n, [77, 32], 1);
    // The split trainer accumulates the halves as two micro-batches: instance (weight 1), class (weight w).
    const inst = (
      await split.trainer.accumulate({ pixels: instPixels, encoderHiddenStates: instContext, sampleIndices: indices.slice(0, n), step: 0, totalSamples: n })
    ).lossSum;
    const cls = (
      await split.trainer.accumulate({
        pixels: classPixels,
        encoderHiddenStates: classContext,
        sampleIndices: indices.slice(n),
        step: 0,
        totalSamples: n,
        lossWeights: zeros(n).map(() => w),
      })
    ).lossSum;
    expect(Math.abs(jointLoss - (inst + cls)) / jointLoss).toBeLessThan(bound);
    await joint.trainer.step(1e-4);
    await split.trainer.step(1e-4);
    const moments = async (t: Trainer) => {
      const state = await t.optimizerState();
      const out = floatsOf(state, (name) => name.startsWith('exp_avg.'));
      disposeStateDict(state);
      return out;
    };
    const distance = relativeDistance(await moments(joint.trainer), await moments(split.trainer));
    expect(distance).toBeLessThan(bound);
    // A wrong weight (1 instead of w on the class half) is far outside the bound.
    const unweighted = await sdTrainer();
    await unweighted.trainer.accumulate({ pixels, encoderHiddenStates, sampleIndices: indices, step: 0, totalSamples: n, lossWeights: ones(2 * n) });
    await unweighted.trainer.step(1e-4);
    expect(relativeDistance(await moments(joint.trainer), await moments(unweighted.trainer))).toBeGreaterThan(100 * bound);
    for (const s of [joint, split, unweighted]) s.dispose();
  }, 60_000);

  test('bad loss weights are named', async () => {
    const s = await sdTrainer();
    using pixels = synthetic(2, 0, [4, 16, 16], 0.9);
    using encoderHiddenStates = synthetic(2, 100, [77, 32], 1);
    const micro = (lossWeights: unknown) =>
      s.trainer.accumulate({ pixels, encoderHiddenStates, sampleIndices: [0, 1], step: 0, totalSamples: 1, lossWeights: lossWeights as number[] });
    await expect(micro([1])).rejects.toThrow(/one loss weight per batch item \(2\) but received 1/);
    await expect(micro([1, -1])).rejects.toThrow(/batch.lossWeights\[1\]/);
    await expect(micro([1, Number.NaN])).rejects.toThrow(/finite non-negative/);
    // Without weights every sample must be counted.
    await expect(s.trainer.accumulate({ pixels, encoderHiddenStates, sampleIndices: [0, 1], step: 0, totalSamples: 1 })).rejects.toThrow(/totalSamples/);
    s.dispose();
  }, 60_000);
});

describe('class images: generated once by the base pipeline, reused, regenerated when a setting changes', () => {
  const folder = path.join(work, 'class-cache');
  const request = (generation: Partial<ClassImagesRequest['generation']> = {}): ClassImagesRequest => ({
    folder,
    prompt: 'a photo of a shape',
    count: 3,
    generation: { steps: 2, guidanceScale: 7.5, seed: 0, batchSize: 2, scheduler: null, ...generation },
    pipelineDir: PIPELINE,
    unetSha256: 'u'.repeat(64),
    basePath: PIPELINE,
    resolution: 32,
    device: 'cpu',
    log: () => undefined,
  });
  const snapshot = () => new Map(fs.readdirSync(folder).map((f) => [f, fs.readFileSync(path.join(folder, f))]));

  test('a supplied image counts; generated ones are listed in the sidecar, reused on a rerun and regenerated (only they) after a change', async () => {
    fs.mkdirSync(folder, { recursive: true });
    fs.copyFileSync(path.join(SHAPES, 'red-circle.png'), path.join(folder, 'supplied.png'));
    const first = await ensureClassImages(request());
    expect(first).toMatchObject({ generated: 2, reused: 0, supplied: 1, files: ['class-00000.png', 'class-00001.png', 'supplied.png'] });
    const sidecar = JSON.parse(fs.readFileSync(path.join(folder, CLASS_IMAGES_FILE), 'utf8'));
    expect(sidecar.images).toEqual({ 'class-00000.png': { index: 0 }, 'class-00001.png': { index: 1 } });
    expect(sidecar.settings).toMatchObject({
      prompt: 'a photo of a shape',
      seed: 0,
      steps: 2,
      guidanceScale: 7.5,
      size: 32,
      scheduler: { className: 'PNDMScheduler' },
    });
    const meta = await sharp(path.join(folder, 'class-00000.png')).metadata();
    expect([meta.width, meta.height, meta.channels]).toEqual([32, 32, 3]);
    const made = snapshot();
    // Images k start from noise seeded with seed + k: two images, two different pictures.
    expect(made.get('class-00000.png')!.equals(made.get('class-00001.png')!)).toBe(false);

    // The same settings (batchSize is not one of them): nothing generated, not a byte changed.
    expect(await ensureClassImages(request({ batchSize: 1 }))).toMatchObject({ generated: 0, reused: 2, supplied: 1 });
    expect(snapshot()).toEqual(made);

    // Another setting: the generated images are made again (differently); the supplied one is untouched.
    expect(await ensureClassImages(request({ steps: 3 }))).toMatchObject({ generated: 2, reused: 0, supplied: 1 });
    const changed = snapshot();
    expect(changed.get('supplied.png')!.equals(made.get('supplied.png')!)).toBe(true);
    expect(changed.get('class-00000.png')!.equals(made.get('class-00000.png')!)).toBe(false);
    // Every setting is part of the key (each would regenerate as steps did): seed, guidance, scheduler, prompt, base weights, size.
    const key = async (r: ClassImagesRequest) => JSON.stringify(await classGenerationSettings(r));
    const keys = await Promise.all(
      [
        request(),
        request({ seed: 1 }),
        request({ guidanceScale: 2 }),
        request({ scheduler: 'DDIMScheduler' }),
        { ...request(), prompt: 'a drawing of a shape' },
        { ...request(), unetSha256: 'v'.repeat(64) },
        { ...request(), resolution: 64 },
      ].map(key),
    );
    expect(new Set(keys).size).toBe(keys.length);
    expect(await key(request({ batchSize: 3 }))).toBe(keys[0]);

    // Back to the first settings: the same images as the first time, bit for bit.
    expect(await ensureClassImages(request())).toMatchObject({ generated: 2, reused: 0 });
    expect(snapshot()).toEqual(made);
    // A deleted generated image is made again; more images asked for are added.
    fs.rmSync(path.join(folder, 'class-00001.png'));
    expect(await ensureClassImages({ ...request(), count: 4 })).toMatchObject({ generated: 2, reused: 1, supplied: 1 });
    expect(fs.readdirSync(folder).sort()).toEqual(['class-00000.png', 'class-00001.png', 'class-00002.png', CLASS_IMAGES_FILE, 'supplied.png'].sort());
  }, 120_000);

  test('a damaged sidecar is named, not guessed around', async () => {
    const dir = path.join(work, 'bad-sidecar');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, CLASS_IMAGES_FILE), '{"format": "something else"}');
    await expect(ensureClassImages({ ...request(), folder: dir })).rejects.toThrow(
      /difftune-class-images.json: expected difftune's record of generated class images/,
    );
  });
});

describe('DreamBooth fine-tuning with prior preservation', () => {
  const instances = path.join(work, 'instances');
  beforeAll(() => {
    // Four uncaptioned instance images: every one is captioned with the instance prompt.
    fs.mkdirSync(instances, { recursive: true });
    for (const f of ['red-circle.png', 'red-square.png', 'red-triangle.png', 'blue-circle.png']) fs.copyFileSync(path.join(SHAPES, f), path.join(instances, f));
  });
  const recipe = (output: string, extra: Record<string, unknown> = {}, dreambooth: Record<string, unknown> = {}, train: Record<string, unknown> = {}) => ({
    model: { pretrained: PIPELINE },
    data: { path: instances, resolution: 32, channels: 3 },
    // 3 class images for 4 instance samples per epoch: the class stream wraps mid-epoch.
    dreambooth: {
      instancePrompt: 'a photo of sks shape',
      classPrompt: 'a photo of a shape',
      classData: path.join(work, 'classes'),
      numClassImages: 3,
      priorLossWeight: 0.5,
      classGeneration: { steps: 2, batchSize: 3 },
      ...dreambooth,
    },
    train: { steps: 4, batchSize: 2, lr: 1e-3, seed: 3, ...train },
    textToImage: { cacheDir: path.join(work, 'cache') },
    output,
    ...extra,
  });
  const unetBytes = (dir: string) => fs.readFileSync(path.join(dir, 'unet', 'diffusion_pytorch_model.safetensors'));

  test('full weights: class images generated before training, latents for both kinds, the text models frozen; --dry-run shows the counts', async () => {
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
    const out = sink();
    const recipeFile = path.join(work, 'dreambooth.json');
    fs.writeFileSync(recipeFile, JSON.stringify(recipe(path.join(work, 'dry'))));
    expect(await runFinetuneCli(['--recipe', recipeFile, '--dry-run'], out, sink(), false)).toBe(0);
    expect(out.text()).toMatch(/dreambooth: 4 instance images \(4 samples per epoch\) "a photo of sks shape"/);
    expect(out.text()).toMatch(
      /class images "a photo of a shape": 3 used \(numClassImages 3\) from .*classes: 0 there \(0 generated earlier with these settings\), 3 to generate/,
    );
    expect(fs.existsSync(path.join(work, 'classes'))).toBe(false);

    const r = await finetune(recipe(path.join(work, 'full')), { verifyFrozen: true });
    expect(r.status).toBe('completed');
    expect(Number.isFinite(r.finalLoss)).toBe(true);
    expect(r.textToImage!.frozenAfter).toEqual(r.textToImage!.frozenBefore);
    expect(fs.readdirSync(path.join(work, 'classes')).filter((f) => f.endsWith('.png'))).toHaveLength(3);
    // Every instance and class image went through the VAE once (4 steps × 2 instance samples = 2 epochs).
    expect(r.textToImage!.cache.vaeEncoded).toBe(4 + 3);
    expect(unetBytes(path.join(work, 'full')).equals(unetBytes(PIPELINE))).toBe(false);
    const state = JSON.parse(fs.readFileSync(path.join(r.checkpoints.at(-1)!, DREAMBOOTH_STATE_FILE), 'utf8'));
    expect(state).toMatchObject({ version: 1, orderSeed: 3, instanceSamples: 4 });
    expect(state.images.map((i: { file: string }) => i.file)).toEqual(['class-00000.png', 'class-00001.png', 'class-00002.png']);

    const again = sink();
    expect(await runFinetuneCli(['--recipe', recipeFile, '--dry-run'], again, sink(), false)).toBe(0);
    expect(again.text()).toMatch(/3 there \(3 generated earlier with these settings\), 0 to generate/);
  }, 180_000);

  test('without prior preservation: the uncaptioned instance images, held-out ones too, are captioned with the instance prompt', async () => {
    const heldOut = { every: 1, samples: 2, data: { path: instances, resolution: 32, channels: 3 } };
    const r = await finetune({
      ...recipe(path.join(work, 'instance-only'), { validation: heldOut, textToImage: { cacheDir: path.join(work, 'cache-instance-only') } }, {}, { steps: 1 }),
      dreambooth: { instancePrompt: 'a photo of sks shape' },
    });
    expect(r.status).toBe('completed');
    expect(r.validation.map((v) => v.step)).toEqual([0, 1]);
    // One caption embedded for training and held-out images alike; no class images.
    expect(r.textToImage!.cache.textMisses).toBe(1);
    expect(fs.existsSync(path.join(work, 'instance-only', 'checkpoint-1', DREAMBOOTH_STATE_FILE))).toBe(false);
    // Without the dreambooth section the same folder has no captions for a text-to-image run.
    await expect(finetune({ ...recipe(path.join(work, 'no-captions'), {}, {}, { steps: 1 }), dreambooth: null })).rejects.toThrow(/captioned images/);
  }, 120_000);

  test('LoRA: adapters only, the base untouched', async () => {
    const r = await finetune(recipe(path.join(work, 'lora'), { lora: { rank: 4 } }), { verifyFrozen: true });
    expect(r.status).toBe('completed');
    expect(Number.isFinite(r.finalLoss)).toBe(true);
    expect(fs.existsSync(path.join(work, 'lora', 'pytorch_lora_weights.safetensors'))).toBe(true);
  }, 120_000);

  test('resuming equals the uninterrupted run bit for bit; a resume onto other class images is refused', async () => {
    const straight = await finetune(recipe(path.join(work, 'straight')));
    const stopped = path.join(work, 'resumed');
    await finetune(recipe(stopped, { checkpoint: { every: 2, keep: 0 } }, {}, { steps: 2 }));
    const resumed = await finetune(recipe(stopped, { resume: 'latest' }));
    expect(resumed.finalLoss).toBe(straight.finalLoss);
    expect(unetBytes(stopped).equals(unetBytes(path.join(work, 'straight')))).toBe(true);

    // Another seed for the class images' generation: other images, so no exact resume.
    const other = recipe(
      stopped,
      { resume: path.join(stopped, 'checkpoint-2') },
      { classData: path.join(work, 'classes-other'), classGeneration: { steps: 2, seed: 9 } },
    );
    await expect(finetune(other)).rejects.toThrow(
      /trained with other class images than dreambooth.classData holds now: the class images \(3 → 3; new or changed: class-00000.png/,
    );
  }, 240_000);

  test('batch 2 equals batch 1 × accumulation 2, and the loss weight changes the run', async () => {
    const one = recipe(path.join(work, 'b2'), {}, {}, { steps: 2, lr: 1e-4 });
    const two = recipe(path.join(work, 'b1x2'), {}, {}, { steps: 2, lr: 1e-4, batchSize: 1, gradientAccumulation: 2 });
    const a = await finetune(one);
    const b = await finetune(two);
    // The same samples, noise and class samples, only grouped differently: the step's loss is a sum over
    // 2 × 2 samples of per-sample means over 4 × 16 × 16 latent values (float32 summation error).
    expect(Math.abs(a.finalLoss - b.finalLoss) / a.finalLoss).toBeLessThan(float32SumBound(2 * 2 * 4 * 16 * 16));
    const heavier = await finetune(recipe(path.join(work, 'w2'), {}, { priorLossWeight: 2 }, { steps: 2, lr: 1e-4 }));
    expect(Math.abs(heavier.finalLoss - a.finalLoss) / a.finalLoss).toBeGreaterThan(1e-3);
  }, 180_000);
});

test('npm run finetune -- --nproc-per-node 2: the launcher generates the class images, 2 ranks × batch 1 train as 1 process × batch 2', async () => {
  const dir = path.join(work, 'dp');
  const instances = path.join(dir, 'instances');
  fs.mkdirSync(instances, { recursive: true });
  // 4 instance images: every global batch of 2 lies within one epoch on 2 ranks as in one process.
  for (const f of ['red-circle.png', 'red-square.png', 'blue-circle.png', 'blue-square.png']) fs.copyFileSync(path.join(SHAPES, f), path.join(instances, f));
  const recipe = (output: string, batchSize: number) => ({
    model: { pretrained: PIPELINE },
    data: { path: instances, resolution: 32, channels: 3, randomFlip: true },
    dreambooth: {
      instancePrompt: 'a photo of sks shape',
      classPrompt: 'a photo of a shape',
      classData: path.join(dir, 'classes'),
      numClassImages: 2,
      classGeneration: { steps: 2 },
    },
    train: { steps: 3, batchSize, lr: 1e-4, seed: 5 },
    textToImage: { cacheDir: path.join(dir, 'cache') },
    output,
  });
  const file = path.join(dir, 'r.json');
  fs.writeFileSync(file, JSON.stringify(recipe(path.join(dir, 'two'), 1)));
  const out = new PassThrough();
  const err = new PassThrough();
  let printed = '';
  let errors = '';
  out.on('data', (c) => (printed += String(c)));
  err.on('data', (c) => (errors += String(c)));
  expect([await runFinetuneCli(['--recipe', file, '--nproc-per-node', '2', '--dist-timeout', '120'], out, err, false), errors]).toEqual([0, '']);
  expect(printed).toMatch(/class images: 0 in .*generating 2/);
  expect(printed).toMatch(/done: 3 steps/);
  const single = await finetune(recipe(path.join(dir, 'one'), 2));
  expect(single.status).toBe('completed');
  // The same instance and class samples, noise and flips per step, grouped over ranks instead of one batch:
  // gradients within float32 summation error (the deepest sum: a convolution weight gradient over
  // 2 instance + 2 class samples × 16 × 16 latent pixels, plus the all-reduce's addition), compared in
  // Adam's first moments (see data-parallel.test.ts for why not the weights).
  const moments = async (run: string) => {
    const t = await SafetensorsFile.open(path.join(dir, run, 'checkpoint-3', 'optimizer.safetensors'));
    try {
      const m = new Map<string, Float32Array>();
      for (const name of t.names().filter((n) => n.startsWith('exp_avg.'))) m.set(name, (await t.read(name)).data as Float32Array);
      return m;
    } finally {
      await t.close();
    }
  };
  expect(relativeDistance(await moments('one'), await moments('two'))).toBeLessThan(float32SumBound(4 * 16 * 16 + 1));
}, 240_000);
