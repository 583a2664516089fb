// LoRA: adapters start as a no-op, train while the base stays bit-identical, merge into the same
// function, and round-trip through both file formats (PEFT/diffusers and kohya). Dropout masks are
// reproducible, independent of the micro-batch split, and the same when checkpointing recomputes.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SafetensorsFile, writeSafetensors } from '../../lib/checkpoint/safetensors';
import { disposeStateDict } from '../../lib/checkpoint/state-dict';
import { relError } from '../../lib/conformance/compare';
import { loraOptionsSchema, loraParameterNames, loraTargetModules, readLoraFile, saveLoraFile } from '../../lib/models/lora';
import { loadUNet, type UNet } from '../../lib/models/unet';
import { Tensor } from '../../lib/native/tensor';
import { loadScheduler } from '../../lib/schedulers/scheduler';
import { Trainer } from '../../lib/train/trainer';

const COND = path.join(__dirname, '..', 'fixtures', 'diffusers', 'unet2dcond-tiny');

function noise(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sin(i * 0.91 + seed * 2.3);
  return out;
}

const inputs = () => ({
  x: Tensor.from(noise(2 * 4 * 16 * 16, 1), [2, 4, 16, 16]),
  t: Tensor.from(new BigInt64Array([20n, 600n]), [2]),
  ctx: Tensor.from(noise(2 * 6 * 32, 2), [2, 6, 32]),
});

async function bytes(t: Tensor): Promise<Buffer> {
  const d = await t.data({ raw: true });
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

async function out(unet: UNet): Promise<Float32Array> {
  const { x, t, ctx } = inputs();
  using y = await unet.forward(x, t, { encoderHiddenStates: ctx });
  for (const v of [x, t, ctx]) v.dispose();
  return y.toArray() as Float32Array;
}

/** A model with trained (non-zero) adapters: a few LoRA-only steps. */
async function trainedLora(options = loraOptionsSchema.parse({ rank: 4, alpha: 8, feedForward: true })) {
  const unet = await loadUNet(COND);
  const modules = loraTargetModules(
    (await unet.parameters()).map((p) => p.name),
    options,
  );
  await unet.addLora({ targets: modules, rank: options.rank, alpha: options.alpha, seed: 5 });
  using scheduler = await loadScheduler(path.join(COND, 'scheduler'));
  using alphasCumprod = await scheduler.alphasCumprod();
  const trainable = loraParameterNames(modules).map((name) => ({ name, lrMultiplier: 1, weightDecay: true }));
  using trainer = await Trainer.create(unet, { trainable, alphasCumprod, predictionType: 'epsilon', seed: 1, ema: false, mixedPrecision: 'no' });
  for (let step = 0; step < 3; step++) {
    using pixels = Tensor.from(noise(2 * 4 * 16 * 16, 10 + step), [2, 4, 16, 16]);
    using ctx = Tensor.from(noise(2 * 6 * 32, 20 + step), [2, 6, 32]);
    await trainer.accumulate({ pixels, encoderHiddenStates: ctx, sampleIndices: [2 * step, 2 * step + 1], step, totalSamples: 2 });
    await trainer.step(1e-2);
  }
  return { unet, modules, options };
}

test('targets: attention projections by default, feed-forward and patterns on request', async () => {
  using unet = await loadUNet(COND);
  const names = (await unet.parameters()).map((p) => p.name);
  const attention = loraTargetModules(names, loraOptionsSchema.parse({}));
  expect(attention.every((m) => /\.(to_q|to_k|to_v|to_out\.0)$/.test(m))).toBe(true);
  expect(attention).toContain('down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k');
  expect(attention).toHaveLength(32); // 4 transformer blocks × attn1/attn2 × q, k, v, out
  const more = loraTargetModules(names, loraOptionsSchema.parse({ feedForward: true, targets: ['conv_in'] }));
  expect(more).toContain('mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj');
  expect(more).toContain('conv_in');
  expect(() => loraTargetModules(names, loraOptionsSchema.parse({ targets: ['nothing.**'] }))).toThrow(/matches no layer/);
});

test("the locon preset: attention, the resnets' convolutions and the down/upsamplers' (resamplers: false leaves those out)", async () => {
  using unet = await loadUNet(COND);
  const names = (await unet.parameters()).map((p) => p.name);
  const locon = loraTargetModules(names, loraOptionsSchema.parse({ preset: 'locon' }));
  const samplerConvs = names.filter((n) => /\.(down|up)samplers\.\d+\.conv\.weight$/.test(n)).map((n) => n.slice(0, -'.weight'.length));
  expect(samplerConvs.length).toBeGreaterThan(0);
  expect(locon).toEqual(expect.arrayContaining([...samplerConvs, 'down_blocks.0.resnets.0.conv1', 'mid_block.attentions.0.transformer_blocks.0.attn1.to_q']));
  const withoutSamplers = loraTargetModules(names, loraOptionsSchema.parse({ preset: 'locon', resamplers: false }));
  expect(withoutSamplers).toEqual(locon.filter((m) => !samplerConvs.includes(m)));
  expect(locon.filter((m) => /conv_in|conv_out|time_emb/.test(m))).toEqual([]);
});

test('fresh adapters are a no-op; LoRA training leaves the base bit-identical', async () => {
  using base = await loadUNet(COND);
  const reference = await out(base);
  const { unet, modules } = await trainedLora();
  using _ = unet;
  const before = await base.stateDict();
  const after = await unet.stateDict();
  for (const [name, t] of before) expect([name, Buffer.from(t.toArray().buffer).equals(Buffer.from(after.get(name)!.toArray().buffer))]).toEqual([name, true]);
  expect(relError(await out(unet), reference)).toBeGreaterThan(1e-4); // the adapters learned something
  const fresh = await loadUNet(COND);
  await fresh.addLora({ targets: modules, rank: 4 });
  expect(relError(await out(fresh), reference)).toBe(0);
  fresh.dispose();
  disposeStateDict(before);
  disposeStateDict(after);
});

test('merged equals unmerged within 1e-5', async () => {
  const { unet } = await trainedLora();
  using _ = unet;
  const adapted = await out(unet);
  await unet.mergeLora();
  expect(await unet.loraEntries()).toHaveLength(0);
  expect(relError(await out(unet), adapted)).toBeLessThan(1e-5);
});

test.each(['peft', 'kohya'] as const)('saved in %s format, reloaded onto the base, reproduces the outputs', async (format) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-lora-'));
  try {
    const { unet, options } = await trainedLora();
    using _ = unet;
    const adapted = await out(unet);
    const entries = await unet.loraEntries();
    const file = path.join(tmp, 'lora.safetensors');
    await saveLoraFile(file, entries, format, { rank: options.rank, alpha: options.alpha ?? options.rank, dropout: 0, init: 'kaiming' });
    const st = await SafetensorsFile.open(file);
    const names = st.names();
    await st.close();
    if (format === 'peft') {
      expect(names).toContain('unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight');
      expect(names).toContain('unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight');
    } else {
      expect(names).toContain('lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight');
      expect(names).toContain('lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight');
      expect(names).toContain('lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.alpha');
    }
    using fresh = await loadUNet(COND);
    const modules = (await fresh.parameters()).filter((p) => p.name.endsWith('.weight')).map((p) => p.name.slice(0, -7));
    const read = await readLoraFile(file, modules);
    expect(read.format).toBe(format);
    expect(read.entries.every((e) => e.alpha === 8)).toBe(true);
    // The trained A and B come back bit for bit (PEFT: alpha/rank = 2 is folded into lora_B and out again).
    for (const [i, e] of entries.entries()) {
      expect(read.entries[i]!.module).toBe(e.module);
      expect((await bytes(read.entries[i]!.A)).equals(await bytes(e.A))).toBe(true);
      expect((await bytes(read.entries[i]!.B)).equals(await bytes(e.B))).toBe(true);
    }
    await fresh.setLora(read.entries);
    expect(relError(await out(fresh), adapted)).toBeLessThan(1e-6);
    for (const e of [...entries, ...read.entries]) {
      e.A.dispose();
      e.B.dispose();
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

// diffusers ≤ 0.34 ignores lora_adapter_metadata and scales a PEFT file's adapters by 1 (alpha = rank):
// the file must hold B·alpha/rank and say alpha = rank, with the trained values kept for difftune.
test('a PEFT file with alpha ≠ rank holds lora_B·alpha/rank, states alpha = rank for diffusers, and keeps the trained values', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-lora-fold-'));
  try {
    for (const alpha of [16, 6]) {
      const { unet, options } = await trainedLora(loraOptionsSchema.parse({ rank: 4, alpha, feedForward: true }));
      using _ = unet;
      const adapted = await out(unet);
      const entries = await unet.loraEntries();
      const file = path.join(tmp, `a${alpha}.safetensors`);
      await saveLoraFile(file, entries, 'peft', { rank: 4, alpha: options.alpha!, dropout: 0, init: 'kaiming' });
      const st = await SafetensorsFile.open(file);
      const peft = JSON.parse(st.metadata!.lora_adapter_metadata!) as Record<string, unknown>;
      expect([peft['unet.r'], peft['unet.lora_alpha']]).toEqual([4, 4]);
      expect(JSON.parse(st.metadata!.difftune_lora!)).toEqual({ folded: true, r: 4, lora_alpha: alpha, alpha_pattern: {} });
      const e0 = entries[0]!;
      const inFile = await st.read(`unet.${e0.module}.lora_B.weight`);
      await st.close();
      const trained = e0.B.toArray() as Float32Array;
      expect(
        relError(
          new Float32Array(inFile.data.buffer, inFile.data.byteOffset, trained.length),
          trained.map((v) => Math.fround(v * (alpha / 4))),
        ),
      ).toBe(0);

      using fresh = await loadUNet(COND);
      const modules = (await fresh.parameters()).filter((p) => p.name.endsWith('.weight')).map((p) => p.name.slice(0, -7));
      const read = await readLoraFile(file, modules);
      expect(read.entries.every((e) => e.alpha === alpha)).toBe(true);
      for (const [i, e] of entries.entries()) {
        const back = read.entries[i]!.B.toArray() as Float32Array;
        const want = e.B.toArray() as Float32Array;
        // 16/4 is a power of two: exact. 6/4 is not: B·1.5·(4/6) is within two ulps of B.
        if (alpha === 16) expect(Buffer.from(back.buffer).equals(Buffer.from(want.buffer))).toBe(true);
        else back.forEach((v, j) => expect(Math.abs(v - want[j]!)).toBeLessThanOrEqual(Math.abs(want[j]!) * 2 ** -22));
      }
      // A checkpoint's adapters are not folded: they resume bit for bit whatever alpha/rank is.
      const unfoldedFile = path.join(tmp, `c${alpha}.safetensors`);
      await saveLoraFile(unfoldedFile, entries, 'peft', { rank: 4, alpha: options.alpha!, dropout: 0, init: 'kaiming' }, { fold: false });
      const unfolded = await readLoraFile(unfoldedFile, modules);
      for (const [i, e] of entries.entries()) {
        expect(unfolded.entries[i]!.alpha).toBe(alpha);
        expect((await bytes(unfolded.entries[i]!.B)).equals(await bytes(e.B))).toBe(true);
      }
      await fresh.setLora(read.entries);
      // 16/4: the same weights bit for bit, so the same output. 6/4: B within 2 ulps (2^-22); the U-Net
      // carries that to its output with some gain (measured ~5 on AVX2 and default kernels, < 4 on
      // AVX-512): 16 × 2^-22 leaves room for it, while a B left folded (1.5× the trained delta) is far off.
      expect(relError(await out(fresh), adapted)).toBeLessThanOrEqual(alpha === 16 ? 0 : 16 * 2 ** -22);
      for (const e of [...entries, ...read.entries, ...unfolded.entries]) {
        e.A.dispose();
        e.B.dispose();
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('a PEFT file without difftune’s record (as diffusers writes it) loads with scale 1: alpha = rank, B as stored', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-lora-plain-'));
  try {
    const module = 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q';
    using probe = await loadUNet(COND);
    const weight = (await probe.parameters()).find((p) => p.name === `${module}.weight`)!;
    const [outFeatures, inFeatures] = weight.shape as [number, number];
    const A = noise(3 * inFeatures, 7);
    const B = noise(outFeatures * 3, 8);
    const file = path.join(tmp, 'plain.safetensors');
    await writeSafetensors(
      file,
      [
        [`unet.${module}.lora_A.weight`, { dtype: 'F32', shape: [3, inFeatures], data: A }],
        [`unet.${module}.lora_B.weight`, { dtype: 'F32', shape: [outFeatures, 3], data: B }],
      ],
      { format: 'pt' },
    );
    const modules = (await probe.parameters()).filter((p) => p.name.endsWith('.weight')).map((p) => p.name.slice(0, -7));
    const read = await readLoraFile(file, modules);
    try {
      expect(read.entries.map((e) => [e.module, e.alpha])).toEqual([[module, 3]]);
      expect(Buffer.from((read.entries[0]!.B.toArray() as Float32Array).buffer).equals(Buffer.from(B.buffer))).toBe(true);
    } finally {
      for (const e of read.entries) {
        e.A.dispose();
        e.B.dispose();
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('LoRA weights that do not fit a layer are refused by name', async () => {
  using unet = await loadUNet(COND);
  using A = Tensor.from(new Float32Array(4 * 7), [4, 7]);
  using B = Tensor.from(new Float32Array(32 * 4), [32, 4]);
  await expect(unet.setLora([{ module: 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q', A, B, alpha: 4 }])).rejects.toThrow(
    /do not fit the layer/,
  );
  await expect(unet.setLora([{ module: 'nope', A, B, alpha: 4 }])).rejects.toThrow(/"nope" is not a Linear or Conv2d layer/);
});

test('adapters cannot be removed, replaced or merged while a Trainer updates them (no dangling slots)', async () => {
  using unet = await loadUNet(COND);
  const modules = loraTargetModules(
    (await unet.parameters()).map((p) => p.name),
    loraOptionsSchema.parse({}),
  );
  await unet.addLora({ targets: modules, rank: 2 });
  using scheduler = await loadScheduler(path.join(COND, 'scheduler'));
  using alphasCumprod = await scheduler.alphasCumprod();
  const trainer = await Trainer.create(unet, {
    trainable: loraParameterNames(modules).map((name) => ({ name, lrMultiplier: 1, weightDecay: true })),
    alphasCumprod,
    predictionType: 'epsilon',
    seed: 0,
    ema: false,
    mixedPrecision: 'no',
  });
  await expect(unet.removeLora()).rejects.toThrow(/while a Trainer is attached to this U-Net: dispose the Trainer first/);
  await expect(unet.mergeLora()).rejects.toThrow(/while a Trainer is attached/);
  await expect(unet.addLora({ targets: ['conv_in'], rank: 2 })).rejects.toThrow(/while a Trainer is attached/);
  trainer.dispose();
  await unet.mergeLora();
  expect(await unet.loraEntries()).toHaveLength(0);
});

/** Sample k of a synthetic set: its latents and text context depend on k only. */
function samples(first: number, n: number): { pixels: Tensor; ctx: Tensor } {
  const per = 4 * 16 * 16;
  const pixels = new Float32Array(n * per);
  const ctx = new Float32Array(n * 6 * 32);
  for (let k = 0; k < n; k++) {
    pixels.set(noise(per, 100 + first + k), k * per);
    ctx.set(noise(6 * 32, 500 + first + k), k * 6 * 32);
  }
  return { pixels: Tensor.from(pixels, [n, 4, 16, 16]), ctx: Tensor.from(ctx, [n, 6, 32]) };
}

/** LoRA-only training (attention, feed-forward and conv targets) with `dropout`: per-step losses, gradient norms, adapters. */
async function dropoutRun(dropout: number, opts: { steps?: number; batch?: number; micro?: number; checkpointing?: boolean; sgdLike?: boolean } = {}) {
  const { steps = 3, batch = 4, micro = batch, checkpointing = false, sgdLike = false } = opts;
  using unet = await loadUNet(COND);
  await unet.setOptions({ gradientCheckpointing: checkpointing });
  const options = loraOptionsSchema.parse({ rank: 4, alpha: 8, feedForward: true, targets: ['up_blocks.*.resnets.*.conv1'] });
  const modules = loraTargetModules(
    (await unet.parameters()).map((p) => p.name),
    options,
  );
  await unet.addLora({ targets: modules, rank: 4, alpha: 8, dropout, seed: 5 });
  using scheduler = await loadScheduler(path.join(COND, 'scheduler'));
  using alphasCumprod = await scheduler.alphasCumprod();
  const trainable = loraParameterNames(modules).map((name) => ({ name, lrMultiplier: 1, weightDecay: true }));
  // sgdLike: an epsilon far above every gradient element makes AdamW's update lr·m̂/ε, linear in the
  // gradients, so the adapters compare gradients (Adam's g/|g| would blow rounding up to ±lr).
  const adam = sgdLike ? { eps: 1, weightDecay: 0 } : {};
  using trainer = await Trainer.create(unet, {
    trainable,
    alphasCumprod,
    predictionType: 'epsilon',
    seed: 3,
    ema: false,
    mixedPrecision: 'no',
    maxGradNorm: 0,
    ...adam,
  });
  const losses: number[] = [];
  const norms: number[] = [];
  for (let step = 0; step < steps; step++) {
    let loss = 0;
    for (let start = 0; start < batch; start += micro) {
      const first = step * batch + start;
      const { pixels, ctx } = samples(first, micro);
      using _p = pixels;
      using _c = ctx;
      const indices = Array.from({ length: micro }, (_, i) => first + i);
      loss += (await trainer.accumulate({ pixels, encoderHiddenStates: ctx, sampleIndices: indices, step, totalSamples: batch })).lossSum;
    }
    losses.push(loss);
    norms.push((await trainer.step(sgdLike ? 0.1 : 1e-3)).gradNorm);
  }
  const adapters = new Map<string, Float32Array>();
  for (const e of await unet.loraEntries()) {
    adapters.set(`${e.module}.A`, e.A.toArray() as Float32Array);
    adapters.set(`${e.module}.B`, e.B.toArray() as Float32Array);
    e.A.dispose();
    e.B.dispose();
  }
  return { losses, norms, adapters };
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

test('LoRA dropout is reproducible: two identical runs give bit-identical adapters', async () => {
  const a = await dropoutRun(0.1);
  const b = await dropoutRun(0.1);
  expect(a.norms).toEqual(b.norms);
  for (const [name, w] of a.adapters) expect([name, Buffer.from(w.buffer).equals(Buffer.from(b.adapters.get(name)!.buffer))]).toEqual([name, true]);
});

test('LoRA dropout is applied: p = 0.5 changes the gradients and the later losses', async () => {
  const off = await dropoutRun(0);
  const on = await dropoutRun(0.5);
  // B starts at zero, so the first loss is the base model's either way; the gradients already differ.
  expect(on.losses[0]).toBe(off.losses[0]);
  expect(rel(on.norms[0]!, off.norms[0]!)).toBeGreaterThan(1e-2);
  expect(rel(on.losses[2]!, off.losses[2]!)).toBeGreaterThan(1e-6);
});

test('LoRA dropout masks follow the sample, not the micro-batch: batch 4 equals batch 2 × accumulation 2', async () => {
  const full = await dropoutRun(0.5);
  const split = await dropoutRun(0.5, { micro: 2 });
  full.losses.forEach((l, i) => expect(rel(split.losses[i]!, l)).toBeLessThan(1e-6));
  full.norms.forEach((n, i) => expect(rel(split.norms[i]!, n)).toBeLessThan(1e-5));
});

test('gradient checkpointing recomputes with the same LoRA dropout masks: same losses and gradients', async () => {
  const plain = await dropoutRun(0.5, { sgdLike: true });
  const ckpt = await dropoutRun(0.5, { checkpointing: true, sgdLike: true });
  plain.losses.forEach((l, i) => expect(rel(ckpt.losses[i]!, l)).toBeLessThan(1e-6));
  plain.norms.forEach((n, i) => expect(rel(ckpt.norms[i]!, n)).toBeLessThan(1e-5));
  // The B matrices start at zero: after the steps they are the (sums of scaled) gradients themselves.
  let worst = 0;
  let worstName = '';
  for (const [name, w] of plain.adapters) {
    const r = relError(ckpt.adapters.get(name)!, w);
    if (r > worst) [worst, worstName] = [r, name];
  }
  expect([worstName, worst]).toEqual([worstName, expect.any(Number)]);
  expect(worst).toBeLessThan(1e-5);
});
