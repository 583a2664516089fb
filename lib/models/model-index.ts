/**
 * A diffusers pipeline folder's `model_index.json`: each component's `[library, class]` (or
 * `[null, null]` for an absent one), and for Stable Diffusion 1.x / 2.x pipelines the subfolder of
 * each component difftune loads, checked up front so that a missing or unsupported component is named
 * before any weights are read. Pure apart from reading the folder.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors';
import { SCHEDULER_CLASSES } from '../config/scheduler';
import { parseWithSchema } from '../config/schema-object';
import { parseLenientJson } from '../config/json';

export const MODEL_INDEX_FILE = 'model_index.json';

/** `[library, class]`, or `[null, null]` for a component the pipeline does not have. */
const componentSchema = z.union([z.tuple([z.string().min(1), z.string().min(1)]), z.tuple([z.null(), z.null()])]);

/** model_index.json: `_class_name`, `_diffusers_version`, components, and pipeline flags (other values). */
export const modelIndexSchema = z
  .object({
    /** The pipeline class, e.g. StableDiffusionPipeline. */
    _class_name: z.string().min(1),
    _diffusers_version: z.string().optional(),
  })
  .catchall(z.unknown());

export interface ComponentSpec {
  readonly library: string;
  readonly className: string;
}

export interface ModelIndexFile {
  readonly className: string;
  readonly diffusersVersion: string | undefined;
  /** Every `[library, class]` entry by name; null for `[null, null]`. */
  readonly components: ReadonlyMap<string, ComponentSpec | null>;
  /** The other keys (pipeline flags such as requires_safety_checker). */
  readonly flags: Readonly<Record<string, unknown>>;
}

/** The components difftune needs from a Stable Diffusion folder, with the classes it can load. */
export const STABLE_DIFFUSION_COMPONENTS = {
  unet: { library: 'diffusers', classes: ['UNet2DConditionModel'], files: ['config.json'] },
  vae: { library: 'diffusers', classes: ['AutoencoderKL'], files: ['config.json'] },
  text_encoder: { library: 'transformers', classes: ['CLIPTextModel'], files: ['config.json'] },
  // A fast tokenizer folder is read through the vocab.json and merges.txt it also holds.
  tokenizer: { library: 'transformers', classes: ['CLIPTokenizer', 'CLIPTokenizerFast'], files: ['vocab.json', 'merges.txt'] },
  scheduler: { library: 'diffusers', classes: [...SCHEDULER_CLASSES] as string[], files: ['scheduler_config.json'] },
} as const satisfies Record<string, { library: string; classes: readonly string[]; files: readonly string[] }>;

export type StableDiffusionComponent = keyof typeof STABLE_DIFFUSION_COMPONENTS;
export const STABLE_DIFFUSION_COMPONENT_NAMES = Object.keys(STABLE_DIFFUSION_COMPONENTS) as StableDiffusionComponent[];

/** Validates parsed model_index.json content; errors name the file and key. */
export function parseModelIndex(json: unknown, file: string): ModelIndexFile {
  const data = parseWithSchema(modelIndexSchema, json, file, 'key');
  const components = new Map<string, ComponentSpec | null>();
  const flags: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) {
    if (key.startsWith('_')) continue;
    if (!Array.isArray(value)) {
      flags[key] = value;
      continue;
    }
    const component = componentSchema.safeParse(value);
    if (!component.success) {
      throw new ConfigError(`${file} key "${key}": expected a component ["library", "ClassName"] or [null, null], found ${JSON.stringify(value)}`);
    }
    const [library, className] = component.data;
    components.set(key, library === null || className === null ? null : { library, className });
  }
  return { className: data._class_name, diffusersVersion: data._diffusers_version, components, flags };
}

/** A Stable Diffusion folder whose five components are present and of classes difftune loads. */
export class StableDiffusionIndex {
  constructor(
    /** The pipeline folder. */
    readonly dir: string,
    readonly file: ModelIndexFile,
  ) {}

  get className(): string {
    return this.file.className;
  }

  /** The class model_index.json names for a component. */
  componentClass(name: StableDiffusionComponent): string {
    return (this.file.components.get(name) as ComponentSpec).className;
  }

  /** The component's subfolder (diffusers keeps each component in the folder named like its key). */
  componentDir(name: StableDiffusionComponent): string {
    return nodePath.join(this.dir, name);
  }
}

/** What is wrong with one required component, or undefined when it can be loaded. */
function componentProblem(dir: string, index: ModelIndexFile, name: StableDiffusionComponent, options: ReadModelIndexOptions): string | undefined {
  const want = STABLE_DIFFUSION_COMPONENTS[name];
  const spec = index.components.get(name);
  const expectedClass = want.classes.length === 1 ? want.classes[0] : `one of ${want.classes.join(', ')}`;
  if (spec === undefined) return `${name}: not in ${MODEL_INDEX_FILE} (expected ["${want.library}", ${JSON.stringify(want.classes[0])}])`;
  if (spec === null) return `${name}: [null, null] (absent), but a Stable Diffusion pipeline needs a ${expectedClass}`;
  // Another scheduler class converts the folder's config (diffusers' from_config), whatever class it names.
  const replaced = name === 'scheduler' && options.schedulerClass !== undefined;
  if (!replaced && !(want.classes as readonly string[]).includes(spec.className)) {
    const hint = name === 'scheduler' ? '; pick a supported class to convert its config to: --scheduler <name>, or the schedulerClass option' : '';
    return `${name}: class "${spec.className}" is not supported (supported: ${want.classes.join(', ')})${hint}`;
  }
  if (spec.library !== want.library) return `${name}: library "${spec.library}" for ${spec.className}, expected "${want.library}"`;
  const sub = nodePath.join(dir, name);
  if (!fs.statSync(sub, { throwIfNoEntry: false })?.isDirectory()) return `${name}: the folder ${sub} is missing`;
  const missing = want.files.filter((f) => !fs.statSync(nodePath.join(sub, f), { throwIfNoEntry: false })?.isFile());
  if (missing.length > 0) return `${name}: ${sub} has no ${missing.join(' and no ')}`;
  return undefined;
}

export interface ReadModelIndexOptions {
  /** The scheduler class the caller will build from scheduler/scheduler_config.json: the folder's own class is then not checked. */
  schedulerClass?: string;
}

/**
 * Reads `<dir>/model_index.json` and checks the five components a Stable Diffusion 1.x / 2.x
 * pipeline needs (unet, vae, text_encoder, tokenizer, scheduler): present, of a supported class,
 * with their folder and config file. One ConfigError lists every problem. Other components
 * (safety_checker, feature_extractor, image_encoder) are not loaded and not checked.
 */
export function readModelIndex(dir: string, options: ReadModelIndexOptions = {}): StableDiffusionIndex {
  const file = nodePath.join(dir, MODEL_INDEX_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${dir}: cannot read ${MODEL_INDEX_FILE} (a diffusers pipeline folder has one): ${(error as Error).message}`, { cause: error });
  }
  const index = parseModelIndex(parseLenientJson(text, file), file);
  const problems = STABLE_DIFFUSION_COMPONENT_NAMES.map((name) => componentProblem(dir, index, name, options)).filter((p): p is string => p !== undefined);
  if (problems.length > 0) {
    throw new ConfigError(`${file}: cannot load ${index.className} as a Stable Diffusion pipeline:\n  ${problems.join('\n  ')}`);
  }
  return new StableDiffusionIndex(dir, index);
}
