/**
 * DreamBooth (diffusers' train_dreambooth.py) as a piece of the loop: every instance image (the recipe's
 * data) is captioned with the instance prompt unless the folder has captions; with prior preservation each
 * micro-batch gets one class sample per instance sample appended (captioned with the class prompt, loss
 * weight priorLossWeight, not counted in the step's sample count), so the trainer's loss is
 * instance MSE + priorLossWeight × class MSE, as diffusers' chunked model_pred/target give it.
 *
 * The class stream. The instance sample with dataset index i in loader epoch e takes class position
 * p = e·N + i (N: samples per instance epoch): every position once per instance epoch. Position p is
 * class image order(c)[p mod C] of class epoch c = ⌊p / C⌋ (C class images, a seeded permutation per
 * class epoch, crops and flips from (seed, c, image) like the loader's), and its noise, timestep and
 * latent draw are keyed by CLASS_KEY_BASE + p. All of it is a function of the loader's position and the
 * seed, so a resumed, accumulated or data-parallel run draws the same class samples as a straight one;
 * the checkpoint records the class images (dreambooth.json) and a resume onto others is refused.
 */
import { createHash } from 'crypto';
import { promises as fs } from 'fs';
import * as path from 'path';
import type { DreamBoothOptions } from '../config/dreambooth';
import type { Recipe } from '../config/recipe';
import { createDataset, type Dataset } from '../data/dataset';
import { hashInts, permutation, Rng } from '../data/random';
import { ConfigError } from '../errors';
import { imagesToTensor } from '../native/images';
import { concat } from '../native/ops';
import { writeAll, writeFileAtomically } from '../util/atomic-write';
import { withFileErrors } from '../util/fs-errors';
import { classImagesStatus, ensureClassImages, type ClassImagesRequest, type ClassImagesStatus } from './class-images';
import type { SampleBatch, TensorScope, TrainingBatch, TrainingHooks } from './hooks';
import type { RunBase } from './load';

/** Class samples' random keys start here, above any dataset index. */
export const CLASS_KEY_BASE = 2 ** 50;
/** The checkpoint file that records the class images a run trained with. */
export const DREAMBOOTH_STATE_FILE = 'dreambooth.json';
/** Seeds the class order's permutations apart from the loader's streams (lib/data/random.ts STREAM). */
const CLASS_ORDER_STREAM = 0x636c6173;

/** The data options class images are read with: the instance data's image transforms, no captions, no repeats. */
const CLASS_DATA_KEYS = [
  'resolution',
  'channels',
  'centerCrop',
  'randomFlip',
  'interpolation',
  'background',
  'onBadImage',
  'validate',
  'cache',
  'decodeConcurrency',
] as const;

function classDataOptions(recipe: Recipe, folder: string, limit: number): Record<string, unknown> {
  const d = recipe.data;
  const options: Record<string, unknown> = { source: 'imagefolder', path: folder, layout: 'plain', limit, seed: d.seed ?? recipe.train.seed };
  for (const key of CLASS_DATA_KEYS) if (d[key] !== undefined) options[key] = d[key];
  // A few class images are read again and again: keep them decoded unless the recipe caches elsewhere.
  if (options.cache === undefined || options.cache === 'none') options.cache = 'memory';
  return options;
}

function requirePipeline(recipe: Recipe, base: RunBase): string {
  const dir = base.folder.pipelineDir;
  if (dir === undefined) throw new ConfigError('dreambooth: trains a text-to-image pipeline; model.pretrained must be a Stable Diffusion pipeline folder');
  return dir;
}

function classRequest(recipe: Recipe, d: DreamBoothOptions, base: RunBase): Omit<ClassImagesRequest, 'log'> {
  return {
    folder: d.classData!,
    prompt: d.classPrompt!,
    count: d.numClassImages,
    generation: d.classGeneration,
    pipelineDir: requirePipeline(recipe, base),
    unetSha256: base.identity.sha256,
    basePath: base.identity.path,
    resolution: (recipe.data.resolution as number | undefined) ?? 512,
    device: recipe.model.device,
    variant: recipe.model.variant,
  };
}

/**
 * Prior preservation: generates the class images the folder lacks (rank 0, with the base pipeline,
 * before the run loads its own models); the other ranks wait for it at a barrier.
 */
export async function prepareClassImages(
  recipe: Recipe,
  base: RunBase,
  dp: { readonly isMain: boolean; readonly group?: { barrier(): Promise<void> } },
  log: (line: string) => void,
): Promise<void> {
  const d = recipe.dreambooth;
  if (d === null) return;
  requirePipeline(recipe, base);
  if (d.classData === undefined) return;
  if (dp.isMain) {
    const r = await ensureClassImages({ ...classRequest(recipe, d, base), log });
    log(`class images: ${r.files.length} in ${d.classData} (${r.generated} generated now, ${r.reused} reused, ${r.supplied} supplied)`);
  }
  await dp.group?.barrier();
}

/** The class images a run trains with, as a checkpoint records them. */
interface ClassSet {
  readonly version: 1;
  readonly orderSeed: number;
  readonly instanceSamples: number;
  /** Relative to classData, in dataset order, with each file's sha256. */
  readonly images: ReadonlyArray<{ readonly file: string; readonly sha256: string }>;
}

async function classSet(dataset: Dataset, folder: string, instanceSamples: number): Promise<ClassSet> {
  const images = [];
  // The scan names files by their real path.
  const root = await withFileErrors(folder, 'read', () => fs.realpath(folder));
  for (const item of dataset.items) {
    const file = item.id;
    const bytes = await withFileErrors(file, 'read', () => fs.readFile(file));
    images.push({ file: path.relative(root, file), sha256: createHash('sha256').update(bytes).digest('hex') });
  }
  return { version: 1, orderSeed: dataset.options.seed, instanceSamples, images };
}

async function checkResumedClassSet(dir: string, now: ClassSet): Promise<void> {
  const file = path.join(dir, DREAMBOOTH_STATE_FILE);
  let saved: ClassSet;
  try {
    saved = JSON.parse(await fs.readFile(file, 'utf8')) as ClassSet;
  } catch (error) {
    throw new ConfigError(
      `resume: ${file}: expected the class images the checkpoint trained with (a DreamBooth run with prior preservation writes it) but cannot read it: ${(error as Error).message}`,
    );
  }
  if (JSON.stringify(saved) === JSON.stringify(now)) return;
  const savedFiles = new Map((saved.images ?? []).map((i) => [i.file, i.sha256]));
  const differs = now.images.filter((i) => savedFiles.get(i.file) !== i.sha256).map((i) => i.file);
  const what =
    saved.orderSeed !== now.orderSeed
      ? `the class order's seed (${saved.orderSeed} → ${now.orderSeed})`
      : saved.instanceSamples !== now.instanceSamples
        ? `the instance samples per epoch (${saved.instanceSamples} → ${now.instanceSamples})`
        : `the class images (${saved.images?.length ?? 0} → ${now.images.length}${differs.length > 0 ? `; new or changed: ${differs.slice(0, 3).join(', ')}${differs.length > 3 ? ', …' : ''}` : ''})`;
  throw new ConfigError(`resume: ${dir} trained with other class images than dreambooth.classData holds now: ${what}; an exact resume needs the same ones`);
}

export class DreamBooth implements TrainingHooks {
  readonly #orders = new Map<number, Uint32Array>();

  private constructor(
    private readonly options: DreamBoothOptions,
    private readonly prior: { readonly dataset: Dataset; readonly set: ClassSet } | undefined,
  ) {}

  /**
   * The run's DreamBooth hook; `instanceSamples` is the loader's samples per epoch. With prior preservation,
   * reads the class folder (after prepareClassImages) and, when resuming, checks the checkpoint trained
   * with the same class images.
   */
  static async open(
    recipe: Recipe,
    o: { instanceSamples: number; resumedDir: string | undefined; log: (line: string) => void },
  ): Promise<DreamBooth | undefined> {
    const d = recipe.dreambooth;
    if (d === null) return undefined;
    if (d.classData === undefined) {
      o.log(`dreambooth: ${o.instanceSamples} instance samples captioned "${d.instancePrompt}" (unless captioned), no prior preservation`);
      return new DreamBooth(d, undefined);
    }
    const dataset = await createDataset(classDataOptions(recipe, d.classData, d.numClassImages), { onWarning: o.log });
    if (dataset.size < d.numClassImages)
      o.log(`dreambooth: ${dataset.size} usable class images in ${d.classData}, fewer than numClassImages (${d.numClassImages})`);
    const set = await classSet(dataset, d.classData, o.instanceSamples);
    if (o.resumedDir !== undefined) await checkResumedClassSet(o.resumedDir, set);
    o.log(
      `dreambooth: ${o.instanceSamples} instance samples "${d.instancePrompt}" + one of ${dataset.size} class images "${d.classPrompt}" each, prior loss weight ${d.priorLossWeight}`,
    );
    return new DreamBooth(d, { dataset, set });
  }

  /** Captions the instance samples and appends one class sample per instance sample. */
  async extendBatch(batch: TrainingBatch, _step: number, scope: TensorScope): Promise<TrainingBatch> {
    const n = batch.indices.length;
    const captions = batch.captions ?? batch.indices.map(() => this.options.instancePrompt);
    if (this.prior === undefined) return { ...batch, captions };
    const { dataset } = this.prior;
    const [h, w, c] = dataset.sampleShape;
    if (batch.pixels.shape.slice(1).join() !== [c, h, w].join())
      throw new ConfigError(
        `dreambooth: class images are ${c}×${h}×${w} (data.resolution, square) but this batch's images are ${batch.pixels.shape.slice(1).join('×')}: prior preservation needs one shape for both`,
      );
    const positions = batch.indices.map((i) => batch.epoch * this.prior!.set.instanceSamples + i);
    const bytes = dataset.sampleBytes;
    const raw = new Uint8Array(2 * n * bytes);
    raw.set(batch.rawPixels.subarray(0, n * bytes));
    await Promise.all(
      positions.map((p, j) => {
        const classEpoch = Math.floor(p / dataset.size);
        const image = this.order(classEpoch)[p % dataset.size]!;
        return dataset.loadSample(image, classEpoch, raw.subarray((n + j) * bytes, (n + j + 1) * bytes));
      }),
    );
    using classPixels = await imagesToTensor(raw.subarray(n * bytes), [n, h, w, c]);
    const pixels = scope.own(await concat([batch.pixels, classPixels]));
    return {
      pixels,
      rawPixels: raw,
      captions: [...captions, ...positions.map(() => this.options.classPrompt!)],
      // A text-to-image U-Net takes no class labels.
      labels: null,
      indices: [...batch.indices, ...positions.map((p) => CLASS_KEY_BASE + p)],
      epoch: batch.epoch,
      lossWeights: [...(batch.lossWeights ?? batch.indices.map(() => 1)), ...positions.map(() => this.options.priorLossWeight)],
    };
  }

  /** Held-out images without captions get the instance prompt too. */
  async extendValidation(batch: SampleBatch): Promise<SampleBatch> {
    return batch.captions === null ? { ...batch, captions: batch.indices.map(() => this.options.instancePrompt) } : batch;
  }

  async saveCheckpoint(dir: string): Promise<void> {
    if (this.prior === undefined) return;
    const bytes = Buffer.from(`${JSON.stringify(this.prior.set, null, 2)}\n`);
    await writeFileAtomically(path.join(dir, DREAMBOOTH_STATE_FILE), (handle) => writeAll(handle, bytes));
  }

  /** The class images' order in `classEpoch` (the last two kept). */
  private order(classEpoch: number): Uint32Array {
    let order = this.#orders.get(classEpoch);
    if (order === undefined) {
      const { dataset, set } = this.prior!;
      order = permutation(dataset.size, new Rng(hashInts(set.orderSeed, CLASS_ORDER_STREAM, classEpoch)));
      this.#orders.set(classEpoch, order);
      for (const key of this.#orders.keys()) if (key < classEpoch - 1) this.#orders.delete(key);
    }
    return order;
  }
}

/** The dry run's DreamBooth lines: instance and class counts, and what would be generated. */
export interface DreamBoothPlan {
  readonly instancePrompt: string;
  readonly instanceImages: number;
  readonly instanceSamples: number;
  readonly prior?: {
    readonly classPrompt: string;
    readonly numClassImages: number;
    readonly priorLossWeight: number;
    readonly folder: string;
  } & ClassImagesStatus;
}

export async function planDreamBooth(recipe: Recipe, base: RunBase, log: (line: string) => void): Promise<DreamBoothPlan | undefined> {
  const d = recipe.dreambooth;
  if (d === null) return undefined;
  requirePipeline(recipe, base);
  const instances = await createDataset({ ...recipe.data, seed: recipe.data.seed ?? recipe.train.seed }, { onWarning: log });
  const plan = { instancePrompt: d.instancePrompt, instanceImages: instances.items.length, instanceSamples: instances.size };
  if (d.classData === undefined) return plan;
  const status = await classImagesStatus(classRequest(recipe, d, base));
  return {
    ...plan,
    prior: { classPrompt: d.classPrompt!, numClassImages: d.numClassImages, priorLossWeight: d.priorLossWeight, folder: d.classData, ...status },
  };
}

export function formatDreamBoothPlan(p: DreamBoothPlan): string {
  const lines = [`dreambooth: ${p.instanceImages} instance images (${p.instanceSamples} samples per epoch) "${p.instancePrompt}"`];
  const c = p.prior;
  if (c === undefined) lines.push('  no prior preservation (no classPrompt/classData)');
  else {
    const used = Math.min(c.numClassImages, c.present + c.toGenerate);
    lines.push(
      `  class images "${c.classPrompt}": ${used} used (numClassImages ${c.numClassImages}) from ${c.folder}: ${c.present} there (${c.reusable} generated earlier with these settings), ${c.toGenerate} to generate${c.stale > 0 ? `, ${c.stale} generated with other settings to replace` : ''}`,
      `  each step: one class sample per instance sample, loss = instance MSE + ${c.priorLossWeight} × class MSE`,
    );
  }
  return lines.join('\n');
}
