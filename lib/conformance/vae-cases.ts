/**
 * Runners for the AutoencoderKL case types of test/fixtures/diffusers (README "cases.json"):
 * vae_encode, vae_decode, vae_forward and vae_backward. The model is loaded once per set folder.
 */
import { z } from 'zod';
import { loadVae, type AutoencoderKL } from '../models/vae';
import { checkScalar, checkGradParams, checkTensor, type Check } from './compare';
import { allKeys, withTensors } from './case-tensors';
import { caseFields, type FixtureCase, type FixtureSet } from './fixture-set';
import { SetModelCache } from './set-model-cache';
import type { CaseRegistry } from './registry';
import { TOLERANCES } from './tolerances';

const key = z.string();

const encodeCase = z.object({
  scaling_factor: z.number(),
  inputs: z.object({ image: key, noise: key }),
  expected: z.object({ mean: key, logvar: key, std: key, sample: key, latents: key }),
});

const decodeCase = z.object({ inputs: z.object({ z: key }), expected: z.object({ sample: key }) });

const forwardCase = z.object({ inputs: z.object({ image: key }), expected: z.object({ mean: key, logvar: key, sample: key }) });

const backwardCase = z.object({
  loss_value: z.number().optional(),
  inputs: z.object({ z: key, target: key }),
  expected: z.object({ loss: key, sample: key, grad_z: key, grad_params: z.record(key) }),
});

const models = new SetModelCache<AutoencoderKL>((dir, device) => loadVae(dir, { device }));

/** Disposes the cached models (tests call it when done). */
export function releaseVaeCaseModels(): Promise<void> {
  return models.release();
}

async function runEncode(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, encodeCase);
  const vae = await models.get(set);
  return withTensors(set, fixtureCase, allKeys([c.inputs, c.expected]), async (get) => {
    const e = c.expected;
    const dist = await vae.encode(get(c.inputs.image), { std: true });
    using sample = await vae.sampleLatents(dist, { noise: get(c.inputs.noise) });
    using latents = await vae.sampleLatents(dist, { noise: get(c.inputs.noise), scaled: true });
    try {
      return [
        checkScalar('scaling_factor', vae.scalingFactor, c.scaling_factor, 0),
        await checkTensor('mean', dist.mean, get(e.mean), TOLERANCES.vae),
        await checkTensor('logvar', dist.logvar, get(e.logvar), TOLERANCES.vae),
        await checkTensor('std', dist.std!, get(e.std), TOLERANCES.vae),
        await checkTensor('sample', sample, get(e.sample), TOLERANCES.vae),
        await checkTensor('latents', latents, get(e.latents), TOLERANCES.vae),
      ];
    } finally {
      for (const t of [dist.mean, dist.logvar, dist.std]) t?.dispose();
    }
  });
}

async function runDecode(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, decodeCase);
  const vae = await models.get(set);
  return withTensors(set, fixtureCase, allKeys([c.inputs, c.expected]), async (get) => {
    using out = await vae.decode(get(c.inputs.z));
    return [await checkTensor('sample', out, get(c.expected.sample), TOLERANCES.vae)];
  });
}

async function runForward(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, forwardCase);
  const vae = await models.get(set);
  return withTensors(set, fixtureCase, allKeys([c.inputs, c.expected]), async (get) => {
    const dist = await vae.encode(get(c.inputs.image));
    using out = await vae.forward(get(c.inputs.image));
    try {
      return [
        await checkTensor('mean', dist.mean, get(c.expected.mean), TOLERANCES.vae),
        await checkTensor('logvar', dist.logvar, get(c.expected.logvar), TOLERANCES.vae),
        await checkTensor('sample', out, get(c.expected.sample), TOLERANCES.vae),
      ];
    } finally {
      dist.mean.dispose();
      dist.logvar.dispose();
    }
  });
}

async function runBackward(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, backwardCase);
  const vae = await models.get(set);
  return withTensors(set, fixtureCase, allKeys([c.inputs, c.expected]), async (get) => {
    const e = c.expected;
    const r = await vae.decodeBackwardMse(get(c.inputs.z), get(c.inputs.target), { gradNames: Object.keys(e.grad_params) });
    try {
      const checks = [
        await checkTensor('loss', r.loss, get(e.loss), TOLERANCES.vae),
        await checkTensor('sample', r.output, get(e.sample), TOLERANCES.vae),
        await checkTensor('grad_inputs/z', r.gradLatents, get(e.grad_z), TOLERANCES.vaeGradient),
      ];
      checks.push(...(await checkGradParams(r.gradParams, e.grad_params, get, TOLERANCES.vaeGradient)));
      return checks;
    } finally {
      for (const t of [r.output, r.loss, r.gradLatents, ...r.gradParams.values()]) t.dispose();
    }
  });
}

export function registerVaeCases(registry: CaseRegistry): CaseRegistry {
  return registry.register('vae_encode', runEncode).register('vae_decode', runDecode).register('vae_forward', runForward).register('vae_backward', runBackward);
}
