/** The recipe's `lora` section: LoRA adapters instead of full-weight fine-tuning. Pure. */
import { z } from 'zod';

export const loraOptionsSchema = z
  .object({
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
    /** Extra target layers: globs (`*`, `**`) or `re:` patterns over module names (parameter names without `.weight`). */
    targets: z.array(z.string().min(1)).default([]),
    /** File format of the saved adapter. */
    format: z.enum(['peft', 'kohya']).default('peft'),
    /** Also write the U-Net with the adapter merged into its weights. */
    saveMerged: z.boolean().default(false),
  })
  .strict();

export type LoraOptions = z.infer<typeof loraOptionsSchema>;
