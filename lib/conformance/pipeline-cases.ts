/**
 * Runners for the `sd_txt2img` case type (sd-pipeline-tiny): the whole text-to-image pipeline from the
 * case's initial latents — token ids exactly, prompt and negative-prompt embeddings, every step's U-Net
 * input, output, guided prediction and latents, the decoder input, the decoded image, the
 * post-processed image and its 8-bit version (±1 level on a few values, as the README allows) — and
 * `sd_img2img` (sd-img2img-tiny, over its source_set's pipeline): the same, after the preprocessed image,
 * its latent distribution, the scaled draw, the cut schedule and the noised starting latents.
 */
import * as nodePath from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors';
import { loadStableDiffusion, type StableDiffusion } from '../models/stable-diffusion';
import { scale } from '../native/ops';
import { Tensor } from '../native/tensor';
import { SCHEDULER_CLASSES } from '../config/scheduler';
import { loadScheduler, SCHEDULER_CONFIG_FILE } from '../schedulers/scheduler';
import { toImages } from '../sample/image';
import { img2img } from '../sample/img2img';
import { tokenizePrompts, txt2img, type StepTrace, type Txt2ImgResult } from '../sample/txt2img';
import { allKeys, withTensors } from './case-tensors';
import { checkNumbers, checkTensor, type Check } from './compare';
import { caseFields, CASES_FILE, FixtureSet, type FixtureCase } from './fixture-set';
import { SetModelCache } from './set-model-cache';
import type { CaseRegistry } from './registry';
import { TOLERANCES } from './tolerances';

const key = z.string();
const prompts = z.union([z.string(), z.array(z.string()).nonempty()]);

const expectedOutputs = {
  input_ids_cond: key,
  input_ids_uncond: key,
  prompt_embeds: key,
  negative_prompt_embeds: key,
  final_latents: key,
  vae_decode_input: key,
  image_decoded: key,
  image: key,
  image_uint8: key,
};
const stepsSchema = z.array(
  z.object({
    index: z.number().int(),
    timestep: z.number(),
    unet_input: key,
    unet_output: key,
    guided_noise_pred: key,
    latents: key,
    variance_noise: key.optional(),
  }),
);

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
  expected: z.object(expectedOutputs),
  steps: stepsSchema,
});

const img2imgCase = z.object({
  call: z.object({
    prompt: prompts,
    negative_prompt: prompts.nullable(),
    strength: z.number(),
    num_inference_steps: z.number().int().positive(),
    guidance_scale: z.number(),
    eta: z.number(),
  }),
  generator_seed: z.number().int().nonnegative(),
  scheduler_class: z.enum(SCHEDULER_CLASSES),
  resolved: z.object({ uncond_prompts: z.array(z.string()) }),
  scheduler_timesteps: z.array(z.number().int()),
  timesteps: z.array(z.number().int()),
  inputs: z.object({ image: key, image_uint8: key, vae_noise: key, noise: key }),
  expected: z.object({
    ...expectedOutputs,
    preprocessed_image: key,
    latent_mean: key,
    latent_std: key,
    init_latents: key,
    latent_timestep: key,
    noised_latents: key,
  }),
  steps: stepsSchema,
});

/** The README's allowance for 8-bit images: every value within ±1, and only a few off at all. */
const UINT8_MAX_OFF_FRACTION = 0.01;

const pipelines = new SetModelCache<StableDiffusion>((dir, device) => loadStableDiffusion(dir, { device }));

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

type Get = (k: string) => Tensor;
type Expected = z.infer<typeof txt2imgCase>['expected'];

/** Token ids of the prompts and of the unconditional prompts, exactly. */
async function checkIds(sd: StableDiffusion, prompt: string | string[], uncond: string[], expected: Expected, get: Get): Promise<Check[]> {
  using idsCond = tokenizePrompts(sd, typeof prompt === 'string' ? [prompt] : prompt);
  using idsUncond = tokenizePrompts(sd, uncond);
  return [
    checkNumbers('input_ids_cond', await ints(idsCond), await ints(get(expected.input_ids_cond)), TOLERANCES.exact),
    checkNumbers('input_ids_uncond', await ints(idsUncond), await ints(get(expected.input_ids_uncond)), TOLERANCES.exact),
  ];
}

/** An onStep callback comparing every step's timestep, U-Net input and output, guided prediction and latents. */
function stepChecks(
  set: FixtureSet,
  fixtureCase: FixtureCase,
  steps: z.infer<typeof stepsSchema>,
  get: Get,
  checks: Check[],
): (trace: StepTrace) => Promise<void> {
  return async (trace) => {
    const step = steps[trace.index];
    if (step === undefined)
      throw new ConfigError(`${set.resolve(CASES_FILE)}: case "${fixtureCase.name}" has ${steps.length} steps but the pipeline ran step ${trace.index}`);
    const name = `step_${String(trace.index).padStart(3, '0')}`;
    checks.push(checkNumbers(`${name}/timestep`, [trace.timestep], [step.timestep], TOLERANCES.exact));
    checks.push(await checkTensor(`${name}/unet_input`, trace.unetInput, get(step.unet_input), TOLERANCES.pipeline));
    checks.push(await checkTensor(`${name}/unet_output`, trace.unetOutput, get(step.unet_output), TOLERANCES.pipeline));
    checks.push(await checkTensor(`${name}/guided_noise_pred`, trace.guidedNoisePred, get(step.guided_noise_pred), TOLERANCES.pipeline));
    checks.push(await checkTensor(`${name}/latents`, trace.latents, get(step.latents), TOLERANCES.pipeline));
  };
}

/** The embeddings, the final latents, the decoder input, the decoded image and its [0, 1] and 8-bit versions. */
async function checkOutputs(
  set: FixtureSet,
  fixtureCase: FixtureCase,
  sd: StableDiffusion,
  result: Txt2ImgResult,
  guidanceScale: number,
  expected: Expected,
  get: Get,
): Promise<Check[]> {
  const checks: Check[] = [];
  checks.push(await checkTensor('prompt_embeds', result.promptEmbeds, get(expected.prompt_embeds), TOLERANCES.textEncoder));
  if (result.negativePromptEmbeds === undefined)
    throw new ConfigError(
      `${set.resolve(CASES_FILE)}: case "${fixtureCase.name}" expects negative prompt embeddings but the pipeline ran without them (guidance_scale ${guidanceScale}: classifier-free guidance needs more than 1)`,
    );
  checks.push(await checkTensor('negative_prompt_embeds', result.negativePromptEmbeds, get(expected.negative_prompt_embeds), TOLERANCES.textEncoder));
  checks.push(await checkTensor('final_latents', result.latents, get(expected.final_latents), TOLERANCES.pipeline));
  using decodeInput = await scale(result.latents, 1 / sd.vae.scalingFactor);
  checks.push(await checkTensor('vae_decode_input', decodeInput, get(expected.vae_decode_input), TOLERANCES.pipeline));
  checks.push(await checkTensor('image_decoded', result.images, get(expected.image_decoded), TOLERANCES.pipeline));
  // The post-processed image: (x / 2 + 0.5) clamped to [0, 1], compared as float and as 8-bit.
  const decoded = (await result.images.data()) as Float32Array;
  using image = Tensor.from(
    Float32Array.from(decoded, (v) => Math.min(1, Math.max(0, v / 2 + 0.5))),
    result.images.shape,
  );
  checks.push(await checkTensor('image', image, get(expected.image), TOLERANCES.pipeline));
  checks.push(await checkUint8('image_uint8', (await toImages(result.images)).pixels, get(expected.image_uint8)));
  return checks;
}

async function runTxt2Img(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, txt2imgCase);
  const sd = await pipelines.get(set);
  return withTensors(set, fixtureCase, allKeys([c.inputs, c.expected, c.steps]), async (get) => {
    const checks = await checkIds(sd, c.call.prompt, c.resolved.uncond_prompts, c.expected, get);
    const result = await txt2img(sd, {
      prompt: c.call.prompt,
      negativePrompt: c.call.negative_prompt,
      guidanceScale: c.call.guidance_scale,
      steps: c.call.num_inference_steps,
      height: c.call.height ?? undefined,
      width: c.call.width ?? undefined,
      clipSkip: c.call.clip_skip,
      latents: get(c.inputs.latents),
      onStep: stepChecks(set, fixtureCase, c.steps, get, checks),
    });
    try {
      checks.push(checkNumbers('timesteps', sd.scheduler.timesteps, c.timesteps, TOLERANCES.exact));
      checks.push(...(await checkOutputs(set, fixtureCase, sd, result, c.call.guidance_scale, c.expected, get)));
      return checks;
    } finally {
      result.dispose();
    }
  });
}

/** The pipeline an img2img set runs on: its source_set folder (sd-pipeline-tiny), loaded once per set. */
const img2imgPipelines = new SetModelCache<StableDiffusion>(async (dir, device) => {
  const set = await FixtureSet.open(dir, { device });
  const source = set.file.source_set;
  if (typeof source !== 'string') throw new ConfigError(`${set.resolve(CASES_FILE)}: expected "source_set", the pipeline folder the cases ran on`);
  return loadStableDiffusion(set.resolve(source), { device });
});

/**
 * sd_img2img: the case runs twice. With the stored draws (inputs.vae_noise, inputs.noise) every tensor from
 * the preprocessed image on is compared; then from generator_seed alone, as diffusers drew them (the
 * Generator is torch's CPU generator). A case whose scheduler steps draw noise too (DDIM with eta: steps
 * with variance_noise) runs from the seed alone, the only way its step noise follows the same two draws.
 */
async function runImg2Img(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, img2imgCase);
  const base = await img2imgPipelines.get(set);
  const schedulerFile = nodePath.join(base.dir, 'scheduler', SCHEDULER_CONFIG_FILE);
  using scheduler = c.scheduler_class === base.scheduler.className ? undefined : await loadScheduler(schedulerFile, { className: c.scheduler_class });
  const sd: StableDiffusion = { ...base, scheduler: scheduler ?? base.scheduler };
  // Awaited: `scheduler` is disposed when this function returns.
  return await withTensors(set, fixtureCase, allKeys([c.inputs, c.expected, c.steps]), async (get) => {
    const checks = await checkIds(sd, c.call.prompt, c.resolved.uncond_prompts, c.expected, get);
    const stepsDrawNoise = c.steps.some((s) => s.variance_noise !== undefined);
    for (const mode of stepsDrawNoise ? (['seed'] as const) : (['given noise', 'seed'] as const)) {
      const prefix = mode === 'seed' ? 'seed/' : '';
      const stepsChecks: Check[] = [];
      const result = await img2img(sd, {
        prompt: c.call.prompt,
        negativePrompt: c.call.negative_prompt,
        guidanceScale: c.call.guidance_scale,
        steps: c.call.num_inference_steps,
        strength: c.call.strength,
        eta: c.call.eta,
        image: get(c.inputs.image),
        seed: c.generator_seed,
        ...(mode === 'given noise' ? { encoderNoise: get(c.inputs.vae_noise), noise: get(c.inputs.noise) } : {}),
        onStart: async (s) => {
          const e = c.expected;
          checks.push(checkNumbers(`${prefix}scheduler_timesteps`, sd.scheduler.timesteps, c.scheduler_timesteps, TOLERANCES.exact));
          checks.push(checkNumbers(`${prefix}timesteps`, s.timesteps, c.timesteps, TOLERANCES.exact));
          checks.push(
            checkNumbers(
              `${prefix}latent_timestep`,
              Array.from({ length: s.latents.shape[0]! }, () => s.latentTimestep),
              await ints(get(e.latent_timestep)),
              TOLERANCES.exact,
            ),
          );
          checks.push(await checkTensor(`${prefix}preprocessed_image`, s.image, get(e.preprocessed_image), TOLERANCES.exact));
          checks.push(await checkTensor(`${prefix}latent_mean`, s.latentDist.mean, get(e.latent_mean), TOLERANCES.vae));
          checks.push(await checkTensor(`${prefix}latent_std`, s.latentDist.std, get(e.latent_std), TOLERANCES.vae));
          // From the seed: torch's CPU generator draws the same numbers (other CPUs' kernels may round the Box–Muller transform differently).
          checks.push(await checkTensor(`${prefix}noise`, s.noise, get(c.inputs.noise), TOLERANCES.schedulerNoise));
          checks.push(await checkTensor(`${prefix}init_latents`, s.initLatents, get(e.init_latents), TOLERANCES.vae));
          checks.push(await checkTensor(`${prefix}noised_latents`, s.latents, get(e.noised_latents), TOLERANCES.vae));
        },
        onStep: stepChecks(set, fixtureCase, c.steps, get, stepsChecks),
      });
      try {
        checks.push(...stepsChecks.map((k) => ({ ...k, name: prefix + k.name })));
        checks.push(
          ...(await checkOutputs(set, fixtureCase, sd, result, c.call.guidance_scale, c.expected, get)).map((k) => ({ ...k, name: prefix + k.name })),
        );
      } finally {
        result.dispose();
      }
    }
    return checks;
  });
}

/** Disposes the cached models (tests call it when done). */
export async function releasePipelineCaseModels(): Promise<void> {
  await pipelines.release();
  await img2imgPipelines.release();
}

export function registerPipelineCases(registry: CaseRegistry): void {
  registry.register('sd_txt2img', runTxt2Img);
  registry.register('sd_img2img', runImg2Img);
}
