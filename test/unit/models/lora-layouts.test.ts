/**
 * The LoRA key table: every layout diffusers v0.31 reads for SD 1.x/2.x groups into the same adapters
 * of the same layers, and whatever the table cannot place is refused by name and count, never dropped.
 */
import { ConfigError } from '../../../lib/errors';
import { groupLoraKeys, kohyaLayerName, type LoraKeyGroup, type LoraTargets } from '../../../lib/models/lora-layouts';

const ATTN = 'down_blocks.0.attentions.0.transformer_blocks.0.attn1';
const UNET = [`${ATTN}.to_q`, `${ATTN}.to_k`, `${ATTN}.to_v`, `${ATTN}.to_out.0`, 'down_blocks.0.attentions.0.proj_in', 'down_blocks.0.resnets.0.conv1', 'down_blocks.0.resnets.0.time_emb_proj', 'down_blocks.1.resnets.0.conv_shortcut', 'down_blocks.0.downsamplers.0.conv', 'up_blocks.0.upsamplers.0.conv', 'mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj'];
const TE_ATTN = 'text_model.encoder.layers.0.self_attn';
const TE = [`${TE_ATTN}.q_proj`, `${TE_ATTN}.k_proj`, `${TE_ATTN}.v_proj`, `${TE_ATTN}.out_proj`, 'text_model.encoder.layers.0.mlp.fc1', 'text_model.encoder.layers.0.mlp.fc2'];
const TARGETS: LoraTargets = { unet: UNET, textEncoder: TE };

/** Groups as comparable rows: component, module, layout, and which tensors. */
function rows(groups: readonly LoraKeyGroup[]): string[] {
  return groups.map((g) => `${g.component} ${g.module} ${g.layout} ${g.down} ${g.up}${g.alpha ? ` ${g.alpha}` : ''}`).sort();
}

function pair(down: string, up: string): string[] {
  return [down, up];
}

test('PEFT: unet./text_encoder. prefixes and lora_A/lora_B', () => {
  const names = [...pair(`unet.${ATTN}.to_q.lora_A.weight`, `unet.${ATTN}.to_q.lora_B.weight`), ...pair(`text_encoder.${TE_ATTN}.q_proj.lora_A.weight`, `text_encoder.${TE_ATTN}.q_proj.lora_B.weight`)];
  expect(rows(groupLoraKeys(names, TARGETS, 'f'))).toEqual(rows([
    { component: 'unet', module: `${ATTN}.to_q`, layout: 'peft', down: names[0]!, up: names[1]! },
    { component: 'text_encoder', module: `${TE_ATTN}.q_proj`, layout: 'peft', down: names[2]!, up: names[3]! },
  ]));
});

test("diffusers' training scripts: lora.down/up for attention, lora_A/B elsewhere, lora_linear_layer in the text encoder", () => {
  const names = [
    ...pair(`unet.${ATTN}.to_out.0.lora.down.weight`, `unet.${ATTN}.to_out.0.lora.up.weight`),
    ...pair('unet.down_blocks.0.attentions.0.proj_in.lora_A.weight', 'unet.down_blocks.0.attentions.0.proj_in.lora_B.weight'),
    ...pair(`text_encoder.${TE_ATTN}.out_proj.lora_linear_layer.down.weight`, `text_encoder.${TE_ATTN}.out_proj.lora_linear_layer.up.weight`),
    ...pair('text_encoder.text_model.encoder.layers.0.mlp.fc1.lora_A.weight', 'text_encoder.text_model.encoder.layers.0.mlp.fc1.lora_B.weight'),
  ];
  const got = groupLoraKeys(names, TARGETS, 'f');
  expect(got.map((g) => [g.component, g.module, g.layout]).sort()).toEqual(
    [
      ['unet', `${ATTN}.to_out.0`, 'diffusers'],
      ['unet', 'down_blocks.0.attentions.0.proj_in', 'peft'],
      ['text_encoder', `${TE_ATTN}.out_proj`, 'diffusers'],
      ['text_encoder', 'text_model.encoder.layers.0.mlp.fc1', 'peft'],
    ].sort(),
  );
});

test('attention processors: to_q_lora … to_out_lora, with or without the unet. prefix; q_proj … out_proj in the text encoder', () => {
  const legacy = ['to_q', 'to_k', 'to_v', 'to_out'].flatMap((p) => pair(`${ATTN}.processor.${p}_lora.down.weight`, `${ATTN}.processor.${p}_lora.up.weight`));
  expect(groupLoraKeys(legacy, { unet: UNET }, 'f').map((g) => [g.module, g.layout])).toEqual([
    [`${ATTN}.to_q`, 'attn-procs'],
    [`${ATTN}.to_k`, 'attn-procs'],
    [`${ATTN}.to_v`, 'attn-procs'],
    [`${ATTN}.to_out.0`, 'attn-procs'],
  ]);
  const prefixed = [...pair(`unet.${ATTN}.processor.to_out_lora.down.weight`, `unet.${ATTN}.processor.to_out_lora.up.weight`), ...pair(`text_encoder.${TE_ATTN}.to_out_lora.down.weight`, `text_encoder.${TE_ATTN}.to_out_lora.up.weight`), ...pair(`${TE_ATTN}.to_k_lora.down.weight`, `${TE_ATTN}.to_k_lora.up.weight`)];
  expect(groupLoraKeys(prefixed, TARGETS, 'f').map((g) => [g.component, g.module])).toEqual([
    ['unet', `${ATTN}.to_out.0`],
    ['text_encoder', `${TE_ATTN}.out_proj`],
    ['text_encoder', `${TE_ATTN}.k_proj`],
  ]);
});

test('kohya / A1111 / LoCon: lora_unet_ and lora_te_ / lora_te1_ names resolve to layers, alphas attach', () => {
  const names = [...UNET.map((m) => kohyaLayerName('unet', m)), ...TE.map((m) => kohyaLayerName('text_encoder', m))].flatMap((b) => [`${b}.lora_down.weight`, `${b}.lora_up.weight`, `${b}.alpha`]);
  names.push(...pair('lora_te1_text_model_encoder_layers_0_mlp_fc2.lora_down.weight', 'lora_te1_text_model_encoder_layers_0_mlp_fc2.lora_up.weight'));
  names.splice(names.indexOf(`lora_te_text_model_encoder_layers_0_mlp_fc2.lora_down.weight`), 3);
  const got = groupLoraKeys(names, TARGETS, 'f');
  expect(got).toHaveLength(UNET.length + TE.length);
  expect(got.every((g) => g.layout === 'kohya')).toBe(true);
  expect(got.find((g) => g.module === 'down_blocks.0.resnets.0.time_emb_proj')).toEqual({
    component: 'unet',
    module: 'down_blocks.0.resnets.0.time_emb_proj',
    layout: 'kohya',
    down: 'lora_unet_down_blocks_0_resnets_0_time_emb_proj.lora_down.weight',
    up: 'lora_unet_down_blocks_0_resnets_0_time_emb_proj.lora_up.weight',
    alpha: 'lora_unet_down_blocks_0_resnets_0_time_emb_proj.alpha',
  });
  const fc2 = got.find((g) => g.module === 'text_model.encoder.layers.0.mlp.fc2')!;
  expect([fc2.component, fc2.down, fc2.alpha]).toEqual(['text_encoder', 'lora_te1_text_model_encoder_layers_0_mlp_fc2.lora_down.weight', undefined]);
  expect(kohyaLayerName('unet', 'up_blocks.0.upsamplers.0.conv')).toBe('lora_unet_up_blocks_0_upsamplers_0_conv');
});

test('unknown keys are refused, naming the file, the first few and the count', () => {
  const names = [...pair(`unet.${ATTN}.to_q.lora_A.weight`, `unet.${ATTN}.to_q.lora_B.weight`), ...Array.from({ length: 7 }, (_, i) => `unet.${ATTN}.to_q.weird${i}`)];
  expect(() => groupLoraKeys(names, TARGETS, '/x/lora.safetensors')).toThrow(ConfigError);
  expect(() => groupLoraKeys(names, TARGETS, '/x/lora.safetensors')).toThrow(/^\/x\/lora\.safetensors: 7 tensors match no LoRA layout .*weird0, .*weird4 \(and 2 more\)$/);
  // A dotted file's .alpha is no diffusers layout either (diffusers refuses it: "Invalid LoRA checkpoint").
  expect(() => groupLoraKeys([`unet.${ATTN}.to_q.alpha`], TARGETS, 'f')).toThrow(/1 tensor matches no LoRA layout/);
});

test('text-encoder weights with only a U-Net to load them, a second text encoder, DoRA and LyCORIS non-LoRA are refused with the reason', () => {
  const te = pair(`text_encoder.${TE_ATTN}.q_proj.lora_A.weight`, `text_encoder.${TE_ATTN}.q_proj.lora_B.weight`);
  expect(() => groupLoraKeys(te, { unet: UNET }, 'f')).toThrow(/holds text-encoder LoRA weights \(2 tensors.*only a U-Net is loading it/);
  expect(() => groupLoraKeys(['lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight'], TARGETS, 'f')).toThrow(/second text encoder \(text_encoder_2 \/ lora_te2_: SDXL\)/);
  expect(() => groupLoraKeys([`text_encoder_2.${TE_ATTN}.q_proj.lora_A.weight`], TARGETS, 'f')).toThrow(/second text encoder/);
  expect(() => groupLoraKeys([`unet.${ATTN}.to_q.lora_magnitude_vector`], TARGETS, 'f')).toThrow(/DoRA/);
  expect(() => groupLoraKeys(['lora_unet_down_blocks_0_resnets_0_conv1.hada_w1_a'], TARGETS, 'f')).toThrow(/LyCORIS LoHa/);
});

test('layers the model lacks, unpaired and doubled weights are refused by name', () => {
  expect(() => groupLoraKeys(pair('unet.nowhere.to_q.lora_A.weight', 'unet.nowhere.to_q.lora_B.weight'), TARGETS, 'f')).toThrow(/2 LoRA tensors name no Linear\/Conv2d layer of this U-Net: unet\.nowhere/);
  expect(() => groupLoraKeys(pair('lora_unet_input_blocks_1_1_proj_in.lora_down.weight', 'lora_unet_input_blocks_1_1_proj_in.lora_up.weight'), TARGETS, 'f')).toThrow(/original-layout block names/);
  expect(() => groupLoraKeys(pair('lora_te_text_model_nothing.lora_down.weight', 'lora_te_text_model_nothing.lora_up.weight'), TARGETS, 'f')).toThrow(/layer of this text encoder/);
  expect(() => groupLoraKeys([`unet.${ATTN}.to_q.lora_A.weight`], TARGETS, 'f')).toThrow(/1 LoRA layer lacks a down \(lora_A\) or up \(lora_B\) weight: unet\..*to_q\.lora_A\.weight \(no up weight\)/);
  expect(() => groupLoraKeys(['lora_unet_down_blocks_0_resnets_0_conv1.alpha'], TARGETS, 'f')).toThrow(/no down weight/);
  const doubled = [...pair(`unet.${ATTN}.to_q.lora_A.weight`, `unet.${ATTN}.to_q.lora_B.weight`), ...pair(`lora_unet_${ATTN.replace(/\./g, '_')}_to_q.lora_down.weight`, `lora_unet_${ATTN.replace(/\./g, '_')}_to_q.lora_up.weight`)];
  expect(() => groupLoraKeys(doubled, TARGETS, 'f')).toThrow(/2 LoRA tensors give a layer's weights a second time/);
});
