/**
 * The training recipe: one zod-validated object, the same file the npm recipes read. Errors name the
 * field path (`train.lr`); relative paths resolve against the recipe file's folder; `--set a.b=value`
 * overrides parse the value as JSON when it is valid JSON, else take it as a string. Pure.
 */
import * as path from 'path';
import { z } from 'zod';
import { ConfigError } from '../errors';
import { dataOptionsSchema } from './data';
import { deviceSchema } from './device';
import { dreamboothSchema } from './dreambooth';
import { refusePrototypeKeys } from './field-path';
import { freezeOptionsSchema, type FreezeOptions } from './freeze';
import { lrScheduleSchema } from './lr-schedule';
import { resolveSchedulerName, SCHEDULER_CLASSES, SCHEDULER_SHORT_NAMES } from './scheduler';
import { loraOptionsSchema } from './lora';
import { textualInversionSchema } from './textual-inversion';
import { slowBf16Reason } from '../util/cpu';

const posInt = z.number().int().positive();

export const emaSchema = z
  .object({
    /** Upper bound of the EMA decay. */
    decay: z.number().min(0).max(1).default(0.9999),
    minDecay: z.number().min(0).max(1).default(0),
    /** Optimizer steps before the EMA starts averaging. */
    updateAfterStep: z.number().int().nonnegative().default(0),
    /** Optimizer steps between EMA updates. */
    updateEvery: posInt.default(1),
    /** decay = 1 − (1 + step / invGamma)^−power instead of (1 + step) / (10 + step). */
    warmup: z.boolean().default(false),
    invGamma: z.number().positive().default(1),
    power: z
      .number()
      .positive()
      .default(2 / 3),
    /** Where the averaged weights live: "model" (the U-Net's device) or "cpu" (host memory, to spare a GPU's). */
    device: z.enum(['model', 'cpu']).default('model'),
  })
  .strict();

export const trainSchema = z
  .object({
    /** Optimizer steps. */
    steps: posInt,
    /** Samples per micro-batch (per process, as in diffusers/accelerate). */
    batchSize: posInt.default(1),
    /** Micro-batches per optimizer step. */
    gradientAccumulation: posInt.default(1),
    /** Base learning rate (fine-tuning wants it low: 1e-5 … 1e-4). */
    lr: z.number().positive().finite(),
    /** The text encoder's learning rate when it trains (lora.textEncoder or freeze.textEncoder); null: train.lr. */
    textEncoderLr: z.number().positive().finite().nullable().default(null),
    lrSchedule: lrScheduleSchema.default({}),
    seed: z
      .number()
      .int()
      .nonnegative()
      .max(2 ** 53 - 1)
      .default(0),
    /** "bf16" autocast on CPU and CUDA, "fp16" autocast with loss scaling on CUDA. */
    mixedPrecision: z.enum(['no', 'bf16', 'fp16']).default('no'),
    /** Train in bf16 on a CPU without bf16 arithmetic (no AVX-512-BF16/AMX), where it is emulated 1.5–30× slower than float32; refused otherwise. */
    allowSlowBf16: z.boolean().default(false),
    gradientCheckpointing: z.boolean().default(false),
    channelsLast: z.boolean().default(false),
    /** <= 0 disables clipping. */
    maxGradNorm: z.number().default(1),
    adamBeta1: z.number().min(0).lt(1).default(0.9),
    adamBeta2: z.number().min(0).lt(1).default(0.999),
    adamEpsilon: z.number().positive().default(1e-8),
    weightDecay: z.number().min(0).default(1e-2),
    /** Min-SNR-γ loss weighting (5 is the paper's choice); null: off. */
    minSnrGamma: z.number().positive().nullable().default(null),
    noiseOffset: z.number().min(0).default(0),
    inputPerturbation: z.number().min(0).default(0),
    /** Overrides the scheduler config's prediction_type (e.g. to switch a model to v-prediction). */
    predictionType: z.enum(['epsilon', 'v_prediction', 'sample']).nullable().default(null),
    ema: emaSchema.nullable().default(null),
    /** Consecutive skipped (non-finite) steps before training stops with an error. */
    maxSkippedSteps: posInt.default(10),
    /** torch intra-op threads; default: the data loader's thread budget. */
    threads: posInt.optional(),
  })
  .strict();

/** Text-to-image runs (a Stable Diffusion pipeline folder as the base): how captions and images become U-Net inputs. */
export const textToImageSchema = z
  .object({
    /** Condition on the text encoder's layer −(clipSkip + 1), through its final LayerNorm; null: the last layer. */
    clipSkip: z.number().int().nonnegative().nullable().default(null),
    /** Keep each image's latent distribution (keyed by its transformed pixels and the VAE weights). */
    cacheLatents: z.boolean().default(true),
    /** Keep each caption's embeddings (keyed by caption, clipSkip and the text encoder weights). */
    cacheTextEmbeddings: z.boolean().default(true),
    /** Where cache entries persist across runs; null: <output>/.cache (model_index.json does not name it). */
    cacheDir: z.string().min(1).nullable().default(null),
  })
  .strict();

export const validationSchema = z
  .object({
    /** Optimizer steps between validations (and at the end); 0: never. */
    every: z.number().int().nonnegative().default(0),
    /** The held-out data; default: the training data's options with split "test". */
    data: z.record(z.unknown()).optional(),
    /** Held-out samples used (the first N of the held-out set, in order). */
    samples: posInt.default(16),
    /** Fixed timesteps cycled over the samples, so the loss is comparable across runs. */
    timesteps: z.array(z.number().int().nonnegative()).nonempty().default([100, 300, 500, 700, 900]),
    /** Fixed noise: of the held-out loss, and the initial noise of every validation grid (the same at every step). */
    seed: z.number().int().nonnegative().default(1234),
    /**
     * Text-to-image: also the held-out loss with each sample's caption swapped for one of another caption set
     * (another class; lib/data/captions.ts mismatchedCaptions), same noise and timesteps: how much the captions
     * steer the model (the gap to the right captions' loss), into metrics.jsonl as validationLossWrongCaptions.
     */
    wrongCaptions: z.boolean().default(false),
    /** Text-to-image runs: prompts sampled into the validation grid, one row each, at step 0 and every `every` steps. */
    prompts: z.array(z.string()).default([]),
    /** Class-conditional U-Nets: class ids sampled into the validation grid, one row each. */
    classLabels: z.array(z.number().int().nonnegative()).default([]),
    /** Images per prompt or class label (a grid row; default 4); an unconditional U-Net samples a grid of this many only when it is set. */
    numImages: posInt.max(64).optional(),
    /** Denoising steps of the validation samples. */
    steps: posInt.default(25),
    /** Text-to-image: classifier-free guidance scale of the validation samples (≤ 1: off). */
    guidanceScale: z.number().finite().default(7.5),
    /** The sampling scheduler, a class or short name (`ddim`), configured from the model's own scheduler config (deterministic DDIM by default). */
    scheduler: z
      .string()
      .default('DDIMScheduler')
      .transform((name, ctx) => {
        const resolved = resolveSchedulerName(name);
        if (resolved === undefined)
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            message: `expected a scheduler class (${SCHEDULER_CLASSES.join(', ')}) or short name (${Object.keys(SCHEDULER_SHORT_NAMES).join(', ')}) but found "${name}"`,
          });
        return resolved ?? 'DDIMScheduler';
      }),
  })
  .strict()
  .superRefine((v, ctx) => {
    const grids = v.prompts.length > 0 || v.classLabels.length > 0 || v.numImages !== undefined;
    if (grids && v.every === 0)
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['every'],
        message: 'validation grids (prompts, classLabels or numImages) are sampled at validations: set every to the steps between them (0 means never)',
      });
    if (v.wrongCaptions && v.every === 0)
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['wrongCaptions'],
        message: 'the wrong-caption held-out loss is measured at validations: set every to the steps between them (0 means never)',
      });
    if (v.prompts.length > 0 && v.classLabels.length > 0)
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['classLabels'],
        message: 'give prompts (a text-to-image run) or classLabels (a class-conditional U-Net), not both',
      });
  });

export const recipeSchema = z
  .object({
    model: z
      .object({
        /** A diffusers U-Net folder, or a pipeline folder (its unet/ and scheduler/ are used). */
        pretrained: z.string().min(1).optional(),
        /** Train from scratch: the architecture of `pretrained` (or of `config`) with torch.nn's initialisation from train.seed. */
        scratch: z.boolean().default(false),
        /** A U-Net config.json to train from scratch (instead of `pretrained`). */
        config: z.string().min(1).optional(),
        /** A scheduler_config.json for a `config` model (default: DDPM with diffusers' defaults). */
        scheduler: z.string().min(1).optional(),
        /** Weights variant, e.g. "fp16" (read and upcast). */
        variant: z.string().min(1).optional(),
        /**
         * Where the run computes: the U-Net, the frozen VAE and text encoder, the noise and the optimizer
         * state ("cpu", "cuda", "cuda:N"). Whether it exists is checked when the run starts (runtimeInfo()).
         */
        device: deviceSchema.default('cpu'),
      })
      .strict()
      .superRefine((m, ctx) => {
        if ((m.pretrained === undefined) === (m.config === undefined))
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            path: ['pretrained'],
            message: 'give exactly one of model.pretrained (a diffusers folder) and model.config (a config.json to train from scratch)',
          });
      }),
    data: z.record(z.unknown()),
    freeze: z.record(z.unknown()).default({}),
    /** LoRA adapters instead of full weights (the whole base stays frozen); null: full-weight fine-tuning. */
    lora: loraOptionsSchema.nullable().default(null),
    train: trainSchema,
    validation: validationSchema.default({}),
    textToImage: textToImageSchema.default({}),
    /** DreamBooth (text-to-image runs): the instance prompt, and prior preservation with class images; null: off. */
    dreambooth: dreamboothSchema.nullable().default(null),
    /** Textual inversion (text-to-image runs): new tokens whose embeddings alone train; null: off. */
    textualInversion: textualInversionSchema.nullable().default(null),
    /** Output folder: checkpoints, metrics.jsonl, the final diffusers folder. */
    output: z.string().min(1),
    checkpoint: z
      .object({
        /** Optimizer steps between checkpoints (0: only at the end). */
        every: z.number().int().nonnegative().default(0),
        /** Checkpoints kept (older ones are deleted after a new one is complete); 0: all. */
        keep: z.number().int().nonnegative().default(2),
      })
      .strict()
      .default({}),
    /** Continue from "latest" (in output) or a checkpoint folder. */
    resume: z.string().min(1).optional(),
  })
  .strict();

export type Recipe = z.infer<typeof recipeSchema>;

function issueText(issue: z.ZodIssue, where: string): string {
  const key = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('');
  return `${where}: ${key.replace(/^\./, '') || '(root)'}: ${issue.message}`;
}

/**
 * Validates a recipe. `file` names it in errors and anchors relative paths. The data and freeze
 * sections are checked by their own schemas (dataOptionsSchema, freezeOptionsSchema).
 */
export function parseRecipe(raw: unknown, file = 'recipe'): Recipe {
  const result = recipeSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(result.error.issues.map((i) => issueText(i, file)).join('\n'));
  const recipe = result.data;
  const data = dataOptionsSchema.safeParse(recipe.data);
  if (!data.success) throw new ConfigError(data.error.issues.map((i) => issueText({ ...i, path: ['data', ...i.path] }, file)).join('\n'));
  const freeze = freezeOptionsSchema.safeParse(recipe.freeze);
  if (!freeze.success) throw new ConfigError(freeze.error.issues.map((i) => issueText({ ...i, path: ['freeze', ...i.path] }, file)).join('\n'));
  checkTextEncoderTraining(recipe, freeze.data, file);
  return recipe;
}

/**
 * What trains of the text encoder is one choice: its own weights (freeze.textEncoder), adapters
 * (lora.textEncoder, in a LoRA run), or textual inversion's new token embeddings (with everything else frozen).
 */
function checkTextEncoderTraining(recipe: Recipe, freeze: FreezeOptions, file: string): void {
  const problems: string[] = [];
  const ownWeights = freeze.textEncoder !== 'frozen';
  if (recipe.textualInversion !== null) {
    const others: Array<[boolean, string]> = [
      [recipe.lora !== null, 'lora'],
      [ownWeights, 'freeze.textEncoder'],
      [recipe.dreambooth !== null, 'dreambooth'],
    ];
    for (const [given, field] of others)
      if (given)
        problems.push(
          `${field}: textualInversion trains only the new tokens' embeddings (the U-Net and the rest of the text encoder stay frozen); remove ${field}`,
        );
  } else if (recipe.lora !== null && ownWeights) {
    problems.push('freeze.textEncoder: this is a LoRA run (lora), whose base stays frozen; train the text encoder with lora.textEncoder instead');
  }
  if (recipe.train.textEncoderLr !== null && !ownWeights && recipe.lora?.textEncoder == null)
    problems.push(
      'train.textEncoderLr: nothing of the text encoder trains; set lora.textEncoder or freeze.textEncoder (textual inversion has textualInversion.lr)',
    );
  if (problems.length > 0) throw new ConfigError(problems.map((p) => `${file}: ${p}`).join('\n'));
}

/**
 * Refuses train.mixedPrecision "bf16" on a CPU without bf16 arithmetic — judged from `cpuinfo`, the
 * text of /proc/cpuinfo (lib/util/cpu.ts) — unless train.allowSlowBf16 forces it: emulated bf16 makes
 * every step slower than float32 (~1.5–3× with AVX-512, ~20–30× with AVX2), which nobody asking for
 * mixed precision wants silently.
 * CUDA devices always have bf16 arithmetic. `file` names the recipe in the error.
 */
export function checkMixedPrecision(recipe: Recipe, cpuinfo: string, file = 'recipe'): void {
  const t = recipe.train;
  if (t.mixedPrecision !== 'bf16' || t.allowSlowBf16 || recipe.model.device.startsWith('cuda')) return;
  const reason = slowBf16Reason(cpuinfo);
  if (reason === null) return;
  throw new ConfigError(
    `${file}: train.mixedPrecision: "bf16" on ${recipe.model.device} is refused: ${reason}. ` +
      'Use "no" (float32), or set train.allowSlowBf16 to true to train in bf16 anyway.',
  );
}

/** Resolves the recipe's relative paths against `baseDir` (the recipe file's folder). */
export function resolveRecipePaths(recipe: Recipe, baseDir: string): Recipe {
  const abs = (p: string) => (path.isAbsolute(p) ? p : path.resolve(baseDir, p));
  const data = { ...recipe.data };
  if (typeof data.path === 'string') data.path = abs(data.path);
  const cache = data.cache;
  if (cache !== null && typeof cache === 'object' && typeof (cache as { dir?: unknown }).dir === 'string') {
    data.cache = { ...cache, dir: abs((cache as { dir: string }).dir) };
  }
  const validation = { ...recipe.validation };
  if (validation.data && typeof validation.data.path === 'string') validation.data = { ...validation.data, path: abs(validation.data.path) };
  return {
    ...recipe,
    model: {
      ...recipe.model,
      pretrained: recipe.model.pretrained === undefined ? undefined : abs(recipe.model.pretrained),
      config: recipe.model.config === undefined ? undefined : abs(recipe.model.config),
      scheduler: recipe.model.scheduler === undefined ? undefined : abs(recipe.model.scheduler),
    },
    data,
    validation,
    textToImage: { ...recipe.textToImage, cacheDir: recipe.textToImage.cacheDir === null ? null : abs(recipe.textToImage.cacheDir) },
    dreambooth:
      recipe.dreambooth === null || recipe.dreambooth.classData === undefined
        ? recipe.dreambooth
        : { ...recipe.dreambooth, classData: abs(recipe.dreambooth.classData) },
    output: abs(recipe.output),
    resume: recipe.resume === undefined || recipe.resume === 'latest' ? recipe.resume : abs(recipe.resume),
  };
}

/** Applies `a.b.c=value` overrides to a raw recipe object (before validation). */
export function applyOverrides(raw: unknown, overrides: readonly string[]): Record<string, unknown> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError('recipe: expected a JSON object');
  const root = structuredClone(raw) as Record<string, unknown>;
  for (const override of overrides) {
    const eq = override.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--set ${override}: expected key.path=value`);
    const keys = override.slice(0, eq).split('.');
    refusePrototypeKeys(keys, `--set ${override}`);
    const text = override.slice(eq + 1);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = text;
    }
    let node: Record<string, unknown> = root;
    for (const key of keys.slice(0, -1)) {
      // Own keys only: an inherited one (toString, ...) is not a recipe field.
      const next = Object.hasOwn(node, key) ? node[key] : undefined;
      if (next === undefined || next === null) node[key] = {};
      else if (typeof next !== 'object' || Array.isArray(next)) throw new ConfigError(`--set ${override}: "${key}" is not an object in the recipe`);
      node = node[key] as Record<string, unknown>;
    }
    node[keys[keys.length - 1]!] = value;
  }
  return root;
}
