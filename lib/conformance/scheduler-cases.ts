/**
 * Runners for the scheduler case types of test/fixtures/diffusers (README "cases.json"):
 * scheduler_tables, scheduler_set_timesteps, scheduler_add_noise, scheduler_get_velocity and
 * scheduler_loop. Each builds a fresh scheduler from the set's scheduler_config.json, as diffusers did.
 */
import { z } from 'zod';
import { disposeStateDict, type StateDict } from '../checkpoint/state-dict';
import { ConfigError } from '../errors';
import { Tensor } from '../native/tensor';
import { loadScheduler, type Scheduler, type StepOptions } from '../schedulers/scheduler';
import { checkNumbers, checkScalar, checkTensor, type Check } from './compare';
import { caseFields, CASES_FILE, type FixtureCase, type FixtureSet } from './fixture-set';
import type { CaseRegistry } from './registry';
import { TOLERANCES } from './tolerances';

const tablesCase = z.object({ expected: z.object({ betas: z.string(), alphas_cumprod: z.string() }) });

const setTimestepsCase = z.object({
  num_inference_steps: z.number().int().positive(),
  init_noise_sigma: z.number(),
  expected: z.object({ timesteps: z.string(), sigmas: z.string().optional() }),
});

const noiseInputs = z.object({
  /** null: training timesteps used as given; a number: set_timesteps(n) first and look them up. */
  set_timesteps: z.number().int().positive().nullable(),
  schedule_indices: z.array(z.number().int().nonnegative()).optional(),
});

const addNoiseCase = noiseInputs.extend({
  inputs: z.object({ original_samples: z.string(), noise: z.string(), timesteps: z.string() }),
  expected: z.object({ noisy_samples: z.string() }),
});

const getVelocityCase = noiseInputs.extend({
  inputs: z.object({ sample: z.string(), noise: z.string(), timesteps: z.string() }),
  expected: z.object({ velocity: z.string() }),
});

const loopCase = z.object({
  num_inference_steps: z.number().int().positive(),
  init_noise_sigma: z.number(),
  step_kwargs: z.record(z.unknown()),
  timesteps_key: z.string(),
  inputs: z.object({ init_noise: z.string() }),
  steps: z.array(
    z.object({
      index: z.number().int(),
      timestep: z.number(),
      model_input: z.string(),
      model_output: z.string(),
      prev_sample: z.string(),
      pred_original_sample: z.string().optional(),
      variance_noise: z.string().optional(),
    }),
  ),
});

/** Integer schedules must match exactly; float ones within the table tolerance. */
function timestepBound(scheduler: Scheduler): number {
  return scheduler.timestepDType === 'int64' ? TOLERANCES.exact : TOLERANCES.schedulerTable;
}

async function withTensors<T>(set: FixtureSet, keys: readonly string[], use: (get: (key: string) => Tensor) => Promise<T>): Promise<T> {
  const tensors: StateDict = await set.tensors(keys);
  const get = (key: string): Tensor => {
    const t = tensors.get(key);
    if (t === undefined) throw new ConfigError(`${set.resolve(CASES_FILE)}: tensor "${key}" is missing from the tensors file`);
    return t;
  };
  try {
    return await use(get);
  } finally {
    disposeStateDict(tensors);
  }
}

async function runTables(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, tablesCase);
  using scheduler = await loadScheduler(set.configPath);
  return await withTensors(set, [c.expected.betas, c.expected.alphas_cumprod], async (get) => {
    using betas = await scheduler.betas();
    using alphasCumprod = await scheduler.alphasCumprod();
    return [
      await checkTensor('betas', betas, get(c.expected.betas), TOLERANCES.schedulerTable),
      await checkTensor('alphas_cumprod', alphasCumprod, get(c.expected.alphas_cumprod), TOLERANCES.schedulerTable),
    ];
  });
}

async function runSetTimesteps(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, setTimestepsCase);
  using scheduler = await loadScheduler(set.configPath);
  await scheduler.setTimesteps(c.num_inference_steps);
  const keys = [c.expected.timesteps, ...(c.expected.sigmas === undefined ? [] : [c.expected.sigmas])];
  return await withTensors(set, keys, async (get) => {
    const checks = [
      checkNumbers('timesteps', scheduler.timesteps, await get(c.expected.timesteps).data(), timestepBound(scheduler)),
      checkScalar('init_noise_sigma', scheduler.initNoiseSigma, c.init_noise_sigma, TOLERANCES.schedulerTable),
    ];
    if (c.expected.sigmas !== undefined) {
      const sigmas = scheduler.sigmas;
      if (sigmas === undefined)
        checks.push({ name: 'sigmas', rel: Infinity, bound: TOLERANCES.schedulerTable, pass: false, note: 'the scheduler has no sigmas' });
      else checks.push(checkNumbers('sigmas', sigmas, await get(c.expected.sigmas).data(), TOLERANCES.schedulerTable));
    }
    return checks;
  });
}

/**
 * The timesteps to pass: the stored ones for training timesteps; for schedule lookups (every class
 * but DDPM, DDIM and PNDM) the entries of our own schedule at schedule_indices, in its dtype, after
 * checking they match.
 */
async function noiseTimesteps(scheduler: Scheduler, c: z.infer<typeof noiseInputs>, stored: Tensor, checks: Check[]): Promise<Tensor> {
  if (c.set_timesteps === null) return stored;
  await scheduler.setTimesteps(c.set_timesteps);
  if (c.schedule_indices === undefined) return stored;
  const ours = c.schedule_indices.map((i) => scheduler.timesteps[i] ?? NaN);
  checks.push(checkNumbers('timesteps (looked up)', ours, await stored.data(), timestepBound(scheduler)));
  switch (scheduler.timestepDType) {
    case 'int64':
      return Tensor.from(
        BigInt64Array.from(ours, (v) => BigInt(v)),
        [ours.length],
      );
    case 'float64':
      return Tensor.from(Float64Array.from(ours), [ours.length]);
    case 'float32':
      return Tensor.from(Float32Array.from(ours), [ours.length]);
  }
}

async function runAddNoise(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, addNoiseCase);
  using scheduler = await loadScheduler(set.configPath);
  const { original_samples: x0Key, noise: noiseKey, timesteps: tKey } = c.inputs;
  return await withTensors(set, [x0Key, noiseKey, tKey, c.expected.noisy_samples], async (get) => {
    const checks: Check[] = [];
    const timesteps = await noiseTimesteps(scheduler, c, get(tKey), checks);
    try {
      using noisy = await scheduler.addNoise(get(x0Key), get(noiseKey), timesteps);
      checks.push(await checkTensor('noisy_samples', noisy, get(c.expected.noisy_samples), TOLERANCES.schedulerNoise));
      return checks;
    } finally {
      if (timesteps !== get(tKey)) timesteps.dispose();
    }
  });
}

async function runGetVelocity(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, getVelocityCase);
  using scheduler = await loadScheduler(set.configPath);
  const { sample: sampleKey, noise: noiseKey, timesteps: tKey } = c.inputs;
  return await withTensors(set, [sampleKey, noiseKey, tKey, c.expected.velocity], async (get) => {
    const checks: Check[] = [];
    const timesteps = await noiseTimesteps(scheduler, c, get(tKey), checks);
    try {
      using velocity = await scheduler.getVelocity(get(sampleKey), get(noiseKey), timesteps);
      checks.push(await checkTensor('velocity', velocity, get(c.expected.velocity), TOLERANCES.schedulerNoise));
      return checks;
    } finally {
      if (timesteps !== get(tKey)) timesteps.dispose();
    }
  });
}

/** diffusers' step() keyword arguments in the fixtures → our options. */
function stepKwargs(set: FixtureSet, fixtureCase: FixtureCase, kwargs: Record<string, unknown>): StepOptions {
  const options: StepOptions = {};
  for (const [key, value] of Object.entries(kwargs)) {
    if (key === 'eta' && typeof value === 'number') options.eta = value;
    else if (key === 'use_clipped_model_output' && typeof value === 'boolean') options.useClippedModelOutput = value;
    else throw new ConfigError(`${set.resolve(CASES_FILE)}: case "${fixtureCase.name}": step_kwargs "${key}" = ${JSON.stringify(value)} is not supported`);
  }
  return options;
}

async function runLoop(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, loopCase);
  const baseOptions = stepKwargs(set, fixtureCase, c.step_kwargs);
  using scheduler = await loadScheduler(set.configPath);
  await scheduler.setTimesteps(c.num_inference_steps);
  const keys = [c.timesteps_key, c.inputs.init_noise];
  for (const s of c.steps) {
    keys.push(s.model_input, s.model_output, s.prev_sample);
    if (s.pred_original_sample !== undefined) keys.push(s.pred_original_sample);
    if (s.variance_noise !== undefined) keys.push(s.variance_noise);
  }
  return await withTensors(set, keys, async (get) => {
    const checks: Check[] = [
      checkNumbers('timesteps', scheduler.timesteps, await get(c.timesteps_key).data(), timestepBound(scheduler)),
      checkScalar('init_noise_sigma', scheduler.initNoiseSigma, c.init_noise_sigma, TOLERANCES.schedulerTable),
    ];
    if (scheduler.timesteps.length !== c.steps.length) {
      checks.push({
        name: 'steps',
        rel: Infinity,
        bound: 0,
        pass: false,
        note: `${scheduler.timesteps.length} timesteps computed, ${c.steps.length} steps expected`,
      });
      return checks;
    }
    const bound = TOLERANCES.schedulerLoop;
    let x = await scheduler.scaleInitialNoise(get(c.inputs.init_noise));
    try {
      for (const [i, s] of c.steps.entries()) {
        const t = scheduler.timesteps[i]!;
        const step = `step_${String(i).padStart(3, '0')}`;
        using modelInput = await scheduler.scaleModelInput(x, t);
        checks.push(await checkTensor(`${step}/model_input`, modelInput, get(s.model_input), bound));
        // The fake model's output is stored: feed it, so only the scheduler is under test.
        const options: StepOptions = { ...baseOptions };
        if (s.variance_noise !== undefined) options.varianceNoise = get(s.variance_noise);
        const out = await scheduler.step(get(s.model_output), t, x, options);
        using _prediction = out.predOriginalSample;
        if (s.pred_original_sample !== undefined) {
          if (out.predOriginalSample === undefined) {
            checks.push({ name: `${step}/pred_original_sample`, rel: Infinity, bound, pass: false, note: 'not returned by step()' });
          } else {
            checks.push(await checkTensor(`${step}/pred_original_sample`, out.predOriginalSample, get(s.pred_original_sample), bound));
          }
        }
        x.dispose();
        x = out.prevSample;
        checks.push(await checkTensor(`${step}/prev_sample`, x, get(s.prev_sample), bound));
      }
    } finally {
      x.dispose();
    }
    return checks;
  });
}

export function registerSchedulerCases(registry: CaseRegistry): CaseRegistry {
  return registry
    .register('scheduler_tables', runTables)
    .register('scheduler_set_timesteps', runSetTimesteps)
    .register('scheduler_add_noise', runAddNoise)
    .register('scheduler_get_velocity', runGetVelocity)
    .register('scheduler_loop', runLoop);
}
