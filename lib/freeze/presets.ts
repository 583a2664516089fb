/**
 * Named freezing presets: each is an ordered list of rules applied, like every other rule, from
 * all-frozen with the last matching rule winning. They are written for both UNet2DModel and
 * UNet2DConditionModel names; a preset rule that matches nothing in a given model (say
 * `class_embedding.**` without class conditioning) is not an error — only a user's own patterns must
 * match. The selections on the fixture models are pinned by test/unit/freeze-presets.test.ts.
 */
import { PRESET_NAMES, type PresetName } from '../config/freeze';
import { NORM_PARAMETER_REGEX_SOURCE } from './param-kinds';

export type RuleAction = 'train' | 'freeze';

export interface PresetRule {
  readonly action: RuleAction;
  readonly pattern: string;
}

/** The conditioning embeddings diffusers' U-Nets may have next to the time embedding. */
const CONDITIONING_EMBEDDINGS = ['time_embedding.**', 'class_embedding.**', 'add_embedding.**'] as const;

const train = (pattern: string): PresetRule => ({ action: 'train', pattern });
const freeze = (pattern: string): PresetRule => ({ action: 'freeze', pattern });

export const PRESETS: Readonly<Record<PresetName, { readonly summary: string; readonly rules: readonly PresetRule[] }>> = {
  full: {
    summary: 'every parameter trains',
    rules: [train('**')],
  },
  'encoder-frozen': {
    // A deny-list: the encoder path (and the conditioning it is fed) is frozen, anything else trains.
    // On diffusers' U-Nets this is the same set as decoder-only; they differ only for a top-level
    // module outside these lists, which trains here and stays frozen under decoder-only.
    summary: 'everything except conv_in, the time/class/added-condition embeddings, encoder_hid_proj, the down blocks and the mid block',
    rules: [
      train('**'),
      freeze('conv_in.**'),
      ...CONDITIONING_EMBEDDINGS.map(freeze),
      freeze('encoder_hid_proj.**'),
      freeze('down_blocks.**'),
      freeze('mid_block.**'),
    ],
  },
  'decoder-only': {
    // An allow-list: the decoder path and the output head, nothing else.
    summary: 'only up_blocks.**, conv_norm_out.** and conv_out.**',
    rules: [train('up_blocks.**'), train('conv_norm_out.**'), train('conv_out.**')],
  },
  'attention-only': {
    // The Attention modules' own parameters: in UNet2DConditionModel the transformer blocks' attn1
    // (self) and attn2 (cross) — to_q, to_k, to_v, to_out.0 (and norm_cross / norm_q / norm_k when the
    // config has them); in UNet2DModel the Attention modules under `attentions.<i>` — group_norm, to_q,
    // to_k, to_v, to_out.0. Left out on purpose: the Transformer2DModel's norm, proj_in and proj_out
    // and the transformer blocks' norm1-3 and ff — proj_in/out are 1×1 channel mixers like any conv,
    // ff is the MLP (about half the transformer's weights), so including them would make this
    // "transformer-only". It also makes full-weight and LoRA runs touch the same matrices (LoRA's
    // default targets are to_q, to_k, to_v, to_out.0). UNet2DModel's group_norm is included because
    // it is a member of its Attention module (diffusers' Attention owns it), unlike SD's norm1/norm2.
    summary:
      'attention projections: attn1/attn2 to_q, to_k, to_v, to_out.0 (UNet2DConditionModel); attentions.<i> group_norm, to_q, to_k, to_v, to_out.0 (UNet2DModel)',
    rules: [
      train('**.attn1.**'),
      train('**.attn2.**'),
      train('**.attentions.*.group_norm.*'),
      train('**.attentions.*.to_q.*'),
      train('**.attentions.*.to_k.*'),
      train('**.attentions.*.to_v.*'),
      train('**.attentions.*.to_out.**'),
    ],
  },
  'bias-norm': {
    // DiffFit (Xie et al. 2023): biases, norm scales/shifts and the conditioning embeddings — about
    // 0.1–1% of a U-Net's weights, yet enough to move the model to a new domain.
    summary: 'every bias, every norm scale/shift (norm, norm1-3, group_norm, conv_norm_out, ...), the time/class/added-condition embeddings',
    rules: [train('**.bias'), train(`re:${NORM_PARAMETER_REGEX_SOURCE}`), ...CONDITIONING_EMBEDDINGS.map(train)],
  },
  none: {
    summary: 'no rules: start from all-frozen (use trainable or rules to choose)',
    rules: [],
  },
};

export function isPresetName(value: unknown): value is PresetName {
  return typeof value === 'string' && (PRESET_NAMES as readonly string[]).includes(value);
}
