/**
 * initRule: each tensor of a random-weight model drawn as torch.nn initialises its layer — Linear and
 * Conv2d kernels and biases with the variance of U(±1/√fan_in), norms 1 and 0, embedding tables N(0, 1) —
 * told apart by name and shape alone, as diffusers and transformers name them.
 */
import { InternalError } from '../../../lib/errors';
import { initRule, type InitRule } from '../../../lib/models/init-weights';

const shapes = new Map<string, number[]>([
  ['conv_in.weight', [320, 4, 3, 3]],
  ['conv_in.bias', [320]],
  ['time_embedding.linear_1.weight', [1280, 320]],
  ['time_embedding.linear_1.bias', [1280]],
  ['down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight', [320, 320]],
  ['down_blocks.0.resnets.0.norm1.weight', [320]],
  ['down_blocks.0.resnets.0.norm1.bias', [320]],
  ['text_model.embeddings.token_embedding.weight', [49408, 768]],
  ['text_model.embeddings.position_embedding.weight', [77, 768]],
  ['text_model.final_layer_norm.weight', [768]],
  ['text_model.final_layer_norm.bias', [768]],
  ['class_embedding.weight', [10, 1280]],
  ['odd_scalar', []],
]);
const uniformStd = (fanIn: number): number => 1 / Math.sqrt(fanIn) / Math.sqrt(3);

test.each<[string, InitRule]>([
  ['conv_in.weight', { kind: 'normal', std: uniformStd(4 * 9) }],
  ['conv_in.bias', { kind: 'normal', std: uniformStd(4 * 9) }],
  ['time_embedding.linear_1.weight', { kind: 'normal', std: uniformStd(320) }],
  ['time_embedding.linear_1.bias', { kind: 'normal', std: uniformStd(320) }],
  ['down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight', { kind: 'normal', std: uniformStd(320) }],
  ['down_blocks.0.resnets.0.norm1.weight', { kind: 'constant', value: 1 }],
  ['down_blocks.0.resnets.0.norm1.bias', { kind: 'constant', value: 0 }],
  ['text_model.embeddings.token_embedding.weight', { kind: 'normal', std: 1 }],
  ['text_model.embeddings.position_embedding.weight', { kind: 'normal', std: 1 }],
  ['text_model.final_layer_norm.weight', { kind: 'constant', value: 1 }],
  ['text_model.final_layer_norm.bias', { kind: 'constant', value: 0 }],
  ['class_embedding.weight', { kind: 'normal', std: 1 }],
  ['odd_scalar', { kind: 'normal', std: 0.02 }],
])('%s', (name, rule) => {
  const got = initRule(name, shapes);
  expect(got.kind).toBe(rule.kind);
  if (got.kind === 'normal' && rule.kind === 'normal') expect(got.std).toBeCloseTo(rule.std, 12);
  else expect(got).toEqual(rule);
});

test('a name the model does not have is a programming error', () => {
  expect(() => initRule('nope.weight', shapes)).toThrow(InternalError);
});
