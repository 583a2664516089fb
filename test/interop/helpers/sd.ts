/**
 * Stable Diffusion on both sides: the tiny fixture pipeline fine-tuned by difftune, the same latents
 * and prompt through difftune's txt2img and diffusers' StableDiffusionPipeline (sd_pipeline.py), and the
 * same U-Net inputs through both U-Nets.
 */
import * as path from 'node:path';
import { loadStableDiffusion } from '../../../lib/models/stable-diffusion';
import type { UNet } from '../../../lib/models/unet';
import { Generator } from '../../../lib/native/generator';
import { randn } from '../../../lib/native/ops';
import { Tensor } from '../../../lib/native/tensor';
import { txt2img } from '../../../lib/sample/txt2img';
import { finetune, type FinetuneResult } from '../../../lib/train/finetune';
import { FIXTURES, floats, levelDiff, pixels, readTensors, relError, ROOT, runPython, unetForwardBound, writeTensors, type PyResponse } from './harness';

export const SD_BASE = path.join(FIXTURES, 'sd-pipeline-tiny');

/** A short text-to-image fine-tune of the tiny pipeline on the shapes recipe's captioned images. */
export async function finetuneTinySd(output: string, extra: Record<string, unknown> = {}): Promise<FinetuneResult> {
  return finetune({
    model: { pretrained: SD_BASE },
    data: { path: path.join(ROOT, 'recipes', 'data', 'shapes', 'train'), resolution: 32, channels: 3 },
    freeze: { preset: 'full' },
    train: { steps: 3, batchSize: 2, lr: 1e-3, seed: 0 },
    output,
    ...extra,
  });
}

export interface Txt2ImgCase {
  prompt: string;
  negativePrompt?: string;
  guidanceScale: number;
  steps: number;
  /** Seeds the initial latents [1, 4, 16, 16] (32×32 images), given to both pipelines. */
  seed: number;
}

export interface Txt2ImgComparison {
  response: PyResponse;
  /** max|difftune − diffusers| / max|diffusers| of the [0, 1] images. */
  rel: number;
  /** Its bound (txt2imgBound). */
  bound: number;
  /** The largest difference of the 8-bit images, in levels. */
  levels: number;
}

/**
 * The bound on the images' relative difference: each step's U-Net output differs by at most
 * unetForwardBound of its size, guidance (uncond + g·(cond − uncond)) scales that by at most 1 + 2g, the
 * steps add up, and the VAE decoder's own reductions (unetForwardBound of its channels) come on top.
 */
export function txt2imgBound(unet: { block_out_channels: readonly number[] }, vae: { block_out_channels: readonly number[] }, c: Txt2ImgCase): number {
  return c.steps * (1 + 2 * c.guidanceScale) * unetForwardBound(unet) + unetForwardBound(vae);
}

/**
 * difftune's txt2img on `folder` and diffusers' StableDiffusionPipeline opened with `open` (the
 * sd_pipeline.py request fields that open it: pipeline / single_file / variant / lora) from the same
 * latents.
 */
export async function compareTxt2img(
  folder: string,
  open: Record<string, unknown>,
  c: Txt2ImgCase,
  work: string,
  options: { variant?: string } = {},
): Promise<Txt2ImgComparison> {
  using sd = await loadStableDiffusion(folder, { variant: options.variant });
  using generator = new Generator(c.seed);
  using latents = await randn([1, 4, 16, 16], { generator });
  const latentsFile = path.join(work, `latents-${c.seed}.safetensors`);
  await writeTensors(latentsFile, { latents });
  const r = await txt2img(sd, { prompt: c.prompt, negativePrompt: c.negativePrompt, guidanceScale: c.guidanceScale, steps: c.steps, latents });
  try {
    const out = path.join(work, `txt2img-${c.seed}-${Date.now()}.safetensors`);
    const response = await runPython('sd_pipeline', {
      ...open,
      txt2img: { prompt: c.prompt, negative_prompt: c.negativePrompt ?? null, guidance_scale: c.guidanceScale, steps: c.steps, latents: latentsFile, out },
    });
    const theirs = await readTensors(out);
    // diffusers' output_type="pt": (x / 2 + 0.5).clamp(0, 1), NCHW like ours.
    const ours = (await floats(r.images)).map((v) => Math.min(1, Math.max(0, v / 2 + 0.5)));
    return {
      response,
      rel: relError(ours, theirs.get('images')!.data),
      bound: txt2imgBound(sd.unet.config, sd.vae.config, c),
      levels: levelDiff(await pixels(r.images), theirs.get('images_uint8')!.data as Uint8Array),
    };
  } finally {
    r.dispose();
  }
}

/** U-Net inputs of the tiny pipeline's shapes (batch 2, 4×16×16 latents, 77 tokens of 32 features), written for the scripts too. */
export async function tinySdUNetInputs(
  file: string,
  seed: number,
): Promise<{ sample: Tensor; timestep: Tensor; encoderHiddenStates: Tensor; dispose(): void }> {
  using generator = new Generator(seed);
  const sample = await randn([2, 4, 16, 16], { generator });
  const encoderHiddenStates = await randn([2, 77, 32], { generator });
  const timestep = Tensor.from(new BigInt64Array([500n]), []);
  await writeTensors(file, { sample, timestep, encoder_hidden_states: encoderHiddenStates });
  return {
    sample,
    timestep,
    encoderHiddenStates,
    dispose() {
      sample.dispose();
      timestep.dispose();
      encoderHiddenStates.dispose();
    },
  };
}

/** difftune's U-Net output on those inputs, as floats. */
export async function unetOutput(unet: UNet, x: { sample: Tensor; timestep: Tensor; encoderHiddenStates: Tensor }): Promise<Float32Array> {
  using out = await unet.forward(x.sample, x.timestep, { encoderHiddenStates: x.encoderHiddenStates });
  return await floats(out);
}
