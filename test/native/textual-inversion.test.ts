// Textual inversion on the tiny Stable Diffusion pipeline: only the new tokens' rows of the token
// embedding change (every other row and every other weight bit-identical after several steps, weight
// decay on); learned_embeds.safetensors loads into the base pipeline and gives the prompt embedding of the
// saved whole pipeline (whose tokenizer knows the tokens); a resumed run equals an uninterrupted one.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SafetensorsFile } from '../../lib/checkpoint/safetensors';
import { disposeStateDict } from '../../lib/checkpoint/state-dict';
import { loadStableDiffusion } from '../../lib/models/stable-diffusion';
import { loadTextualInversion } from '../../lib/models/textual-inversion';
import { encodePrompts } from '../../lib/sample/txt2img';
import { CLIPTokenizer } from '../../lib/text/clip-tokenizer';
import { finetune, planRecipe } from '../../lib/train/finetune';

const ROOT = path.join(__dirname, '..', '..');
const PIPELINE = path.join(ROOT, 'test', 'fixtures', 'diffusers', 'sd-pipeline-tiny');
const SHAPES = path.join(ROOT, 'recipes', 'data', 'shapes', 'train');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-ti-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const TABLE = 'text_model.embeddings.token_embedding.weight';

function recipe(output: string, extra: { steps?: number; resume?: string; every?: number; ema?: boolean } = {}) {
  return {
    model: { pretrained: PIPELINE },
    data: { path: SHAPES, layout: 'plain', limit: 3, resolution: 32, channels: 3, randomFlip: true, repeats: 2 },
    textualInversion: { placeholderToken: '<blue-shape>', initializerToken: 'blue', numVectors: 2, saveAsFullPipeline: true },
    // A large rate and weight decay: the new rows move visibly, and decay would move every other row.
    train: { steps: extra.steps ?? 4, batchSize: 2, lr: 5e-2, weightDecay: 0.1, seed: 3, ...(extra.ema ? { ema: { decay: 0.9 } } : {}) },
    output,
    checkpoint: { every: extra.every ?? 0, keep: 3 },
    ...(extra.resume === undefined ? {} : { resume: extra.resume }),
  };
}

async function tensors(file: string): Promise<Map<string, Buffer>> {
  await using f = await SafetensorsFile.open(file);
  const out = new Map<string, Buffer>();
  for (const name of f.names()) out.set(name, Buffer.from(await f.readBytes(name)));
  return out;
}

test('only the new rows train: every other row, the rest of the text encoder and the U-Net stay bit-identical', async () => {
  const output = path.join(work, 'run');
  const logs: string[] = [];
  const r = await finetune(recipe(output), { onLog: (l) => logs.push(l), verifyFrozen: true });
  expect(r.status).toBe('completed');
  expect(r.learnedEmbedsFile).toBe(path.join(output, 'learned_embeds.safetensors'));
  expect(logs.some((l) => /the text-embedding cache is off/.test(l))).toBe(true);
  expect(logs.some((l) => /<blue-shape>, <blue-shape>_1 \(ids 1000–1001\) start as "blue"/.test(l))).toBe(true);

  const base = await tensors(path.join(PIPELINE, 'text_encoder', 'model.safetensors'));
  const trained = await tensors(path.join(output, 'text_encoder', 'model.safetensors'));
  // transformers' CLIPTextModel keeps position_ids as a non-persistent buffer: older files have it, saving drops it.
  expect([...trained.keys()].sort()).toEqual([...base.keys()].filter((k) => k !== 'text_model.embeddings.position_ids').sort());
  for (const [name, bytes] of base) if (name !== TABLE && trained.has(name)) expect([name, bytes.equals(trained.get(name)!)]).toEqual([name, true]);
  const row = 32 * 4;
  const baseTable = base.get(TABLE)!;
  const table = trained.get(TABLE)!;
  expect(table.length).toBe(baseTable.length + 2 * row);
  expect(table.subarray(0, baseTable.length).equals(baseTable)).toBe(true);
  // The new rows started as "blue"'s row and moved.
  const blue = (await CLIPTokenizer.load(path.join(PIPELINE, 'tokenizer'))).encode('blue').inputIds[1]!;
  for (const k of [0, 1])
    expect(table.subarray(baseTable.length + k * row, baseTable.length + (k + 1) * row).equals(baseTable.subarray(blue * row, (blue + 1) * row))).toBe(false);
  // The U-Net is the base's, bit for bit; the config knows the grown vocabulary.
  const unet = await tensors(path.join(output, 'unet', 'diffusion_pytorch_model.safetensors'));
  for (const [name, bytes] of await tensors(path.join(PIPELINE, 'unet', 'diffusion_pytorch_model.safetensors')))
    expect([name, bytes.equals(unet.get(name)!)]).toEqual([name, true]);
  expect(JSON.parse(fs.readFileSync(path.join(output, 'text_encoder', 'config.json'), 'utf8')).vocab_size).toBe(1002);

  // learned_embeds.safetensors: diffusers' {token: [n, D]}, the trained rows.
  const embeds = await tensors(r.learnedEmbedsFile!);
  expect([...embeds.keys()]).toEqual(['<blue-shape>']);
  expect(embeds.get('<blue-shape>')!.equals(table.subarray(baseTable.length))).toBe(true);
});

test('the file loads into the base pipeline and gives the saved pipeline’s prompt embedding', async () => {
  const output = path.join(work, 'run');
  using base = await loadStableDiffusion(PIPELINE);
  await loadTextualInversion(base, path.join(output, 'learned_embeds.safetensors'));
  using saved = await loadStableDiffusion(output);
  expect(saved.tokenizer.addedTokens.get('<blue-shape>_1')).toBe(1001);
  for (const prompt of ['a photo of a <blue-shape>', 'a <blue-shape> on a table', 'no token here']) {
    using a = await encodePrompts(base, [prompt]);
    using b = await encodePrompts(saved, [prompt]);
    expect(Buffer.from((a.toArray() as Float32Array).buffer).equals(Buffer.from((b.toArray() as Float32Array).buffer))).toBe(true);
  }
  using plain = await loadStableDiffusion(PIPELINE);
  using before = await encodePrompts(plain, ['a photo of a <blue-shape>']);
  using after = await encodePrompts(base, ['a photo of a <blue-shape>']);
  expect(Buffer.from((after.toArray() as Float32Array).buffer).equals(Buffer.from((before.toArray() as Float32Array).buffer))).toBe(false);
});

test('a resumed run equals an uninterrupted one (embeddings, optimizer moments); EMA averages the rows alone', async () => {
  const straight = path.join(work, 'straight');
  await finetune(recipe(straight, { steps: 4, every: 4, ema: true }));
  const split = path.join(work, 'split');
  await finetune(recipe(split, { steps: 2, every: 2, ema: true }));
  await finetune(recipe(split, { steps: 4, every: 4, ema: true, resume: 'latest' }));
  for (const file of [
    'learned_embeds.safetensors',
    'checkpoint-4/optimizer.safetensors',
    'checkpoint-4/ema.safetensors',
    'checkpoint-4/learned_embeds.safetensors',
  ]) {
    const a = await tensors(path.join(straight, file));
    const b = await tensors(path.join(split, file));
    expect([file, [...a].every(([k, v]) => v.equals(b.get(k)!))]).toEqual([file, true]);
  }
  // The checkpoint holds the rows and the optimizer state, no U-Net.
  expect(fs.existsSync(path.join(straight, 'checkpoint-4', 'unet'))).toBe(false);
  // With an EMA the output holds the averaged rows; every other row stays the base's.
  const base = await tensors(path.join(PIPELINE, 'text_encoder', 'model.safetensors'));
  const table = (await tensors(path.join(straight, 'text_encoder', 'model.safetensors'))).get(TABLE)!;
  expect(table.subarray(0, base.get(TABLE)!.length).equals(base.get(TABLE)!)).toBe(true);
});

test('refused before training: a placeholder the tokenizer has, an initializer of several tokens; the dry run says what trains', async () => {
  const bad = (ti: Record<string, unknown>) => ({
    ...recipe(path.join(work, 'bad')),
    textualInversion: { placeholderToken: '<x>', initializerToken: 'blue', ...ti },
  });
  // "a" is a vocabulary entry (as a BPE symbol): as in transformers' add_tokens, it would be no new token.
  await expect(finetune(bad({ placeholderToken: 'a' }))).rejects.toThrow(/textualInversion.placeholderToken: the tokenizer already has the token "a"/);
  await expect(finetune(bad({ initializerToken: 'blue shapes' }))).rejects.toThrow(
    /textualInversion.initializerToken: "blue shapes" is \d+ tokens .* it must be a single token/,
  );
  const plan = await planRecipe(recipe(path.join(work, 'plan')));
  expect(plan.totals.trainableTensors).toBe(0);
  expect(plan.notes.join('\n')).toMatch(/textual inversion: 2 new vectors for "<blue-shape>" from "blue" train/);
  disposeStateDict(new Map());
});
