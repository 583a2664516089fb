// Scheduler options the diffusers fixtures do not exercise: each runs a whole sampling loop to finite
// values, and the ones with an exact relation to a fixture-checked setting are held to it.
import { Generator } from '../../lib/native/generator';
import { Tensor } from '../../lib/native/tensor';
import { Scheduler, type StepOptions } from '../../lib/schedulers/scheduler';

const SHAPE = [2, 3, 4, 4];
const NUMEL = SHAPE.reduce((a, b) => a * b, 1);

function pattern(seed: number, channels = SHAPE[1]!): Tensor {
  const shape = [SHAPE[0]!, channels, SHAPE[2]!, SHAPE[3]!];
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  // Extra channels stand for a predicted variance, which must be positive.
  for (let i = 0; i < n; i++) data[i] = channels > SHAPE[1]! ? 0.5 + Math.abs(Math.sin(i * 0.37 + seed)) : Math.sin(i * 0.37 + seed) * 1.5;
  return Tensor.from(data, shape);
}

async function values(t: Tensor): Promise<number[]> {
  return Array.from<number | bigint, number>(await t.data(), (v) => Number(v));
}

/** A loop with a fixed fake model; returns the final sample's values. */
async function sample(config: Record<string, unknown>, steps = 8, options: StepOptions = {}, outputChannels = SHAPE[1]!): Promise<number[]> {
  using s = await Scheduler.fromConfig(config);
  await s.setTimesteps(steps);
  using noise = pattern(1);
  let x = await s.scaleInitialNoise(noise);
  try {
    for (const [i, t] of s.timesteps.entries()) {
      using _input = await s.scaleModelInput(x, t);
      using out = pattern(i + 2, outputChannels);
      const step = await s.step(out, t, x, options);
      step.predOriginalSample?.dispose();
      x.dispose();
      x = step.prevSample;
    }
    return await values(x);
  } finally {
    x.dispose();
  }
}

const SD = { beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012 };

describe('options beyond the fixtures run to finite values', () => {
  // Every row has all three fields: jest hands a test function with more parameters than its row a `done` callback.
  const cases: Array<[string, Record<string, unknown>, number]> = [
    ['DDPM thresholding', { _class_name: 'DDPMScheduler', thresholding: true, sample_max_value: 2 }, 3],
    ['DDPM fixed_small_log', { _class_name: 'DDPMScheduler', variance_type: 'fixed_small_log' }, 3],
    ['DDPM learned_range', { _class_name: 'DDPMScheduler', variance_type: 'learned_range' }, 6],
    ['DDPM learned', { _class_name: 'DDPMScheduler', variance_type: 'learned', clip_sample: false }, 6],
    ['DDPM sigmoid betas', { _class_name: 'DDPMScheduler', beta_schedule: 'sigmoid' }, 3],
    ['DDPM sample prediction', { _class_name: 'DDPMScheduler', prediction_type: 'sample' }, 3],
    ['DDIM thresholding', { _class_name: 'DDIMScheduler', thresholding: true }, 3],
    ['DDIM sample prediction, linspace', { _class_name: 'DDIMScheduler', prediction_type: 'sample', timestep_spacing: 'linspace' }, 3],
    ['Euler log_linear', { _class_name: 'EulerDiscreteScheduler', ...SD, interpolation_type: 'log_linear' }, 3],
    ['Euler continuous v', { _class_name: 'EulerDiscreteScheduler', ...SD, prediction_type: 'v_prediction', timestep_type: 'continuous' }, 3],
    ['Euler sigma_min final, trailing', { _class_name: 'EulerDiscreteScheduler', final_sigmas_type: 'sigma_min', timestep_spacing: 'trailing' }, 3],
    [
      'Euler zero SNR',
      { _class_name: 'EulerDiscreteScheduler', ...SD, rescale_betas_zero_snr: true, prediction_type: 'v_prediction', timestep_spacing: 'trailing' },
      3,
    ],
    [
      'DPM sde-dpmsolver heun',
      { _class_name: 'DPMSolverMultistepScheduler', algorithm_type: 'sde-dpmsolver', solver_type: 'heun', final_sigmas_type: 'sigma_min' },
      3,
    ],
    ['DPM dpmsolver order 3', { _class_name: 'DPMSolverMultistepScheduler', algorithm_type: 'dpmsolver', solver_order: 3, final_sigmas_type: 'sigma_min' }, 3],
    ['DPM thresholding, sample prediction', { _class_name: 'DPMSolverMultistepScheduler', thresholding: true, prediction_type: 'sample' }, 3],
    ['DPM Lu lambdas', { _class_name: 'DPMSolverMultistepScheduler', ...SD, use_lu_lambdas: true }, 3],
    [
      'DPM euler_at_final, no lower_order_final',
      { _class_name: 'DPMSolverMultistepScheduler', euler_at_final: true, lower_order_final: false, final_sigmas_type: 'sigma_min' },
      3,
    ],
    ['DPM lambda_min_clipped, trailing', { _class_name: 'DPMSolverMultistepScheduler', lambda_min_clipped: -5.1, timestep_spacing: 'trailing' }, 3],
    ['DPM learned variance (pixel model)', { _class_name: 'DPMSolverMultistepScheduler', variance_type: 'learned_range' }, 6],
    ['PNDM PRK, linspace', { _class_name: 'PNDMScheduler', timestep_spacing: 'linspace' }, 3],
    ['PNDM v, trailing', { _class_name: 'PNDMScheduler', prediction_type: 'v_prediction', timestep_spacing: 'trailing', skip_prk_steps: true }, 3],
    [
      'Euler ancestral cosine, trailing',
      { _class_name: 'EulerAncestralDiscreteScheduler', beta_schedule: 'squaredcos_cap_v2', timestep_spacing: 'trailing' },
      3,
    ],
    ['LMS Karras, sample prediction', { _class_name: 'LMSDiscreteScheduler', ...SD, use_karras_sigmas: true, prediction_type: 'sample' }, 3],
    ['Heun Karras, v, clip_sample', { _class_name: 'HeunDiscreteScheduler', use_karras_sigmas: true, prediction_type: 'v_prediction', clip_sample: true }, 3],
    [
      'KDPM2 ancestral Karras, v, trailing',
      { _class_name: 'KDPM2AncestralDiscreteScheduler', use_karras_sigmas: true, prediction_type: 'v_prediction', timestep_spacing: 'trailing' },
      3,
    ],
    ['UniPC thresholding, sample prediction', { _class_name: 'UniPCMultistepScheduler', thresholding: true, prediction_type: 'sample' }, 3],
    ['UniPC order 1', { _class_name: 'UniPCMultistepScheduler', ...SD, solver_order: 1 }, 3],
    [
      'UniPC noise prediction, Karras, bh1, sigma_min',
      { _class_name: 'UniPCMultistepScheduler', ...SD, predict_x0: false, use_karras_sigmas: true, solver_type: 'bh1', final_sigmas_type: 'sigma_min' },
      3,
    ],
    ['DEIS thresholding, order 1', { _class_name: 'DEISMultistepScheduler', thresholding: true, solver_order: 1 }, 3],
    ['DEIS order 3, Karras', { _class_name: 'DEISMultistepScheduler', ...SD, solver_order: 3, use_karras_sigmas: true }, 3],
    ['DPM singlestep learned variance (pixel model)', { _class_name: 'DPMSolverSinglestepScheduler', variance_type: 'learned_range' }, 6],
    ['DPM singlestep SDE order 1', { _class_name: 'DPMSolverSinglestepScheduler', algorithm_type: 'sde-dpmsolver++', solver_order: 1 }, 3],
    [
      'DPM singlestep dpmsolver order 3, Karras',
      {
        _class_name: 'DPMSolverSinglestepScheduler',
        ...SD,
        algorithm_type: 'dpmsolver',
        solver_order: 3,
        use_karras_sigmas: true,
        final_sigmas_type: 'sigma_min',
      },
      3,
    ],
    ['DPM singlestep thresholding, sample prediction', { _class_name: 'DPMSolverSinglestepScheduler', thresholding: true, prediction_type: 'sample' }, 3],
  ];
  test.each(cases)('%s', async (_name, config, channels) => {
    using g = new Generator(3);
    const out = await sample(config, 8, { generator: g }, channels);
    expect(out.length).toBe(NUMEL);
    expect(out.every(Number.isFinite)).toBe(true);
  });
});

describe('exact relations', () => {
  test('trained_betas equal to a schedule give the same tables and loop', async () => {
    using linear = await Scheduler.fromConfig({ _class_name: 'DDIMScheduler' });
    using betas = await linear.betas();
    const trained = await values(betas);
    using same = await Scheduler.fromConfig({ _class_name: 'DDIMScheduler', trained_betas: trained });
    using ac1 = await linear.alphasCumprod();
    using ac2 = await same.alphasCumprod();
    expect(await values(ac2)).toEqual(await values(ac1));
    expect(await sample({ _class_name: 'DDIMScheduler', trained_betas: trained })).toEqual(await sample({ _class_name: 'DDIMScheduler' }));
  });

  test('DDIM with eta 0 ignores the generator; with eta > 0 a seed fixes the result', async () => {
    const plain = await sample({ _class_name: 'DDIMScheduler' });
    using g = new Generator(5);
    expect(await sample({ _class_name: 'DDIMScheduler' }, 8, { generator: g })).toEqual(plain);
    using a = new Generator(9);
    using b = new Generator(9);
    const noisy = await sample({ _class_name: 'DDIMScheduler' }, 8, { eta: 1, generator: a });
    expect(noisy).not.toEqual(plain);
    expect(await sample({ _class_name: 'DDIMScheduler' }, 8, { eta: 1, generator: b })).toEqual(noisy);
  });

  test('Euler churn draws from the generator; s_churn 0 is plain Euler', async () => {
    const config = { _class_name: 'EulerDiscreteScheduler', ...SD };
    const plain = await sample(config);
    using a = new Generator(1);
    using b = new Generator(1);
    expect(await sample(config, 8, { sChurn: 0, generator: a })).toEqual(plain);
    const churned = await sample(config, 8, { sChurn: 1, generator: b });
    expect(churned).not.toEqual(plain);
  });

  test('the ancestral schedulers draw from the generator: a seed fixes the result, another seed changes it', async () => {
    for (const className of ['EulerAncestralDiscreteScheduler', 'KDPM2AncestralDiscreteScheduler', 'DPMSolverSinglestepScheduler']) {
      const config = { _class_name: className, ...SD, ...(className === 'DPMSolverSinglestepScheduler' ? { algorithm_type: 'sde-dpmsolver++' } : {}) };
      using a = new Generator(4);
      using b = new Generator(4);
      using c = new Generator(5);
      const first = await sample(config, 6, { generator: a });
      expect(await sample(config, 6, { generator: b })).toEqual(first);
      expect(await sample(config, 6, { generator: c })).not.toEqual(first);
    }
  });

  test("LMS's first step is Euler's: its order-1 coefficient ∫ 1 dτ over [σ_0, σ_1] comes out of the quadrature as σ_1 − σ_0", async () => {
    const config = { ...SD, timestep_spacing: 'leading', steps_offset: 1 };
    expect(await sample({ _class_name: 'LMSDiscreteScheduler', ...config }, 1)).toEqual(await sample({ _class_name: 'EulerDiscreteScheduler', ...config }, 1));
  });

  test('solver_order 1 ignores solver_type', async () => {
    const base = { _class_name: 'DPMSolverMultistepScheduler', solver_order: 1 };
    expect(await sample({ ...base, solver_type: 'heun' })).toEqual(await sample({ ...base, solver_type: 'midpoint' }));
  });

  test('SNR is alpha_cumprod / (1 − alpha_cumprod)', async () => {
    using s = await Scheduler.fromConfig({ _class_name: 'DDPMScheduler', ...SD });
    using ac = await s.alphasCumprod();
    const table = await values(ac);
    using snr = await s.snr([0, 250, 999]);
    const got = await values(snr);
    [0, 250, 999].forEach((t, i) => expect(got[i]! / (table[t]! / (1 - table[t]!))).toBeCloseTo(1, 5));
  });
});
