// finetune() end to end on a real (tiny) class-conditional U-Net and real MNIST digits: frozen weights
// untouched, a diffusers folder out, exact resume after an interruption, held-out loss going down.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SafetensorsFile } from '../../lib/checkpoint/safetensors';
import { listCheckpoints } from '../../lib/checkpoint/train-state';
import { loadUNet } from '../../lib/models/unet';
import { finetune, type FinetuneProgress } from '../../lib/train/finetune';

const BASE = path.join(__dirname, '..', 'fixtures', 'diffusers', 'unet2d-classcond');

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-ft-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function recipe(output: string, extra: Record<string, unknown> = {}, train: Record<string, unknown> = {}) {
  return {
    model: { pretrained: BASE },
    data: { source: 'mnist', resolution: 16, channels: 1, limit: 64 },
    freeze: { preset: 'decoder-only' },
    train: { steps: 6, batchSize: 4, lr: 1e-3, seed: 7, ...train },
    validation: { every: 3, samples: 8 },
    output,
    checkpoint: { every: 3, keep: 1 },
    ...extra,
  };
}

async function tensorBytes(file: string): Promise<Map<string, Buffer>> {
  const f = await SafetensorsFile.open(file);
  try {
    const out = new Map<string, Buffer>();
    for (const name of f.names()) out.set(name, await f.readBytes(name));
    return out;
  } finally {
    await f.close();
  }
}

test('decoder-only fine-tuning: frozen weights bit-identical, a loadable diffusers folder, metrics', async () => {
  const out = path.join(tmp, 'run');
  const progress: FinetuneProgress[] = [];
  const result = await finetune(recipe(out), { onProgress: (p) => progress.push(p) });
  expect(result.status).toBe('completed');
  expect(progress.map((p) => p.step)).toEqual([1, 2, 3, 4, 5, 6]);
  const before = await tensorBytes(path.join(BASE, 'diffusion_pytorch_model.safetensors'));
  const after = await tensorBytes(path.join(result.unetDir, 'diffusion_pytorch_model.safetensors'));
  const trainable = new Set(result.plan.trainable.map((p) => p.name));
  for (const [name, bytes] of before) {
    const same = bytes.equals(after.get(name)!);
    expect([name, same]).toEqual([name, !trainable.has(name)]);
  }
  using reloaded = await loadUNet(result.unetDir);
  expect(reloaded.config._class_name).toBe('UNet2DModel');
  expect(fs.existsSync(path.join(result.schedulerDir, 'scheduler_config.json'))).toBe(true);
  const lines = fs
    .readFileSync(path.join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>);
  expect(lines.filter((l) => 'loss' in l)).toHaveLength(6);
  expect(lines.filter((l) => 'validationLoss' in l).map((l) => l.step)).toEqual([0, 3, 6]);
  expect((await listCheckpoints(out)).map((c) => c.step)).toEqual([6]);
});

test('interrupted at step 3 and resumed from "latest": bit-identical to 6 straight steps', async () => {
  const straight = await finetune(recipe(path.join(tmp, 'a'), {}, { ema: { decay: 0.9 } }));
  const controller = new AbortController();
  const out = path.join(tmp, 'b');
  const first = await finetune(recipe(out, {}, { ema: { decay: 0.9 } }), {
    signal: controller.signal,
    onProgress: (p) => {
      if (p.step === 3) controller.abort();
    },
  });
  expect(first.status).toBe('aborted');
  expect(first.steps).toBe(3);
  const resumed = await finetune(recipe(out, { resume: 'latest' }, { ema: { decay: 0.9 } }));
  expect(resumed.status).toBe('completed');
  const a = await tensorBytes(path.join(straight.unetDir, 'diffusion_pytorch_model.safetensors'));
  const b = await tensorBytes(path.join(resumed.unetDir, 'diffusion_pytorch_model.safetensors'));
  for (const [name, bytes] of a) expect([name, bytes.equals(b.get(name)!)]).toEqual([name, true]);
});

test('30 steps of fine-tuning lower the held-out loss', async () => {
  const result = await finetune(
    recipe(path.join(tmp, 'c'), { freeze: { preset: 'full' }, validation: { every: 30, samples: 32 } }, { steps: 30, batchSize: 8, lr: 2e-3 }),
  );
  const [first, last] = [result.validation[0]!, result.validation[result.validation.length - 1]!];
  expect(first.step).toBe(0);
  expect(last.step).toBe(30);
  expect(last.loss).toBeLessThan(first.loss * 0.8);
});

test('resuming from another base model is refused', async () => {
  const out = path.join(tmp, 'd');
  await finetune(recipe(out, {}, { steps: 3 }));
  const other = path.join(tmp, 'other');
  fs.cpSync(BASE, other, { recursive: true });
  const weights = path.join(other, 'diffusion_pytorch_model.safetensors');
  const bytes = fs.readFileSync(weights);
  bytes[bytes.length - 1]! ^= 1;
  fs.writeFileSync(weights, bytes);
  await expect(finetune({ ...recipe(out, { resume: 'latest' }), model: { pretrained: other } })).rejects.toThrow(/was trained from .* not from/);
});

test('a LoRA run with dropout: adapters file out (PEFT and kohya), merged U-Net, base untouched, exact resume', async () => {
  // Dropout masks come from (seed, step, sample, layer) like the noise, so they too resume exactly.
  const lora = { rank: 4, alpha: 4, dropout: 0.1, attention: true, format: 'kohya', saveMerged: true, targets: ['up_blocks.*.resnets.*.conv1'] };
  const straight = await finetune(recipe(path.join(tmp, 'l1'), { lora }));
  expect(straight.loraFile).toBe(path.join(tmp, 'l1', 'pytorch_lora_weights.safetensors'));
  expect(fs.existsSync(path.join(tmp, 'l1', 'lora.kohya.safetensors'))).toBe(true);
  const adapters = await tensorBytes(straight.loraFile!);
  expect([...adapters.keys()].some((k) => k.startsWith('unet.') && k.endsWith('.to_q.lora_A.weight'))).toBe(true);
  expect([...adapters.keys()].some((k) => k.endsWith('resnets.0.conv1.lora_B.weight'))).toBe(true);
  // The checkpoints hold the adapters, not the U-Net.
  const [last] = (await listCheckpoints(path.join(tmp, 'l1'))).slice(-1);
  expect(fs.existsSync(path.join(last!.dir, 'pytorch_lora_weights.safetensors'))).toBe(true);
  expect(fs.existsSync(path.join(last!.dir, 'unet'))).toBe(false);

  const controller = new AbortController();
  const out = path.join(tmp, 'l2');
  await finetune(recipe(out, { lora }), { signal: controller.signal, onProgress: (p) => p.step === 3 && controller.abort() });
  const resumed = await finetune(recipe(out, { lora, resume: 'latest' }));
  const a = await tensorBytes(straight.loraFile!);
  const b = await tensorBytes(resumed.loraFile!);
  for (const [name, bytes] of a) expect([name, bytes.equals(b.get(name)!)]).toEqual([name, true]);
  const merged = await tensorBytes(path.join(resumed.unetDir, 'diffusion_pytorch_model.safetensors'));
  const base = await tensorBytes(path.join(BASE, 'diffusion_pytorch_model.safetensors'));
  const changed = [...base].filter(([name, bytes]) => !bytes.equals(merged.get(name)!)).map(([name]) => name);
  expect(changed.length).toBeGreaterThan(0);
  expect(changed.every((n) => /\.(to_q|to_k|to_v|to_out\.0|conv1)\.weight$/.test(n))).toBe(true);
});

test('bf16 mixed precision trains with float32 weights', async () => {
  // Forced: a CPU without bf16 arithmetic refuses plain "bf16" (test/unit/bf16-cpu.test.ts); the path is the same.
  const result = await finetune(recipe(path.join(tmp, 'bf16'), { validation: { every: 0 } }, { mixedPrecision: 'bf16', allowSlowBf16: true, steps: 4 }));
  expect(result.status).toBe('completed');
  expect(Number.isFinite(result.finalLoss)).toBe(true);
  const f = await SafetensorsFile.open(path.join(result.unetDir, 'diffusion_pytorch_model.safetensors'));
  expect([...f.tensors.values()].every((t) => t.dtype === 'F32')).toBe(true);
  await f.close();
});

test('a diverging run stops after maxSkippedSteps non-finite steps, the last checkpoint intact', async () => {
  const out = path.join(tmp, 'nan');
  await finetune(recipe(out, { validation: { every: 0 } }, { steps: 3 }));
  const error = await finetune(recipe(out, { validation: { every: 0 }, resume: 'latest' }, { steps: 40, lr: 1e30, maxGradNorm: 0, maxSkippedSteps: 2 })).catch(
    (e: unknown) => e as Error,
  );
  expect(error).toBeInstanceOf(Error);
  expect((error as Error).message).toMatch(/2 steps in a row had a non-finite loss/);
  const checkpoints = await listCheckpoints(out);
  expect(checkpoints.map((c) => c.step)).toEqual([3]);
  using unet = await loadUNet(path.join(checkpoints[0]!.dir, 'unet'));
  expect(unet.config._class_name).toBe('UNet2DModel');
});

test('a pipeline folder as the base: its unet/ and scheduler/ train, the rest is copied beside the result', async () => {
  const pipeline = path.join(tmp, 'pipe');
  fs.mkdirSync(path.join(pipeline, 'unet'), { recursive: true });
  for (const f of ['config.json', 'diffusion_pytorch_model.safetensors']) fs.copyFileSync(path.join(BASE, f), path.join(pipeline, 'unet', f));
  fs.cpSync(path.join(BASE, 'scheduler'), path.join(pipeline, 'scheduler'), { recursive: true });
  fs.mkdirSync(path.join(pipeline, 'extra'));
  fs.writeFileSync(path.join(pipeline, 'extra', 'note.txt'), 'kept');
  // Not components (a base that is itself a difftune output): not copied.
  for (const dir of ['checkpoint-1', '.cache', 'cache']) fs.mkdirSync(path.join(pipeline, dir));
  fs.writeFileSync(
    path.join(pipeline, 'model_index.json'),
    JSON.stringify({
      _class_name: 'DDPMPipeline',
      unet: ['diffusers', 'UNet2DModel'],
      scheduler: ['diffusers', 'DDPMScheduler'],
      extra: ['diffusers', 'Extra'],
    }),
  );
  const result = await finetune({ ...recipe(path.join(tmp, 'pout'), { validation: { every: 0 } }, { steps: 2 }), model: { pretrained: pipeline } });
  expect(fs.existsSync(path.join(tmp, 'pout', 'model_index.json'))).toBe(true);
  expect(fs.readFileSync(path.join(tmp, 'pout', 'extra', 'note.txt'), 'utf8')).toBe('kept');
  for (const dir of ['.cache', 'cache']) expect(fs.existsSync(path.join(tmp, 'pout', dir))).toBe(false);
  expect(fs.readdirSync(path.join(tmp, 'pout')).filter((f) => f.startsWith('checkpoint-'))).toEqual(result.checkpoints.map((c) => path.basename(c)));
  using unet = await loadUNet(result.unetDir);
  expect(unet.config._class_name).toBe('UNet2DModel');
});
