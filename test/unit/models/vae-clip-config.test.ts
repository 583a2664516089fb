// The frozen models' configs and key handling, without the addon: diffusers' AutoencoderKL and
// transformers' CLIPTextConfig defaults, validation errors naming file and key, legacy VAE names.
import { parseClipTextConfig, toNativeClipTextConfig } from '../../../lib/config/clip-text';
import { parseVaeConfig, toNativeVaeConfig, vaeScaleFactor } from '../../../lib/config/vae';
import { ConfigError } from '../../../lib/errors';
import { currentVaeKey, renameLegacyVaeKeys } from '../../../lib/models/vae-keys';

test('an empty VAE config gets diffusers defaults', () => {
  const { config, unknownKeys } = parseVaeConfig({ _class_name: 'AutoencoderKL' }, 'vae/config.json');
  expect(unknownKeys).toEqual([]);
  expect(config.block_out_channels).toEqual([64]);
  expect(config.scaling_factor).toBe(0.18215);
  expect(config.shift_factor).toBeNull();
  expect(vaeScaleFactor(config)).toBe(1);
  expect(toNativeVaeConfig(config)).toMatchObject({ latentChannels: 4, normNumGroups: 32, layersPerBlock: 1, useQuantConv: true });
});

test("Stable Diffusion's VAE layout: scale factor 8; unknown keys kept", () => {
  const raw = {
    _class_name: 'AutoencoderKL',
    block_out_channels: [128, 256, 512, 512],
    down_block_types: Array(4).fill('DownEncoderBlock2D'),
    up_block_types: Array(4).fill('UpDecoderBlock2D'),
    layers_per_block: 2,
    sample_size: 512,
    some_new_option: 'x',
  };
  const { config, unknownKeys, extra } = parseVaeConfig(raw, 'vae/config.json');
  expect(vaeScaleFactor(config)).toBe(8);
  expect(unknownKeys).toEqual(['some_new_option']);
  expect(extra).toEqual({ some_new_option: 'x' });
});

test('bad VAE configs name the file and key', () => {
  expect(() => parseVaeConfig({ block_out_channels: [64, 128] }, 'v.json')).toThrow(/v.json: "down_block_types" \(1\), "up_block_types" \(1\) and "block_out_channels" \(2\)/);
  expect(() => parseVaeConfig({ latent_channels: 2.5 }, 'v.json')).toThrow(/v.json: "latent_channels"/);
  expect(() => parseVaeConfig({ latents_mean: [0, 1] }, 'v.json')).toThrow(/"latents_mean" has 2 entries but latent_channels is 4/);
  expect(() => parseVaeConfig([], 'v.json')).toThrow(ConfigError);
});

test('legacy VAE attention names map to the current ones; nothing else changes', () => {
  expect(currentVaeKey('encoder.mid_block.attentions.0.query.weight')).toBe('encoder.mid_block.attentions.0.to_q.weight');
  expect(currentVaeKey('decoder.mid_block.attentions.0.proj_attn.bias')).toBe('decoder.mid_block.attentions.0.to_out.0.bias');
  expect(currentVaeKey('decoder.mid_block.attentions.0.group_norm.weight')).toBe('decoder.mid_block.attentions.0.group_norm.weight');
  expect(currentVaeKey('encoder.conv_in.weight')).toBe('encoder.conv_in.weight');
  const renamed = renameLegacyVaeKeys(new Map([['a.attentions.1.key.weight', 1], ['b', 2]]), 'f');
  expect([...renamed.keys()]).toEqual(['a.attentions.1.to_k.weight', 'b']);
  expect(() => renameLegacyVaeKeys(new Map([['a.attentions.0.value.bias', 1], ['a.attentions.0.to_v.bias', 2]]), 'f.safetensors')).toThrow(/f.safetensors: "a.attentions.0.to_v.bias" is given twice/);
});

test('CLIP text configs: transformers defaults, SD 2.x gelu, bookkeeping keys ignored, errors name the key', () => {
  const { config, unknownKeys } = parseClipTextConfig({ architectures: ['CLIPTextModel'], model_type: 'clip_text_model', torch_dtype: 'float32' }, 't.json');
  expect(unknownKeys).toEqual([]);
  expect(toNativeClipTextConfig(config)).toEqual({
    vocabSize: 49408,
    hiddenSize: 512,
    intermediateSize: 2048,
    numHiddenLayers: 12,
    numAttentionHeads: 8,
    maxPositionEmbeddings: 77,
    hiddenAct: 'quick_gelu',
    layerNormEps: 1e-5,
    eosTokenId: 49407,
  });
  expect(parseClipTextConfig({ hidden_act: 'gelu', hidden_size: 1024, num_attention_heads: 16, future: 1 }, 't.json').unknownKeys).toEqual(['future']);
  expect(() => parseClipTextConfig({ hidden_act: 'tanh' }, 't.json')).toThrow(/t.json: "hidden_act"/);
  expect(() => parseClipTextConfig({ model_type: 'clip' }, 't.json')).toThrow(/text_config/);
  expect(() => parseClipTextConfig({ hidden_size: 30, num_attention_heads: 8 }, 't.json')).toThrow(/does not divide "hidden_size" 30/);
});
