// Scheduler configs in pure TypeScript: diffusers' defaults, Python-style JSON, unknown keys as
// warnings, unsupported values as ConfigErrors naming the file and key, and saving back byte for byte
// what diffusers' save_config wrote. Never loads the addon.
import * as fs from 'fs';
import * as path from 'path';
import { pythonFloatRepr } from '../../lib/config/python-float';
import { SCHEDULER_CLASSES, defaultSchedulerConfig, formatSchedulerConfig, parseSchedulerConfig, parseSchedulerConfigText } from '../../lib/config/scheduler';
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

  test('an unknown _class_name is a ConfigError naming the file and the supported classes', () => {
    const e = configError(() => parseSchedulerConfig({ _class_name: 'LMSDiscreteScheduler' }, 'model/scheduler/scheduler_config.json'));
    expect(e.message).toBe(
      'model/scheduler/scheduler_config.json: "_class_name": expected one of DDPMScheduler, DDIMScheduler, EulerDiscreteScheduler, ' +
        'DPMSolverMultistepScheduler, PNDMScheduler but found "LMSDiscreteScheduler" of type string',
    );
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
