/** The recipe's `lora` section: LoRA adapters instead of full-weight fine-tuning. Pure. */
import { z } from 'zod';

/** The CLIP text encoder's Linear layers adapters may go on (peft's names, in every encoder layer). */
export const TEXT_ENCODER_LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'] as const;

/** `lora.textEncoder`: adapters on the text encoder too, trained with the U-Net's (dropout and init as the U-Net's). */
export const textEncoderLoraSchema = z
  .object({
    rank: z.number().int().positive().default(4),
    /** Scale numerator: alpha/rank (default: alpha = rank). */
    alpha: z.number().positive().optional(),
    /** Layers of every encoder layer: self-attention's q/k/v/out_proj (diffusers' choice) and the MLP's fc1/fc2. */
    targets: z.array(z.enum(TEXT_ENCODER_LORA_TARGETS)).nonempty().default(['q_proj', 'k_proj', 'v_proj', 'out_proj']),
  })
  .strict();

export type TextEncoderLoraOptions = z.infer<typeof textEncoderLoraSchema>;

/**
 * Named LoRA set-ups (`lora: { preset: "locon" }`); a field written beside `preset` overrides the preset's.
 * locon: rank 8, alpha 16 (scale 2) on the attention projections, the resnets' convolutions and the down/up
 * samplers' (LyCORIS's LoCon targets): the whole U-Net adapts through 9.4% of the MNIST base's parameters;
 * recipes/lora-preset-search.json measures it against full fine-tuning, each at its best learning rate
 * (README, "A LoRA preset that trains few parameters"). Without the samplers it was 8.5% and 6.5% behind.
 */
export const LORA_PRESETS = {
  locon: { rank: 8, alpha: 16, attention: true, convolutions: true, resamplers: true },
} as const satisfies Record<string, { rank: number; alpha: number; attention: boolean; convolutions: boolean; resamplers: boolean }>;

export type LoraPresetName = keyof typeof LORA_PRESETS;
const LORA_PRESET_NAMES = Object.keys(LORA_PRESETS) as [LoraPresetName, ...LoraPresetName[]];

/** The preset's values under the section's own (an unknown name is left for the schema to refuse). */
function expandLoraPreset(section: unknown): unknown {
  if (section === null || typeof section !== 'object' || Array.isArray(section)) return section;
  const preset = (section as { preset?: unknown }).preset;
  if (typeof preset !== 'string' || !Object.hasOwn(LORA_PRESETS, preset)) return section;
  return { ...LORA_PRESETS[preset as LoraPresetName], ...section };
}

const loraOptionsObject = z
  .object({
    /** A named set-up (LORA_PRESETS) whose values the other fields override. */
    preset: z.enum(LORA_PRESET_NAMES).optional(),
    rank: z.number().int().positive().default(4),
    /** Scale numerator: the update is alpha/rank · B·A (default: alpha = rank, scale 1). */
    alpha: z.number().positive().optional(),
    dropout: z.number().min(0).lt(1).default(0),
    /** PEFT's default ("kaiming": A kaiming-uniform, B zero) or "gaussian" (A ~ N(0, 1/rank)). */
    init: z.enum(['kaiming', 'gaussian']).default('kaiming'),
    /** Attention projections to_q, to_k, to_v, to_out.0 (diffusers' and PEFT's choice for SD). */
    attention: z.boolean().default(true),
    /** Also the feed-forward layers (ff.net.0.proj, ff.net.2). */
    feedForward: z.boolean().default(false),
    /** Also the resnets' convolutions (conv1, conv2, conv_shortcut): LoCon-style. */
    convolutions: z.boolean().default(false),
    /** Also the down/upsamplers' convolutions (downsamplers.N.conv, upsamplers.N.conv), which LyCORIS's LoCon adapts too. */
    resamplers: z.boolean().default(false),
    /** Extra target layers: globs (`*`, `**`) or `re:` patterns over module names (parameter names without `.weight`). */
    targets: z.array(z.string().min(1)).default([]),
    /** File format of the saved adapter. */
    format: z.enum(['peft', 'kohya']).default('peft'),
    /** Also write the U-Net with the adapter merged into its weights (and the text encoder with its own, when it has some). */
    saveMerged: z.boolean().default(false),
    /** Adapters on the text encoder too (a text-to-image pipeline), saved in the same files; null: the encoder stays frozen. */
    textEncoder: textEncoderLoraSchema.nullable().default(null),
  })
  .strict();

export const loraOptionsSchema = z.preprocess(expandLoraPreset, loraOptionsObject);

export type LoraOptions = z.infer<typeof loraOptionsSchema>;
