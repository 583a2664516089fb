/**
 * The key table between original-layout (CompVis / LDM) Stable Diffusion checkpoints and diffusers'
 * state dicts, built from the models' structure (see test/fixtures/diffusers/README.md,
 * "Single-file checkpoint"): block numbers follow layers_per_block and the number of levels, as in
 * the original LDM code, so they are right for any such structure, not only SD's 4 levels with 2
 * layers each. One table serves both directions. The text encoder comes in two layouts: SD 1.x keeps
 * transformers' CLIPTextModel keys under `cond_stage_model.transformer.`; SD 2.x keeps OpenCLIP's own
 * (`cond_stage_model.model.`, q/k/v fused in one `in_proj_weight`), as
 * test/fixtures/real-configs/key-table-sd-v2-1.json records diffusers' conversion script writing it. Pure.
 */

export type LdmComponent = 'unet' | 'vae' | 'text_encoder';
export const LDM_COMPONENTS: readonly LdmComponent[] = ['unet', 'vae', 'text_encoder'];

/** Where each component sits in a single file (SD 1.x's text encoder; SD 2.x's is under OPEN_CLIP_PREFIX). */
export const LDM_PREFIXES: Readonly<Record<LdmComponent, string>> = {
  unet: 'model.diffusion_model.',
  vae: 'first_stage_model.',
  text_encoder: 'cond_stage_model.transformer.',
};

/** SD 2.x's OpenCLIP text encoder (FrozenOpenCLIPEmbedder's `model`, its vision tower deleted). */
export const OPEN_CLIP_PREFIX = 'cond_stage_model.model.';

/**
 * How the text encoder's tensors are named in the single file: "openai-clip" (SD 1.x: transformers'
 * CLIPTextModel keys after `cond_stage_model.transformer.`) or "open-clip" (SD 2.x: OpenCLIP's
 * `token_embedding`, `positional_embedding`, `transformer.resblocks.N.…`, `ln_final`).
 */
export type TextEncoderStyle = 'openai-clip' | 'open-clip';

/** The single-file prefix of a component. */
export function ldmPrefix(component: LdmComponent, style: TextEncoderStyle): string {
  return component === 'text_encoder' && style === 'open-clip' ? OPEN_CLIP_PREFIX : LDM_PREFIXES[component];
}

/** One tensor: its key in the single file and in the component's diffusers state dict. */
export interface LdmKey {
  readonly component: LdmComponent;
  /** Full key in the single file, prefix included. */
  readonly ldm: string;
  /** Key in the component's diffusers state dict. */
  readonly diffusers: string;
  /** A VAE attention weight: `[C, C, 1, 1]` (1×1 conv) in the single file, `[C, C]` (Linear) in diffusers. */
  readonly reshape?: 'conv1x1-linear';
  /** May be absent on both sides (the text encoder's position_ids buffer). */
  readonly optional?: boolean;
  /**
   * The diffusers tensor is part `index` of `of` equal row blocks of the single-file tensor (OpenCLIP's
   * fused q/k/v: `in_proj_weight` [3·width, width] is q_proj, k_proj, v_proj stacked along dim 0); `rows`
   * is each part's first dimension, the text encoder's width. Several keys then share one `ldm`.
   */
  readonly part?: { readonly index: number; readonly of: number; readonly rows: number };
}

/** The U-Net's structure as far as its keys depend on it. */
export interface UNetLayout {
  blockOutChannels: readonly number[];
  layersPerBlock: number;
  /** Per down block (level 0 first): a CrossAttnDownBlock2D. */
  downAttention: readonly boolean[];
  /** Per up block (lowest resolution first, as diffusers orders them): a CrossAttnUpBlock2D. */
  upAttention: readonly boolean[];
  /** Transformer blocks per attention, per down block, per up block, and in the mid block. */
  transformerLayersDown: readonly number[];
  transformerLayersUp: readonly number[];
  transformerLayersMid: number;
}

export interface VaeLayout {
  blockOutChannels: readonly number[];
  layersPerBlock: number;
  midBlockAttention: boolean;
  quantConv: boolean;
  postQuantConv: boolean;
}

export interface TextEncoderLayout {
  numHiddenLayers: number;
  /** hidden_size: the width at which OpenCLIP's fused q/k/v is split. */
  hiddenSize: number;
  style: TextEncoderStyle;
}

export interface LdmLayout {
  unet: UNetLayout;
  vae: VaeLayout;
  textEncoder: TextEncoderLayout;
}

type Push = (ldm: string, diffusers: string, extra?: Pick<LdmKey, 'reshape' | 'optional' | 'part'>) => void;

function weightAndBias(push: Push, ldm: string, diffusers: string): void {
  push(`${ldm}.weight`, `${diffusers}.weight`);
  push(`${ldm}.bias`, `${diffusers}.bias`);
}

/** U-Net ResnetBlock2D: LDM's in_layers / emb_layers / out_layers / skip_connection. */
function unetResnet(push: Push, ldm: string, diffusers: string, inChannels: number, outChannels: number): void {
  const parts: Array<[string, string]> = [
    ['in_layers.0', 'norm1'],
    ['in_layers.2', 'conv1'],
    ['emb_layers.1', 'time_emb_proj'],
    ['out_layers.0', 'norm2'],
    ['out_layers.3', 'conv2'],
  ];
  if (inChannels !== outChannels) parts.push(['skip_connection', 'conv_shortcut']);
  for (const [l, d] of parts) weightAndBias(push, `${ldm}.${l}`, `${diffusers}.${d}`);
}

/** Transformer2DModel with BasicTransformerBlocks: the same names on both sides (q/k/v without bias). */
function transformer(push: Push, ldm: string, diffusers: string, blocks: number): void {
  const same = (name: string): void => weightAndBias(push, `${ldm}.${name}`, `${diffusers}.${name}`);
  same('norm');
  same('proj_in');
  for (let k = 0; k < blocks; k++) {
    const b = `transformer_blocks.${k}`;
    for (const attn of ['attn1', 'attn2']) {
      for (const qkv of ['to_q', 'to_k', 'to_v']) push(`${ldm}.${b}.${attn}.${qkv}.weight`, `${diffusers}.${b}.${attn}.${qkv}.weight`);
      same(`${b}.${attn}.to_out.0`);
    }
    for (const name of ['norm1', 'norm2', 'norm3', 'ff.net.0.proj', 'ff.net.2']) same(`${b}.${name}`);
  }
  same('proj_out');
}

function unetKeys(u: UNetLayout, push: Push): void {
  const L = u.layersPerBlock;
  const ch = u.blockOutChannels;
  const levels = ch.length;
  weightAndBias(push, 'time_embed.0', 'time_embedding.linear_1');
  weightAndBias(push, 'time_embed.2', 'time_embedding.linear_2');
  weightAndBias(push, 'input_blocks.0.0', 'conv_in');
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < L; j++) {
      const block = `input_blocks.${(L + 1) * i + j + 1}`;
      const inChannels = j === 0 ? ch[Math.max(i - 1, 0)]! : ch[i]!;
      unetResnet(push, `${block}.0`, `down_blocks.${i}.resnets.${j}`, inChannels, ch[i]!);
      if (u.downAttention[i]) transformer(push, `${block}.1`, `down_blocks.${i}.attentions.${j}`, u.transformerLayersDown[i]!);
    }
    if (i < levels - 1) weightAndBias(push, `input_blocks.${(L + 1) * (i + 1)}.0.op`, `down_blocks.${i}.downsamplers.0.conv`);
  }
  const deepest = ch[levels - 1]!;
  unetResnet(push, 'middle_block.0', 'mid_block.resnets.0', deepest, deepest);
  transformer(push, 'middle_block.1', 'mid_block.attentions.0', u.transformerLayersMid);
  unetResnet(push, 'middle_block.2', 'mid_block.resnets.1', deepest, deepest);
  const reversed = [...ch].reverse();
  for (let i = 0; i < levels; i++) {
    const out = reversed[i]!;
    const prevOut = reversed[Math.max(i - 1, 0)]!;
    const skipLast = reversed[Math.min(i + 1, levels - 1)]!;
    for (let j = 0; j <= L; j++) {
      const block = `output_blocks.${(L + 1) * i + j}`;
      const skip = j === L ? skipLast : out;
      const inChannels = (j === 0 ? prevOut : out) + skip;
      unetResnet(push, `${block}.0`, `up_blocks.${i}.resnets.${j}`, inChannels, out);
      if (u.upAttention[i]) transformer(push, `${block}.1`, `up_blocks.${i}.attentions.${j}`, u.transformerLayersUp[i]!);
      if (j === L && i < levels - 1) weightAndBias(push, `${block}.${u.upAttention[i] ? 2 : 1}.conv`, `up_blocks.${i}.upsamplers.0.conv`);
    }
  }
  weightAndBias(push, 'out.0', 'conv_norm_out');
  weightAndBias(push, 'out.2', 'conv_out');
}

/** VAE ResnetBlock2D: no time embedding; LDM calls the shortcut nin_shortcut. */
function vaeResnet(push: Push, ldm: string, diffusers: string, inChannels: number, outChannels: number): void {
  for (const name of ['norm1', 'conv1', 'norm2', 'conv2']) weightAndBias(push, `${ldm}.${name}`, `${diffusers}.${name}`);
  if (inChannels !== outChannels) weightAndBias(push, `${ldm}.nin_shortcut`, `${diffusers}.conv_shortcut`);
}

function vaeMid(push: Push, v: VaeLayout, side: 'encoder' | 'decoder', channels: number): void {
  vaeResnet(push, `${side}.mid.block_1`, `${side}.mid_block.resnets.0`, channels, channels);
  if (v.midBlockAttention) {
    const ldm = `${side}.mid.attn_1`;
    const d = `${side}.mid_block.attentions.0`;
    weightAndBias(push, `${ldm}.norm`, `${d}.group_norm`);
    for (const [l, dn] of [
      ['q', 'to_q'],
      ['k', 'to_k'],
      ['v', 'to_v'],
      ['proj_out', 'to_out.0'],
    ] as const) {
      push(`${ldm}.${l}.weight`, `${d}.${dn}.weight`, { reshape: 'conv1x1-linear' });
      push(`${ldm}.${l}.bias`, `${d}.${dn}.bias`);
    }
  }
  vaeResnet(push, `${side}.mid.block_2`, `${side}.mid_block.resnets.1`, channels, channels);
}

function vaeKeys(v: VaeLayout, push: Push): void {
  const ch = v.blockOutChannels;
  const levels = ch.length;
  const L = v.layersPerBlock;
  const same = (name: string): void => weightAndBias(push, name, name);
  same('encoder.conv_in');
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < L; j++) {
      vaeResnet(push, `encoder.down.${i}.block.${j}`, `encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? ch[Math.max(i - 1, 0)]! : ch[i]!, ch[i]!);
    }
    if (i < levels - 1) weightAndBias(push, `encoder.down.${i}.downsample.conv`, `encoder.down_blocks.${i}.downsamplers.0.conv`);
  }
  vaeMid(push, v, 'encoder', ch[levels - 1]!);
  weightAndBias(push, 'encoder.norm_out', 'encoder.conv_norm_out');
  same('encoder.conv_out');
  if (v.quantConv) same('quant_conv');
  if (v.postQuantConv) same('post_quant_conv');
  same('decoder.conv_in');
  vaeMid(push, v, 'decoder', ch[levels - 1]!);
  const reversed = [...ch].reverse();
  for (let i = 0; i < levels; i++) {
    // The decoder's levels are numbered from the lowest resolution in diffusers, from the highest in LDM.
    const up = `decoder.up.${levels - 1 - i}`;
    const out = reversed[i]!;
    for (let j = 0; j <= L; j++) {
      vaeResnet(push, `${up}.block.${j}`, `decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? reversed[Math.max(i - 1, 0)]! : out, out);
    }
    if (i < levels - 1) weightAndBias(push, `${up}.upsample.conv`, `decoder.up_blocks.${i}.upsamplers.0.conv`);
  }
  weightAndBias(push, 'decoder.norm_out', 'decoder.conv_norm_out');
  same('decoder.conv_out');
}

/** transformers' CLIPTextModel: the key after the prefix is the transformers key. */
function textEncoderKeys(t: TextEncoderLayout, push: Push): void {
  const same = (name: string): void => weightAndBias(push, name, name);
  push('text_model.embeddings.token_embedding.weight', 'text_model.embeddings.token_embedding.weight');
  push('text_model.embeddings.position_embedding.weight', 'text_model.embeddings.position_embedding.weight');
  // transformers ≤ 4.30 saved this buffer (0…76); later versions neither save nor need it.
  push('text_model.embeddings.position_ids', 'text_model.embeddings.position_ids', { optional: true });
  for (let i = 0; i < t.numHiddenLayers; i++) {
    const layer = `text_model.encoder.layers.${i}`;
    for (const name of ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.out_proj', 'layer_norm1', 'mlp.fc1', 'mlp.fc2', 'layer_norm2']) {
      same(`${layer}.${name}`);
    }
  }
  same('text_model.final_layer_norm');
}

/** What one OpenCLIP residual block calls each CLIPEncoderLayer tensor (q/k/v apart: they are fused). */
const OPEN_CLIP_BLOCK: ReadonlyArray<readonly [string, string]> = [
  ['attn.out_proj', 'self_attn.out_proj'],
  ['ln_1', 'layer_norm1'],
  ['mlp.c_fc', 'mlp.fc1'],
  ['mlp.c_proj', 'mlp.fc2'],
  ['ln_2', 'layer_norm2'],
];
const QKV = ['q_proj', 'k_proj', 'v_proj'] as const;

/**
 * transformers' CLIPTextModel in OpenCLIP's layout, as diffusers' convert_diffusers_to_original_stable_diffusion.py
 * writes it (the key after the prefix is OpenCLIP's): q, k and v are rows [0, w), [w, 2w), [2w, 3w) of
 * `attn.in_proj_weight` / `in_proj_bias`, w the width (hidden_size — not projection_dim, where diffusers
 * v0.31's loader splits when the file has no text_projection).
 */
function openClipTextEncoderKeys(t: TextEncoderLayout, push: Push): void {
  push('token_embedding.weight', 'text_model.embeddings.token_embedding.weight');
  push('positional_embedding', 'text_model.embeddings.position_embedding.weight');
  // Where diffusers' script puts this buffer when the folder has it (transformers ≤ 4.30); OpenCLIP has none.
  push('transformer.text_model.embeddings.position_ids', 'text_model.embeddings.position_ids', { optional: true });
  for (let i = 0; i < t.numHiddenLayers; i++) {
    const block = `transformer.resblocks.${i}`;
    const layer = `text_model.encoder.layers.${i}`;
    for (const [suffix, fused] of [
      ['weight', 'in_proj_weight'],
      ['bias', 'in_proj_bias'],
    ] as const) {
      QKV.forEach((proj, index) => push(`${block}.attn.${fused}`, `${layer}.self_attn.${proj}.${suffix}`, { part: { index, of: 3, rows: t.hiddenSize } }));
    }
    for (const [open, hf] of OPEN_CLIP_BLOCK) weightAndBias(push, `${block}.${open}`, `${layer}.${hf}`);
  }
  weightAndBias(push, 'ln_final', 'text_model.final_layer_norm');
}

/**
 * OpenCLIP tensors that diffusers' CLIPTextModel does not hold but an SD 2.x single file does, kept to
 * write the file back whole: the residual blocks past num_hidden_layers (the 24th of ViT-H, which SD 2.x
 * skips: it conditions on the penultimate layer, so diffusers' config has 23), `text_projection` and
 * `logit_scale`. Anything else unknown stays an error.
 */
export function isKeptOpenClipKey(key: string, t: TextEncoderLayout): boolean {
  if (t.style !== 'open-clip' || !key.startsWith(OPEN_CLIP_PREFIX)) return false;
  const rest = key.slice(OPEN_CLIP_PREFIX.length);
  if (rest === 'text_projection' || rest === 'logit_scale') return true;
  const block = /^transformer\.resblocks\.(\d+)\.(.+)$/.exec(rest);
  if (block === null || Number(block[1]) < t.numHiddenLayers) return false;
  const names = ['attn.in_proj_weight', 'attn.in_proj_bias', ...OPEN_CLIP_BLOCK.flatMap(([open]) => [`${open}.weight`, `${open}.bias`])];
  return names.includes(block[2]!);
}

/** Every tensor of a single-file checkpoint of this structure, U-Net first, then VAE, then text encoder. */
export function ldmKeyTable(layout: LdmLayout): LdmKey[] {
  const keys: LdmKey[] = [];
  const openClip = layout.textEncoder.style === 'open-clip';
  const builders: Array<[LdmComponent, (push: Push) => void]> = [
    ['unet', (push) => unetKeys(layout.unet, push)],
    ['vae', (push) => vaeKeys(layout.vae, push)],
    ['text_encoder', (push) => (openClip ? openClipTextEncoderKeys : textEncoderKeys)(layout.textEncoder, push)],
  ];
  for (const [component, build] of builders) {
    const prefix = ldmPrefix(component, layout.textEncoder.style);
    build((ldm, diffusers, extra) => keys.push({ component, ldm: prefix + ldm, diffusers, ...extra }));
  }
  return keys;
}
