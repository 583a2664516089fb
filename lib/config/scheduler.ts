/**
 * diffusers scheduler configs (`scheduler_config.json`): the class names, `_class_name` picking the
 * class's schema (scheduler-schemas.ts: diffusers' own v0.31 defaults), unknown keys reported as warnings,
 * and values difftune does not support refused with a ConfigError naming the file and key. Saving
 * writes the same form back (every key, `_class_name`, `_diffusers_version`). Pure: never loads the addon.
 */
import { z } from 'zod';
import { ConfigError, describeValue } from '../errors';
import { formatLenientJson, parseLenientJson, type JsonValue } from './json';
import { pythonFloatRepr } from './python-float';
import { SCHEDULER_SCHEMAS, type SchedulerConfig } from './scheduler-schemas';

// The schemas and their config types live beside this file; importers keep reading them from here.
export * from './scheduler-schemas';

export const SCHEDULER_CLASSES = [
  'DDPMScheduler',
  'DDIMScheduler',
  'EulerDiscreteScheduler',
  'DPMSolverMultistepScheduler',
  'PNDMScheduler',
  'EulerAncestralDiscreteScheduler',
  'LMSDiscreteScheduler',
  'HeunDiscreteScheduler',
  'KDPM2DiscreteScheduler',
  'KDPM2AncestralDiscreteScheduler',
  'UniPCMultistepScheduler',
  'DEISMultistepScheduler',
  'DPMSolverSinglestepScheduler',
] as const;
export type SchedulerClassName = (typeof SCHEDULER_CLASSES)[number];

/** Short names for `--scheduler` and recipes (every class name is accepted as well). */
export const SCHEDULER_SHORT_NAMES = {
  ddpm: 'DDPMScheduler',
  ddim: 'DDIMScheduler',
  pndm: 'PNDMScheduler',
  euler: 'EulerDiscreteScheduler',
  'euler-ancestral': 'EulerAncestralDiscreteScheduler',
  lms: 'LMSDiscreteScheduler',
  heun: 'HeunDiscreteScheduler',
  kdpm2: 'KDPM2DiscreteScheduler',
  'kdpm2-ancestral': 'KDPM2AncestralDiscreteScheduler',
  dpmpp: 'DPMSolverMultistepScheduler',
  'dpm-solver-multistep': 'DPMSolverMultistepScheduler',
  'dpm-solver-singlestep': 'DPMSolverSinglestepScheduler',
  unipc: 'UniPCMultistepScheduler',
  deis: 'DEISMultistepScheduler',
} as const satisfies Record<string, SchedulerClassName>;

/** The class a short name or class name stands for; undefined when it is neither. */
export function resolveSchedulerName(name: string): SchedulerClassName | undefined {
  if (isSchedulerClass(name)) return name;
  return Object.prototype.hasOwnProperty.call(SCHEDULER_SHORT_NAMES, name) ? SCHEDULER_SHORT_NAMES[name as keyof typeof SCHEDULER_SHORT_NAMES] : undefined;
}

/** The diffusers version written into configs difftune creates from scratch (schedulers, model folders). */
export const DEFAULT_DIFFUSERS_VERSION = '0.31.0';

export interface ParsedSchedulerConfig {
  config: SchedulerConfig;
  /** `_diffusers_version` of the file, when it had one. */
  diffusersVersion: string | undefined;
  /** Keys the class does not have, kept as they were so saving writes them back. */
  extraKeys: Record<string, JsonValue>;
  /** One line per unknown key; not errors, since diffusers ignores them too. */
  warnings: string[];
}

/** Keys diffusers writes as bookkeeping rather than options. */
const METADATA_KEYS = new Set(['_class_name', '_diffusers_version']);

/**
 * Keys of later diffusers releases that difftune accepts only at the value that leaves the v0.31
 * computation unchanged (so no warning, and a clear error otherwise).
 */
const LATER_KEYS: Partial<Record<SchedulerClassName, Record<string, { neutral: (v: JsonValue) => boolean; expected: string }>>> = {
  DPMSolverMultistepScheduler: {
    use_flow_sigmas: { neutral: (v) => v === false || v === null, expected: 'false (flow-matching sigmas are not supported)' },
    use_dynamic_shifting: { neutral: (v) => v === false || v === null, expected: 'false (dynamic shifting is not supported)' },
    flow_shift: { neutral: (v) => typeof v === 'number' || v === null, expected: 'a number (unused without use_flow_sigmas)' },
    time_shift_type: { neutral: (v) => typeof v === 'string' || v === null, expected: 'a string (unused without use_dynamic_shifting)' },
  },
};

type UnsupportedRule = { bad: (v: unknown) => boolean; reason: string };

const EXOTIC_SIGMAS: Record<string, UnsupportedRule> = {
  use_exponential_sigmas: { bad: (v) => v === true, reason: 'exponential sigmas are not supported by difftune' },
  use_beta_sigmas: { bad: (v) => v === true, reason: 'beta sigmas are not supported by difftune' },
};

function noSamplePrediction(className: string): UnsupportedRule {
  return {
    bad: (v) => v === 'sample',
    reason: `"sample" is not supported by ${className} (diffusers' raises NotImplementedError for it); expected "epsilon" or "v_prediction"`,
  };
}

/** Values diffusers accepts that difftune refuses, per class: key → [bad value test, reason]. */
const UNSUPPORTED: Partial<Record<SchedulerClassName, Record<string, UnsupportedRule>>> = {
  DDPMScheduler: {
    variance_type: {
      bad: (v) => v === 'fixed_large_log',
      reason: '"fixed_large_log" is not supported (diffusers takes the square root of a negative log-variance with it)',
    },
  },
  EulerDiscreteScheduler: EXOTIC_SIGMAS,
  DPMSolverMultistepScheduler: EXOTIC_SIGMAS,
  EulerAncestralDiscreteScheduler: { prediction_type: noSamplePrediction('EulerAncestralDiscreteScheduler') },
  LMSDiscreteScheduler: EXOTIC_SIGMAS,
  HeunDiscreteScheduler: {
    ...EXOTIC_SIGMAS,
    beta_schedule: { bad: (v) => v === 'exp', reason: '"exp" is not supported by difftune (linear, scaled_linear or squaredcos_cap_v2)' },
  },
  KDPM2DiscreteScheduler: { ...EXOTIC_SIGMAS, prediction_type: noSamplePrediction('KDPM2DiscreteScheduler') },
  KDPM2AncestralDiscreteScheduler: { ...EXOTIC_SIGMAS, prediction_type: noSamplePrediction('KDPM2AncestralDiscreteScheduler') },
  UniPCMultistepScheduler: {
    ...EXOTIC_SIGMAS,
    solver_p: { bad: (v) => v !== null, reason: 'a predictor scheduler object cannot come from a config file; expected null' },
  },
  DEISMultistepScheduler: EXOTIC_SIGMAS,
  DPMSolverSinglestepScheduler: EXOTIC_SIGMAS,
};

function isSchedulerClass(name: unknown): name is SchedulerClassName {
  return typeof name === 'string' && (SCHEDULER_CLASSES as readonly string[]).includes(name);
}

function keyError(file: string, className: string, key: string, message: string): ConfigError {
  return new ConfigError(`${file}: ${className} config key "${key}": ${message}`);
}

function describeIssue(issue: z.ZodIssue, received: unknown): string {
  switch (issue.code) {
    case 'invalid_enum_value':
      return `expected one of ${issue.options.map((o) => JSON.stringify(o)).join(', ')} but found ${describeValue(received)}`;
    case 'invalid_type':
      return `expected ${issue.expected} but found ${describeValue(received)}`;
    default:
      return `${issue.message.charAt(0).toLowerCase()}${issue.message.slice(1)} (found ${describeValue(received)})`;
  }
}

/** Cross-key rules diffusers enforces in its constructors. */
function checkCombinations(config: SchedulerConfig, fail: (key: string, message: string) => never): void {
  const v = config.values;
  if (v.trained_betas !== null && v.trained_betas.length !== v.num_train_timesteps) {
    fail('trained_betas', `expected ${v.num_train_timesteps} values (num_train_timesteps) but found ${v.trained_betas.length}`);
  }
  if ('use_karras_sigmas' in v) {
    if ([v.use_karras_sigmas, v.use_exponential_sigmas, v.use_beta_sigmas].filter((x) => x === true).length > 1) {
      fail('use_karras_sigmas', 'only one of use_karras_sigmas, use_exponential_sigmas and use_beta_sigmas can be true');
    }
  }
  if (config.className === 'UniPCMultistepScheduler') {
    const c = config.values;
    const zero = (c.final_sigmas_type ?? 'zero') === 'zero';
    // With a final sigma of 0 diffusers' last UniPC step divides by an infinite log-SNR step: NaN or ±Infinity out.
    if (zero && c.solver_order > 1 && !c.lower_order_final)
      fail(
        'lower_order_final',
        'false needs final_sigmas_type "sigma_min" (with a final sigma of 0, diffusers\' last higher-order UniPC step returns NaN/Infinity)',
      );
    if (zero && c.solver_type === 'bh1')
      fail('solver_type', '"bh1" needs final_sigmas_type "sigma_min" (with a final sigma of 0, diffusers\' last bh1 UniPC step returns NaN)');
    if (zero && !c.predict_x0)
      fail('predict_x0', 'false needs final_sigmas_type "sigma_min" (with a final sigma of 0, diffusers\' last noise-prediction UniPC step returns NaN)');
  }
  if (config.className === 'DPMSolverSinglestepScheduler') {
    const c = config.values;
    if (c.algorithm_type === 'dpmsolver' && (c.final_sigmas_type ?? 'zero') === 'zero') {
      fail('final_sigmas_type', '"zero" is not supported with algorithm_type "dpmsolver"; use "sigma_min" (as diffusers requires)');
    }
    if (c.algorithm_type === 'sde-dpmsolver++' && c.solver_order === 3)
      fail('solver_order', '3 is not available with algorithm_type "sde-dpmsolver++" (diffusers has no third-order SDE update)');
    if (c.algorithm_type === 'dpmsolver' && c.thresholding)
      fail('thresholding', 'true is not supported with algorithm_type "dpmsolver" (diffusers\' singlestep solver fails on it)');
  }
  if (config.className === 'DPMSolverMultistepScheduler') {
    const c = config.values;
    const sde = c.algorithm_type === 'sde-dpmsolver++' || c.algorithm_type === 'sde-dpmsolver';
    if ((c.algorithm_type === 'dpmsolver' || c.algorithm_type === 'sde-dpmsolver') && (c.final_sigmas_type ?? 'zero') === 'zero') {
      fail('final_sigmas_type', `"zero" is not supported with algorithm_type "${c.algorithm_type}"; use "sigma_min" (as diffusers requires)`);
    }
    if (sde && c.solver_order === 3)
      fail('solver_order', `3 is not available with algorithm_type "${c.algorithm_type}" (diffusers has no third-order SDE update)`);
    if (c.use_karras_sigmas === true && c.use_lu_lambdas === true) fail('use_lu_lambdas', 'cannot be true together with use_karras_sigmas');
  }
}

/**
 * Validates a parsed `scheduler_config.json` object. `file` names the source in errors and warnings;
 * `className` overrides `_class_name` (loading one scheduler's config into another class, as diffusers'
 * `from_config` does).
 */
export function parseSchedulerConfig(json: unknown, file: string, options: { className?: SchedulerClassName } = {}): ParsedSchedulerConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError(`${file}: expected a JSON object (a diffusers scheduler config) but found ${describeValue(json)}`);
  }
  const input = json as Record<string, JsonValue>;
  const declared = input._class_name;
  const className = options.className ?? declared;
  if (!isSchedulerClass(className)) {
    const found = declared === undefined ? 'no "_class_name"' : describeValue(declared);
    const hint =
      options.className === undefined && typeof declared === 'string'
        ? ` (to use this config anyway, pick a supported class: --scheduler <name>, or the className option; its common keys carry over as with diffusers' from_config)`
        : '';
    throw new ConfigError(`${file}: "_class_name": expected one of ${SCHEDULER_CLASSES.join(', ')} but found ${found}${hint}`);
  }
  const version = input._diffusers_version;
  if (version !== undefined && typeof version !== 'string') {
    throw keyError(file, className, '_diffusers_version', `expected a string but found ${describeValue(version)}`);
  }

  const schema = SCHEDULER_SCHEMAS[className];
  const known = new Set(Object.keys(schema.shape));
  const later = LATER_KEYS[className] ?? {};
  const extraKeys: Record<string, JsonValue> = {};
  const warnings: string[] = [];
  const values: Record<string, JsonValue> = {};
  for (const [key, value] of Object.entries(input)) {
    if (METADATA_KEYS.has(key)) continue;
    if (known.has(key)) {
      values[key] = value;
      continue;
    }
    extraKeys[key] = value;
    const rule = later[key];
    if (rule !== undefined) {
      if (!rule.neutral(value)) throw keyError(file, className, key, `expected ${rule.expected} but found ${describeValue(value)}`);
      continue;
    }
    warnings.push(`${file}: unknown ${className} config key "${key}" ignored`);
  }

  for (const [key, rule] of Object.entries(UNSUPPORTED[className] ?? {})) {
    if (key in values && rule.bad(values[key])) throw keyError(file, className, key, rule.reason);
  }

  const result = schema.safeParse(values);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = issue.path.map(String).join('.');
    // The offending value itself, also inside a list (trained_betas.3).
    const received = issue.path.reduce<unknown>(
      (v, k) => (v !== null && typeof v === 'object' ? (v as Record<string | number, unknown>)[k] : undefined),
      values,
    );
    throw keyError(file, className, key, describeIssue(issue, received));
  }
  const config = normalise({ className, values: result.data } as SchedulerConfig);
  checkCombinations(config, (key, message) => {
    throw keyError(file, className, key, message);
  });
  return { config, diffusersVersion: version, extraKeys, warnings };
}

/** diffusers' own rewrites at construction (register_to_config): algorithm and solver types another solver class uses. */
function normalise(config: SchedulerConfig): SchedulerConfig {
  switch (config.className) {
    case 'DPMSolverMultistepScheduler':
    case 'DPMSolverSinglestepScheduler': {
      const v = { ...config.values };
      if (v.algorithm_type === 'deis') v.algorithm_type = 'dpmsolver++';
      if (v.solver_type === 'logrho' || v.solver_type === 'bh1' || v.solver_type === 'bh2') v.solver_type = 'midpoint';
      return { ...config, values: v } as SchedulerConfig;
    }
    case 'UniPCMultistepScheduler': {
      const v = { ...config.values };
      if (v.solver_type !== 'bh1') v.solver_type = 'bh2';
      return { className: config.className, values: v };
    }
    case 'DEISMultistepScheduler': {
      const v = { ...config.values };
      v.algorithm_type = 'deis';
      v.solver_type = 'logrho';
      return { className: config.className, values: v };
    }
    default:
      return config;
  }
}

/** Reads the text of a `scheduler_config.json` (Python-style JSON: Infinity, -Infinity, NaN allowed). */
export function parseSchedulerConfigText(text: string, file: string, options: { className?: SchedulerClassName } = {}): ParsedSchedulerConfig {
  return parseSchedulerConfig(parseLenientJson(text, file), file, options);
}

/** The config with every class default filled in. */
export function defaultSchedulerConfig(className: SchedulerClassName): SchedulerConfig {
  return parseSchedulerConfig({ _class_name: className }, '<defaults>').config;
}

/**
 * The JSON object diffusers' save_config writes: every option, `_class_name`, `_diffusers_version`,
 * plus the extra keys the source had; keys sorted as diffusers sorts them.
 */
export function schedulerConfigToJson(parsed: Pick<ParsedSchedulerConfig, 'config' | 'diffusersVersion' | 'extraKeys'>): Record<string, JsonValue> {
  const all: Record<string, JsonValue> = {
    ...parsed.extraKeys,
    ...(parsed.config.values as Record<string, JsonValue>),
    _class_name: parsed.config.className,
    _diffusers_version: parsed.diffusersVersion ?? DEFAULT_DIFFUSERS_VERSION,
  };
  const sorted: Record<string, JsonValue> = {};
  for (const key of Object.keys(all).sort()) sorted[key] = all[key]!;
  return sorted;
}

/** Options whose values are Python ints; every other numeric option is a float. */
const INTEGER_KEYS = new Set(['num_train_timesteps', 'steps_offset', 'solver_order', 'disable_corrector']);

/**
 * The file text as diffusers writes it (json.dumps(indent=2, sort_keys=True) plus a newline): floats
 * in Python's repr ("1.0", "1e-05"), non-finite numbers as Python writes them.
 */
export function formatSchedulerConfig(parsed: Pick<ParsedSchedulerConfig, 'config' | 'diffusersVersion' | 'extraKeys'>): string {
  const known = new Set(Object.keys(SCHEDULER_SCHEMAS[parsed.config.className].shape));
  const floatOption = (key: string): boolean => known.has(key) && !INTEGER_KEYS.has(key);
  const format = (key: string, value: JsonValue): string => {
    if (typeof value === 'number' && floatOption(key)) return pythonFloatRepr(value);
    if (Array.isArray(value) && value.length > 0 && floatOption(key) && value.every((v) => typeof v === 'number')) {
      return `[\n${value.map((v) => `    ${pythonFloatRepr(v)}`).join(',\n')}\n  ]`;
    }
    // Nested values (extra keys only): the lenient formatter, indented one level.
    return formatLenientJson(value, 2).split('\n').join('\n  ');
  };
  const entries = Object.entries(schedulerConfigToJson(parsed)).map(([key, value]) => `  ${JSON.stringify(key)}: ${format(key, value)}`);
  return `{\n${entries.join(',\n')}\n}\n`;
}
