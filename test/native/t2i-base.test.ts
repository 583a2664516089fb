// npm run pretrain:t2i, shortened (test/helpers/t2i-short.ts): the captioned data, the VAE phase (scaling_factor
// written), the U-Net + text-encoder phase, the packaged Stable Diffusion folder (difftune loads it and draws
// from it), summary.json against its schema, the model card's numbers; a resumed run skips the finished VAE
// phase and continues the U-Net's checkpoint; SIGTERM in the script stops with a checkpoint and exit 143.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listCheckpoints } from '../../lib/checkpoint/train-state';
import { pretrainT2i } from '../../lib/demo/t2i-base';
import { t2iBaseSummarySchema } from '../../lib/demo/t2i-base-card';
import { CAPTIONED_SET_INFO } from '../../lib/demo/t2i-data';
import { loadStableDiffusion } from '../../lib/models/stable-diffusion';
import { txt2img } from '../../lib/sample/txt2img';
import { useTempDir } from '../helpers/temp-dir';
import { ROOT, runShortT2i, shortT2iOverrides, shortT2iRecipe, T2I_RECIPE, type ShortT2iRun } from '../helpers/t2i-short';

const tmp = useTempDir('t2i-base');
let short: ShortT2iRun;

beforeAll(async () => {
  short = await runShortT2i(tmp());
}, 300_000);

test('the packaged folder is a Stable Diffusion pipeline with the card, the grid and summary.json, and nothing of the run', () => {
  const files = fs.readdirSync(short.model).sort();
  expect(files).toEqual(['README.md', 'model_index.json', 'samples.png', 'scheduler', 'summary.json', 'text_encoder', 'tokenizer', 'unet', 'vae']);
  for (const f of [
    'unet/config.json',
    'unet/diffusion_pytorch_model.safetensors',
    'vae/config.json',
    'vae/diffusion_pytorch_model.safetensors',
    'text_encoder/config.json',
    'text_encoder/model.safetensors',
    'tokenizer/vocab.json',
    'tokenizer/merges.txt',
    'tokenizer/tokenizer_config.json',
    'tokenizer/special_tokens_map.json',
    'scheduler/scheduler_config.json',
  ])
    expect([f, fs.existsSync(path.join(short.model, f))]).toEqual([f, true]);
  const index = JSON.parse(fs.readFileSync(path.join(short.model, 'model_index.json'), 'utf8')) as Record<string, unknown>;
  expect(index._class_name).toBe('StableDiffusionPipeline');
  expect(index.text_encoder).toEqual(['transformers', 'CLIPTextModel']);
  // The real CLIP BPE files, byte for byte as the recipe's config folder holds them.
  for (const f of ['vocab.json', 'merges.txt'])
    expect(fs.readFileSync(path.join(short.model, 'tokenizer', f)).equals(fs.readFileSync(path.join(ROOT, 'recipes', 'pretrain-t2i', 'tokenizer', f)))).toBe(
      true,
    );
});

test('summary.json follows its schema and carries the run’s numbers; the VAE config has the measured scaling_factor', () => {
  const summary = t2iBaseSummarySchema.parse(JSON.parse(fs.readFileSync(path.join(short.model, 'summary.json'), 'utf8')));
  expect(summary).toEqual(short.summary);
  expect(summary.data.classes.map((c) => [c.key, c.train, c.test])).toEqual([
    ['digit-7', 8, 4],
    ['digit-1', 8, 4],
    ['sneaker', 8, 4],
  ]);
  expect(summary.data.heldBack).toEqual([{ key: 'sandal', prompt: 'a photo of a sandal' }]);
  expect(summary.vae.steps).toBe(3);
  expect(summary.unet.steps).toBe(4);
  expect(summary.unet.heldOut.map((p) => p.step)).toEqual([0, 2, 4]);
  // validation.wrongCaptions: the same samples with another class's captions, at every validation.
  expect(summary.unet.heldOutWrongCaptions.map((p) => p.step)).toEqual([0, 2, 4]);
  expect(summary.unet.heldOutWrongCaptions[2]!.loss).not.toBe(summary.unet.heldOut[2]!.loss);
  expect(summary.samples.prompts).toEqual([
    { prompt: 'a handwritten digit seven', inBase: true },
    { prompt: 'a handwritten digit one', inBase: true },
    { prompt: 'a photo of a sneaker', inBase: true },
    { prompt: 'a photo of a sandal', inBase: false },
  ]);
  const vae = JSON.parse(fs.readFileSync(path.join(short.model, 'vae', 'config.json'), 'utf8')) as { scaling_factor: number };
  expect(vae.scaling_factor).toBe(summary.vae.scalingFactor);
  expect(vae.scaling_factor).not.toBe(0.18215);
  // The whole pipeline's files, which the card states (a few MB: the text encoder's 49,408-row embedding dominates).
  expect(summary.pipelineBytes).toBeGreaterThan(summary.components.unet.bytes + summary.components.vae.bytes + summary.components.text_encoder.bytes);
  expect(summary.pipelineBytes).toBeLessThan(20e6);
});

test('the model card states the run', () => {
  const card = fs.readFileSync(path.join(short.model, 'README.md'), 'utf8');
  const s = short.summary;
  expect(card).toContain('# t2i-base');
  expect(card).toContain(`| \`text_encoder/\` | CLIPTextModel | ${s.components.text_encoder.parameters.toLocaleString('en-US')} |`);
  expect(card).toContain('1. The VAE alone (lib/train/vae-training.ts): 3 steps of batch 8, reconstruction (MSE) + 1e-6 × KL');
  expect(card).toContain(`scaling_factor ${s.vae.scalingFactor.toPrecision(5)} = 1 / the std of the held-out latents`);
  expect(card).toMatch(/4 optimizer steps of batch 8, AdamW at 0\.001\n {3}\(text encoder 0\.001\), cosine schedule with 0 warmup steps, EMA/);
  expect(card).toMatch(/held-out loss \(the held-out images with their captions, fixed noise and timesteps\) \d\.\d{4} at step 0 → \d\.\d{4} at step 4/);
  const [right, wrong] = [s.unet.heldOut[2]!.loss, s.unet.heldOutWrongCaptions[2]!.loss];
  expect(card).toContain(
    `another class's (same noise and timesteps) the held-out loss at step 4 is\n   ${wrong.toFixed(4)} against ${right.toFixed(4)} with its own`,
  );
  expect(card).toContain('sandal ("a photo of a sandal")');
  expect(card).toContain('| digit-7 | a handwritten digit seven | 8 | 4 |');
  expect(card).toContain('"trainPerClass": 8');
});

test('difftune loads the packaged pipeline and draws 32×32 images from a prompt', async () => {
  using sd = await loadStableDiffusion(short.model);
  expect(sd.scheduler.className).toBe('DDIMScheduler');
  const r = await txt2img(sd, { prompt: ['a handwritten digit seven', 'a photo of a sneaker'], guidanceScale: 5, steps: 2, seed: 0 });
  try {
    expect(r.images.shape).toEqual([2, 3, 32, 32]);
    const data = (await r.images.data()) as Float32Array;
    expect(data.every(Number.isFinite)).toBe(true);
  } finally {
    r.dispose();
  }
});

test('the phases leave their marks in the run folder', () => {
  const run = short.result.run;
  const info = JSON.parse(fs.readFileSync(path.join(run.train, CAPTIONED_SET_INFO), 'utf8')) as { images: number };
  expect(info.images).toBe(24);
  const meta = fs.readFileSync(path.join(run.train, 'metadata.jsonl'), 'utf8').trim().split('\n');
  expect(JSON.parse(meta[0]!)).toEqual({
    file_name: expect.stringMatching(/^digit-7\/\d{4}\.png$/),
    text: expect.arrayContaining(['a handwritten digit seven']),
  });
  expect(fs.readFileSync(path.join(run.vae, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(3);
  expect(fs.existsSync(path.join(run.vae, 'result.json'))).toBe(true);
  expect(short.logs).toContain('phase 1: the VAE');
});

test('resume: the finished VAE phase is kept, the U-Net continues from its last checkpoint', async () => {
  const output = short.result.run.root;
  const vaeBefore = fs.readFileSync(path.join(short.result.run.init, 'vae', 'diffusion_pytorch_model.safetensors'));
  const logs: string[] = [];
  const raw = shortT2iRecipe(output, ['resume=latest', 'unet.train.steps=6']);
  const again = await pretrainT2i(raw, { recipeFile: T2I_RECIPE, onLog: (l) => logs.push(l) });
  expect(again.status).toBe('completed');
  expect(again.unet!.steps).toBe(6);
  expect(logs.some((l) => l.startsWith('phase 1 (the VAE) done before'))).toBe(true);
  expect(logs).toContain(`resumed from ${path.join(short.result.run.unet, 'checkpoint-4')} at step 4`);
  expect(fs.readFileSync(path.join(short.result.run.init, 'vae', 'diffusion_pytorch_model.safetensors')).equals(vaeBefore)).toBe(true);
}, 300_000);

test('a stop in the VAE phase leaves it unfinished (no result.json), and resume trains it again from the start', async () => {
  const output = path.join(tmp(), 'vae-stop');
  const controller = new AbortController();
  const raw = shortT2iRecipe(output);
  const stopped = await pretrainT2i(raw, { recipeFile: T2I_RECIPE, signal: controller.signal, onLog: (l) => l === 'phase 1: the VAE' && controller.abort() });
  expect([stopped.status, stopped.stoppedIn, stopped.unet]).toEqual(['aborted', 'vae', undefined]);
  expect(fs.existsSync(path.join(output, 'vae', 'result.json'))).toBe(false);
  const logs: string[] = [];
  const resumed = await pretrainT2i(shortT2iRecipe(output, ['resume=latest', 'unet.train.steps=1', 'unet.validation={"every":0}']), {
    recipeFile: T2I_RECIPE,
    onLog: (l) => logs.push(l),
  });
  expect([resumed.status, resumed.vae?.steps, resumed.unet?.steps]).toEqual(['completed', 3, 1]);
  expect(logs).toContain('phase 1: the VAE');
}, 300_000);

// Hours long on a CPU and stopped on purpose: the first SIGTERM stops the U-Net phase at the next step with a
// checkpoint, exits 143 and packages nothing.
test('npm run pretrain:t2i stops on SIGTERM with a checkpoint and exits 143', async () => {
  const dir = path.join(tmp(), 'signal');
  const target = path.join(dir, 'model');
  const sets = [...shortT2iOverrides(path.join(dir, 'run'), 5000), 'unet.validation={"every":0}', 'unet.checkpoint.every=0'];
  const args = [path.join(ROOT, 'dist', 'scripts', 'pretrain-t2i.js'), ...sets.flatMap((s) => ['--set', s]), '--out', target];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let interrupted = false;
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (!interrupted && /step 50\/5000/.test(stdout)) {
      interrupted = true;
      child.kill('SIGTERM');
    }
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  expect([interrupted, code, stderr]).toEqual([
    true,
    143,
    expect.stringContaining('pretrain:t2i: stopped in the U-Net phase with a checkpoint; run again with --set resume=latest'),
  ]);
  const checkpoints = await listCheckpoints(path.join(dir, 'run', 'unet'));
  expect(checkpoints).toHaveLength(1);
  expect(checkpoints[0]!.step).toBeGreaterThanOrEqual(50);
  expect(fs.existsSync(target)).toBe(false);
}, 300_000);

test('the shipped models/t2i-base: summary.json passes its schema, the captions steer it, difftune draws what is asked', async () => {
  const shipped = path.join(ROOT, 'models', 't2i-base');
  const summary = t2iBaseSummarySchema.parse(JSON.parse(fs.readFileSync(path.join(shipped, 'summary.json'), 'utf8')));
  expect(summary.unet.steps).toBe(15_000);
  const right = summary.unet.heldOut.at(-1)!;
  const wrong = summary.unet.heldOutWrongCaptions.at(-1)!;
  expect(wrong.step).toBe(right.step);
  expect(wrong.loss).toBeGreaterThan(right.loss * 1.05); // another class's caption denoises worse
  using sd = await loadStableDiffusion(shipped);
  // A "1" is a thin stroke, a coat fills most of the picture: the prompt decides which.
  const prompt = [...Array<string>(4).fill('a handwritten digit one'), ...Array<string>(4).fill('a photo of a coat')];
  const r = await txt2img(sd, { prompt, guidanceScale: 5, steps: 20, seed: 0 });
  try {
    expect(r.images.shape).toEqual([8, 3, 32, 32]);
    const data = (await r.images.data()) as Float32Array;
    const half = data.length / 2;
    // Brightness in [0, 1], as the images are shown (decoded images are about [-1, 1]).
    const mean = (from: number) => data.subarray(from, from + half).reduce((a, b) => a + Math.min(1, Math.max(0, (b + 1) / 2)), 0) / half;
    expect(mean(0)).toBeLessThan(0.5 * mean(half));
  } finally {
    r.dispose();
  }
});
