// Scheduler configs in pure TypeScript: diffusers' defaults, Python-style JSON, unknown keys as
// warnings, unsupported values as ConfigErrors naming the file and key, and saving back byte for byte
// what diffusers' save_config wrote. Never loads the addon.
import * as fs from 'fs';
import * as path from 'path';
import { pythonFloatRepr } from '../../lib/config/python-float';
import {
  SCHEDULER_CLASSES,
  SCHEDULER_SHORT_NAMES,
  defaultSchedulerConfig,
  formatSchedulerConfig,
  parseSchedulerConfig,
  parseSchedulerConfigText,
  resolveSchedulerName,
  type SchedulerClassName,
} from '../../lib/config/scheduler';
import { ConfigError } from '../../lib/errors';
import { isNativeLoaded } from '../../lib/native/load';
import { toNativeSchedulerConfig } from '../../lib/schedulers/native-config';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');

function schedulerConfigFiles(): string[] {
  const files: string[] = [];
  for (const set of fs.readdirSync(path.join(FIXTURES, 'schedulers'))) files.push(path.join(FIXTURES, 'schedulers', set, 'scheduler_config.json'));
  for (const set of fs.readdirSync(FIXTURES)) {
    const file = path.join(FIXTURES, set, 'scheduler', 'scheduler_config.json');
    if (fs.existsSync(file)) files.push(file);
  }
  return files;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('fixture configs', () => {
  const files = schedulerConfigFiles();

  test('there are scheduler configs to check', () => {
    expect(files.length).toBeGreaterThanOrEqual(42);
  });

  test.each(files.map((f) => [path.relative(FIXTURES, f), f]))('%s parses without warnings and saves back byte for byte', (_name, file) => {
    const text = fs.readFileSync(file, 'utf8');
    const parsed = parseSchedulerConfigText(text, file);
    expect(parsed.warnings).toEqual([]);
    expect(parsed.diffusersVersion).toBe('0.31.0');
    expect(formatSchedulerConfig(parsed)).toBe(text);
  });

  test('DPM-Solver configs hold -Infinity, which the lenient JSON reader accepts', () => {
    const file = path.join(FIXTURES, 'schedulers', 'dpmpp-sde', 'scheduler_config.json');
    const parsed = parseSchedulerConfigText(fs.readFileSync(file, 'utf8'), file);
    expect(parsed.config.className).toBe('DPMSolverMultistepScheduler');
    if (parsed.config.className === 'DPMSolverMultistepScheduler') expect(parsed.config.values.lambda_min_clipped).toBe(-Infinity);
  });
});

describe('defaults are diffusers v0.31 defaults', () => {
  test('DDPM', () => {
    expect(defaultSchedulerConfig('DDPMScheduler').values).toEqual({
      num_train_timesteps: 1000,
      beta_start: 0.0001,
      beta_end: 0.02,
      beta_schedule: 'linear',
      trained_betas: null,
      variance_type: 'fixed_small',
      clip_sample: true,
      prediction_type: 'epsilon',
      thresholding: false,
      dynamic_thresholding_ratio: 0.995,
      clip_sample_range: 1.0,
      sample_max_value: 1.0,
      timestep_spacing: 'leading',
      steps_offset: 0,
      rescale_betas_zero_snr: false,
    });
  });

  test('DDIM', () => {
    expect(defaultSchedulerConfig('DDIMScheduler').values).toMatchObject({ clip_sample: true, set_alpha_to_one: true, timestep_spacing: 'leading' });
  });

  test('Euler', () => {
    expect(defaultSchedulerConfig('EulerDiscreteScheduler').values).toMatchObject({
      timestep_spacing: 'linspace',
      interpolation_type: 'linear',
      use_karras_sigmas: false,
      timestep_type: 'discrete',
      final_sigmas_type: 'zero',
    });
  });

  test('DPM-Solver', () => {
    expect(defaultSchedulerConfig('DPMSolverMultistepScheduler').values).toMatchObject({
      solver_order: 2,
      algorithm_type: 'dpmsolver++',
      solver_type: 'midpoint',
      lower_order_final: true,
      euler_at_final: false,
      final_sigmas_type: 'zero',
      lambda_min_clipped: -Infinity,
      variance_type: null,
      timestep_spacing: 'linspace',
    });
  });

  test('PNDM', () => {
    expect(defaultSchedulerConfig('PNDMScheduler').values).toMatchObject({ skip_prk_steps: false, set_alpha_to_one: false, timestep_spacing: 'leading' });
  });

  // What `Class().config` holds in diffusers v0.31.0 (printed by the reference harness), class by class.
  const newer: Array<[SchedulerClassName, Record<string, unknown>]> = [
    [
      'EulerAncestralDiscreteScheduler',
      {
        num_train_timesteps: 1000,
        beta_start: 0.0001,
        beta_end: 0.02,
        beta_schedule: 'linear',
        trained_betas: null,
        prediction_type: 'epsilon',
        timestep_spacing: 'linspace',
        steps_offset: 0,
        rescale_betas_zero_snr: false,
      },
    ],
    [
      'LMSDiscreteScheduler',
      {
        num_train_timesteps: 1000,
        beta_start: 0.0001,
        beta_end: 0.02,
        beta_schedule: 'linear',
        trained_betas: null,
        use_karras_sigmas: false,
        use_exponential_sigmas: false,
        use_beta_sigmas: false,
        prediction_type: 'epsilon',
        timestep_spacing: 'linspace',
        steps_offset: 0,
      },
    ],
    [
      'HeunDiscreteScheduler',
      {
        num_train_timesteps: 1000,
        beta_start: 0.00085,
        beta_end: 0.012,
        beta_schedule: 'linear',
        trained_betas: null,
        prediction_type: 'epsilon',
        use_karras_sigmas: false,
        use_exponential_sigmas: false,
        use_beta_sigmas: false,
        clip_sample: false,
        clip_sample_range: 1.0,
        timestep_spacing: 'linspace',
        steps_offset: 0,
      },
    ],
    [
      'KDPM2DiscreteScheduler',
      {
        num_train_timesteps: 1000,
        beta_start: 0.00085,
        beta_end: 0.012,
        beta_schedule: 'linear',
        trained_betas: null,
        use_karras_sigmas: false,
        use_exponential_sigmas: false,
        use_beta_sigmas: false,
        prediction_type: 'epsilon',
        timestep_spacing: 'linspace',
        steps_offset: 0,
      },
    ],
    [
      'KDPM2AncestralDiscreteScheduler',
      {
        num_train_timesteps: 1000,
        beta_start: 0.00085,
        beta_end: 0.012,
        beta_schedule: 'linear',
        trained_betas: null,
        use_karras_sigmas: false,
        use_exponential_sigmas: false,
        use_beta_sigmas: false,
        prediction_type: 'epsilon',
        timestep_spacing: 'linspace',
        steps_offset: 0,
      },
    ],
    [
      'UniPCMultistepScheduler',
      {
        num_train_timesteps: 1000,
        beta_start: 0.0001,
        beta_end: 0.02,
        beta_schedule: 'linear',
        trained_betas: null,
        solver_order: 2,
        prediction_type: 'epsilon',
        thresholding: false,
        dynamic_thresholding_ratio: 0.995,
        sample_max_value: 1.0,
        predict_x0: true,
        solver_type: 'bh2',
        lower_order_final: true,
        disable_corrector: [],
        solver_p: null,
        use_karras_sigmas: false,
        use_exponential_sigmas: false,
        use_beta_sigmas: false,
        timestep_spacing: 'linspace',
        steps_offset: 0,
        final_sigmas_type: 'zero',
        rescale_betas_zero_snr: false,
      },
    ],
    [
      'DEISMultistepScheduler',
      {
        num_train_timesteps: 1000,
        beta_start: 0.0001,
        beta_end: 0.02,
        beta_schedule: 'linear',
        trained_betas: null,
        solver_order: 2,
        prediction_type: 'epsilon',
        thresholding: false,
        dynamic_thresholding_ratio: 0.995,
        sample_max_value: 1.0,
        algorithm_type: 'deis',
        solver_type: 'logrho',
        lower_order_final: true,
        use_karras_sigmas: false,
        use_exponential_sigmas: false,
        use_beta_sigmas: false,
        timestep_spacing: 'linspace',
        steps_offset: 0,
      },
    ],
    [
      'DPMSolverSinglestepScheduler',
      {
        num_train_timesteps: 1000,
        beta_start: 0.0001,
        beta_end: 0.02,
        beta_schedule: 'linear',
        trained_betas: null,
        solver_order: 2,
        prediction_type: 'epsilon',
        thresholding: false,
        dynamic_thresholding_ratio: 0.995,
        sample_max_value: 1.0,
        algorithm_type: 'dpmsolver++',
        solver_type: 'midpoint',
        lower_order_final: false,
        use_karras_sigmas: false,
        use_exponential_sigmas: false,
        use_beta_sigmas: false,
        final_sigmas_type: 'zero',
        lambda_min_clipped: -Infinity,
        variance_type: null,
      },
    ],
  ];
  test.each(newer)('%s', (className, values) => {
    expect(defaultSchedulerConfig(className).values).toEqual(values);
  });

  test.each(SCHEDULER_CLASSES)('%s: a config of defaults saves every key, _class_name and _diffusers_version', (className) => {
    const text = formatSchedulerConfig({ config: defaultSchedulerConfig(className), diffusersVersion: undefined, extraKeys: {} });
    const json = JSON.parse(text.replace(/-Infinity/g, 'null')) as Record<string, unknown>;
    expect(json._class_name).toBe(className);
    expect(json._diffusers_version).toBe('0.31.0');
    expect(Object.keys(json).sort()).toEqual(Object.keys(json));
    expect(parseSchedulerConfigText(text, 'saved.json').config).toEqual(defaultSchedulerConfig(className));
  });
});

describe('unknown keys and classes', () => {
  test('an unknown key is a warning naming the file and key, kept for saving', () => {
    const parsed = parseSchedulerConfig({ _class_name: 'DDIMScheduler', skip_prk_steps: true, clip_sample: false }, 'dir/scheduler_config.json');
    expect(parsed.warnings).toEqual(['dir/scheduler_config.json: unknown DDIMScheduler config key "skip_prk_steps" ignored']);
    expect(parsed.extraKeys).toEqual({ skip_prk_steps: true });
    expect(formatSchedulerConfig(parsed)).toContain('"skip_prk_steps": true');
  });

  test('an unknown _class_name is a ConfigError naming the file, the class found, the supported classes and the way out', () => {
    const e = configError(() => parseSchedulerConfig({ _class_name: 'LCMScheduler' }, 'model/scheduler/scheduler_config.json'));
    expect(e.message).toBe(
      'model/scheduler/scheduler_config.json: "_class_name": expected one of DDPMScheduler, DDIMScheduler, EulerDiscreteScheduler, ' +
        'DPMSolverMultistepScheduler, PNDMScheduler, EulerAncestralDiscreteScheduler, LMSDiscreteScheduler, HeunDiscreteScheduler, ' +
        'KDPM2DiscreteScheduler, KDPM2AncestralDiscreteScheduler, UniPCMultistepScheduler, DEISMultistepScheduler, DPMSolverSinglestepScheduler ' +
        'but found "LCMScheduler" of type string (to use this config anyway, pick a supported class: --scheduler <name>, or the className option; ' +
        "its common keys carry over as with diffusers' from_config)",
    );
  });

  test("an unknown _class_name converts to the class picked, keeping the common keys (diffusers' from_config)", () => {
    const lcm = {
      _class_name: 'LCMScheduler',
      beta_start: 0.00085,
      beta_end: 0.012,
      beta_schedule: 'scaled_linear',
      original_inference_steps: 50,
      timestep_spacing: 'leading',
      steps_offset: 1,
    };
    const parsed = parseSchedulerConfig(lcm, 'f.json', { className: 'EulerAncestralDiscreteScheduler' });
    expect(parsed.config.values).toMatchObject({ beta_start: 0.00085, beta_schedule: 'scaled_linear', timestep_spacing: 'leading', steps_offset: 1 });
    expect(parsed.warnings).toEqual(['f.json: unknown EulerAncestralDiscreteScheduler config key "original_inference_steps" ignored']);
  });

  test('short names and class names resolve to classes', () => {
    expect(resolveSchedulerName('euler-ancestral')).toBe('EulerAncestralDiscreteScheduler');
    expect(resolveSchedulerName('dpm-solver-singlestep')).toBe('DPMSolverSinglestepScheduler');
    expect(resolveSchedulerName('KDPM2AncestralDiscreteScheduler')).toBe('KDPM2AncestralDiscreteScheduler');
    expect(resolveSchedulerName('constructor')).toBeUndefined();
    expect(resolveSchedulerName('Euler')).toBeUndefined();
    // Every class has a short name.
    expect(new Set(Object.values(SCHEDULER_SHORT_NAMES))).toEqual(new Set(SCHEDULER_CLASSES));
  });

  test('a missing _class_name says so', () => {
    expect(configError(() => parseSchedulerConfig({ beta_start: 0.001 }, 'x.json')).message).toContain('found no "_class_name"');
  });

  test('className overrides _class_name, as diffusers from_config does', () => {
    const pndm = path.join(FIXTURES, 'schedulers', 'pndm-sd1', 'scheduler_config.json');
    const parsed = parseSchedulerConfigText(fs.readFileSync(pndm, 'utf8'), pndm, { className: 'EulerDiscreteScheduler' });
    expect(parsed.config.className).toBe('EulerDiscreteScheduler');
    expect(parsed.config.values).toMatchObject({ beta_schedule: 'scaled_linear', steps_offset: 1, timestep_spacing: 'leading' });
    expect(parsed.warnings.map((w) => /"(\w+)"/.exec(w)?.[1])).toEqual(['set_alpha_to_one', 'skip_prk_steps']);
  });
});

describe('unsupported values are ConfigErrors naming the file and key', () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    [
      'an enum value',
      { _class_name: 'DDIMScheduler', beta_schedule: 'sigmoid' },
      'DDIMScheduler config key "beta_schedule": expected one of "linear", "scaled_linear", "squaredcos_cap_v2" but found "sigmoid" of type string',
    ],
    [
      'a wrong type',
      { _class_name: 'DDPMScheduler', clip_sample: 'yes' },
      'DDPMScheduler config key "clip_sample": expected boolean but found "yes" of type string',
    ],
    ['an out-of-range number', { _class_name: 'DPMSolverMultistepScheduler', solver_order: 4 }, 'DPMSolverMultistepScheduler config key "solver_order"'],
    [
      'PNDM with sample prediction',
      { _class_name: 'PNDMScheduler', prediction_type: 'sample' },
      'PNDMScheduler config key "prediction_type": expected one of "epsilon", "v_prediction"',
    ],
    [
      'beta sigmas',
      { _class_name: 'EulerDiscreteScheduler', use_beta_sigmas: true },
      'EulerDiscreteScheduler config key "use_beta_sigmas": beta sigmas are not supported by difftune',
    ],
    [
      'fixed_large_log',
      { _class_name: 'DDPMScheduler', variance_type: 'fixed_large_log' },
      'DDPMScheduler config key "variance_type": "fixed_large_log" is not supported',
    ],
    [
      'a later diffusers option',
      { _class_name: 'DPMSolverMultistepScheduler', use_flow_sigmas: true },
      'config key "use_flow_sigmas": expected false (flow-matching sigmas are not supported)',
    ],
    [
      'dpmsolver with a zero final sigma',
      { _class_name: 'DPMSolverMultistepScheduler', algorithm_type: 'dpmsolver' },
      'config key "final_sigmas_type": "zero" is not supported with algorithm_type "dpmsolver"',
    ],
    [
      'third-order SDE',
      { _class_name: 'DPMSolverMultistepScheduler', algorithm_type: 'sde-dpmsolver++', solver_order: 3 },
      'config key "solver_order": 3 is not available',
    ],
    [
      'Euler ancestral with sample prediction',
      { _class_name: 'EulerAncestralDiscreteScheduler', prediction_type: 'sample' },
      'EulerAncestralDiscreteScheduler config key "prediction_type": "sample" is not supported by EulerAncestralDiscreteScheduler',
    ],
    [
      'KDPM2 with sample prediction',
      { _class_name: 'KDPM2DiscreteScheduler', prediction_type: 'sample' },
      'KDPM2DiscreteScheduler config key "prediction_type": "sample" is not supported',
    ],
    [
      'LMS with exponential sigmas',
      { _class_name: 'LMSDiscreteScheduler', use_exponential_sigmas: true },
      'LMSDiscreteScheduler config key "use_exponential_sigmas"',
    ],
    [
      'Heun exp betas',
      { _class_name: 'HeunDiscreteScheduler', beta_schedule: 'exp' },
      'HeunDiscreteScheduler config key "beta_schedule": "exp" is not supported',
    ],
    [
      'a Heun timestep spacing',
      { _class_name: 'HeunDiscreteScheduler', timestep_spacing: 'karras' },
      'HeunDiscreteScheduler config key "timestep_spacing": expected one of',
    ],
    ['UniPC order 4', { _class_name: 'UniPCMultistepScheduler', solver_order: 4 }, 'UniPCMultistepScheduler config key "solver_order"'],
    ['UniPC solver_p', { _class_name: 'UniPCMultistepScheduler', solver_p: {} }, 'UniPCMultistepScheduler config key "solver_p": a predictor scheduler object'],
    ['UniPC solver type', { _class_name: 'UniPCMultistepScheduler', solver_type: 'bh3' }, 'UniPCMultistepScheduler config key "solver_type": expected one of'],
    [
      'UniPC without lower_order_final ending at sigma 0',
      { _class_name: 'UniPCMultistepScheduler', lower_order_final: false },
      'UniPCMultistepScheduler config key "lower_order_final": false needs final_sigmas_type "sigma_min"',
    ],
    [
      'UniPC bh1 ending at sigma 0',
      { _class_name: 'UniPCMultistepScheduler', solver_type: 'bh1' },
      'UniPCMultistepScheduler config key "solver_type": "bh1" needs final_sigmas_type "sigma_min"',
    ],
    [
      'UniPC noise prediction ending at sigma 0',
      { _class_name: 'UniPCMultistepScheduler', predict_x0: false },
      'UniPCMultistepScheduler config key "predict_x0": false needs final_sigmas_type "sigma_min"',
    ],
    ['UniPC negative corrector step', { _class_name: 'UniPCMultistepScheduler', disable_corrector: [-1] }, 'config key "disable_corrector.0"'],
    [
      'DEIS algorithm',
      { _class_name: 'DEISMultistepScheduler', algorithm_type: 'sde-dpmsolver++' },
      'DEISMultistepScheduler config key "algorithm_type": expected one of',
    ],
    [
      'singlestep dpmsolver with a zero final sigma',
      { _class_name: 'DPMSolverSinglestepScheduler', algorithm_type: 'dpmsolver' },
      'DPMSolverSinglestepScheduler config key "final_sigmas_type": "zero" is not supported with algorithm_type "dpmsolver"',
    ],
    [
      'singlestep third-order SDE',
      { _class_name: 'DPMSolverSinglestepScheduler', algorithm_type: 'sde-dpmsolver++', solver_order: 3 },
      'DPMSolverSinglestepScheduler config key "solver_order": 3 is not available',
    ],
    [
      'singlestep dpmsolver with thresholding',
      { _class_name: 'DPMSolverSinglestepScheduler', algorithm_type: 'dpmsolver', final_sigmas_type: 'sigma_min', thresholding: true },
      'DPMSolverSinglestepScheduler config key "thresholding"',
    ],
    [
      'singlestep SDE-DPM-Solver',
      { _class_name: 'DPMSolverSinglestepScheduler', algorithm_type: 'sde-dpmsolver' },
      'config key "algorithm_type": expected one of',
    ],
    [
      'trained_betas of the wrong length',
      { _class_name: 'DDPMScheduler', num_train_timesteps: 10, trained_betas: [0.1, 0.2] },
      'config key "trained_betas": expected 10 values',
    ],
    ['NaN', { _class_name: 'DDPMScheduler', beta_end: NaN }, 'DDPMScheduler config key "beta_end": expected number but found NaN of type number'],
    // Betas outside (0, 1) made alphas_cumprod ±Infinity or negative and trained on it without a word.
    [
      'beta_end above 1',
      { _class_name: 'DDPMScheduler', beta_end: 5 },
      'DDPMScheduler config key "beta_end": expected a beta in (0, 1) (the noise variance a training step adds) (found 5 of type number)',
    ],
    ['beta_end of 1', { _class_name: 'EulerDiscreteScheduler', beta_end: 1 }, 'config key "beta_end": expected a beta in (0, 1)'],
    [
      'beta_start of 0',
      { _class_name: 'DDIMScheduler', beta_start: 0 },
      'config key "beta_start": expected a beta in (0, 1) (the noise variance a training step adds) (found 0 of type number)',
    ],
    ['a negative beta_start', { _class_name: 'PNDMScheduler', beta_start: -0.1 }, 'config key "beta_start": expected a beta in (0, 1)'],
    [
      'a trained beta of 1',
      { _class_name: 'DDPMScheduler', num_train_timesteps: 2, trained_betas: [0.5, 1] },
      'config key "trained_betas.1": expected a beta in (0, 1) (the noise variance a training step adds) (found 1 of type number)',
    ],
  ];
  test.each(cases)('%s', (_what, config, message) => {
    const e = configError(() => parseSchedulerConfig(config, 'my-model/scheduler_config.json'));
    expect(e.message.startsWith('my-model/scheduler_config.json: ')).toBe(true);
    expect(e.message).toContain(message);
  });

  test('later diffusers options at their neutral values are accepted silently', () => {
    const parsed = parseSchedulerConfig(
      { _class_name: 'DPMSolverMultistepScheduler', use_flow_sigmas: false, flow_shift: 1.0, use_dynamic_shifting: false, time_shift_type: 'exponential' },
      'f.json',
    );
    expect(parsed.warnings).toEqual([]);
  });

  test('invalid JSON names the file, line and column', () => {
    expect(configError(() => parseSchedulerConfigText('{\n  "a": ,\n}', 'bad.json')).message).toMatch(/^bad\.json:2:\d+: invalid JSON/);
  });
});

describe('diffusers rewrites', () => {
  test('deprecated DPM-Solver types become dpmsolver++ / midpoint', () => {
    const parsed = parseSchedulerConfig({ _class_name: 'DPMSolverMultistepScheduler', algorithm_type: 'deis', solver_type: 'bh2' }, 'f.json');
    expect(parsed.config.values).toMatchObject({ algorithm_type: 'dpmsolver++', solver_type: 'midpoint' });
    const single = parseSchedulerConfig({ _class_name: 'DPMSolverSinglestepScheduler', algorithm_type: 'deis', solver_type: 'logrho' }, 'f.json');
    expect(single.config.values).toMatchObject({ algorithm_type: 'dpmsolver++', solver_type: 'midpoint' });
  });

  test("another solver's types become UniPC's bh2 and DEIS's deis / logrho (a DPM-Solver config converted to them)", () => {
    const dpm = { _class_name: 'DPMSolverMultistepScheduler', algorithm_type: 'dpmsolver++', solver_type: 'midpoint' };
    expect(parseSchedulerConfig(dpm, 'f.json', { className: 'UniPCMultistepScheduler' }).config.values).toMatchObject({ solver_type: 'bh2' });
    expect(parseSchedulerConfig(dpm, 'f.json', { className: 'DEISMultistepScheduler' }).config.values).toMatchObject({
      algorithm_type: 'deis',
      solver_type: 'logrho',
    });
    const bh1 = { _class_name: 'UniPCMultistepScheduler', solver_type: 'bh1', final_sigmas_type: 'sigma_min' };
    expect(parseSchedulerConfig(bh1, 'f.json').config.values).toMatchObject({ solver_type: 'bh1' });
  });

  test('UniPC disable_corrector saves as Python ints', () => {
    const parsed = parseSchedulerConfig({ _class_name: 'UniPCMultistepScheduler', disable_corrector: [0, 3] }, 'f.json');
    expect(formatSchedulerConfig(parsed)).toContain('"disable_corrector": [\n    0,\n    3\n  ]');
  });
});

describe('native config', () => {
  test('maps every class to the flat native form', () => {
    for (const className of SCHEDULER_CLASSES) {
      const native = toNativeSchedulerConfig(defaultSchedulerConfig(className));
      expect(native.className).toBe(className);
      expect(native.numTrainTimesteps).toBe(1000);
    }
    const ddim = toNativeSchedulerConfig(parseSchedulerConfig({ _class_name: 'DDIMScheduler', set_alpha_to_one: false, clip_sample: false }, 'f').config);
    expect(ddim).toMatchObject({ setAlphaToOne: false, clipSample: false, timestepSpacing: 'leading' });
    const dpm = toNativeSchedulerConfig(defaultSchedulerConfig('DPMSolverMultistepScheduler'));
    expect(dpm).toMatchObject({ dpmVarianceType: 'none', lambdaMinClipped: -Infinity, finalSigmasType: 'zero' });
    const single = toNativeSchedulerConfig(defaultSchedulerConfig('DPMSolverSinglestepScheduler'));
    expect(single).toMatchObject({ timestepSpacing: 'linspace', stepsOffset: 0, lowerOrderFinal: false, solverOrder: 2 });
    const unipc = toNativeSchedulerConfig(
      parseSchedulerConfig(
        { _class_name: 'UniPCMultistepScheduler', solver_type: 'bh1', predict_x0: false, final_sigmas_type: 'sigma_min', disable_corrector: [2] },
        'f',
      ).config,
    );
    expect(unipc).toMatchObject({ uniPCSolverType: 'bh1', predictX0: false, finalSigmasType: 'sigma_min', disableCorrector: [2] });
    const heun = toNativeSchedulerConfig(
      parseSchedulerConfig({ _class_name: 'HeunDiscreteScheduler', clip_sample: true, use_karras_sigmas: true }, 'f').config,
    );
    expect(heun).toMatchObject({ clipSample: true, useKarrasSigmas: true, timestepSpacing: 'linspace' });
  });
});

test('Python float repr', () => {
  const cases: Array<[number, string]> = [
    [1, '1.0'],
    [0.0001, '0.0001'],
    [1e-5, '1e-05'],
    [1.5e-5, '1.5e-05'],
    [0.00085, '0.00085'],
    [123.456, '123.456'],
    [1e16, '1e+16'],
    [1e15, '1000000000000000.0'],
    [-0.5, '-0.5'],
    [0.1 + 0.2, '0.30000000000000004'],
    [-Infinity, '-Infinity'],
  ];
  for (const [x, repr] of cases) expect(pythonFloatRepr(x)).toBe(repr);
});

test('nothing here loaded the addon', () => {
  expect(isNativeLoaded()).toBe(false);
});
