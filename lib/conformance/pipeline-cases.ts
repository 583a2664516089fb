/**
 * Runner for the `sd_txt2img` case type (sd-pipeline-tiny): the whole text-to-image pipeline from the
 * case's initial latents — token ids exactly, prompt and negative-prompt embeddings, every step's U-Net
 * input, output, guided prediction and latents, the decoder input, the decoded image, the
 * post-processed image and its 8-bit version (±1 level on a few values, as the README allows).
 */
import { z } from 'zod';
import { ConfigError } from '../errors';
import { loadStableDiffusion, type StableDiffusion } from '../models/stable-diffusion';
import { scale } from '../native/ops';
import { Tensor } from '../native/tensor';
import { toImages } from '../sample/image';
import { tokenizePrompts, txt2img } from '../sample/txt2img';
import { allKeys, withTensors } from './case-tensors';
import { checkNumbers, checkTensor, type Check } from './compare';
import { caseFields, CASES_FILE, type FixtureCase, type FixtureSet } from './fixture-set';
import { SetModelCache } from './set-model-cache';
import type { CaseRegistry } from './registry';
import { TOLERANCES } from './tolerances';

const key = z.string();
const prompts = z.union([z.string(), z.array(z.string()).nonempty()]);

const txt2imgCase = z.object({
  call: z.object({
    prompt: prompts,
    negative_prompt: prompts.nullable(),
    guidance_scale: z.number(),
    num_inference_steps: z.number().int().positive(),
    height: z.number().int().positive().nullable(),
    width: z.number().int().positive().nullable(),
    clip_skip: z.number().int().nonnegative().nullable(),
  }),
  resolved: z.object({ uncond_prompts: z.array(z.string()) }),
  timesteps: z.array(z.number().int()),
  inputs: z.object({ latents: key }),
  expected: z.object({
    input_ids_cond: key,
    input_ids_uncond: key,
    prompt_embeds: key,
    negative_prompt_embeds: key,
    final_latents: key,
    vae_decode_input: key,
    image_decoded: key,
    image: key,
    image_uint8: key,
  }),
  steps: z.array(z.object({ index: z.number().int(), timestep: z.number(), unet_input: key, unet_output: key, guided_noise_pred: key, latents: key })),
});

/** The README's allowance for 8-bit images: every value within ±1, and only a few off at all. */
const UINT8_MAX_OFF_FRACTION = 0.01;

const pipelines = new SetModelCache<StableDiffusion>((dir) => loadStableDiffusion(dir));

/** Disposes the cached models (tests call it when done). */
export function releasePipelineCaseModels(): Promise<void> {
  return pipelines.release();
}

async function ints(t: Tensor): Promise<number[]> {
  const data = await t.data();
  return Array.from(data as ArrayLike<number | bigint>, (v) => Number(v));
}

async function checkUint8(name: string, got: Uint8Array, expected: Tensor): Promise<Check> {
  const want = (await expected.data()) as Uint8Array;
  if (want.length !== got.length) return { name, rel: Infinity, bound: 1, pass: false, note: `${got.length} values computed, ${want.length} expected` };
  let worst = 0;
  let off = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(want[i]! - got[i]!);
    worst = Math.max(worst, d);
    if (d > 0) off++;
  }
  const pass = worst <= 1 && off <= Math.max(1, UINT8_MAX_OFF_FRACTION * want.length);
  return { name, rel: worst, bound: 1, pass, note: `max |Δ| ${worst} level(s) (the rel column), ${off} of ${want.length} values differ` };
}

async function runTxt2Img(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, txt2imgCase);
  const sd = await pipelines.get(set);
  return withTensors(set, fixtureCase, allKeys([c.inputs, c.expected, c.steps]), async (get) => {
    const promptList = typeof c.call.prompt === 'string' ? [c.call.prompt] : c.call.prompt;
    const checks: Check[] = [];
    using idsCond = tokenizePrompts(sd, promptList);
    using idsUncond = tokenizePrompts(sd, c.resolved.uncond_prompts);
    checks.push(checkNumbers('input_ids_cond', await ints(idsCond), await ints(get(c.expected.input_ids_cond)), TOLERANCES.exact));
    checks.push(checkNumbers('input_ids_uncond', await ints(idsUncond), await ints(get(c.expected.input_ids_uncond)), TOLERANCES.exact));
    const result = await txt2img(sd, {
      prompt: c.call.prompt,
      negativePrompt: c.call.negative_prompt,
      guidanceScale: c.call.guidance_scale,
      steps: c.call.num_inference_steps,
      height: c.call.height ?? undefined,
      width: c.call.width ?? undefined,
      clipSkip: c.call.clip_skip,
      latents: get(c.inputs.latents),
      onStep: async (trace) => {
        const step = c.steps[trace.index];
        if (step === undefined)
          throw new ConfigError(
            `${set.resolve(CASES_FILE)}: case "${fixtureCase.name}" has ${c.steps.length} steps but the pipeline ran step ${trace.index} (num_inference_steps ${c.call.num_inference_steps})`,
          );
        const name = `step_${String(trace.index).padStart(3, '0')}`;
        checks.push(checkNumbers(`${name}/timestep`, [trace.timestep], [step.timestep], TOLERANCES.exact));
        checks.push(await checkTensor(`${name}/unet_input`, trace.unetInput, get(step.unet_input), TOLERANCES.pipeline));
        checks.push(await checkTensor(`${name}/unet_output`, trace.unetOutput, get(step.unet_output), TOLERANCES.pipeline));
        checks.push(await checkTensor(`${name}/guided_noise_pred`, trace.guidedNoisePred, get(step.guided_noise_pred), TOLERANCES.pipeline));
        checks.push(await checkTensor(`${name}/latents`, trace.latents, get(step.latents), TOLERANCES.pipeline));
      },
    });
    try {
      checks.push(checkNumbers('timesteps', sd.scheduler.timesteps, c.timesteps, TOLERANCES.exact));
      checks.push(await checkTensor('prompt_embeds', result.promptEmbeds, get(c.expected.prompt_embeds), TOLERANCES.textEncoder));
      if (result.negativePromptEmbeds === undefined)
        throw new ConfigError(
          `${set.resolve(CASES_FILE)}: case "${fixtureCase.name}" expects negative prompt embeddings but the pipeline ran without them (guidance_scale ${c.call.guidance_scale}: classifier-free guidance needs more than 1)`,
        );
      checks.push(await checkTensor('negative_prompt_embeds', result.negativePromptEmbeds, get(c.expected.negative_prompt_embeds), TOLERANCES.textEncoder));
      checks.push(await checkTensor('final_latents', result.latents, get(c.expected.final_latents), TOLERANCES.pipeline));
      using decodeInput = await scale(result.latents, 1 / sd.vae.scalingFactor);
      checks.push(await checkTensor('vae_decode_input', decodeInput, get(c.expected.vae_decode_input), TOLERANCES.pipeline));
      checks.push(await checkTensor('image_decoded', result.images, get(c.expected.image_decoded), TOLERANCES.pipeline));
      // The post-processed image: (x / 2 + 0.5) clamped to [0, 1], compared as float and as 8-bit.
      const decoded = (await result.images.data()) as Float32Array;
      using image = Tensor.from(
        Float32Array.from(decoded, (v) => Math.min(1, Math.max(0, v / 2 + 0.5))),
        result.images.shape,
      );
      checks.push(await checkTensor('image', image, get(c.expected.image), TOLERANCES.pipeline));
      checks.push(await checkUint8('image_uint8', (await toImages(result.images)).pixels, get(c.expected.image_uint8)));
      return checks;
    } finally {
      result.dispose();
    }
  });
}

export function registerPipelineCases(registry: CaseRegistry): void {
  registry.register('sd_txt2img', runTxt2Img);
}
