/**
 * Validation grids: what the model makes of fixed inputs as it trains. At step 0 and at every validation
 * (validation.every) the prompts (text-to-image), class labels (class-conditional U-Nets) or N samples
 * (unconditional U-Nets) are sampled from the same initial noise (validation.seed), so that the grids of one
 * run compare across steps and those of two runs at step 0 are identical. Each grid is written to
 * <output>/validation/step-<n>.png, one row per prompt or class label.
 *
 * Which weights: with an EMA on a full fine-tune, the averaged weights are swapped in for the sampling
 * (as diffusers' training scripts validate, and as the export saves them) and the trained ones put back
 * bit for bit; a LoRA run samples the adapters being trained (they cannot be swapped while the trainer
 * holds them). The U-Net samples in eval mode (no LoRA dropout). Rank 0 samples; the other ranks skip it.
 */
import * as path from 'path';
import { disposeStateDict } from '../checkpoint/state-dict';
import type { Recipe } from '../config/recipe';
import { ConfigError } from '../errors';
import type { StableDiffusion } from '../models/stable-diffusion';
import type { UNet } from '../models/unet';
import { callAsync } from '../native/load';
import type { Tensor } from '../native/tensor';
import { gridPng, toImages, type Images } from '../sample/image';
import { sample } from '../sample/pipeline';
import { txt2img } from '../sample/txt2img';
import { Scheduler } from '../schedulers/scheduler';
import { writeAll, writeFileAtomically } from '../util/atomic-write';
import { createFolder } from '../util/output-folder';
import type { TextToImage } from './text-to-image';
import type { Trainer } from './trainer';

/** Images per prompt or class label when validation.numImages is not set. */
const DEFAULT_IMAGES_PER_ROW = 4;

/** What a run's validation grid samples: one row per prompt or class label, or one grid of unconditional samples. */
export type GridPlan =
  | { kind: 'prompts'; rows: readonly string[]; perRow: number }
  | { kind: 'classLabels'; rows: readonly number[]; perRow: number }
  | { kind: 'unconditional'; count: number };

/** One grid written: the step, its file relative to the output folder, the row captions and how long it took. */
export interface ValidationGrid {
  step: number;
  file: string;
  rows: string[];
  seconds: number;
}

/**
 * What validation grids a run makes (undefined: none), from the recipe's validation section and the kind of
 * U-Net; a setting that does not fit the model is a ConfigError naming it.
 */
export function planValidationGrid(
  settings: Pick<Recipe['validation'], 'prompts' | 'classLabels' | 'numImages'>,
  model: { textToImage: boolean; classConditional: boolean; numClassEmbeds: number | null },
): GridPlan | undefined {
  const perRow = settings.numImages ?? DEFAULT_IMAGES_PER_ROW;
  const { prompts, classLabels } = settings;
  if (model.textToImage) {
    if (classLabels.length > 0)
      throw new ConfigError('validation.classLabels: this is a text-to-image run (a text-conditioned U-Net); its validation grid samples validation.prompts');
    if (prompts.length === 0) {
      if (settings.numImages !== undefined)
        throw new ConfigError('validation.numImages: a text-to-image run samples numImages per prompt: give validation.prompts too');
      return undefined;
    }
    return { kind: 'prompts', rows: prompts, perRow };
  }
  if (prompts.length > 0)
    throw new ConfigError(
      `validation.prompts: only a text-to-image run (a Stable Diffusion pipeline as model.pretrained) samples prompts; this U-Net is ${model.classConditional ? 'class-conditional (use validation.classLabels)' : 'unconditional (use validation.numImages)'}`,
    );
  if (model.classConditional) {
    if (classLabels.length === 0) {
      if (settings.numImages !== undefined)
        throw new ConfigError('validation.numImages: a class-conditional U-Net samples numImages per class label: give validation.classLabels too');
      return undefined;
    }
    const tooHigh = model.numClassEmbeds === null ? [] : classLabels.filter((l) => l >= model.numClassEmbeds!);
    if (tooHigh.length > 0)
      throw new ConfigError(
        `validation.classLabels: expected class ids below the U-Net's num_class_embeds (${model.numClassEmbeds}) but found ${tooHigh.join(', ')}`,
      );
    return { kind: 'classLabels', rows: classLabels, perRow };
  }
  if (classLabels.length > 0)
    throw new ConfigError('validation.classLabels: this U-Net has no class embedding (it is unconditional: use validation.numImages)');
  return settings.numImages === undefined ? undefined : { kind: 'unconditional', count: settings.numImages };
}

/** The file of step `step`'s grid, relative to the output folder. */
export function gridFile(step: number): string {
  return path.posix.join('validation', `step-${step}.png`);
}

/** Upscale factor for small images, so a grid of 16 px digits is still readable (nearest neighbour). */
function gridScale(size: number): number {
  return Math.min(8, Math.max(1, Math.ceil(64 / size)));
}

export interface ValidationImagesOptions {
  unet: UNet;
  /** Text-to-image runs: the pipeline's frozen text encoder, tokenizer and VAE. */
  text: TextToImage | undefined;
  /** The training scheduler: its config (with the trained prediction type) configures the sampling one. */
  scheduler: Scheduler;
  predictionType: 'epsilon' | 'v_prediction' | 'sample';
  /** The trained image size [height, width] in pixels (what the grids are sampled at). */
  imageSize: readonly [number, number];
  /** Rank 0 samples; the other ranks skip it. */
  enabled: boolean;
  log: (line: string) => void;
}

export class ValidationImages implements Disposable {
  readonly grids: ValidationGrid[] = [];

  private constructor(
    private readonly plan: GridPlan,
    private readonly scheduler: Scheduler,
    private readonly o: ValidationImagesOptions,
    private readonly v: Recipe['validation'],
    private readonly output: string,
    private readonly ema: boolean,
    /** How the grids are sampled, in words (the log and the report say it). */
    readonly description: string,
  ) {}

  /** The run's grid sampler, or undefined when the recipe asks for no grids (or on ranks other than 0). */
  static async open(recipe: Recipe, o: ValidationImagesOptions): Promise<ValidationImages | undefined> {
    const numClassEmbeds = o.unet.config.num_class_embeds;
    const plan = planValidationGrid(recipe.validation, {
      textToImage: o.text !== undefined,
      classConditional: o.unet.isClassConditional,
      numClassEmbeds: typeof numClassEmbeds === 'number' ? numClassEmbeds : null,
    });
    if (plan === undefined || !o.enabled) return undefined;
    const v = recipe.validation;
    const scheduler = await Scheduler.fromConfig(
      { ...o.scheduler.toJSON(), prediction_type: o.predictionType },
      { className: v.scheduler, source: `validation.scheduler ${v.scheduler} (from ${o.scheduler.source})` },
    );
    const ema = recipe.train.ema !== null && recipe.lora === null;
    const what =
      plan.kind === 'unconditional'
        ? `${plan.count} samples`
        : `${plan.rows.length} ${plan.kind === 'prompts' ? 'prompts' : 'class labels'} × ${plan.perRow} images`;
    const weights = recipe.train.ema === null ? 'the trained weights' : ema ? 'the EMA weights' : 'the LoRA adapters being trained (not their EMA)';
    const settings = `${what}, ${v.scheduler} ${v.steps} steps${plan.kind === 'prompts' ? `, guidance ${v.guidanceScale}` : ''}, seed ${v.seed} (the same noise at every step), from ${weights}`;
    o.log(`validation grids: ${settings}, into ${path.join(recipe.output, 'validation')}`);
    return new ValidationImages(plan, scheduler, o, v, recipe.output, ema, settings);
  }

  /** Samples the grid of `step` and writes it (atomically); `trainer` holds the EMA weights when there are any. */
  async run(step: number, trainer: Pick<Trainer, 'emaWeights'>): Promise<ValidationGrid> {
    const started = performance.now();
    const unet = this.o.unet;
    const images = await this.withSamplingWeights(trainer, async () => {
      await callAsync(() => unet.native.setTraining(false));
      try {
        return await this.sampleRows();
      } finally {
        await callAsync(() => unet.native.setTraining(true));
      }
    });
    const plan = this.plan;
    const [h] = this.o.imageSize;
    const rows = plan.kind === 'unconditional' ? [] : plan.rows.map((r) => (plan.kind === 'prompts' ? String(r) : `class ${r}`));
    const png = await gridPng(images, {
      columns: plan.kind === 'unconditional' ? undefined : plan.perRow,
      scale: gridScale(h),
      rowLabels: plan.kind === 'unconditional' ? undefined : rows,
    });
    const file = gridFile(step);
    const target = path.join(this.output, file);
    await createFolder(path.dirname(target));
    await writeFileAtomically(target, (handle) => writeAll(handle, png));
    const grid = { step, file, rows, seconds: (performance.now() - started) / 1000 };
    this.grids.push(grid);
    this.o.log(`step ${step}: validation grid ${target} (${grid.seconds.toFixed(1)} s)`);
    return grid;
  }

  /** Every row's images, in grid order. */
  private async sampleRows(): Promise<Images> {
    const plan = this.plan;
    const v = this.v;
    const [height, width] = this.o.imageSize;
    if (plan.kind === 'prompts') {
      const sd = this.pipeline();
      return concatImages(
        await mapSequentially(plan.rows, async (prompt) => {
          const r = await txt2img(sd, {
            prompt: Array.from({ length: plan.perRow }, () => prompt),
            guidanceScale: v.guidanceScale,
            steps: v.steps,
            seed: v.seed,
            height,
            width,
            clipSkip: this.o.text!.pipelineParts.clipSkip,
          });
          try {
            return await toImages(r.images);
          } finally {
            r.dispose();
          }
        }),
      );
    }
    const draw = async (count: number, classLabels: number[] | undefined): Promise<Images> => {
      const samples: Tensor = await sample(this.o.unet, this.scheduler, { batchSize: count, steps: v.steps, seed: v.seed, classLabels, height, width });
      try {
        return await toImages(samples);
      } finally {
        samples.dispose();
      }
    };
    if (plan.kind === 'unconditional') return draw(plan.count, undefined);
    // One row per label, each from the same noise: a row shows what the class alone changes.
    return concatImages(
      await mapSequentially(plan.rows, (label) =>
        draw(
          plan.perRow,
          Array.from({ length: plan.perRow }, () => label),
        ),
      ),
    );
  }

  /** The text-to-image pipeline around the U-Net being trained and the run's frozen parts. */
  private pipeline(): StableDiffusion {
    const parts = this.o.text!.pipelineParts;
    const noop = () => undefined;
    return {
      dir: this.output,
      device: this.o.unet.device,
      unet: this.o.unet,
      vae: parts.vae,
      textEncoder: parts.textEncoder,
      tokenizer: parts.tokenizer,
      scheduler: this.scheduler,
      dispose: noop,
      [Symbol.dispose]: noop,
    };
  }

  /** Runs `use` with the EMA weights in the U-Net when the grids sample them, the trained weights restored after. */
  private async withSamplingWeights<T>(trainer: Pick<Trainer, 'emaWeights'>, use: () => Promise<T>): Promise<T> {
    if (!this.ema) return use();
    const unet = this.o.unet;
    const trained = await unet.stateDict();
    try {
      const averages = await trainer.emaWeights();
      try {
        const merged = new Map(trained);
        // The U-Net's averages only: a training text encoder's (text_encoder.<name>) stay with the trainer.
        for (const [name, w] of averages) if (trained.has(name)) merged.set(name, w);
        await unet.loadStateDict(merged, 'the EMA weights');
      } finally {
        disposeStateDict(averages);
      }
      try {
        return await use();
      } finally {
        await unet.loadStateDict(trained, 'the trained weights');
      }
    } finally {
      disposeStateDict(trained);
    }
  }

  [Symbol.dispose](): void {
    this.scheduler.dispose();
  }
}

async function mapSequentially<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (const item of items) out.push(await fn(item));
  return out;
}

/** Images of the same size, one after the other. */
function concatImages(parts: readonly Images[]): Images {
  const first = parts[0]!;
  const pixels = new Uint8Array(parts.reduce((n, p) => n + p.pixels.length, 0));
  let at = 0;
  for (const p of parts) {
    pixels.set(p.pixels, at);
    at += p.pixels.length;
  }
  return { ...first, count: parts.reduce((n, p) => n + p.count, 0), pixels };
}
