// diffusers → difftune, LoRA (issue 15, items 5 and 6): files in every layout diffusers v0.31 reads for
// SD 1.x/2.x, made by diffusers and peft themselves (py/lora_layouts.py: PEFT, the training scripts'
// convert_state_dict_to_diffusers, the attention-processor layout with and without prefixes, kohya with
// lora_te1_ and lora_te_ and alpha ≠ rank, LoCon convolutions), loaded onto the tiny SD pipeline by both:
// the U-Net's and the text encoder's outputs agree within the forward bounds, and far outside them from
// the pipeline without LoRA. difftune's PEFT and kohya files of the same adapters, text-encoder parts
// included, load in diffusers to the same outputs, and the images of a kohya file agree within a level.
import * as path from 'node:path';
import { applyLoraFile, disposeLoraEntries, readLoraFile, saveLoraFile } from '../../lib/models/lora';
import { loadStableDiffusion, type StableDiffusion } from '../../lib/models/stable-diffusion';
import { Generator } from '../../lib/native/generator';
import { randn } from '../../lib/native/ops';
import { Tensor } from '../../lib/native/tensor';
import { txt2img } from '../../lib/sample/txt2img';
import { useTempDir } from '../helpers/temp-dir';
import { describeInterop, floats, levelDiff, pixels, readTensors, relError, runPython, U32, unetForwardBound, writeTensors } from './helpers/harness';
import { SD_BASE, txt2imgBound } from './helpers/sd';

const tmp = useTempDir('interop-lora-layouts');

const LAYOUTS = ['peft', 'diffusers', 'attn_procs', 'attn_procs_te', 'kohya', 'kohya_te'] as const;
/** What each layout's file adapts (attn_procs: the U-Net's attention alone, as save_attn_procs wrote it). */
const HAS_TEXT_ENCODER: Record<(typeof LAYOUTS)[number], boolean> = {
  peft: true,
  diffusers: true,
  attn_procs: false,
  attn_procs_te: true,
  kohya: true,
  kohya_te: true,
};

/**
 * The text encoder's counterpart of unetForwardBound: the two sum the same products in other orders, and
 * its longest dot product is attention's over the tokens (77), the MLP's over intermediate_size or a
 * projection's over hidden_size, whichever is longest; the rank-4 adapters add shorter ones.
 */
function textEncoderForwardBound(config: { hidden_size: number; intermediate_size: number }): number {
  return Math.max(77, config.hidden_size, config.intermediate_size) * U32;
}

interface Outputs {
  unet: Float32Array;
  textEncoder: Float32Array;
}

async function readOutputs(file: string): Promise<Outputs> {
  const t = await readTensors(file);
  return { unet: t.get('unet')!.data as Float32Array, textEncoder: t.get('text_encoder')!.data as Float32Array };
}

describeInterop('LoRA files of every layout diffusers reads load in difftune at diffusers’ strength, text encoder included', () => {
  let dir: string;
  let inputsFile: string;
  let inputs: { sample: Tensor; timestep: Tensor; encoderHiddenStates: Tensor; inputIds: Tensor };
  let base: Outputs;
  const reference = new Map<string, Outputs>();
  let adapted: Record<string, { unet: number; text_encoder: number } | null>;

  /** difftune's outputs of the pipeline with `file` applied (or without LoRA). */
  async function difftuneOutputs(sd: StableDiffusion): Promise<Outputs> {
    using unet = await sd.unet.forward(inputs.sample, inputs.timestep, { encoderHiddenStates: inputs.encoderHiddenStates });
    const te = await sd.textEncoder.encode(inputs.inputIds);
    try {
      return { unet: await floats(unet), textEncoder: await floats(te.lastHiddenState) };
    } finally {
      te.lastHiddenState.dispose();
      te.pooledOutput.dispose();
      te.promptEmbeds.dispose();
    }
  }

  beforeAll(async () => {
    dir = tmp();
    inputsFile = path.join(dir, 'inputs.safetensors');
    using generator = new Generator(11);
    inputs = {
      sample: await randn([2, 4, 16, 16], { generator }),
      timestep: Tensor.from(new BigInt64Array([500n]), []),
      encoderHiddenStates: await randn([2, 77, 32], { generator }),
      // Two prompts' worth of ids below the tiny vocabulary's 1000, ending in its end-of-text id 2.
      inputIds: Tensor.from(
        BigInt64Array.from({ length: 2 * 77 }, (_, i) => (i % 77 === 76 ? 2n : BigInt(3 + ((i * 37) % 990)))),
        [2, 77],
      ),
    };
    await writeTensors(inputsFile, {
      sample: inputs.sample,
      timestep: inputs.timestep,
      encoder_hidden_states: inputs.encoderHiddenStates,
      input_ids: inputs.inputIds,
    });
    const evals = [
      { file: null, out: path.join(dir, 'ref-base.safetensors') },
      ...LAYOUTS.map((l) => ({ file: path.join(dir, `${l}.safetensors`), out: path.join(dir, `ref-${l}.safetensors`) })),
    ];
    const response = await runPython('lora_layouts', { pipeline: SD_BASE, make: { dir, seed: 3 }, inputs: inputsFile, eval: evals }, 600_000);
    expect(response.warnings).toEqual([]);
    expect(response.files).toEqual(LAYOUTS.map((l) => `${l}.safetensors`));
    adapted = response.adapted as typeof adapted;
    base = await readOutputs(evals[0]!.out);
    for (const l of LAYOUTS) reference.set(l, await readOutputs(path.join(dir, `ref-${l}.safetensors`)));
  }, 900_000);

  afterAll(() => {
    for (const t of Object.values(inputs)) t.dispose();
  });

  test('without LoRA, difftune and diffusers agree (the comparisons below measure the adapters)', async () => {
    using sd = await loadStableDiffusion(SD_BASE);
    const ours = await difftuneOutputs(sd);
    expect(relError(ours.unet, base.unet)).toBeLessThanOrEqual(unetForwardBound(sd.unet.config));
    expect(relError(ours.textEncoder, base.textEncoder)).toBeLessThanOrEqual(textEncoderForwardBound(sd.textEncoder.config));
  }, 120_000);

  test.each(LAYOUTS)(
    '%s: difftune loads the layers diffusers loads, and the U-Net and text encoder compute what diffusers computes',
    async (layout) => {
      using sd = await loadStableDiffusion(SD_BASE);
      const file = path.join(dir, `${layout}.safetensors`);
      const counts = await applyLoraFile(sd, file);
      const theirs = adapted[file]!;
      expect(counts).toEqual({ unet: theirs.unet, textEncoder: theirs.text_encoder });
      expect(counts.textEncoder > 0).toBe(HAS_TEXT_ENCODER[layout]);
      const ours = await difftuneOutputs(sd);
      const ref = reference.get(layout)!;
      const unetBound = unetForwardBound(sd.unet.config);
      const teBound = textEncoderForwardBound(sd.textEncoder.config);
      // Not vacuous: the adapters move the outputs far beyond the bounds (the text encoder's only where the file adapts it).
      expect(relError(ref.unet, base.unet)).toBeGreaterThan(100 * unetBound);
      if (HAS_TEXT_ENCODER[layout]) expect(relError(ref.textEncoder, base.textEncoder)).toBeGreaterThan(100 * teBound);
      expect(relError(ours.unet, ref.unet)).toBeLessThanOrEqual(unetBound);
      expect(relError(ours.textEncoder, ref.textEncoder)).toBeLessThanOrEqual(teBound);
    },
    120_000,
  );

  test('difftune’s PEFT (alpha folded into lora_B) and kohya files of the same adapters, text encoder included, load in diffusers to the same outputs', async () => {
    using sd = await loadStableDiffusion(SD_BASE);
    const layers = async (m: { parameters(): Promise<ReadonlyArray<{ name: string }>> }) =>
      (await m.parameters()).map((p) => p.name.replace(/\.(weight|bias)$/, ''));
    const read = await readLoraFile(path.join(dir, 'kohya.safetensors'), await layers(sd.unet), await layers(sd.textEncoder));
    const written = ['peft', 'kohya'] as const;
    try {
      expect(read.textEncoder.length).toBeGreaterThan(0);
      // rank 4 with alpha 8, 2 and 6: the PEFT file holds B·2, B·0.5 and B·1.5 and says alpha = rank.
      for (const format of written) {
        await saveLoraFile(path.join(dir, `difftune-${format}.safetensors`), { unet: read.entries, textEncoder: read.textEncoder }, format, {
          rank: 4,
          alpha: 8,
          dropout: 0,
          init: 'kaiming',
        });
      }
    } finally {
      disposeLoraEntries([...read.entries, ...read.textEncoder]);
    }
    const evals = written.map((f) => ({ file: path.join(dir, `difftune-${f}.safetensors`), out: path.join(dir, `back-${f}.safetensors`) }));
    const response = await runPython('lora_layouts', { pipeline: SD_BASE, inputs: inputsFile, eval: evals }, 600_000);
    expect(response.warnings).toEqual([]);
    const ref = reference.get('kohya')!;
    for (const e of evals) {
      const theirs = await readOutputs(e.out);
      expect((response.adapted as Record<string, unknown>)[e.file]).toEqual(adapted[path.join(dir, 'kohya.safetensors')]);
      // The folded B (×1.5 is inexact) adds one rounding per adapter weight: far inside the forward bounds.
      expect([e.file, relError(theirs.unet, ref.unet) <= unetForwardBound(sd.unet.config)]).toEqual([e.file, true]);
      expect([e.file, relError(theirs.textEncoder, ref.textEncoder) <= textEncoderForwardBound(sd.textEncoder.config)]).toEqual([e.file, true]);
    }
  }, 600_000);

  test('images: a kohya file with text-encoder parts, in StableDiffusionPipeline and in difftune’s txt2img, within a level', async () => {
    using sd = await loadStableDiffusion(SD_BASE);
    const file = path.join(dir, 'kohya_te.safetensors');
    await applyLoraFile(sd, file);
    const c = { prompt: 'a red circle, flat style', guidanceScale: 5, steps: 6 };
    using generator = new Generator(21);
    using latents = await randn([1, 4, 16, 16], { generator });
    const latentsFile = path.join(dir, 'latents.safetensors');
    await writeTensors(latentsFile, { latents });
    const r = await txt2img(sd, { ...c, latents });
    try {
      const out = path.join(dir, 'images.safetensors');
      const response = await runPython('sd_pipeline', {
        pipeline: SD_BASE,
        lora: [{ path: dir, weight_name: 'kohya_te.safetensors' }],
        txt2img: { prompt: c.prompt, negative_prompt: null, guidance_scale: c.guidanceScale, steps: c.steps, latents: latentsFile, out },
      });
      expect(response.warnings).toEqual([]);
      const theirs = await readTensors(out);
      const ours = (await floats(r.images)).map((v) => Math.min(1, Math.max(0, v / 2 + 0.5)));
      // The text encoder's adapters feed every step: its forward bound adds to each step's U-Net bound.
      const bound =
        txt2imgBound(sd.unet.config, sd.vae.config, { ...c, seed: 21 }) + c.steps * (1 + 2 * c.guidanceScale) * textEncoderForwardBound(sd.textEncoder.config);
      expect(relError(ours, theirs.get('images')!.data as Float32Array)).toBeLessThanOrEqual(bound);
      expect(levelDiff(await pixels(r.images), theirs.get('images_uint8')!.data as Uint8Array)).toBeLessThanOrEqual(1);
    } finally {
      r.dispose();
    }
  }, 600_000);
});
