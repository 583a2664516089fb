/**
 * Every LoRA layout diffusers reads for SD 1.x/2.x, written here in TypeScript from one known set of
 * adapters (as PEFT holds them) for the tiny SD pipeline's U-Net and text encoder — PEFT (with and
 * without its adapter config), diffusers' training scripts, attention processors, kohya with lora_te_ and
 * lora_te1_ (LoCon convolutions, per-layer alphas, missing and zero alphas) — and loaded onto the
 * pipeline: merging then gives W + scale·B·A for every adapted layer of both models, with each layout's
 * scale. A pipeline's adapters also round-trip through difftune's PEFT and kohya writers, text-encoder
 * parts included, and a file that does not fit is refused naming it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../lib/checkpoint/safetensors';
import { disposeStateDict } from '../../lib/checkpoint/state-dict';
import { relError } from '../../lib/conformance/compare';
import { applyLoraFile, disposeLoraEntries, readLoraFile, saveLoraFile, type LoraEntry } from '../../lib/models/lora';
import { kohyaLayerName, type LoraComponent } from '../../lib/models/lora-layouts';
import { loadTextEncoder } from '../../lib/models/clip-text';
import { loadStableDiffusion, type StableDiffusion } from '../../lib/models/stable-diffusion';
import { Tensor } from '../../lib/native/tensor';
import { runSampleCli } from '../../lib/sample/cli';
import { useTempDir } from '../helpers/temp-dir';

const SD = path.join(__dirname, '..', 'fixtures', 'diffusers', 'sd-pipeline-tiny');
const tmp = useTempDir('lora-layouts');
const U = 2 ** -24;

interface Known {
  component: LoraComponent;
  module: string;
  A: { shape: number[]; data: Float32Array };
  B: { shape: number[]; data: Float32Array };
  /** kohya's alpha for this layer (the other layouts carry none, or one per component in PEFT's config). */
  alpha: number;
  attention: boolean;
}

const UNET_LAYER = /(\.(to_q|to_k|to_v|to_out\.0|proj_in|proj_out|ff\.net\.0\.proj|ff\.net\.2|conv1|conv2|conv_shortcut|time_emb_proj)|samplers\.0\.conv)$/;
const TE_LAYER = /\.(q_proj|k_proj|v_proj|out_proj|fc1|fc2)$/;
const UNET_ATTENTION = /\.(to_q|to_k|to_v|to_out\.0)$/;
const TE_ATTENTION = /\.(q_proj|k_proj|v_proj|out_proj)$/;

function values(n: number, seed: number, amplitude: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => amplitude * Math.sin(i * 0.731 + seed * 1.37));
}

/** Adapters on every Linear/Conv2d layer PEFT users target in both models: rank 4 (2 on convolutions), with kohya alphas that vary. */
async function knownAdapters(sd: StableDiffusion): Promise<Known[]> {
  const out: Known[] = [];
  for (const [component, model, layer, attention] of [
    ['unet', sd.unet, UNET_LAYER, UNET_ATTENTION],
    ['text_encoder', sd.textEncoder, TE_LAYER, TE_ATTENTION],
  ] as const) {
    for (const p of await model.parameters()) {
      const module = p.name.slice(0, -'.weight'.length);
      if (!p.name.endsWith('.weight') || !layer.test(module)) continue;
      const [outF, inF, ...kernel] = p.shape;
      const conv = kernel.length === 2;
      const rank = conv && kernel[0] === 3 ? 2 : 4;
      const seed = out.length;
      out.push({
        component,
        module,
        A: { shape: [rank, inF!, ...kernel], data: values(rank * inF! * (conv ? kernel[0]! * kernel[1]! : 1), seed, 0.3) },
        B: { shape: conv ? [outF!, rank, 1, 1] : [outF!, rank], data: values(outF! * rank, seed + 0.5, 0.2) },
        // Mostly 8, the convolutions 1, and a few others: per-layer alphas (kohya), and alpha ≠ rank.
        alpha: conv ? 1 : seed % 7 === 3 ? 6 : 8,
        attention: attention.test(module),
      });
    }
  }
  return out;
}

const f32 = (t: { shape: number[]; data: Float32Array }): TensorToWrite => ({ dtype: 'F32', shape: t.shape, data: t.data });
const scalar = (v: number): TensorToWrite => ({ dtype: 'F32', shape: [], data: new Float32Array([v]) });
const prefix = (k: Known) => `${k.component}.${k.module}`;
const PROCESSOR: Record<string, string> = {
  to_q: 'to_q',
  to_k: 'to_k',
  to_v: 'to_v',
  'to_out.0': 'to_out',
  q_proj: 'to_q',
  k_proj: 'to_k',
  v_proj: 'to_v',
  out_proj: 'to_out',
};

interface LayoutCase {
  name: string;
  /** The file's tensors and metadata, from the known adapters. */
  write(known: readonly Known[]): { tensors: Array<[string, TensorToWrite]>; metadata?: Record<string, string>; used: readonly Known[] };
  /** alpha/rank as the layout states it for the i-th layer (what diffusers v0.31 and difftune apply). */
  scale(k: Known, i: number): number;
  format: string;
}

const rank = (k: Known) => k.A.shape[0]!;

const LAYOUTS: LayoutCase[] = [
  {
    name: 'PEFT (diffusers save_lora_weights): no alpha, scale 1',
    format: 'peft',
    write: (known) => ({
      tensors: known.flatMap(
        (k) =>
          [
            [`${prefix(k)}.lora_A.weight`, f32(k.A)],
            [`${prefix(k)}.lora_B.weight`, f32(k.B)],
          ] as Array<[string, TensorToWrite]>,
      ),
      used: known,
    }),
    scale: () => 1,
  },
  {
    name: 'PEFT with its adapter config in lora_adapter_metadata (later diffusers): r, lora_alpha and patterns per component',
    format: 'peft',
    write: (known) => ({
      tensors: known.flatMap(
        (k) =>
          [
            [`${prefix(k)}.lora_A.weight`, f32(k.A)],
            [`${prefix(k)}.lora_B.weight`, f32(k.B)],
          ] as Array<[string, TensorToWrite]>,
      ),
      metadata: {
        format: 'pt',
        lora_adapter_metadata: JSON.stringify({
          'unet.r': 4,
          'unet.lora_alpha': 8,
          'unet.alpha_pattern': Object.fromEntries(known.filter((k) => k.component === 'unet' && k.alpha !== 8).map((k) => [k.module, k.alpha])),
          'text_encoder.r': 4,
          'text_encoder.lora_alpha': 12,
        }),
      },
      used: known,
    }),
    scale: (k) => (k.component === 'unet' ? k.alpha : 12) / rank(k),
  },
  {
    name: "diffusers' training scripts (convert_state_dict_to_diffusers): lora.down/up, lora_linear_layer, lora_A/B elsewhere",
    format: 'diffusers',
    write: (known) => ({
      tensors: known.flatMap((k) => {
        const [down, up] = !k.attention
          ? ['lora_A.weight', 'lora_B.weight']
          : k.component === 'unet'
            ? ['lora.down.weight', 'lora.up.weight']
            : ['lora_linear_layer.down.weight', 'lora_linear_layer.up.weight'];
        return [
          [`${prefix(k)}.${down}`, f32(k.A)],
          [`${prefix(k)}.${up}`, f32(k.B)],
        ] as Array<[string, TensorToWrite]>;
      }),
      used: known,
    }),
    scale: () => 1,
  },
  {
    name: 'attention processors (save_attn_procs): U-Net keys without a prefix, text encoder to_q_lora … to_out_lora',
    format: 'attn-procs',
    write: (known) => {
      const used = known.filter((k) => k.attention);
      return {
        tensors: used.flatMap((k) => {
          const [, parent, leaf] = /^(.*)\.(to_q|to_k|to_v|to_out\.0|q_proj|k_proj|v_proj|out_proj)$/.exec(k.module)!;
          const base = k.component === 'unet' ? `${parent!}.processor.${PROCESSOR[leaf!]!}_lora` : `text_encoder.${parent!}.${PROCESSOR[leaf!]!}_lora`;
          return [
            [`${base}.down.weight`, f32(k.A)],
            [`${base}.up.weight`, f32(k.B)],
          ] as Array<[string, TensorToWrite]>;
        }),
        used,
      };
    },
    scale: () => 1,
  },
  {
    name: 'kohya / A1111 / LoCon: lora_unet_, lora_te_, per-layer .alpha (one layer without, one 0: alpha = rank)',
    format: 'kohya',
    write: (known) => ({
      tensors: known.flatMap((k, i) => {
        const base = kohyaLayerName(k.component, k.module);
        const t: Array<[string, TensorToWrite]> = [
          [`${base}.lora_down.weight`, f32(k.A)],
          [`${base}.lora_up.weight`, f32(k.B)],
        ];
        if (i !== 1) t.push([`${base}.alpha`, scalar(i === 2 ? 0 : k.alpha)]);
        return t;
      }),
      metadata: { ss_network_module: 'networks.lora' },
      used: known,
    }),
    scale: (k, i) => (i === 1 || i === 2 ? 1 : k.alpha / rank(k)),
  },
  {
    name: "kohya with lora_te1_ (diffusers' convert_state_dict_to_kohya) and bf16 alphas",
    format: 'kohya',
    write: (known) => ({
      tensors: known.flatMap((k) => {
        const base = kohyaLayerName(k.component, k.module).replace(/^lora_te_/, 'lora_te1_');
        // bfloat16 holds these alphas (small integers) exactly: the upper half of their float32 bits.
        const bits = new Uint16Array([new Uint32Array(new Float32Array([k.alpha]).buffer)[0]! >>> 16]);
        return [
          [`${base}.lora_down.weight`, f32(k.A)],
          [`${base}.lora_up.weight`, f32(k.B)],
          [`${base}.alpha`, { dtype: 'BF16', shape: [], data: bits }],
        ] as Array<[string, TensorToWrite]>;
      }),
      used: known,
    }),
    scale: (k) => k.alpha / rank(k),
  },
];

/** Base weights of both models, as float32 arrays. */
async function weightsOf(sd: StableDiffusion): Promise<Record<LoraComponent, Map<string, Float32Array>>> {
  const out = { unet: new Map<string, Float32Array>(), text_encoder: new Map<string, Float32Array>() };
  for (const [component, model] of [
    ['unet', sd.unet],
    ['text_encoder', sd.textEncoder],
  ] as const) {
    const state = await model.stateDict();
    for (const [name, t] of state) out[component].set(name, t.toArray() as Float32Array);
    disposeStateDict(state);
  }
  return out;
}

/**
 * The largest error of a merged layer against W + scale·B·A (computed in float64), in units of the bound
 * that float32 merging allows: the rank-r product is off by at most r·u of Σ|B||A|, scaling and adding
 * to W round once each, so |merged − exact| ≤ (r + 2)·u·(scale·Σ|B_ik||A_kj| + |W_ij|).
 */
function mergeError(merged: Float32Array, base: Float32Array, k: Known, scale: number): number {
  const r = rank(k);
  const outF = k.B.shape[0]!;
  const cols = k.A.data.length / r;
  let worst = 0;
  for (let i = 0; i < outF; i++) {
    for (let j = 0; j < cols; j++) {
      let exact = 0;
      let magnitude = 0;
      for (let q = 0; q < r; q++) {
        const p = k.B.data[i * r + q]! * k.A.data[q * cols + j]!;
        exact += p;
        magnitude += Math.abs(p);
      }
      const idx = i * cols + j;
      const bound = (r + 2) * U * (scale * magnitude + Math.abs(base[idx]!));
      worst = Math.max(worst, Math.abs(merged[idx]! - (base[idx]! + scale * exact)) / bound);
    }
  }
  return worst;
}

test.each(LAYOUTS.map((l) => [l.name, l] as const))(
  '%s: merged weights are W + scale·B·A in the U-Net and the text encoder',
  async (_name, layout) => {
    using sd = await loadStableDiffusion(SD);
    const known = await knownAdapters(sd);
    const base = await weightsOf(sd);
    const { tensors, metadata, used } = layout.write(known);
    const file = path.join(tmp(), `${layout.format}-${LAYOUTS.indexOf(layout)}.safetensors`);
    await writeSafetensors(file, tensors, metadata ?? {});

    const read = await readLoraFile(
      file,
      (await sd.unet.parameters()).map((p) => p.name.replace(/\.weight$|\.bias$/, '')),
      (await sd.textEncoder.parameters()).map((p) => p.name.replace(/\.weight$|\.bias$/, '')),
    );
    expect(read.format).toBe(layout.format);
    expect(read.entries.length + read.textEncoder.length).toBe(used.length);
    disposeLoraEntries([...read.entries, ...read.textEncoder]);

    expect(await applyLoraFile(sd, file)).toEqual({
      unet: used.filter((k) => k.component === 'unet').length,
      textEncoder: used.filter((k) => k.component === 'text_encoder').length,
    });
    await sd.unet.mergeLora();
    await sd.textEncoder.mergeLora();
    const merged = await weightsOf(sd);
    const adapted = new Set(used.map((k) => `${k.component}:${k.module}.weight`));
    for (const [i, k] of used.entries()) {
      const name = `${k.module}.weight`;
      const error = mergeError(merged[k.component].get(name)!, base[k.component].get(name)!, k, layout.scale(k, i));
      expect([k.component, k.module, error <= 1 ? 'within the bound' : error]).toEqual([k.component, k.module, 'within the bound']);
    }
    // Every other weight is untouched, bit for bit.
    for (const component of ['unet', 'text_encoder'] as const) {
      for (const [name, w] of base[component]) {
        if (adapted.has(`${component}:${name}`)) continue;
        expect([component, name, Buffer.from(merged[component].get(name)!.buffer).equals(Buffer.from(w.buffer))]).toEqual([component, name, true]);
      }
    }
  },
  120_000,
);

test('text-encoder adapters change the prompt embeddings; unmerged and merged agree', async () => {
  using sd = await loadStableDiffusion(SD);
  const known = (await knownAdapters(sd)).filter((k) => k.component === 'text_encoder');
  const file = path.join(tmp(), 'te-only.safetensors');
  await writeSafetensors(
    file,
    known.flatMap(
      (k) =>
        [
          [`${prefix(k)}.lora_A.weight`, f32(k.A)],
          [`${prefix(k)}.lora_B.weight`, f32(k.B)],
        ] as Array<[string, TensorToWrite]>,
    ),
  );
  const ids = Tensor.from(
    BigInt64Array.from({ length: 2 * 77 }, (_, i) => BigInt(i < 77 ? (i * 37) % 998 : 49 + (i % 5))),
    [2, 77],
  );
  try {
    using before = await sd.textEncoder.embed(ids);
    expect(await applyLoraFile(sd, file)).toEqual({ unet: 0, textEncoder: known.length });
    expect((await sd.textEncoder.loraEntries()).map((e) => e.module)).toContain('text_model.encoder.layers.2.mlp.fc2');
    using adapted = await sd.textEncoder.embed(ids);
    await sd.textEncoder.mergeLora();
    using merged = await sd.textEncoder.embed(ids);
    const a = adapted.toArray() as Float32Array;
    expect(relError(a, before.toArray() as Float32Array)).toBeGreaterThan(1e-2);
    // W·x + B(A·x) against (W + BA)·x: the same products summed in other orders, plus merging's two
    // roundings; as for the U-Net, the bound is the longest reduction, here attention over 77 tokens
    // (longer than hidden_size 32 and intermediate_size 37), with the rank-4 update and the two roundings.
    const { hidden_size: hidden, intermediate_size: intermediate } = sd.textEncoder.config;
    expect(relError(merged.toArray() as Float32Array, a)).toBeLessThanOrEqual((Math.max(77, hidden, intermediate) + 4 + 2) * U);
  } finally {
    ids.dispose();
  }
}, 60_000);

test('a pipeline’s adapters round-trip through the PEFT (folded) and kohya writers, text-encoder parts included', async () => {
  using sd = await loadStableDiffusion(SD);
  const known = await knownAdapters(sd);
  const source = path.join(tmp(), 'source.safetensors');
  await writeSafetensors(
    source,
    known.flatMap(
      (k) =>
        [
          [`${kohyaLayerName(k.component, k.module)}.lora_down.weight`, f32(k.A)],
          [`${kohyaLayerName(k.component, k.module)}.lora_up.weight`, f32(k.B)],
          [`${kohyaLayerName(k.component, k.module)}.alpha`, scalar(k.alpha)],
        ] as Array<[string, TensorToWrite]>,
    ),
  );
  const unetLayers = (await sd.unet.parameters()).map((p) => p.name.replace(/\.weight$|\.bias$/, ''));
  const teLayers = (await sd.textEncoder.parameters()).map((p) => p.name.replace(/\.weight$|\.bias$/, ''));
  const original = await readLoraFile(source, unetLayers, teLayers);
  try {
    for (const format of ['peft', 'kohya'] as const) {
      const file = path.join(tmp(), `roundtrip.${format}.safetensors`);
      await saveLoraFile(file, { unet: original.entries, textEncoder: original.textEncoder }, format, { rank: 4, alpha: 8, dropout: 0, init: 'kaiming' });
      const st = await SafetensorsFile.open(file);
      const names = st.names();
      const metadata = st.metadata ?? {};
      await st.close();
      if (format === 'peft') {
        expect(names).toContain('text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight');
        expect(names).toContain('unet.down_blocks.0.resnets.0.conv1.lora_B.weight');
        const config = JSON.parse(metadata.lora_adapter_metadata!) as Record<string, unknown>;
        // Folded: every layer's alpha is its rank, per component.
        expect([config['unet.r'], config['unet.lora_alpha'], config['text_encoder.r'], config['text_encoder.lora_alpha']]).toEqual([4, 4, 4, 4]);
        expect(config['unet.rank_pattern']).toEqual(expect.objectContaining({ 'down_blocks.0.resnets.0.conv1': 2 }));
      } else {
        expect(names).toContain('lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight');
        expect(names).toContain('lora_te_text_model_encoder_layers_0_mlp_fc1.alpha');
      }
      const back = await readLoraFile(file, unetLayers, teLayers);
      try {
        expect(back.format).toBe(format);
        for (const [mine, theirs] of [
          [original.entries, back.entries],
          [original.textEncoder, back.textEncoder],
        ] as Array<[LoraEntry[], LoraEntry[]]>) {
          expect(theirs.map((e) => [e.module, e.alpha])).toEqual(mine.map((e) => [e.module, e.alpha]));
          for (const [i, e] of mine.entries()) {
            expect(Buffer.from((theirs[i]!.A.toArray() as Float32Array).buffer).equals(Buffer.from((e.A.toArray() as Float32Array).buffer))).toBe(true);
            // alpha/rank ∈ {2, 1.5, 0.5}: 1.5 is no power of two, so the PEFT file's unfolded B is within 2 ulps.
            const want = e.B.toArray() as Float32Array;
            const got = theirs[i]!.B.toArray() as Float32Array;
            want.forEach((v, j) => expect(Math.abs(got[j]! - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -22));
          }
        }
      } finally {
        disposeLoraEntries([...back.entries, ...back.textEncoder]);
      }
    }
  } finally {
    disposeLoraEntries([...original.entries, ...original.textEncoder]);
  }
}, 120_000);

test('files that do not fit are refused naming the file, and leave both models without adapters', async () => {
  using sd = await loadStableDiffusion(SD);
  const known = await knownAdapters(sd);
  const te = known.filter((k) => k.component === 'text_encoder');
  const unknown = path.join(tmp(), 'unknown.safetensors');
  await writeSafetensors(unknown, [
    ...te.flatMap(
      (k) =>
        [
          [`${prefix(k)}.lora_A.weight`, f32(k.A)],
          [`${prefix(k)}.lora_B.weight`, f32(k.B)],
        ] as Array<[string, TensorToWrite]>,
    ),
    ['unet.conv_in.lora_magnitude', scalar(1)],
  ]);
  await expect(applyLoraFile(sd, unknown)).rejects.toThrow(`${unknown}: 1 tensor matches no LoRA layout difftune reads`);
  await expect(applyLoraFile(sd.unet, path.join(tmp(), 'unknown.safetensors'))).rejects.toThrow(/holds text-encoder LoRA weights|matches no LoRA layout/);

  const teOnly = path.join(tmp(), 'te-only-for-unet.safetensors');
  await writeSafetensors(
    teOnly,
    te.flatMap(
      (k) =>
        [
          [`${prefix(k)}.lora_A.weight`, f32(k.A)],
          [`${prefix(k)}.lora_B.weight`, f32(k.B)],
        ] as Array<[string, TensorToWrite]>,
    ),
  );
  await expect(applyLoraFile(sd.unet, teOnly)).rejects.toThrow(`${teOnly}: holds text-encoder LoRA weights`);

  // A U-Net adapter of the wrong width: the text encoder's part (installed first) is removed again.
  const u = known.find((k) => k.component === 'unet' && !k.module.includes('conv'))!;
  const bad = path.join(tmp(), 'bad-shape.safetensors');
  await writeSafetensors(bad, [
    ...te.flatMap(
      (k) =>
        [
          [`${prefix(k)}.lora_A.weight`, f32(k.A)],
          [`${prefix(k)}.lora_B.weight`, f32(k.B)],
        ] as Array<[string, TensorToWrite]>,
    ),
    [`${prefix(u)}.lora_A.weight`, { dtype: 'F32', shape: [4, 3], data: new Float32Array(12) }],
    [`${prefix(u)}.lora_B.weight`, f32(u.B)],
  ]);
  await expect(applyLoraFile(sd, bad)).rejects.toThrow(`LoRA weights for "${u.module}" do not fit the layer`);
  expect(await sd.textEncoder.loraEntries()).toEqual([]);
  expect(await sd.unet.loraEntries()).toEqual([]);
}, 60_000);

test('npm run sample --lora applies a file’s text-encoder adapters to the prompt (they used to be dropped)', async () => {
  const te = await (async () => {
    using sd = await loadStableDiffusion(SD);
    return (await knownAdapters(sd)).filter((k) => k.component === 'text_encoder');
  })();
  const file = path.join(tmp(), 'cli-te.safetensors');
  await writeSafetensors(
    file,
    te.flatMap(
      (k) =>
        [
          [`${kohyaLayerName(k.component, k.module)}.lora_down.weight`, f32(k.A)],
          [`${kohyaLayerName(k.component, k.module)}.lora_up.weight`, f32(k.B)],
          [`${kohyaLayerName(k.component, k.module)}.alpha`, scalar(k.alpha)],
        ] as Array<[string, TensorToWrite]>,
    ),
  );
  const quiet = () => new Writable({ write: (_c, _e, done) => done() });
  const sample = async (extra: string[]) => {
    const png = path.join(tmp(), `cli-${extra.length}.png`);
    expect(await runSampleCli(['--model', SD, '--prompt', 'a red circle', '--steps', '2', '--seed', '1', ...extra, '--out', png], quiet(), quiet())).toBe(0);
    return fs.readFileSync(png);
  };
  expect((await sample(['--lora', file])).equals(await sample([]))).toBe(false);
}, 60_000);

test('adapters on a bfloat16 text encoder compute in float32 and hand back bfloat16 (no dtype clash without autocast)', async () => {
  using sd = await loadStableDiffusion(SD);
  const known = (await knownAdapters(sd)).filter((k) => k.component === 'text_encoder');
  const entries: LoraEntry[] = known.map((k) => ({
    module: k.module,
    A: Tensor.from(k.A.data, k.A.shape),
    B: Tensor.from(k.B.data, k.B.shape),
    alpha: k.alpha,
  }));
  using bf16 = await loadTextEncoder(path.join(SD, 'text_encoder'), { dtype: 'bfloat16' });
  const ids = Tensor.from(
    BigInt64Array.from({ length: 77 }, (_, i) => BigInt(i === 76 ? 2 : 3 + ((i * 37) % 990))),
    [1, 77],
  );
  try {
    await sd.textEncoder.setLora(entries);
    await bf16.setLora(entries);
    expect((await bf16.loraEntries()).every((e) => e.A.dtype === 'float32')).toBe(true);
    using ref = await sd.textEncoder.embed(ids);
    using low = await bf16.embed(ids);
    expect(low.dtype).toBe('bfloat16');
    // bfloat16 keeps 8 significant bits: three layers of it stay within a few percent of float32.
    expect(relError(Float32Array.from((await low.data()) as Float32Array), ref.toArray() as Float32Array)).toBeLessThan(0.05);
  } finally {
    ids.dispose();
    disposeLoraEntries(entries);
  }
}, 60_000);
