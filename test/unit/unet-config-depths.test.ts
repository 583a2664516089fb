// transformer_layers_per_block and reverse_transformer_layers_per_block as UNet2DConditionModel v0.31 reads
// them (models/unets/unet_2d_condition.py, get_down_block / get_up_block): flat or nested (one depth per
// layer), the mid block taking the last down entry, and diffusers' refusals as ConfigErrors naming the key.
import { unetParameterCount } from '../../lib/config/model-size';
import { parseUNetConfig, transformerDepths, type UNet2DConditionConfig } from '../../lib/config/unet';
import { toNativeUNetConfig } from '../../lib/config/unet-native';
import { ConfigError } from '../../lib/errors';

/** A three-level Stable-Diffusion-style U-Net, small, with `change` applied. */
function cond(change: Record<string, unknown>): UNet2DConditionConfig & { _class_name: 'UNet2DConditionModel' } {
  const raw = {
    _class_name: 'UNet2DConditionModel',
    block_out_channels: [8, 16, 16],
    down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
    up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    layers_per_block: 1,
    norm_num_groups: 4,
    cross_attention_dim: 8,
    attention_head_dim: 2,
    transformer_layers_per_block: [1, 2, 3],
    ...change,
  };
  const { config } = parseUNetConfig(raw, 'config.json');
  if (config._class_name !== 'UNet2DConditionModel') throw new Error('expected a UNet2DConditionModel');
  return config;
}

test("the issue's nested reverse_transformer_layers_per_block [[3,3],[2,2],[1,1]] is the flat [3,2,1]", () => {
  const nested = cond({
    reverse_transformer_layers_per_block: [
      [3, 3],
      [2, 2],
      [1, 1],
    ],
  });
  const flat = cond({ reverse_transformer_layers_per_block: [3, 2, 1] });
  expect(transformerDepths(nested, 'config.json')).toEqual({
    down: [[1], [2], [3]],
    mid: 3,
    up: [
      [3, 3],
      [2, 2],
      [1, 1],
    ],
  });
  expect(toNativeUNetConfig(nested)).toEqual(toNativeUNetConfig(flat));
  // No reverse list: the down entries reversed, as before.
  expect(toNativeUNetConfig(cond({}))).toEqual(toNativeUNetConfig(flat));
  expect(unetParameterCount(nested)).toBe(unetParameterCount(flat));
});

test('nested entries give each layer its own depth; extra depths are unused, as in diffusers', () => {
  const config = cond({
    layers_per_block: [1, 2, 1],
    transformer_layers_per_block: [[2, 9], [1, 3], 4],
    reverse_transformer_layers_per_block: [[1, 2], 5, [3, 1, 1, 7]],
  });
  expect(transformerDepths(config, 'config.json')).toEqual({
    down: [[2], [1, 3], [4]],
    mid: 4,
    up: [
      [1, 2],
      [5, 5, 5],
      [3, 1],
    ],
  });
  const native = toNativeUNetConfig(config);
  expect([native.downTransformerLayers, native.midTransformerLayers, native.upTransformerLayers]).toEqual([[2, 1, 3, 4], 4, [1, 2, 5, 5, 5, 3, 1]]);
});

test("diffusers' own asymmetrical U-Net test config (tests/models/unets/test_models_unet_2d_condition.py)", () => {
  const config = cond({
    block_out_channels: [4, 8],
    down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
    transformer_layers_per_block: [[3, 2], 1],
    reverse_transformer_layers_per_block: [[3, 4], 1],
  });
  // The mid block takes the last down entry (1); a nested last entry would give its first depth.
  expect(transformerDepths(config, 'config.json')).toEqual({
    down: [[3], [1]],
    mid: 1,
    up: [
      [3, 4],
      [1, 1],
    ],
  });
  expect(transformerDepths(cond({ transformer_layers_per_block: [1, 2, [5, 6]], reverse_transformer_layers_per_block: [1, 1, 1] }), 'c').mid).toBe(5);
});

test('a reverse list longer than the up blocks is read as diffusers reads it: the first entries', () => {
  expect(transformerDepths(cond({ reverse_transformer_layers_per_block: [3, 2, 1, 7] }), 'c').up).toEqual([
    [3, 3],
    [2, 2],
    [1, 1],
  ]);
});

test.each([
  [
    { transformer_layers_per_block: [[1, 1], 2, 3] },
    '"transformer_layers_per_block" gives per-layer depths (a nested list), which needs "reverse_transformer_layers_per_block"',
  ],
  [
    {
      reverse_transformer_layers_per_block: [
        [3, 3],
        [2, 2],
      ],
    },
    '"reverse_transformer_layers_per_block" has 2 entries but there are 3 up blocks',
  ],
  [{ reverse_transformer_layers_per_block: [[3, 3], [2], [1, 1]] }, '"reverse_transformer_layers_per_block[1]" has 1 depths but up block 1 has 2 layers'],
  [
    { layers_per_block: 2, transformer_layers_per_block: [[1, 1], [2], 3], reverse_transformer_layers_per_block: [3, 2, 1] },
    '"transformer_layers_per_block[1]" has 1 depths but down block 1 has 2 layers',
  ],
  [{ reverse_transformer_layers_per_block: [[3, 0], 2, 1] }, '"reverse_transformer_layers_per_block.0.1"'],
  [{ transformer_layers_per_block: [[[1]], 2, 3] }, '"transformer_layers_per_block": Invalid input (found [[[1]],2,3])'],
])('%j is refused naming the key', (change, message) => {
  expect(() => cond(change)).toThrow(ConfigError);
  expect(() => cond(change)).toThrow(message);
  expect(() => cond(change)).toThrow('config.json');
});
