// The training step with a conditioning model (the CLIP text encoder) inside it: token ids through the
// encoder in the step's graph give the same loss as its embeddings handed in; its slots train in the same
// optimizer under their text_encoder. names; rows restricted to some indices change alone (the others
// bit-identical, weight decay included); gradient checkpointing of the encoder gives the same gradients;
// adapters cannot be replaced while a trainer holds them.
import * as path from 'path';
import { disposeStateDict } from '../../lib/checkpoint/state-dict';
import { loadStableDiffusion, type StableDiffusion } from '../../lib/models/stable-diffusion';
import { Generator } from '../../lib/native/generator';
import { randn } from '../../lib/native/ops';
import { Tensor } from '../../lib/native/tensor';
import { Trainer, TEXT_ENCODER_PREFIX, type TrainableParameter, type TrainerOptions } from '../../lib/train/trainer';
import { relativeDistance } from '../helpers/run-distance';

const PIPELINE = path.join(__dirname, '..', 'fixtures', 'diffusers', 'sd-pipeline-tiny');

// Each test trains a pipeline of its own (the tiny one loads in milliseconds), so none sees another's updates.
let sd: StableDiffusion;
let alphasCumprod: Tensor;

beforeEach(async () => {
  sd = await loadStableDiffusion(PIPELINE);
  alphasCumprod = await sd.scheduler.alphasCumprod();
});

afterEach(() => {
  alphasCumprod.dispose();
  sd.dispose();
});

function ids(rows: readonly number[][]): Tensor {
  const length = rows[0]!.length;
  return Tensor.from(
    BigInt64Array.from(rows.flat(), (v) => BigInt(v)),
    [rows.length, length],
  );
}

function promptIds(prompts: readonly string[]): Tensor {
  return ids(prompts.map((p) => sd.tokenizer.encode(p, { padding: 'max_length', truncation: true }).inputIds));
}

async function latents(n: number, seed: number): Promise<Tensor> {
  using generator = new Generator(seed);
  return await randn([n, 4, 16, 16], { generator });
}

async function trainer(trainable: TrainableParameter[], extra: Partial<TrainerOptions> = {}, withEncoder = true): Promise<Trainer> {
  return Trainer.create(
    sd.unet,
    { trainable, alphasCumprod, predictionType: 'epsilon', seed: 7, ema: false, mixedPrecision: 'no', maxGradNorm: 1, ...extra },
    withEncoder ? sd.textEncoder : undefined,
  );
}

const param = (name: string, extra: Partial<TrainableParameter> = {}): TrainableParameter => ({ name, lrMultiplier: 1, weightDecay: true, ...extra });

async function bytes(model: { stateDict(): Promise<Map<string, Tensor>> }): Promise<Map<string, Buffer>> {
  const state = await model.stateDict();
  const out = new Map([...state].map(([name, t]) => [name, Buffer.from(t.toArray().buffer)]));
  disposeStateDict(state);
  return out;
}

test('token ids through the encoder in the step give the loss of its embeddings handed in (clip skip too)', async () => {
  using pixels = await latents(2, 1);
  using tokenIds = promptIds(['a red circle', 'a blue square, flat style']);
  for (const clipSkip of [0, 1]) {
    using context = await sd.textEncoder.embed(tokenIds, { clipSkip });
    const batch = { pixels, sampleIndices: [0, 1], step: 0, totalSamples: 2 };
    let t = await trainer([param('conv_in.weight')], { conditioningClipSkip: clipSkip });
    const given = await t.accumulate({ ...batch, encoderHiddenStates: context });
    const heldOutGiven = await t.validationLoss({ pixels, encoderHiddenStates: context, sampleIndices: [0, 1], seed: 3, timesteps: [100, 700] });
    t.dispose();
    t = await trainer([param('conv_in.weight')], { conditioningClipSkip: clipSkip });
    const encoded = await t.accumulate({ ...batch, inputIds: tokenIds });
    const heldOutEncoded = await t.validationLoss({ pixels, inputIds: tokenIds, sampleIndices: [0, 1], seed: 3, timesteps: [100, 700] });
    t.dispose();
    expect(Math.abs(encoded.lossSum - given.lossSum) / given.lossSum).toBeLessThan(1e-6);
    expect(Math.abs(heldOutEncoded - heldOutGiven) / heldOutGiven).toBeLessThan(1e-6);
  }
});

test('encoder slots train in the optimizer under text_encoder. names; everything else stays bit-identical', async () => {
  const fc1 = 'text_model.encoder.layers.0.mlp.fc1.weight';
  const teBefore = await bytes(sd.textEncoder);
  const unetBefore = await bytes(sd.unet);
  using tokenIds = promptIds(['a red circle', 'a blue square']);
  {
    using t = await trainer([param('conv_in.weight'), param(TEXT_ENCODER_PREFIX + fc1)], { ema: true, emaDecay: 0.9 });
    for (let step = 0; step < 2; step++) {
      using pixels = await latents(2, 10 + step);
      await t.accumulate({ pixels, inputIds: tokenIds, sampleIndices: [2 * step, 2 * step + 1], step, totalSamples: 2 });
      await t.step(1e-2);
    }
    const state = await t.optimizerState();
    expect([...state.keys()].sort()).toEqual([
      'exp_avg.conv_in.weight',
      `exp_avg.${TEXT_ENCODER_PREFIX}${fc1}`,
      'exp_avg_sq.conv_in.weight',
      `exp_avg_sq.${TEXT_ENCODER_PREFIX}${fc1}`,
    ]);
    disposeStateDict(state);
    const ema = await t.emaWeights();
    expect([...ema.keys()].sort()).toEqual(['conv_in.weight', TEXT_ENCODER_PREFIX + fc1]);
    disposeStateDict(ema);
    // The trainer holds the encoder's slots: adapters cannot replace them meanwhile.
    await expect(sd.textEncoder.addLora({ targets: ['text_model.encoder.layers.0.self_attn.q_proj'], rank: 2 })).rejects.toThrow(
      /Trainer is attached to this text encoder/,
    );
  }
  const teAfter = await bytes(sd.textEncoder);
  const unetAfter = await bytes(sd.unet);
  for (const [name, b] of teBefore) expect([name, b.equals(teAfter.get(name)!)]).toEqual([name, name !== fc1]);
  for (const [name, b] of unetBefore) expect([name, b.equals(unetAfter.get(name)!)]).toEqual([name, name !== 'conv_in.weight']);
});

test('only the listed rows of a parameter train: every other row stays bit-identical under weight decay', async () => {
  const table = 'text_model.embeddings.token_embedding.weight';
  // Two new tokens (ids 1000, 1001) initialised from an existing row, as textual inversion does.
  using rows = Tensor.from(
    new Float32Array(2 * 32).map((_, i) => Math.sin(i)),
    [2, 32],
  );
  const first = await sd.textEncoder.appendTokenEmbeddings(rows);
  expect(first).toBe(1000);
  expect(sd.textEncoder.config.vocab_size).toBe(1002);
  const base = sd.tokenizer.encode('a red circle', { padding: 'max_length', truncation: true }).inputIds;
  // "a <new> <new_1> circle": the new ids in the prompt, old ones around them (which get gradients too).
  const withNew = [base[0]!, base[1]!, 1000, 1001, ...base.slice(2, 75)];
  using tokenIds = ids([withNew, base]);
  const run = async (restricted: boolean): Promise<Float32Array> => {
    using t = await trainer([param(TEXT_ENCODER_PREFIX + table, restricted ? { rows: [1000, 1001] } : {})], { weightDecay: 0.1 });
    for (let step = 0; step < 3; step++) {
      using pixels = await latents(2, 20 + step);
      await t.accumulate({ pixels, inputIds: tokenIds, sampleIndices: [2 * step, 2 * step + 1], step, totalSamples: 2 });
      await t.step(5e-2);
    }
    const state = await sd.textEncoder.stateDict();
    const out = state.get(table)!.toArray() as Float32Array;
    disposeStateDict(state);
    return out;
  };
  const initial = await sd.textEncoder.stateDict();
  const before = initial.get(table)!.toArray() as Float32Array;
  disposeStateDict(initial);
  const restricted = await run(true);
  const changedRow = (a: Float32Array, b: Float32Array, r: number) => a.subarray(r * 32, (r + 1) * 32).some((v, i) => !Object.is(v, b[r * 32 + i]));
  const changed = Array.from({ length: 1002 }, (_, r) => changedRow(before, restricted, r));
  expect(changed.flatMap((c, r) => (c ? [r] : []))).toEqual([1000, 1001]);
  // Unrestricted (from the trained state; the rows' changes are what matters), decay and the prompt's
  // other tokens change other rows: the restriction is what keeps them.
  const free = await run(false);
  expect(Array.from({ length: 1000 }, (_, r) => changedRow(restricted, free, r)).filter(Boolean).length).toBeGreaterThan(900);
});

test('gradient checkpointing of the encoder gives the same gradients (optimizer moments) as without', async () => {
  const names = ['text_model.encoder.layers.1.self_attn.q_proj.weight', 'text_model.encoder.layers.2.mlp.fc2.weight', 'text_model.final_layer_norm.weight'];
  using tokenIds = promptIds(['a red circle', 'a green triangle']);
  using pixels = await latents(2, 30);
  const moments = async (checkpointing: boolean): Promise<Map<string, Float32Array>> => {
    await sd.textEncoder.setOptions({ gradientCheckpointing: checkpointing });
    using t = await trainer(names.map((n) => param(TEXT_ENCODER_PREFIX + n)));
    await t.accumulate({ pixels, inputIds: tokenIds, sampleIndices: [0, 1], step: 0, totalSamples: 2 });
    await t.step(0); // lr 0: the moments hold the gradients, the weights stay
    const state = await t.optimizerState();
    const out = new Map([...state].filter(([k]) => k.startsWith('exp_avg.')).map(([k, v]) => [k, v.toArray() as Float32Array]));
    disposeStateDict(state);
    return out;
  };
  const plain = await moments(false);
  const recomputed = await moments(true);
  await sd.textEncoder.setOptions({ gradientCheckpointing: false });
  expect(plain.size).toBe(3);
  for (const [name, g] of plain) expect([name, g.some((v) => v !== 0)]).toEqual([name, true]);
  expect(relativeDistance(plain, recomputed)).toBeLessThan(1e-6);
});

test('a batch of token ids needs a conditioning model; ids and embeddings together are refused', async () => {
  using tokenIds = promptIds(['a red circle']);
  using pixels = await latents(1, 40);
  {
    using t = await trainer([param('conv_in.weight')], {}, false);
    await expect(t.accumulate({ pixels, inputIds: tokenIds, sampleIndices: [0], step: 0, totalSamples: 1 })).rejects.toThrow(/conditioning model/);
  }
  using t = await trainer([param('conv_in.weight')]);
  using context = await sd.textEncoder.embed(tokenIds);
  await expect(t.accumulate({ pixels, inputIds: tokenIds, encoderHiddenStates: context, sampleIndices: [0], step: 0, totalSamples: 1 })).rejects.toThrow(
    /not both/,
  );
  using two = promptIds(['a', 'b']);
  await expect(t.accumulate({ pixels, inputIds: two, sampleIndices: [0], step: 0, totalSamples: 1 })).rejects.toThrow(/one row per sample/);
  await expect(trainer([param(TEXT_ENCODER_PREFIX + 'text_model.embeddings.token_embedding.weight', { rows: [99999] })])).rejects.toThrow(
    /expected indices in \[0, /,
  );
});

test('under bf16 autocast with checkpointing the encoder trains in float32 weights (its recomputation under the same autocast)', async () => {
  const name = 'text_model.encoder.layers.1.self_attn.v_proj.weight';
  await sd.textEncoder.setOptions({ gradientCheckpointing: true });
  using tokenIds = promptIds(['a red circle', 'a green triangle']);
  using pixels = await latents(2, 50);
  const before = await bytes(sd.textEncoder);
  {
    using t = await trainer([param(TEXT_ENCODER_PREFIX + name)], { mixedPrecision: 'bf16' });
    const r = await t.accumulate({ pixels, inputIds: tokenIds, sampleIndices: [0, 1], step: 0, totalSamples: 2 });
    expect(r.finite).toBe(true);
    expect((await t.step(1e-2)).skipped).toBe(false);
  }
  const after = await bytes(sd.textEncoder);
  expect(sd.textEncoder.dtype).toBe('float32');
  for (const [n, b] of before) expect([n, b.equals(after.get(n)!)]).toEqual([n, n !== name]);
});
