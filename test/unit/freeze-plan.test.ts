/** The freeze plan: rule order, lr multipliers, weight decay, errors, totals and memory. */
import { ConfigError, InvalidArgumentError } from '../../lib/errors';
import { parseFreezeOptions } from '../../lib/config/freeze';
import { formatPlan } from '../../lib/freeze/format';
import { planFreeze, planLoraBase, type FreezePlan, type ParameterInfo } from '../../lib/freeze/plan';
import { fixtureParameters } from '../helpers/fixture-parameters';

let unet2d: ParameterInfo[];
let unet2dCond: ParameterInfo[];
beforeAll(async () => {
  [unet2d, unet2dCond] = await Promise.all([fixtureParameters('unet2d-tiny'), fixtureParameters('unet2dcond-tiny')]);
});

const names = (plan: FreezePlan): string[] => plan.trainable.map((p) => p.name);
const numel = (p: ParameterInfo): number => p.shape.reduce((a, b) => a * b, 1);
const errorOf = (f: () => unknown): Error => {
  try {
    f();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a throw');
};

describe('rule order: preset, trainable, frozen, rules; the last match wins', () => {
  test('no options: everything trains (the default preset is full)', () => {
    const plan = planFreeze(unet2d, {});
    expect(plan.preset).toBe('full');
    expect(plan.totals.trainableTensors).toBe(144);
  });

  test('only frozen: everything else trains', () => {
    const plan = planFreeze(unet2d, { frozen: ['down_blocks.**'] });
    expect(plan.preset).toBe('full');
    expect(plan.frozen).toEqual(unet2d.map((p) => p.name).filter((n) => n.startsWith('down_blocks.')));
  });

  test('trainable without a preset starts from all-frozen', () => {
    const plan = planFreeze(unet2d, { trainable: ['conv_out.*'] });
    expect(plan.preset).toBe('none');
    expect(names(plan)).toEqual(['conv_out.bias', 'conv_out.weight']);
  });

  test('frozen overrides trainable whatever the order of the keys', () => {
    const plan = planFreeze(unet2d, { frozen: ['up_blocks.0.**'], trainable: ['up_blocks.**'] });
    expect(names(plan).every((n) => n.startsWith('up_blocks.1.'))).toBe(true);
    expect(plan.totals.trainableTensors).toBe(24);
  });

  test('frozen carves exceptions out of a preset', () => {
    const plan = planFreeze(unet2d, { preset: 'decoder-only', frozen: ['conv_out.*'] });
    expect(plan.totals.trainableTensors).toBe(72);
    expect(plan.frozen).toContain('conv_out.weight');
  });

  test('rules apply last, in order: a later rule undoes an earlier one', () => {
    const plan = planFreeze(unet2d, {
      preset: 'decoder-only',
      frozen: ['up_blocks.**'],
      rules: [{ train: 'up_blocks.1.**' }, { freeze: 'up_blocks.1.resnets.1.**' }, { train: 'up_blocks.1.resnets.1.conv2.*' }],
    });
    expect(names(plan)).toEqual([
      'conv_norm_out.bias',
      'conv_norm_out.weight',
      'conv_out.bias',
      'conv_out.weight',
      ...unet2d.map((p) => p.name).filter((n) => n.startsWith('up_blocks.1.resnets.0.')),
      'up_blocks.1.resnets.1.conv2.bias',
      'up_blocks.1.resnets.1.conv2.weight',
    ]);
    expect(plan.rules.map((r) => r.where)).toEqual([
      'freeze.preset "decoder-only"',
      'freeze.preset "decoder-only"',
      'freeze.preset "decoder-only"',
      'freeze.frozen[0]',
      'freeze.rules[0].train',
      'freeze.rules[1].freeze',
      'freeze.rules[2].train',
    ]);
    expect(plan.rules[3]).toEqual({ action: 'freeze', pattern: 'up_blocks.**', where: 'freeze.frozen[0]', matched: 70 });
  });
});

describe('learning-rate multipliers', () => {
  test('default 1; the last matching entry wins; only trainable parameters carry one', () => {
    const plan = planFreeze(unet2d, {
      lrMultipliers: { 'down_blocks.**': 0.1, 'down_blocks.1.**': 0.5, 'conv_in.*': 0.01, 'down_blocks.1.attentions.**': 0.25 },
    });
    const lr = new Map(plan.trainable.map((p) => [p.name, p.lrMultiplier]));
    expect(lr.get('down_blocks.0.resnets.0.conv1.weight')).toBe(0.1);
    expect(lr.get('down_blocks.1.resnets.0.conv1.weight')).toBe(0.5);
    expect(lr.get('down_blocks.1.attentions.0.to_q.weight')).toBe(0.25);
    expect(lr.get('conv_in.weight')).toBe(0.01);
    expect(lr.get('up_blocks.0.resnets.0.conv1.weight')).toBe(1);
    expect(plan.groups.map((g) => [g.lrMultiplier, g.weightDecay])).toEqual([
      [1, true],
      [1, false],
      [0.5, true],
      [0.5, false],
      [0.25, true],
      [0.25, false],
      [0.1, true],
      [0.1, false],
      [0.01, true],
      [0.01, false],
    ]);
  });

  test('a multiplier matching only frozen parameters is an error (it would do nothing)', () => {
    const error = errorOf(() => planFreeze(unet2d, { preset: 'decoder-only', lrMultipliers: { 'down_blocks.**': 0.1 } }));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(
      /^freeze\.lrMultipliers\["down_blocks\.\*\*"\]: expected the pattern "down_blocks\.\*\*" to match a trainable parameter, but the 34 it matches are all frozen/,
    );
  });

  test('multipliers must be positive finite numbers', () => {
    expect(() => parseFreezeOptions({ lrMultipliers: { 'conv_in.*': 0 } })).toThrow(/freeze\.lrMultipliers\["conv_in\.\*"\]: Number must be greater than 0/);
    expect(() => parseFreezeOptions({ lrMultipliers: { 'conv_in.*': -1 } })).toThrow(ConfigError);
  });
});

describe('errors', () => {
  test('a pattern matching no parameter names the pattern and its field; all of them at once', () => {
    const error = errorOf(() =>
      planFreeze(unet2d, { trainable: ['up_blocks.**', 'up_block.**'], frozen: ['up_blocks.*.attention.**'], rules: [{ freeze: 're:nothing' }] }),
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain('freeze.trainable[1]: "up_block.**" matches none of the model\'s 144 parameters');
    expect(error.message).toContain(
      'freeze.frozen[0]: "up_blocks.*.attention.**" matches none of the model\'s 144 parameters; names under "up_blocks" look like "up_blocks.0.attentions.0.group_norm.bias"',
    );
    expect(error.message).toContain('freeze.rules[0].freeze: "re:nothing" matches none');
    expect(error.message).not.toContain('freeze.trainable[0]');
    expect(error.message).toContain(
      'top-level blocks are conv_in, time_embedding, down_blocks.0, down_blocks.1, mid_block, up_blocks.0, up_blocks.1, conv_norm_out, conv_out)',
    );
  });

  test('a preset rule that matches nothing in this model is fine (class_embedding on an unconditional U-Net)', () => {
    const plan = planFreeze(unet2d, { preset: 'encoder-frozen' });
    expect(plan.rules.find((r) => r.pattern === 'class_embedding.**')?.matched).toBe(0);
  });

  test('a plan that trains nothing is an error', () => {
    const error = errorOf(() => planFreeze(unet2d, { trainable: ['down_blocks.**'], frozen: ['**'] }));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(
      /^freeze: expected at least one trainable parameter, but the rules freeze all 144 \(.*freeze\.frozen\[0\]: freeze "\*\*" \(144 matched\)\)/,
    );
  });

  test('option errors name the field path', () => {
    expect(() => parseFreezeOptions({ trainable: ['ok.*', 're:('] })).toThrow(/freeze\.trainable\[1\]: "re:\(" is not a valid regular expression/);
    expect(() => parseFreezeOptions({ rules: [{ train: 'a', freeze: 'b' }] })).toThrow(/freeze\.rules\[0\]/);
    expect(() => parseFreezeOptions({ preset: 'lora' })).toThrow(/freeze\.preset: Invalid enum value.*'full'/);
    expect(() => parseFreezeOptions({ trainabel: [] })).toThrow(/Unrecognized key\(s\) in object: 'trainabel'/);
    expect(() => planFreeze(unet2d, { frozen: ['a..b'] })).toThrow(/freeze\.frozen\[0\]: glob "a\.\.b" has an empty segment/);
    expect(() => parseFreezeOptions({ frozen: ['re:['] }, 'recipe.freeze')).toThrow(/recipe\.freeze\.frozen\[0\]/);
  });

  test('a malformed parameter list is an InvalidArgumentError', () => {
    const p = { name: 'a.weight', shape: [2], dtype: 'F32' };
    expect(() => planFreeze([p, p])).toThrow(InvalidArgumentError);
    expect(() => planFreeze([{ ...p, shape: [-1] }])).toThrow(/Expected an array of non-negative integers for parameters\[0\]\.shape \(a\.weight\)/);
  });
});

describe('weight decay', () => {
  test('not on biases, norm scales/shifts, embedding tables or 1-d tensors; on conv and linear weights', () => {
    const plan = planFreeze(unet2dCond, {});
    const decay = new Map(plan.trainable.map((p) => [p.name, p.weightDecay]));
    for (const name of [
      'conv_in.weight',
      'mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight',
      'time_embedding.linear_1.weight',
      'mid_block.attentions.0.proj_in.weight',
    ]) {
      expect(decay.get(name)).toBe(true);
    }
    for (const name of [
      'conv_in.bias',
      'conv_norm_out.weight',
      'mid_block.attentions.0.norm.weight',
      'mid_block.attentions.0.transformer_blocks.0.norm3.weight',
      'down_blocks.0.resnets.0.norm1.bias',
    ]) {
      expect(decay.get(name)).toBe(false);
    }
    expect(plan.trainable.filter((p) => !p.weightDecay)).toHaveLength(unet2dCond.filter((p) => p.shape.length === 1).length);
  });

  test('class embedding tables get no decay', async () => {
    const plan = planFreeze(await fixtureParameters('unet2d-classcond'), {});
    expect(plan.trainable.find((p) => p.name === 'class_embedding.weight')?.weightDecay).toBe(false);
  });

  test('decayAll applies it to everything', () => {
    const plan = planFreeze(unet2d, { decayAll: true });
    expect(plan.trainable.every((p) => p.weightDecay)).toBe(true);
    expect(plan.groups).toHaveLength(1);
    expect(plan.notes.join('\n')).toContain('decayAll');
  });
});

describe('totals, blocks, groups and memory', () => {
  test('totals equal the sums over parameters, blocks and groups', () => {
    for (const params of [unet2d, unet2dCond]) {
      for (const preset of ['full', 'decoder-only', 'attention-only', 'bias-norm'] as const) {
        const plan = planFreeze(params, { preset, lrMultipliers: preset === 'full' ? { 'down_blocks.**': 0.1 } : {} });
        const t = plan.totals;
        expect(t.tensors).toBe(params.length);
        expect(t.numel).toBe(params.reduce((s, p) => s + numel(p), 0));
        expect(t.trainableTensors + t.frozenTensors).toBe(t.tensors);
        expect(t.trainableNumel + t.frozenNumel).toBe(t.numel);
        expect(t.trainableNumel).toBe(plan.trainable.reduce((s, p) => s + p.numel, 0));
        expect(t.trainablePercent).toBeCloseTo((100 * t.trainableNumel) / t.numel, 12);
        expect(plan.blocks.reduce((s, b) => s + b.numel, 0)).toBe(t.numel);
        expect(plan.blocks.reduce((s, b) => s + b.trainableNumel, 0)).toBe(t.trainableNumel);
        expect(plan.blocks.reduce((s, b) => s + b.tensors, 0)).toBe(t.tensors);
        expect(plan.groups.reduce((s, g) => s + g.numel, 0)).toBe(t.trainableNumel);
        expect(plan.groups.flatMap((g) => g.names).sort()).toEqual(names(plan).sort());
        expect(new Set([...names(plan), ...plan.frozen]).size).toBe(params.length);
      }
    }
  });

  test('blocks are listed in forward order with exact sizes', () => {
    const plan = planFreeze(unet2dCond, { preset: 'decoder-only' });
    expect(plan.blocks.map((b) => b.block)).toEqual([
      'conv_in',
      'time_embedding',
      'down_blocks.0',
      'down_blocks.1',
      'mid_block',
      'up_blocks.0',
      'up_blocks.1',
      'conv_norm_out',
      'conv_out',
    ]);
    expect(plan.blocks[0]).toEqual({ block: 'conv_in', tensors: 2, trainableTensors: 0, numel: 32 * 4 * 9 + 32, trainableNumel: 0 });
    expect(plan.blocks.at(-1)).toEqual({ block: 'conv_out', tensors: 2, trainableTensors: 2, numel: 4 * 32 * 9 + 4, trainableNumel: 4 * 32 * 9 + 4 });
    expect(plan.totals.trainableNumel).toBe(397_764);
  });

  test('optimizer state: 8 bytes per trainable element for AdamW, plus 4 for an EMA copy', () => {
    const without = planFreeze(unet2d, { preset: 'decoder-only' });
    const withEma = planFreeze(unet2d, { preset: 'decoder-only' }, { ema: true });
    const n = without.totals.trainableNumel;
    expect(n).toBe(384_611);
    expect(without.memory).toEqual({ gradientBytes: 4 * n, adamBytes: 8 * n, emaBytes: 0, optimizerStateBytes: 8 * n, ema: false });
    expect(withEma.memory).toEqual({ gradientBytes: 4 * n, adamBytes: 8 * n, emaBytes: 4 * n, optimizerStateBytes: 12 * n, ema: true });
  });
});

test('planLoraBase freezes everything and says why', () => {
  const plan = planLoraBase(unet2d);
  expect(plan.trainable).toEqual([]);
  expect(plan.frozen).toHaveLength(144);
  expect(plan.memory.optimizerStateBytes).toBe(0);
  expect(plan.notes[0]).toMatch(/^lora: the whole base model is frozen/);
});

test('formatPlan prints the headline, rules, every block, groups and memory', () => {
  const text = formatPlan(planFreeze(unet2dCond, { preset: 'decoder-only', lrMultipliers: { 'up_blocks.0.**': 0.1 } }, { ema: true }));
  expect(text).toMatch(/^Freeze plan \(preset "decoder-only"\): 397,764 of 792,964 parameters train \(50\.16%\), 106 of 208 tensors/);
  expect(text).toMatch(/train {3}up_blocks\.\*\* +freeze\.preset "decoder-only" +102/);
  expect(text).toMatch(/\n {2}up_blocks\.1 +124,928 +124,928 +100\.00% +76\/76\n/);
  expect(text).toMatch(/\n {2}down_blocks\.0 +0 +55,200 +0\.00% +0\/38\n/);
  expect(text).toMatch(/\n {2}total +397,764 +792,964 +50\.16% +106\/208\n/);
  expect(text).toMatch(/\n {2} *0\.1 +yes +\d+ +[\d,]+\n/);
  expect(text).toContain('AdamW moments 3.0 MiB (2 × fp32), EMA 1.5 MiB (fp32) → optimizer state 4.6 MiB');
});

test('planning through the public API never loads the native addon', async () => {
  const difftune = await import('../../lib/index');
  expect(difftune.planFreeze(unet2d, { preset: 'bias-norm' }).totals.trainableTensors).toBe(95);
  expect(difftune.isNativeLoaded()).toBe(false);
});
