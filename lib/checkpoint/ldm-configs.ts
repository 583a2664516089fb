/**
 * The structure of a single-file checkpoint's three models, read from a diffusers folder's configs
 * (`unet/config.json`, `vae/config.json`, `text_encoder/config.json`), as diffusers'
 * `from_single_file(config=...)` takes it. Each config is validated by its model's
 * parser (so the defaults are the models'), and only the fields that decide the key layout are kept.
 * Pure apart from reading the files.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { ConfigError } from '../errors';
import { parseClipTextConfig } from '../config/clip-text';
import { parseVaeConfig } from '../config/vae';
import { parseLenientJson } from '../config/json';
import { parseUNetConfig, transformerDepths, type UNet2DConditionConfig } from '../config/unet';
import type { LdmLayout, TextEncoderLayout, TextEncoderStyle, UNetLayout, VaeLayout } from './ldm-layout';

export const SINGLE_FILE_CONFIG_FILES = {
  unet: 'unet/config.json',
  vae: 'vae/config.json',
  text_encoder: 'text_encoder/config.json',
} as const;

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  return parseLenientJson(text, file);
}

/** One value per block from an int-or-list field, refusing a list of the wrong length. */
function perBlock(value: number | readonly number[], n: number, field: string, file: string): number[] {
  if (typeof value === 'number') return new Array<number>(n).fill(value);
  if (value.length !== n) throw new ConfigError(`${file}: "${field}" has ${value.length} entries for ${n} blocks`);
  return [...value];
}

export function unetLayout(config: UNet2DConditionConfig, file: string): UNetLayout {
  const n = config.block_out_channels.length;
  const refuse = (field: string, found: unknown, why: string): never => {
    throw new ConfigError(`${file}: "${field}" is ${JSON.stringify(found)}; ${why}`);
  };
  const lpb = perBlock(config.layers_per_block, n, 'layers_per_block', file);
  if (lpb.some((l) => l !== lpb[0]))
    refuse('layers_per_block', config.layers_per_block, 'original-layout checkpoints number their blocks with one layers_per_block for every level');
  const down = config.down_block_types.map((t, i) => {
    if (t !== 'CrossAttnDownBlock2D' && t !== 'DownBlock2D')
      refuse(`down_block_types[${i}]`, t, 'Stable Diffusion single files have CrossAttnDownBlock2D or DownBlock2D');
    return t === 'CrossAttnDownBlock2D';
  });
  const up = config.up_block_types.map((t, i) => {
    if (t !== 'CrossAttnUpBlock2D' && t !== 'UpBlock2D')
      refuse(`up_block_types[${i}]`, t, 'Stable Diffusion single files have CrossAttnUpBlock2D or UpBlock2D');
    return t === 'CrossAttnUpBlock2D';
  });
  if (config.mid_block_type !== 'UNetMidBlock2DCrossAttn')
    refuse('mid_block_type', config.mid_block_type, 'Stable Diffusion single files have a UNetMidBlock2DCrossAttn');
  if (config.num_class_embeds !== null || config.class_embed_type !== null) {
    refuse(
      config.num_class_embeds !== null ? 'num_class_embeds' : 'class_embed_type',
      config.num_class_embeds ?? config.class_embed_type,
      'original-layout Stable Diffusion checkpoints have no class embedding',
    );
  }
  if (config.time_embedding_type !== 'positional') refuse('time_embedding_type', config.time_embedding_type, 'Stable Diffusion uses "positional"');
  const depths = transformerDepths(config, file);
  // The layout numbers transformer blocks per level: one depth for every layer of a block.
  const blockDepth = (perLayer: readonly number[], field: string, found: unknown): number => {
    if (perLayer.some((d) => d !== perLayer[0])) refuse(field, found, 'original-layout checkpoints have one transformer depth for every layer of a block');
    return perLayer[0]!;
  };
  const downDepths = config.transformer_layers_per_block;
  const transformerLayers = depths.down.map((d, i) =>
    blockDepth(d, `transformer_layers_per_block[${i}]`, Array.isArray(downDepths) ? downDepths[i] : downDepths),
  );
  const transformerLayersUp = depths.up.map((d, i) =>
    blockDepth(d, `reverse_transformer_layers_per_block[${i}]`, config.reverse_transformer_layers_per_block?.[i]),
  );
  return {
    blockOutChannels: config.block_out_channels,
    layersPerBlock: lpb[0]!,
    downAttention: down,
    upAttention: up,
    transformerLayersDown: transformerLayers,
    transformerLayersUp,
    transformerLayersMid: depths.mid,
  };
}

export function vaeLayout(json: unknown, file: string): VaeLayout {
  const { config } = parseVaeConfig(json, file);
  return {
    blockOutChannels: config.block_out_channels,
    layersPerBlock: config.layers_per_block,
    midBlockAttention: config.mid_block_add_attention,
    quantConv: config.use_quant_conv,
    postQuantConv: config.use_post_quant_conv,
  };
}

/**
 * The text encoder's layout. Its single-file style follows the activation: OpenAI's CLIP (SD 1.x) uses
 * quick_gelu, OpenCLIP's towers (SD 2.x's ViT-H/14) use gelu; diffusers' conversion script tells them
 * apart by depth instead (a 23rd layer), which a smaller SD 2.x-style model would not have. Reading a
 * file, the file's own keys decide (see withTextEncoderStyle); this is the style written.
 */
export function textEncoderLayout(json: unknown, file: string): TextEncoderLayout {
  const { config } = parseClipTextConfig(json, file);
  return { numHiddenLayers: config.num_hidden_layers, hiddenSize: config.hidden_size, style: config.hidden_act === 'gelu' ? 'open-clip' : 'openai-clip' };
}

/** The layout with the text encoder read in `style` (a file's own keys say which style it has). */
export function withTextEncoderStyle(layout: LdmLayout, style: TextEncoderStyle): LdmLayout {
  return layout.textEncoder.style === style ? layout : { ...layout, textEncoder: { ...layout.textEncoder, style } };
}

/** The key layout of a single file whose models have the configs of the diffusers folder `dir`. */
export function readLdmLayout(dir: string): LdmLayout {
  if (typeof dir !== 'string' || dir.length === 0 || !fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new ConfigError(
      `Expected a diffusers folder with ${Object.values(SINGLE_FILE_CONFIG_FILES).join(', ')} for the single-file configs but received ${JSON.stringify(dir)}`,
    );
  }
  const file = (c: keyof typeof SINGLE_FILE_CONFIG_FILES): string => nodePath.join(dir, SINGLE_FILE_CONFIG_FILES[c]);
  const unetFile = file('unet');
  const { config } = parseUNetConfig(readJson(unetFile), unetFile);
  if (config._class_name !== 'UNet2DConditionModel') {
    throw new ConfigError(`${unetFile}: "_class_name" is "${config._class_name}"; a Stable Diffusion single file holds a UNet2DConditionModel`);
  }
  return {
    unet: unetLayout(config, unetFile),
    vae: vaeLayout(readJson(file('vae')), file('vae')),
    textEncoder: textEncoderLayout(readJson(file('text_encoder')), file('text_encoder')),
  };
}
