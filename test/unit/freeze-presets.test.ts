/**
 * Every preset on the real parameter lists of the fixture U-Nets (read from their safetensors
 * headers): exact counts, checked against selections written independently here, and spot checks.
 */
import { planFreeze, type ParameterInfo } from '../../lib/freeze/plan';
import { PRESET_NAMES } from '../../lib/config/freeze';
import { fixtureParameters } from '../helpers/fixture-parameters';

let unet2d: ParameterInfo[]; // UNet2DModel: DownBlock2D, AttnDownBlock2D / AttnUpBlock2D, UpBlock2D
let unet2dCond: ParameterInfo[]; // UNet2DConditionModel: CrossAttnDownBlock2D, DownBlock2D / UpBlock2D, CrossAttnUpBlock2D
let unet2dClass: ParameterInfo[]; // UNet2DModel with a class embedding table
let unet2dCondClass: ParameterInfo[]; // UNet2DConditionModel with a timestep-style class embedding

beforeAll(async () => {
  [unet2d, unet2dCond, unet2dClass, unet2dCondClass] = await Promise.all([
    fixtureParameters('unet2d-tiny'),
    fixtureParameters('unet2dcond-tiny'),
    fixtureParameters('unet2d-classcond'),
    fixtureParameters('unet2dcond-classcond'),
  ]);
});

const trainedNames = (params: ParameterInfo[], preset: (typeof PRESET_NAMES)[number]): string[] => planFreeze(params, { preset }).trainable.map((p) => p.name);
const numel = (p: ParameterInfo): number => p.shape.reduce((a, b) => a * b, 1);
const NORM_MODULES = new Set(['norm', 'norm1', 'norm2', 'norm3', 'group_norm', 'conv_norm_out']);
const penultimate = (name: string): string => name.split('.').slice(-2, -1)[0] ?? '';

test('the fixtures have the parameter counts these tests assume', () => {
  expect(unet2d).toHaveLength(144);
  expect(unet2dCond).toHaveLength(208);
  expect(unet2dClass.map((p) => p.name)).toContain('class_embedding.weight');
  expect(unet2dCondClass.map((p) => p.name)).toContain('class_embedding.linear_1.weight');
});

describe('full', () => {
  test('trains every parameter', () => {
    for (const params of [unet2d, unet2dCond]) {
      const plan = planFreeze(params, { preset: 'full' });
      expect(plan.trainable.map((p) => p.name)).toEqual(params.map((p) => p.name));
      expect(plan.frozen).toEqual([]);
      expect(plan.totals.trainablePercent).toBe(100);
    }
    expect(planFreeze(unet2d, { preset: 'full' }).totals.trainableNumel).toBe(702_499);
    expect(planFreeze(unet2dCond, { preset: 'full' }).totals.trainableNumel).toBe(792_964);
  });
});

describe('decoder-only and encoder-frozen', () => {
  const decoder = (name: string): boolean => /^(up_blocks\.|conv_norm_out\.|conv_out\.)/.test(name);

  test('train exactly up_blocks, conv_norm_out and conv_out', () => {
    for (const preset of ['decoder-only', 'encoder-frozen'] as const) {
      expect(trainedNames(unet2d, preset)).toEqual(unet2d.map((p) => p.name).filter(decoder));
      expect(trainedNames(unet2dCond, preset)).toEqual(unet2dCond.map((p) => p.name).filter(decoder));
      expect(trainedNames(unet2dClass, preset)).toEqual(unet2dClass.map((p) => p.name).filter(decoder));
      expect(trainedNames(unet2dCondClass, preset)).toEqual(unet2dCondClass.map((p) => p.name).filter(decoder));
    }
    // up_blocks.0: 2 attentions × 10 + 2 resnets × 12 + upsampler 2; up_blocks.1: 2 resnets × 12; head 4
    expect(trainedNames(unet2d, 'decoder-only')).toHaveLength(46 + 24 + 4);
    expect(trainedNames(unet2dCond, 'decoder-only')).toHaveLength(106);
  });

  test('freeze conv_in, the time and class embeddings, the down blocks and the mid block', () => {
    for (const params of [unet2dClass, unet2dCondClass]) {
      const plan = planFreeze(params, { preset: 'encoder-frozen' });
      for (const name of ['conv_in.weight', 'time_embedding.linear_1.weight', 'down_blocks.0.resnets.0.conv1.weight', 'mid_block.resnets.1.norm2.bias']) {
        expect(plan.frozen).toContain(name);
      }
      expect(plan.frozen.filter((n) => n.startsWith('class_embedding.')).length).toBeGreaterThan(0);
      expect(plan.trainable.map((p) => p.name)).toContain('conv_out.weight');
    }
  });
});

describe('attention-only', () => {
  test('UNet2DModel: the Attention modules under attentions.<i> (group_norm, to_q, to_k, to_v, to_out.0)', () => {
    const names = trainedNames(unet2d, 'attention-only');
    expect(names).toEqual(unet2d.map((p) => p.name).filter((n) => /\.attentions\.\d+\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/.test(n)));
    expect(names).toHaveLength(4 * 10); // down_blocks.1, mid_block, up_blocks.0 × 2
    expect(names).toContain('mid_block.attentions.0.group_norm.weight');
    expect(names).toContain('up_blocks.0.attentions.1.to_out.0.bias');
    expect(names).not.toContain('mid_block.resnets.0.conv1.weight');
  });

  test('UNet2DConditionModel: attn1/attn2 projections only; not proj_in/proj_out, norms or ff', () => {
    const names = trainedNames(unet2dCond, 'attention-only');
    expect(names).toEqual(unet2dCond.map((p) => p.name).filter((n) => /\.attn[12]\.(to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/.test(n)));
    expect(names).toHaveLength(4 * 10); // 4 transformer blocks × (attn1 + attn2) × (q, k, v, out.w, out.b)
    expect(names).toContain('mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight');
    const frozen = planFreeze(unet2dCond, { preset: 'attention-only' }).frozen;
    for (const name of [
      'mid_block.attentions.0.proj_in.weight',
      'mid_block.attentions.0.proj_out.bias',
      'mid_block.attentions.0.norm.weight',
      'mid_block.attentions.0.transformer_blocks.0.norm1.weight',
      'mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj.weight',
    ]) {
      expect(frozen).toContain(name);
    }
  });
});

describe('bias-norm', () => {
  const independent = (params: ParameterInfo[]): string[] =>
    params
      .map((p) => p.name)
      .filter((n) => n.endsWith('.bias') || (n.endsWith('.weight') && NORM_MODULES.has(penultimate(n))) || /^(time_embedding|class_embedding)\./.test(n));

  test('every bias, every norm scale/shift and the time (and class) embedding', () => {
    expect(trainedNames(unet2d, 'bias-norm')).toEqual(independent(unet2d));
    expect(trainedNames(unet2dCond, 'bias-norm')).toEqual(independent(unet2dCond));
    expect(trainedNames(unet2dClass, 'bias-norm')).toEqual(independent(unet2dClass));
    expect(trainedNames(unet2dCondClass, 'bias-norm')).toEqual(independent(unet2dCondClass));
    expect(trainedNames(unet2d, 'bias-norm')).toHaveLength(72 + 20 + 1 + 2); // biases, norm weights, conv_norm_out.weight, time_embedding weights
    expect(trainedNames(unet2dCond, 'bias-norm')).toHaveLength(92 + 32 + 1 + 2);
    expect(trainedNames(unet2dClass, 'bias-norm')).toContain('class_embedding.weight');
  });

  test('leaves conv, linear and attention weights frozen', () => {
    const plan = planFreeze(unet2dCond, { preset: 'bias-norm' });
    for (const name of [
      'conv_in.weight',
      'down_blocks.0.resnets.0.time_emb_proj.weight',
      'mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight',
      'conv_out.weight',
    ]) {
      expect(plan.frozen).toContain(name);
    }
    expect(plan.totals.trainableNumel).toBe(
      unet2dCond
        .filter((p) => p.name.endsWith('.bias') || NORM_MODULES.has(penultimate(p.name)) || p.name.startsWith('time_embedding.'))
        .reduce((s, p) => s + numel(p), 0),
    );
  });
});

test('none trains nothing on its own, so it needs rules', () => {
  expect(() => planFreeze(unet2d, { preset: 'none' })).toThrow(/expected at least one trainable parameter/);
  expect(planFreeze(unet2d, { preset: 'none', trainable: ['conv_out.*'] }).totals.trainableTensors).toBe(2);
});
