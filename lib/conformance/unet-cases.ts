/**
 * Runners for the U-Net case types of test/fixtures/diffusers: unet_forward, unet_backward and
 * unet_sampling_loop (a pipeline-style denoising loop with the set's own scheduler, classifier-free
 * guidance for conditional models). The model is loaded once per set folder and reused.
 */
import { z } from 'zod';
import { ConfigError, NativeError } from '../errors';
import { loadUNet, type UNet } from '../models/unet';
import { classifierFreeGuidance, concat } from '../native/ops';
import { Tensor } from '../native/tensor';
import { loadScheduler } from '../schedulers/scheduler';
import { checkNumbers, checkGradParams, checkTensor, type Check } from './compare';
import { allKeys, withTensors } from './case-tensors';
import { caseFields, CASES_FILE, type FixtureCase, type FixtureSet } from './fixture-set';
import { SetModelCache } from './set-model-cache';
import type { CaseRegistry } from './registry';
import { TOLERANCES } from './tolerances';

const key = z.string();
const modelInputs = { sample: key, timestep: key, encoder_hidden_states: key.optional(), class_labels: key.optional() };

const forwardCase = z.object({ inputs: z.object(modelInputs), expected: z.object({ sample: key }) });

const backwardCase = z.object({
  inputs: z.object({ ...modelInputs, target: key }),
  expected: z.object({
    loss: key,
    sample: key,
    grad_sample: key,
    grad_encoder_hidden_states: key.optional(),
    grad_params: z.record(key),
  }),
});

const samplingLoopCase = z.object({
  scheduler_config_file: z.string(),
  num_inference_steps: z.number().int().positive(),
  guidance_scale: z.number().nullable(),
  timesteps: z.array(z.number()),
  inputs: z.object({
    init_noise: key,
    encoder_hidden_states_uncond: key.optional(),
    encoder_hidden_states_cond: key.optional(),
    class_labels: key.optional(),
  }),
  steps: z.array(
    z.object({
      timestep: z.number(),
      unet_input: key,
      unet_output: key,
      guided_output: key.optional(),
      variance_noise: key.optional(),
      prev_sample: key,
    }),
  ),
});

/** One loaded model per set folder: every case of a set shares it. */
const models = new SetModelCache<UNet>((dir, device) => loadUNet(dir, { device }));

/** Disposes the cached models (tests call it when done). */
export function releaseUNetCaseModels(): Promise<void> {
  return models.release();
}

async function runForward(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, forwardCase);
  const unet = await models.get(set);
  return withTensors(set, fixtureCase, allKeys([c.inputs, c.expected]), async (get) => {
    const i = c.inputs;
    using out = await unet.forward(get(i.sample), get(i.timestep), {
      encoderHiddenStates: i.encoder_hidden_states === undefined ? undefined : get(i.encoder_hidden_states),
      classLabels: i.class_labels === undefined ? undefined : get(i.class_labels),
    });
    return [await checkTensor('sample', out, get(c.expected.sample), TOLERANCES.forward)];
  });
}

async function runBackward(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, backwardCase);
  const unet = await models.get(set);
  return withTensors(set, fixtureCase, allKeys([c.inputs, c.expected]), async (get) => {
    const i = c.inputs;
    const e = c.expected;
    const r = await unet.forwardBackwardMse(get(i.sample), get(i.timestep), get(i.target), {
      encoderHiddenStates: i.encoder_hidden_states === undefined ? undefined : get(i.encoder_hidden_states),
      classLabels: i.class_labels === undefined ? undefined : get(i.class_labels),
      gradNames: Object.keys(e.grad_params),
    });
    try {
      const checks = [
        await checkTensor('loss', r.loss, get(e.loss), TOLERANCES.forward),
        await checkTensor('sample', r.output, get(e.sample), TOLERANCES.forward),
        await checkTensor('grad_inputs/sample', r.gradSample, get(e.grad_sample), TOLERANCES.gradient),
      ];
      if (e.grad_encoder_hidden_states !== undefined) {
        if (r.gradEncoderHiddenStates === undefined)
          throw new NativeError(
            `${set.resolve(CASES_FILE)}: case "${fixtureCase.name}" expects a gradient for encoder_hidden_states but the model returned none`,
          );
        checks.push(await checkTensor('grad_inputs/encoder_hidden_states', r.gradEncoderHiddenStates, get(e.grad_encoder_hidden_states), TOLERANCES.gradient));
      }
      checks.push(...(await checkGradParams(r.gradParams, e.grad_params, get, TOLERANCES.gradient)));
      return checks;
    } finally {
      for (const t of [r.output, r.loss, r.gradSample, r.gradEncoderHiddenStates, ...r.gradParams.values()]) t?.dispose();
    }
  });
}

async function runSamplingLoop(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, samplingLoopCase);
  const unet = await models.get(set);
  using scheduler = await loadScheduler(set.resolve(c.scheduler_config_file));
  await scheduler.setTimesteps(c.num_inference_steps);
  // Integer timesteps exactly; float ones (Karras sigmas mapped back, KDPM2's midpoints) within the table bound, as in scheduler cases.
  const timestepBound = scheduler.timestepDType === 'int64' ? TOLERANCES.exact : TOLERANCES.schedulerTable;
  const checks: Check[] = [checkNumbers('timesteps', scheduler.timesteps, c.timesteps, timestepBound)];
  const guided = unet.isConditional;
  // await, not return: `using` must keep the scheduler alive until the loop has finished.
  return await withTensors(set, fixtureCase, allKeys([c.inputs, c.steps]), async (get) => {
    const owned: Tensor[] = [];
    const keep = <T extends Tensor>(t: T): T => {
      owned.push(t);
      return t;
    };
    try {
      let context: Tensor | undefined;
      if (guided) {
        const { encoder_hidden_states_uncond: u, encoder_hidden_states_cond: k } = c.inputs;
        if (u === undefined || k === undefined)
          throw new ConfigError(`${set.resolve(CASES_FILE)}: a conditional sampling loop needs encoder_hidden_states_uncond and _cond`);
        context = keep(await concat([get(u), get(k)]));
      }
      let labels: Tensor | undefined;
      if (c.inputs.class_labels !== undefined) {
        const l = get(c.inputs.class_labels);
        labels = guided ? keep(await concat([l, l])) : l;
      }
      let latents = keep(await scheduler.scaleInitialNoise(get(c.inputs.init_noise)));
      for (const [index, step] of c.steps.entries()) {
        const t = scheduler.timesteps[index];
        if (t === undefined)
          throw new ConfigError(
            `${set.resolve(CASES_FILE)}: case "${fixtureCase.name}" has ${c.steps.length} steps but the scheduler made ${scheduler.timesteps.length} timesteps for num_inference_steps ${c.num_inference_steps}`,
          );
        const name = `step_${String(index).padStart(3, '0')}`;
        const input = keep(await scheduler.scaleModelInput(guided ? keep(await concat([latents, latents])) : latents, t));
        checks.push(await checkTensor(`${name}/unet_input`, input, get(step.unet_input), TOLERANCES.samplingLoop));
        const ts = keep(scheduler.timestepTensor(t));
        const output = keep(await unet.forward(input, ts, { encoderHiddenStates: context, classLabels: labels }));
        checks.push(await checkTensor(`${name}/unet_output`, output, get(step.unet_output), TOLERANCES.samplingLoop));
        let modelOutput = output;
        if (guided) {
          if (c.guidance_scale === null) throw new ConfigError(`${set.resolve(CASES_FILE)}: a conditional sampling loop needs guidance_scale`);
          modelOutput = keep(await classifierFreeGuidance(output, c.guidance_scale));
          if (step.guided_output !== undefined)
            checks.push(await checkTensor(`${name}/guided_output`, modelOutput, get(step.guided_output), TOLERANCES.samplingLoop));
        }
        const varianceNoise = step.variance_noise === undefined ? undefined : get(step.variance_noise);
        const result = await scheduler.step(modelOutput, t, latents, { varianceNoise });
        result.predOriginalSample?.dispose();
        latents = keep(result.prevSample);
        checks.push(await checkTensor(`${name}/prev_sample`, latents, get(step.prev_sample), TOLERANCES.samplingLoop));
      }
      return checks;
    } finally {
      for (const t of owned) t.dispose();
    }
  });
}

export function registerUNetCases(registry: CaseRegistry): CaseRegistry {
  return registry.register('unet_forward', runForward).register('unet_backward', runBackward).register('unet_sampling_loop', runSamplingLoop);
}
