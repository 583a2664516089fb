// Fine-tuning on a CUDA device (recipe model.device): the tiny SD pipeline's U-Net trains there with its
// frozen text encoder and VAE, in float32 and under bf16 and fp16 autocast (fp16 with dynamic loss
// scaling), LoRA adapters, EMA kept in host memory, and a stopped run resumed from its checkpoint.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { relError } from '../../lib/conformance/compare';
import { loadStateDict, disposeStateDict } from '../../lib/checkpoint/state-dict';
import { finetune } from '../../lib/train/finetune';
import { DEVICE, describeGpu } from './gpu';

const ROOT = path.join(__dirname, '..', '..');
const PIPELINE = path.join(ROOT, 'test', 'fixtures', 'diffusers', 'sd-pipeline-tiny');
const SHAPES = path.join(ROOT, 'recipes', 'data', 'shapes');

/**
 * A resumed run against a straight one on CUDA: cuDNN's backward kernels sum with atomics, so two straight
 * runs already differ in the last bits; after a few AdamW steps at lr 1e-4 those differences stay far below
 * 1e-3 of a weight's scale. On the CPU the same comparison is bit for bit (test/native/finetune.test.ts).
 */
const RESUME_BOUND = 1e-3;

describeGpu('fine-tuning on CUDA', () => {
  let work: string;
  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-gpu-train-'));
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  const recipe = (output: string, train: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({
    model: { pretrained: PIPELINE, device: DEVICE },
    data: { path: path.join(SHAPES, 'train'), resolution: 32, channels: 3 },
    train: { steps: 4, batchSize: 4, lr: 1e-4, seed: 0, ...train },
    validation: { every: 0 },
    output,
    ...extra,
  });

  function losses(output: string): number[] {
    return fs
      .readFileSync(path.join(output, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, number>)
      .filter((l) => 'loss' in l)
      .map((l) => l.loss!);
  }

  test.each(['no', 'bf16', 'fp16'])('mixedPrecision %s: every step finite, frozen models untouched', async (mixedPrecision) => {
    const out = path.join(work, `mp-${mixedPrecision}`);
    const r = await finetune(recipe(out, { mixedPrecision }), { verifyFrozen: true });
    expect(r.status).toBe('completed');
    expect(r.skippedSteps).toBe(0);
    const l = losses(out);
    expect(l).toHaveLength(4);
    expect(l.every(Number.isFinite)).toBe(true);
    expect(r.textToImage!.frozenAfter).toEqual(r.textToImage!.frozenBefore);
  });

  test('LoRA r4 under bf16 with EMA in host memory', async () => {
    const out = path.join(work, 'lora');
    const r = await finetune(recipe(out, { mixedPrecision: 'bf16', ema: { decay: 0.9, device: 'cpu' } }, { lora: { rank: 4 } }), { verifyFrozen: true });
    expect(r.status).toBe('completed');
    expect(losses(out).every(Number.isFinite)).toBe(true);
  });

  test('stopped at step 2 and resumed: the weights of 4 straight steps within RESUME_BOUND', async () => {
    const straightOut = path.join(work, 'straight');
    const straight = await finetune(recipe(straightOut, {}, { checkpoint: { every: 2, keep: 1 } }));
    const out = path.join(work, 'resumed');
    const controller = new AbortController();
    const first = await finetune(recipe(out, {}, { checkpoint: { every: 2, keep: 1 } }), {
      signal: controller.signal,
      onProgress: (p) => {
        if (p.step === 2) controller.abort();
      },
    });
    expect(first.status).toBe('aborted');
    const second = await finetune(recipe(out, {}, { checkpoint: { every: 2, keep: 1 }, resume: 'latest' }));
    expect(second.status).toBe('completed');
    const file = 'diffusion_pytorch_model.safetensors';
    const a = await loadStateDict(path.join(straight.unetDir, file));
    const b = await loadStateDict(path.join(second.unetDir, file));
    try {
      const worst: [string, number][] = [];
      for (const [name, t] of a) worst.push([name, relError(await b.get(name)!.data(), await t.data())]);
      expect(worst.filter(([, rel]) => !(rel <= RESUME_BOUND))).toEqual([]);
    } finally {
      disposeStateDict(a);
      disposeStateDict(b);
    }
  });
});
