/**
 * The recipe's `dreambooth` section (diffusers' train_dreambooth.py): the instance images (the recipe's
 * data) are captioned with `instancePrompt`; with `classPrompt` and `classData`, prior preservation
 * trains on as many class images of the same step, weighted by `priorLossWeight`, and the base pipeline
 * generates the class images the folder lacks. Pure.
 */
import { z } from 'zod';
import { SCHEDULER_CLASSES } from './scheduler';

const posInt = z.number().int().positive();

/** How missing class images are generated: txt2img with the base pipeline. Every field is part of the cache key but batchSize. */
export const classGenerationSchema = z
  .object({
    /** Denoising steps (StableDiffusionPipeline's default). */
    steps: posInt.default(50),
    /** Classifier-free guidance scale (≤ 1: off). */
    guidanceScale: z.number().finite().default(7.5),
    /** Image k starts from noise drawn with seed + k, so it is the same whatever the batch it is generated in. */
    seed: z.number().int().nonnegative().max(0xffffffff).default(0),
    /** Images generated at once (diffusers' --sample_batch_size). */
    batchSize: posInt.default(4),
    /** Another scheduler class, configured from the pipeline's scheduler config; null: the pipeline's own. */
    scheduler: z.enum(SCHEDULER_CLASSES).nullable().default(null),
  })
  .strict();

export const dreamboothSchema = z
  .object({
    /** The caption of every instance image (unless the data folder has captions), e.g. "a photo of sks dog". */
    instancePrompt: z.string().min(1),
    /** Prior preservation: the class images' caption, e.g. "a photo of dog". */
    classPrompt: z.string().min(1).optional(),
    /** Prior preservation: a folder of class images; what it lacks of numClassImages is generated into it. */
    classData: z.string().min(1).optional(),
    /** Class images used (the first ones of the folder, in sorted order). */
    numClassImages: posInt.default(100),
    /** The class samples' weight: loss = instance MSE + priorLossWeight × class MSE. */
    priorLossWeight: z.number().finite().nonnegative().default(1),
    classGeneration: classGenerationSchema.default({}),
  })
  .strict()
  .superRefine((d, ctx) => {
    if ((d.classPrompt === undefined) !== (d.classData === undefined))
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: [d.classPrompt === undefined ? 'classPrompt' : 'classData'],
        message: 'prior preservation needs both classPrompt and classData (give neither to train on the instance images alone)',
      });
  });

export type DreamBoothOptions = z.infer<typeof dreamboothSchema>;
export type ClassGenerationOptions = z.infer<typeof classGenerationSchema>;
