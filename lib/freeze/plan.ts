/**
 * The freeze plan: which parameters train, at which learning-rate multiplier, with or without weight
 * decay, and what that costs in optimizer memory — decided from names alone, before any tensor moves.
 * The rule order is documented in lib/config/freeze.ts. Pure: names in, plain data out.
 */
import { type FreezeOptions, type FreezeOptionsInput, type PresetName, parseFreezeOptions } from '../config/freeze';
import { ConfigError, InvalidArgumentError, expected } from '../errors';
import { type CompiledPattern, compilePattern } from '../config/patterns';
import { defaultWeightDecay, topLevelBlock } from './param-kinds';
import { PRESETS, type RuleAction } from './presets';
import { formatFieldPath } from '../config/field-path';

/** One parameter of the model, as `unet.parameters()` lists it. */
export interface ParameterInfo {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: string;
}

export interface PlannedParameter {
  readonly name: string;
  readonly lrMultiplier: number;
  readonly weightDecay: boolean;
  readonly numel: number;
}

export interface AppliedRule {
  readonly action: RuleAction;
  readonly pattern: string;
  /** Where the rule came from: `freeze.preset "bias-norm"`, `freeze.trainable[0]`, `freeze.rules[2].freeze`. */
  readonly where: string;
  /** Parameters the pattern matched (whatever later rules did to them). */
  readonly matched: number;
}

export interface BlockSummary {
  /** `conv_in`, `time_embedding`, `down_blocks.0`, ..., `mid_block`, `up_blocks.N`, `conv_norm_out`, `conv_out`. */
  readonly block: string;
  readonly tensors: number;
  readonly trainableTensors: number;
  readonly numel: number;
  readonly trainableNumel: number;
}

/** One AdamW parameter group: the trainable parameters sharing a multiplier and a decay flag. */
export interface ParamGroupSummary {
  readonly lrMultiplier: number;
  readonly weightDecay: boolean;
  readonly tensors: number;
  readonly numel: number;
  readonly names: readonly string[];
}

export interface MemoryEstimate {
  /** fp32 gradients of the trainable parameters (4 bytes each); frozen ones get none. */
  readonly gradientBytes: number;
  /** AdamW's two fp32 moments per trainable element (8 bytes each). */
  readonly adamBytes: number;
  /** An fp32 EMA copy of the trainable parameters (4 bytes each), 0 without EMA. */
  readonly emaBytes: number;
  /** adamBytes + emaBytes: the state the optimizer (and EMA) keep between steps. */
  readonly optimizerStateBytes: number;
  readonly ema: boolean;
}

export interface FreezePlan {
  /** The preset whose rules ran first (`full` or `none` when the options named none; see lib/config/freeze.ts). */
  readonly preset: PresetName;
  /** Every rule in the order applied. */
  readonly rules: readonly AppliedRule[];
  /** Trainable parameters in the model's order. */
  readonly trainable: readonly PlannedParameter[];
  /** Frozen parameter names in the model's order. */
  readonly frozen: readonly string[];
  readonly totals: {
    readonly tensors: number;
    readonly trainableTensors: number;
    readonly frozenTensors: number;
    readonly numel: number;
    readonly trainableNumel: number;
    readonly frozenNumel: number;
    /** 100 × trainableNumel / numel. */
    readonly trainablePercent: number;
  };
  /** Per top-level block, in forward order (conv_in, embeddings, down blocks, mid block, up blocks, conv_norm_out, conv_out; others last). */
  readonly blocks: readonly BlockSummary[];
  /** Distinct (lrMultiplier, weightDecay) pairs, largest multiplier first, decay before no decay. */
  readonly groups: readonly ParamGroupSummary[];
  readonly memory: MemoryEstimate;
  /** Remarks for the reader of a dry run. */
  readonly notes: readonly string[];
}

export interface PlanOptions {
  /** An EMA copy of the trainable weights is kept (adds 4 bytes per trainable element). */
  readonly ema?: boolean;
}

const ADAM_BYTES_PER_ELEMENT = 8;
const FP32_BYTES = 4;

interface Rule {
  readonly action: RuleAction;
  readonly pattern: CompiledPattern;
  /** User rules must match something; preset rules are written for many models and need not. */
  readonly mustMatch: boolean;
}

/**
 * Plans which of `parameters` train under `options` (validated here, so raw recipe input is fine).
 * ConfigError when a user pattern matches no parameter, when an lr multiplier matches no trainable
 * parameter, or when nothing trains; InvalidArgumentError for a malformed parameter list.
 */
export function planFreeze(parameters: readonly ParameterInfo[], options: FreezeOptionsInput | FreezeOptions = {}, planOptions: PlanOptions = {}): FreezePlan {
  const params = checkParameters(parameters);
  const opts = parseFreezeOptions(options);
  const preset: PresetName = opts.preset ?? (opts.trainable.length === 0 && opts.rules.length === 0 ? 'full' : 'none');
  const rules = collectRules(opts, preset);

  const trains = new Array<boolean>(params.length).fill(false);
  const applied: AppliedRule[] = rules.map((rule) => {
    let matched = 0;
    params.forEach((p, i) => {
      if (!rule.pattern.test(p.name)) return;
      matched++;
      trains[i] = rule.action === 'train';
    });
    return { action: rule.action, pattern: rule.pattern.source, where: rule.pattern.where, matched };
  });
  const unmatched = rules.filter((rule, i) => rule.mustMatch && applied[i]?.matched === 0).map((rule) => rule.pattern);
  if (unmatched.length > 0) throw unmatchedError(unmatched, params);

  const multipliers = lrMultipliersFor(opts, params, trains);
  const trainable: PlannedParameter[] = [];
  const frozen: string[] = [];
  params.forEach((p, i) => {
    if (trains[i] === true) {
      trainable.push({ name: p.name, lrMultiplier: multipliers[i] ?? 1, weightDecay: opts.decayAll || defaultWeightDecay(p.name, p.shape), numel: p.numel });
    } else {
      frozen.push(p.name);
    }
  });
  if (trainable.length === 0) {
    throw new ConfigError(
      `freeze: expected at least one trainable parameter, but the rules freeze all ${params.length} (${describeRules(applied)}); ` +
        'name a preset (freeze.preset) or patterns (freeze.trainable) that select some parameters',
    );
  }
  const notes: string[] = [];
  if (opts.decayAll) notes.push('weight decay applies to every trainable parameter (freeze.decayAll)');
  return summarize(preset, applied, params, trainable, frozen, planOptions.ema === true, notes);
}

/**
 * The plan of a LoRA run's base model: every parameter frozen (the adapters, planned by the LoRA
 * code, are what trains), with the same totals and blocks as any plan. Never throws for "nothing trains".
 */
export function planLoraBase(parameters: readonly ParameterInfo[]): FreezePlan {
  const params = checkParameters(parameters);
  return summarize(
    'none',
    [],
    params,
    [],
    params.map((p) => p.name),
    false,
    ['lora: the whole base model is frozen; only the LoRA adapters train (their parameters and optimizer state are planned by the LoRA options)'],
  );
}

interface CheckedParameter {
  readonly name: string;
  readonly shape: readonly number[];
  readonly numel: number;
}

function checkParameters(parameters: readonly ParameterInfo[]): CheckedParameter[] {
  if (!Array.isArray(parameters)) throw expected('an array of { name, shape, dtype }', 'parameters', parameters);
  const seen = new Set<string>();
  return parameters.map((p: ParameterInfo, i) => {
    const where = `parameters[${i}]`;
    if (typeof p !== 'object' || p === null) throw expected('an object { name, shape, dtype }', where, p);
    if (typeof p.name !== 'string' || p.name.length === 0) throw expected('a non-empty parameter name', `${where}.name`, p.name);
    if (seen.has(p.name)) throw new InvalidArgumentError(`Expected unique parameter names but ${JSON.stringify(p.name)} appears twice (again at ${where})`);
    seen.add(p.name);
    if (!Array.isArray(p.shape) || !p.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw expected('an array of non-negative integers', `${where}.shape (${p.name})`, p.shape);
    }
    return { name: p.name, shape: p.shape, numel: (p.shape as readonly number[]).reduce((a, b) => a * b, 1) };
  });
}

function collectRules(opts: FreezeOptions, preset: PresetName): Rule[] {
  const rule = (action: RuleAction, source: string, where: string, mustMatch: boolean): Rule => ({ action, pattern: compilePattern(source, where), mustMatch });
  return [
    ...PRESETS[preset].rules.map((r) => rule(r.action, r.pattern, `freeze.preset "${preset}"`, false)),
    ...opts.trainable.map((p, i) => rule('train', p, formatFieldPath('freeze', ['trainable', i]), true)),
    ...opts.frozen.map((p, i) => rule('freeze', p, formatFieldPath('freeze', ['frozen', i]), true)),
    ...opts.rules.map((r, i) =>
      'train' in r
        ? rule('train', r.train, formatFieldPath('freeze', ['rules', i, 'train']), true)
        : rule('freeze', r.freeze, formatFieldPath('freeze', ['rules', i, 'freeze']), true),
    ),
  ];
}

/** Per parameter, the multiplier of the last matching `lrMultipliers` entry (undefined: 1). */
function lrMultipliersFor(opts: FreezeOptions, params: readonly CheckedParameter[], trains: readonly boolean[]): (number | undefined)[] {
  const result = new Array<number | undefined>(params.length).fill(undefined);
  for (const [source, multiplier] of Object.entries(opts.lrMultipliers)) {
    const pattern = compilePattern(source, formatFieldPath('freeze', ['lrMultipliers', source]));
    let matched = 0;
    let matchedTrainable = 0;
    params.forEach((p, i) => {
      if (!pattern.test(p.name)) return;
      matched++;
      if (trains[i] !== true) return;
      matchedTrainable++;
      result[i] = multiplier;
    });
    if (matched === 0) throw unmatchedError([pattern], params);
    if (matchedTrainable === 0) {
      throw new ConfigError(
        `${pattern.where}: expected the pattern ${JSON.stringify(source)} to match a trainable parameter, but the ${matched} it matches are all frozen ` +
          '(a multiplier on frozen parameters would do nothing); remove it or train those parameters',
      );
    }
  }
  return result;
}

function unmatchedError(patterns: readonly CompiledPattern[], params: readonly CheckedParameter[]): ConfigError {
  const blocks = [...new Set(params.map((p) => topLevelBlock(p.name)))].sort(compareBlocks);
  const lines = patterns.map((pattern) => {
    const first = pattern.kind === 'glob' ? pattern.source.split('.')[0] : undefined;
    const near = first !== undefined && !first.includes('*') ? params.filter((p) => p.name.split('.')[0] === first).slice(0, 3) : [];
    const hint = near.length > 0 ? `; names under "${first}" look like ${near.map((p) => JSON.stringify(p.name)).join(', ')}` : '';
    return `${pattern.where}: ${JSON.stringify(pattern.source)} matches none of the model's ${params.length} parameters${hint}`;
  });
  return new ConfigError(
    `Expected every freeze pattern to match at least one parameter:\n  ${lines.join('\n  ')}\n` +
      `(globs match whole dotted names: "*" within one segment, "**" across segments; the model's top-level blocks are ${blocks.join(', ')})`,
  );
}

// The order the U-Net runs its blocks in, so a table reads from input to output; a block not listed
// (a newer diffusers module) sorts after these, keeping its place among its kind.
const BLOCK_ORDER = [
  'conv_in',
  'time_proj',
  'time_embedding',
  'class_embedding',
  'add_embedding',
  'encoder_hid_proj',
  'down_blocks',
  'mid_block',
  'up_blocks',
  'conv_norm_out',
  'conv_out',
];

function compareBlocks(a: string, b: string): number {
  const rank = (block: string): [number, number] => {
    const [head = block, index] = block.split('.');
    const r = BLOCK_ORDER.indexOf(head);
    return [r === -1 ? BLOCK_ORDER.length : r, index === undefined ? 0 : Number(index)];
  };
  const [ra, ia] = rank(a);
  const [rb, ib] = rank(b);
  return ra - rb || ia - ib;
}

function describeRules(applied: readonly AppliedRule[]): string {
  if (applied.length === 0) return 'no rules';
  return applied.map((r) => `${r.where}: ${r.action} ${JSON.stringify(r.pattern)} (${r.matched} matched)`).join('; ');
}

function summarize(
  preset: PresetName,
  rules: readonly AppliedRule[],
  params: readonly CheckedParameter[],
  trainable: readonly PlannedParameter[],
  frozen: readonly string[],
  ema: boolean,
  notes: readonly string[],
): FreezePlan {
  const trainableNames = new Set(trainable.map((p) => p.name));
  const blocks = new Map<string, { tensors: number; trainableTensors: number; numel: number; trainableNumel: number }>();
  for (const p of params) {
    const key = topLevelBlock(p.name);
    const block = blocks.get(key) ?? { tensors: 0, trainableTensors: 0, numel: 0, trainableNumel: 0 };
    block.tensors++;
    block.numel += p.numel;
    if (trainableNames.has(p.name)) {
      block.trainableTensors++;
      block.trainableNumel += p.numel;
    }
    blocks.set(key, block);
  }

  const groups = new Map<string, { lrMultiplier: number; weightDecay: boolean; tensors: number; numel: number; names: string[] }>();
  for (const p of trainable) {
    const key = `${p.lrMultiplier}|${p.weightDecay}`;
    const group = groups.get(key) ?? { lrMultiplier: p.lrMultiplier, weightDecay: p.weightDecay, tensors: 0, numel: 0, names: [] };
    group.tensors++;
    group.numel += p.numel;
    group.names.push(p.name);
    groups.set(key, group);
  }

  const numel = params.reduce((sum, p) => sum + p.numel, 0);
  const trainableNumel = trainable.reduce((sum, p) => sum + p.numel, 0);
  const adamBytes = ADAM_BYTES_PER_ELEMENT * trainableNumel;
  const emaBytes = ema ? FP32_BYTES * trainableNumel : 0;
  return {
    preset,
    rules,
    trainable,
    frozen,
    totals: {
      tensors: params.length,
      trainableTensors: trainable.length,
      frozenTensors: frozen.length,
      numel,
      trainableNumel,
      frozenNumel: numel - trainableNumel,
      trainablePercent: numel === 0 ? 0 : (100 * trainableNumel) / numel,
    },
    blocks: [...blocks].map(([block, b]) => ({ block, ...b })).sort((a, b) => compareBlocks(a.block, b.block)),
    groups: [...groups.values()].sort((a, b) => b.lrMultiplier - a.lrMultiplier || Number(b.weightDecay) - Number(a.weightDecay)),
    memory: { gradientBytes: FP32_BYTES * trainableNumel, adamBytes, emaBytes, optimizerStateBytes: adamBytes + emaBytes, ema },
    notes,
  };
}
