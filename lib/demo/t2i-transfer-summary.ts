/**
 * The text-to-image transfer demo's recipe (recipes/demo-t2i.json) and summary.json: zod schemas, types and
 * the recipe's validation (t2i-transfer.ts runs it, t2i-transfer-report.ts renders it).
 */
import * as path from 'node:path';
import { z } from 'zod';
import { expectConfigObject, parseConfigObject } from '../config/schema-object';
import { ConfigError } from '../errors';
import { captionedClass, T2I_HELD_BACK_CLASSES } from './t2i-data';

/** How a summary's sample grids were drawn (the t2i base card's and the transfer demo's). */
export const sampleGridFields = {
  perPrompt: z.number().int().positive(),
  steps: z.number().int().positive(),
  guidanceScale: z.number(),
  seed: z.number().int().nonnegative(),
  scheduler: z.string(),
};

const posInt = z.number().int().positive();
const lr = z.number().positive().finite();

/** recipes/demo-t2i.json: the base, the target data, each run's budget and learning rate, the validations and the samples. */
export const t2iDemoRecipeSchema = z
  .object({
    /** The pretrained pipeline (relative to the recipe file). */
    base: z.string().min(1),
    /** The target classes (t2i-data.ts keys): ones the base never saw. */
    classes: z
      .array(z.string().min(1))
      .nonempty()
      .default([...T2I_HELD_BACK_CLASSES] as [string, ...string[]]),
    data: z
      .object({
        /** Training images per class (the first of the built-in train split). */
        trainPerClass: posInt,
        /** Held-out images per class (the first of the test split). */
        testPerClass: posInt,
        /** Captions replaced by "" (classifier-free guidance), as in pretraining. */
        captionDropout: z.number().min(0).lt(1).default(0.1),
      })
      .strict(),
    /** Optimizer steps of each run. */
    steps: posInt,
    batchSize: posInt,
    seed: z.number().int().nonnegative().default(0),
    /** The full fine-tune of the pretrained U-Net: a constant low learning rate. */
    finetune: z.object({ lr }).strict(),
    /** The same architecture from random weights: the pretraining's rate, cosine with warmup. */
    scratch: z.object({ lr, warmupSteps: z.number().int().nonnegative() }).strict(),
    /** LoRA adapters on the pretrained U-Net (lib/config/lora.ts's fields of the same names). */
    lora: z
      .object({ lr, rank: posInt, attention: z.boolean().default(true), convolutions: z.boolean().default(false), feedForward: z.boolean().default(false) })
      .strict(),
    /** Held-out loss (right and wrong captions) every `every` steps on the first `samples` held-out images. */
    validation: z.object({ every: posInt, samples: posInt }).strict(),
    /** The per-prompt grids: one row per target class prompt. */
    samples: z.object({ perPrompt: posInt.max(16), steps: posInt, guidanceScale: z.number().finite(), seed: z.number().int().nonnegative() }).strict(),
    /** Guidance scales of the fine-tuned pipeline's sweep (≤ 1: no guidance). */
    guidanceSweep: z.array(z.number().finite().nonnegative()).nonempty(),
  })
  .strict();

export type T2iDemoRecipe = z.infer<typeof t2iDemoRecipeSchema>;

/** A loss in the summary: null where it was not finite (JSON has no NaN). */
const loss = z.number().nullable();

const steerSchema = z
  .object({
    /** Held-out loss with each image's own caption … */
    right: loss,
    /** … and with another target class's caption (same images, noise and timesteps). */
    wrong: loss,
    /** wrong − right: > 0 when the captions steer the model towards the right images. */
    gap: loss,
    /** gap ÷ right. */
    relativeGap: loss,
  })
  .strict();

const runSchema = z
  .object({
    name: z.enum(['fine-tuned', 'from scratch', 'LoRA']),
    /** The run's output folder, relative to the demo's (a whole pipeline). */
    folder: z.string().min(1),
    description: z.string().min(1),
    lr: z.number().positive(),
    lrSchedule: z.string().min(1),
    trainableParams: z.number().int().positive(),
    /** Of the U-Net's parameters. */
    trainablePercent: z.number().positive(),
    steps: z.number().int().nonnegative(),
    seconds: z.number().nonnegative(),
    /** Wall time ÷ steps, validations and the first latent encoding included. */
    secondsPerStep: z.number().nonnegative(),
    heldOutLoss: loss,
    curve: z.array(z.object({ step: z.number().int().nonnegative(), loss, wrongCaptionLoss: loss }).strict()).nonempty(),
    /** At the last step. */
    captionsSteer: steerSchema,
  })
  .strict();

export type T2iDemoRun = z.infer<typeof runSchema>;
/** Held-out loss with the right and with another class's captions at one validation. */
export type SteerPoint = z.infer<typeof steerSchema>;

/** summary.json of `npm run demo -- --t2i` (the tests parse it with this schema too). */
export const t2iDemoSummarySchema = z
  .object({
    kind: z.literal('t2i-transfer'),
    base: z.string().min(1),
    date: z.string().min(1),
    machine: z.string().min(1),
    target: z
      .object({
        classes: z
          .array(z.object({ key: z.string(), prompt: z.string(), train: z.number().int().positive(), test: z.number().int().positive() }).strict())
          .nonempty(),
        trainImages: z.number().int().positive(),
        heldOutImages: z.number().int().positive(),
        captionDropout: z.number().min(0),
      })
      .strict(),
    /** sha256 of the frozen text encoder's and VAE's weights: the same before and after every run. */
    frozen: z.object({ textEncoder: z.string().length(64), vae: z.string().length(64) }).strict(),
    steps: z.number().int().positive(),
    batchSize: z.number().int().positive(),
    validation: z.object({ every: z.number().int().positive(), samples: z.number().int().positive() }).strict(),
    /** fine-tuned, from scratch, LoRA. */
    runs: z.tuple([runSchema, runSchema, runSchema]),
    /** The base pipeline on the target's held-out images before any training (the fine-tuned run's step 0). */
    baseHeldOut: steerSchema,
    /** The first step at which the fine-tuned curve reaches scratch's final held-out loss (linear between validations); null: never. */
    stepsToMatchScratch: z.number().nonnegative().nullable(),
    /** One grid per target prompt: a row per model (the base first: what it makes of words it never saw), every row from the same noise. */
    samples: z
      .object({
        grids: z.array(z.object({ key: z.string(), prompt: z.string(), file: z.string().min(1) }).strict()).nonempty(),
        rows: z.array(z.string()).nonempty(),
        ...sampleGridFields,
      })
      .strict(),
    /** The fine-tuned pipeline at each guidance scale: one grid, a row per (prompt, scale), every row from the same noise. */
    guidanceSweep: z.object({ scales: z.array(z.number()).nonempty(), file: z.literal('guidance.png') }).strict(),
    plots: z.object({ loss: z.literal('loss.png'), captions: z.literal('captions.png') }).strict(),
    seconds: z.object({ total: z.number().nonnegative(), training: z.number().nonnegative(), sampling: z.number().nonnegative() }).strict(),
  })
  .strict();

export type T2iDemoSummary = z.infer<typeof t2iDemoSummarySchema>;

/** Validates the recipe; `base` resolves against `file`'s folder. */
export function parseT2iDemoRecipe(raw: unknown, file: string): T2iDemoRecipe {
  const recipe = parseConfigObject(t2iDemoRecipeSchema, expectConfigObject(raw, file), file);
  recipe.classes.forEach((k, i) => captionedClass(k, `${file}: "classes[${i}]"`));
  if (new Set(recipe.classes).size !== recipe.classes.length)
    throw new ConfigError(`${file}: "classes": each class once, found ${JSON.stringify(recipe.classes)}`);
  if (recipe.classes.length < 2)
    throw new ConfigError(
      `${file}: "classes": expected two target classes or more (the wrong-caption loss swaps in another class's caption) but found ${recipe.classes.length}`,
    );
  if (recipe.scratch.warmupSteps > recipe.steps)
    throw new ConfigError(
      `${file}: "scratch.warmupSteps": expected at most "steps" (${recipe.steps}) but found ${recipe.scratch.warmupSteps}; the lr would never reach scratch.lr`,
    );
  return { ...recipe, base: path.resolve(path.dirname(file), recipe.base) };
}
