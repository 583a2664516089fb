// Training the text encoder with the U-Net on the tiny Stable Diffusion pipeline: LoRA adapters on it
// (lora.textEncoder) are saved with the U-Net's in the PEFT and kohya files, read back exactly and give
// the merged weights' outputs; its own weights (freeze.textEncoder) change and the saved pipeline reloads
// them; a resumed run equals an uninterrupted one with a trainable encoder (weights, moments).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SafetensorsFile } from '../../lib/checkpoint/safetensors';
import { applyLoraFile, disposeLoraEntries, readLoraFile } from '../../lib/models/lora';
import { loadStableDiffusion } from '../../lib/models/stable-diffusion';
import { encodePrompts } from '../../lib/sample/txt2img';
import { finetune, planRecipe } from '../../lib/train/finetune';

const ROOT = path.join(__dirname, '..', '..');
const PIPELINE = path.join(ROOT, 'test', 'fixtures', 'diffusers', 'sd-pipeline-tiny');
const SHAPES = path.join(ROOT, 'recipes', 'data', 'shapes', 'train');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-te-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const PROMPTS = ['a red circle, flat style', 'a blue square', 'a photo of a cat'];

function recipe(output: string, extra: Record<string, unknown> = {}, train: Record<string, unknown> = {}) {
  return {
    model: { pretrained: PIPELINE },
    data: { path: SHAPES, resolution: 32, channels: 3, randomFlip: true },
    train: { steps: 3, batchSize: 2, lr: 2e-2, textEncoderLr: 1e-2, seed: 5, ...train },
    output,
    checkpoint: { every: 0, keep: 3 },
    ...extra,
  };
}

async function tensors(file: string): Promise<Map<string, Buffer>> {
  await using f = await SafetensorsFile.open(file);
  const out = new Map<string, Buffer>();
  for (const name of f.names()) out.set(name, Buffer.from(await f.readBytes(name)));
  return out;
}

async function embeds(dirOrPipeline: string, lora?: string): Promise<Float32Array> {
  using sd = await loadStableDiffusion(dirOrPipeline);
  if (lora !== undefined) await applyLoraFile(sd, lora);
  using e = await encodePrompts(sd, PROMPTS);
  return Float32Array.from(e.toArray() as Float32Array);
}

function relError(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    n += b[i]! ** 2;
  }
  return Math.sqrt(d / n);
}

describe('lora.textEncoder', () => {
  const output = path.join(work, 'lora');
  const lora = { rank: 4, alpha: 8, format: 'kohya', saveMerged: true, textEncoder: { rank: 2, targets: ['q_proj', 'v_proj', 'fc1'] } };

  test('the encoder adapters train and are saved with the U-Net’s in both layouts; each reads back and matches the merged weights', async () => {
    const logs: string[] = [];
    const r = await finetune(recipe(output, { lora }), { onLog: (l) => logs.push(l), verifyFrozen: true });
    expect(r.status).toBe('completed');
    expect(logs.some((l) => /the text encoder's rank 2 on 9 layers \(q_proj, v_proj, fc1\)/.test(l))).toBe(true);
    expect(logs.some((l) => /the text-embedding cache is off/.test(l))).toBe(true);
    const peft = await tensors(path.join(output, 'pytorch_lora_weights.safetensors'));
    const te = [...peft.keys()].filter((k) => k.startsWith('text_encoder.'));
    expect(te.length).toBe(3 * 3 * 2);
    expect(te).toContain('text_encoder.text_model.encoder.layers.2.mlp.fc1.lora_A.weight');
    const kohya = await tensors(path.join(output, 'lora.kohya.safetensors'));
    expect([...kohya.keys()].filter((k) => k.startsWith('lora_te_')).length).toBe(3 * 3 * 3);
    expect(kohya.has('lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight')).toBe(true);

    // The checkpoint's (unfolded) adapters are the trained ones; the output's PEFT file unfolds to them.
    using trained = await loadStableDiffusion(PIPELINE);
    const teModules = (await trained.textEncoder.parameters()).map((p) => p.name.replace(/\.weight$/, ''));
    const unetModules = (await trained.unet.parameters()).map((p) => p.name.replace(/\.weight$/, ''));
    const fromCheckpoint = await readLoraFile(path.join(output, 'checkpoint-3', 'pytorch_lora_weights.safetensors'), unetModules, teModules);
    const fromOutput = await readLoraFile(path.join(output, 'pytorch_lora_weights.safetensors'), unetModules, teModules);
    try {
      expect(fromOutput.textEncoder.map((e) => [e.module, e.alpha])).toEqual(fromCheckpoint.textEncoder.map((e) => [e.module, 2]));
      for (const [i, e] of fromCheckpoint.textEncoder.entries()) {
        // alpha/rank = 1: folding is exact.
        expect(Buffer.from((e.B.toArray() as Float32Array).buffer).equals(Buffer.from((fromOutput.textEncoder[i]!.B.toArray() as Float32Array).buffer))).toBe(
          true,
        );
        expect((e.B.toArray() as Float32Array).some((v) => v !== 0)).toBe(true); // B starts at zero: it trained
      }
    } finally {
      for (const r2 of [fromCheckpoint, fromOutput]) {
        disposeLoraEntries(r2.entries);
        disposeLoraEntries(r2.textEncoder);
      }
    }

    const base = await embeds(PIPELINE);
    const merged = await embeds(output); // the output pipeline: adapters merged into unet/ and text_encoder/
    const viaPeft = await embeds(PIPELINE, path.join(output, 'pytorch_lora_weights.safetensors'));
    const viaKohya = await embeds(PIPELINE, path.join(output, 'lora.kohya.safetensors'));
    expect(relError(base, merged)).toBeGreaterThan(1e-3);
    expect(relError(viaPeft, merged)).toBeLessThan(1e-5);
    expect(relError(viaKohya, merged)).toBeLessThan(1e-5);
  });

  test('a resumed run equals an uninterrupted one: adapters and moments, the encoder’s included', async () => {
    const straight = path.join(work, 'lora-straight');
    const split = path.join(work, 'lora-split');
    const l = { ...lora, format: 'peft', saveMerged: false, dropout: 0.1 };
    await finetune(recipe(straight, { lora: l, checkpoint: { every: 4, keep: 2 } }, { steps: 4 }));
    await finetune(recipe(split, { lora: l, checkpoint: { every: 2, keep: 2 } }, { steps: 2 }));
    await finetune(recipe(split, { lora: l, checkpoint: { every: 4, keep: 2 }, resume: 'latest' }, { steps: 4 }));
    for (const file of ['checkpoint-4/pytorch_lora_weights.safetensors', 'checkpoint-4/optimizer.safetensors']) {
      const a = await tensors(path.join(straight, file));
      const b = await tensors(path.join(split, file));
      expect([...a.keys()].some((k) => k.includes('text_encoder.'))).toBe(true);
      expect([file, [...a].every(([k, v]) => v.equals(b.get(k)!))]).toEqual([file, true]);
    }
  });
});

describe('freeze.textEncoder', () => {
  test('"full": the encoder trains at its own rate and the saved pipeline reloads it; the VAE stays bit-identical', async () => {
    const output = path.join(work, 'full');
    const r = await finetune(recipe(output, { freeze: { preset: 'attention-only', textEncoder: 'full' } }), { verifyFrozen: true });
    expect(r.plan.notes.join('\n')).toMatch(/text encoder: \d+ of \d+ tensors train .*learning rate × 0.5/);
    expect(r.textToImage?.frozenAfter?.vae).toBe(r.textToImage?.frozenBefore?.vae);
    // The captions went to the trainer as token ids: no embedding was computed or cached outside the step.
    expect([r.textToImage?.cache.textHits, r.textToImage?.cache.textMisses]).toEqual([0, 0]);
    expect(fs.existsSync(path.join(output, '.cache', 'text'))).toBe(false);
    const base = await tensors(path.join(PIPELINE, 'text_encoder', 'model.safetensors'));
    const saved = await tensors(path.join(output, 'text_encoder', 'model.safetensors'));
    const changed = [...saved].filter(([k, v]) => !v.equals(base.get(k)!)).length;
    expect(changed).toBeGreaterThan(saved.size / 2);
    // The pipeline folder loads the trained encoder (the base's files were not copied over it).
    using sd = await loadStableDiffusion(output);
    const state = await sd.textEncoder.stateDict();
    for (const [name, t] of state) expect([name, Buffer.from((t.toArray() as Float32Array).buffer).equals(saved.get(name)!)]).toEqual([name, true]);
    for (const t of state.values()) t.dispose();
    expect(relError(await embeds(output), await embeds(PIPELINE))).toBeGreaterThan(1e-3);
  });

  test('patterns train only what they match; a resumed run equals an uninterrupted one (encoder, U-Net, moments)', async () => {
    const freeze = { preset: 'attention-only', textEncoder: ['text_model.encoder.layers.1.**', 'text_model.final_layer_norm.*'] };
    const straight = path.join(work, 'full-straight');
    const split = path.join(work, 'full-split');
    const run = (out: string, steps: number, every: number, resume?: string) =>
      finetune(recipe(out, { freeze, checkpoint: { every, keep: 2 }, ...(resume ? { resume } : {}) }, { steps, gradientCheckpointing: true }));
    await run(straight, 4, 4);
    await run(split, 2, 2);
    await run(split, 4, 4, 'latest');
    const base = await tensors(path.join(PIPELINE, 'text_encoder', 'model.safetensors'));
    const a = await tensors(path.join(straight, 'text_encoder', 'model.safetensors'));
    for (const [name, v] of a) {
      const trains = name.startsWith('text_model.encoder.layers.1.') || name.startsWith('text_model.final_layer_norm.');
      expect([name, v.equals(base.get(name)!)]).toEqual([name, !trains]);
    }
    for (const file of ['text_encoder/model.safetensors', 'unet/diffusion_pytorch_model.safetensors', 'checkpoint-4/optimizer.safetensors']) {
      const x = await tensors(path.join(straight, file));
      const y = await tensors(path.join(split, file));
      expect([file, [...x].every(([k, v]) => v.equals(y.get(k)!))]).toEqual([file, true]);
    }
    await expect(finetune(recipe(path.join(work, 'bad'), { freeze: { textEncoder: ['text_model.nothing.*'] } }))).rejects.toThrow(
      /freeze.textEncoder\[0\]: "text_model.nothing.\*" matches none of the text encoder's/,
    );
  });

  test('the dry run names what trains of the encoder', async () => {
    const plan = await planRecipe(recipe(path.join(work, 'plan'), { lora: { textEncoder: { rank: 8 } } }));
    expect(plan.notes.join('\n')).toMatch(
      /text encoder: LoRA rank 8 \(alpha 8\) on q_proj, k_proj, v_proj, out_proj of every encoder layer at learning rate 0.01/,
    );
  });
});
