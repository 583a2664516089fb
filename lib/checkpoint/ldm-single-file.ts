/**
 * Single-file Stable Diffusion checkpoints (the original CompVis / LDM layout of model-sharing sites)
 * ⇄ diffusers state dicts for `unet`, `vae` and `text_encoder`. The structure comes from a diffusers
 * folder's configs (like diffusers' `from_single_file(config=...)`); block numbers are derived from it
 * (ldm-layout.ts). Loading renames tensors and reshapes the 8 VAE attention weights, nothing else: the
 * bytes are the file's. Training-only keys (the LDM noise schedule, EMA copies) are skipped and
 * listed; any other unknown key, or a missing one, is an error. Pure TypeScript (no addon).
 */
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import { ConfigError } from '../errors';
import { readLdmLayout } from './ldm-configs';
import { LDM_COMPONENTS, LDM_PREFIXES, ldmKeyTable, type LdmComponent, type LdmKey, type LdmLayout } from './ldm-layout';
import { pipelineEntries } from './pipeline-folder';
import { SafetensorsFile, writeSafetensors, type DType } from './safetensors';

/** A tensor as raw little-endian bytes (writeSafetensors takes it as it is). */
export interface RawTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

export type RawStateDict = Map<string, RawTensor>;
export type DiffusersComponents = Record<LdmComponent, RawStateDict>;

export interface LdmLoadResult {
  /** The diffusers state dict of each component. */
  components: DiffusersComponents;
  /** Checkpoint keys skipped as training-only (noise schedule, EMA weights, ...), in file order. */
  ignored: string[];
}

/** The LDM training schedule and bookkeeping that SD 1.x files keep at top level; diffusers reads none. */
const TRAINING_SCHEDULE_KEYS = new Set([
  'betas',
  'alphas_cumprod',
  'alphas_cumprod_prev',
  'sqrt_alphas_cumprod',
  'sqrt_one_minus_alphas_cumprod',
  'log_one_minus_alphas_cumprod',
  'sqrt_recip_alphas_cumprod',
  'sqrt_recipm1_alphas_cumprod',
  'posterior_variance',
  'posterior_log_variance_clipped',
  'posterior_mean_coef1',
  'posterior_mean_coef2',
  'logvar',
  'lvlb_weights',
]);
/** EMA copies of the U-Net (`model_ema.decay`, `model_ema.num_updates`, `model_ema.<flattened names>`) and the autoencoder's training loss. */
const TRAINING_PREFIXES = ['model_ema.', 'first_stage_model.loss.'];

/** Whether a single-file key holds training-only state that loading skips. */
export function isTrainingOnlyKey(key: string): boolean {
  return TRAINING_SCHEDULE_KEYS.has(key) || TRAINING_PREFIXES.some((p) => key.startsWith(p));
}

/** Layouts of other models' single files, named in errors instead of a list of unknown keys. */
const OTHER_LAYOUTS: Array<[string, string]> = [
  [
    'cond_stage_model.model.',
    'the SD 2.x OpenCLIP text encoder layout (cond_stage_model.model.…, q/k/v in in_proj_weight), which difftune does not convert yet',
  ],
  ['conditioner.embedders.', 'an SDXL checkpoint (conditioner.embedders.…), which difftune does not convert'],
];

const SHOWN = 8;

function listKeys(keys: readonly string[]): string {
  const shown = keys.slice(0, SHOWN).map((k) => `    ${k}`);
  if (keys.length > SHOWN) shown.push(`    … and ${keys.length - SHOWN} more`);
  return shown.join('\n');
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** One checkpoint tensor placed in a component. */
export interface LdmAssignment {
  readonly key: LdmKey;
  /** The diffusers shape (the checkpoint's, or [C, C] for a reshaped VAE attention weight). */
  readonly shape: readonly number[];
}

export interface LdmPlan {
  assignments: LdmAssignment[];
  ignored: string[];
}

/**
 * Matches a checkpoint's keys and shapes (its header) against the layout: every key must be a
 * tensor of the layout or training-only, and every tensor of the layout must be there. One
 * ConfigError lists the unknown and the missing keys.
 */
export function planLdmConversion(tensors: ReadonlyMap<string, { readonly shape: readonly number[] }>, layout: LdmLayout, where: string): LdmPlan {
  const table = ldmKeyTable(layout);
  const byLdm = new Map(table.map((k) => [k.ldm, k]));
  const assignments: LdmAssignment[] = [];
  const ignored: string[] = [];
  const unknown: string[] = [];
  const badShapes: string[] = [];
  for (const [name, { shape }] of tensors) {
    const key = byLdm.get(name);
    if (key === undefined) {
      (isTrainingOnlyKey(name) ? ignored : unknown).push(name);
      continue;
    }
    let target = shape;
    if (key.reshape === 'conv1x1-linear') {
      if (shape.length === 4 && shape[2] === 1 && shape[3] === 1) target = shape.slice(0, 2);
      else if (shape.length !== 2) badShapes.push(`${name}: expected a 1×1 conv weight [C, C, 1, 1] (or [C, C]), found ${shapeText(shape)}`);
    }
    assignments.push({ key, shape: target });
  }
  const found = new Set(assignments.map((a) => a.key.ldm));
  const missing = table.filter((k) => !k.optional && !found.has(k.ldm)).map((k) => k.ldm);
  if (unknown.length === 0 && missing.length === 0 && badShapes.length === 0) return { assignments, ignored };

  const parts: string[] = [];
  for (const [prefix, what] of OTHER_LAYOUTS) {
    if (unknown.some((k) => k.startsWith(prefix))) parts.push(`it looks like ${what}`);
  }
  if (!LDM_COMPONENTS.some((c) => [...tensors.keys()].some((k) => k.startsWith(LDM_PREFIXES[c])))) {
    parts.push(
      `no key starts with ${LDM_COMPONENTS.map((c) => `"${LDM_PREFIXES[c]}"`).join(', ')}: this is not an original-layout Stable Diffusion checkpoint`,
    );
  }
  if (badShapes.length > 0) parts.push(`${badShapes.length} tensors have the wrong shape:\n${listKeys(badShapes)}`);
  if (unknown.length > 0) parts.push(`${unknown.length} keys are not part of this structure:\n${listKeys(unknown)}`);
  if (missing.length > 0) {
    const perComponent = LDM_COMPONENTS.map((c) => [c, missing.filter((k) => k.startsWith(LDM_PREFIXES[c])).length] as const).filter(([, n]) => n > 0);
    parts.push(`${missing.length} keys are missing (${perComponent.map(([c, n]) => `${c} ${n}`).join(', ')}):\n${listKeys(missing)}`);
  }
  const l = layout.unet;
  parts.push(
    `the keys were derived from the configs (U-Net: ${l.blockOutChannels.length} levels, layers_per_block ${l.layersPerBlock}; ` +
      `VAE: ${layout.vae.blockOutChannels.length} levels, layers_per_block ${layout.vae.layersPerBlock}; text encoder: ${layout.textEncoder.numHiddenLayers} layers): ` +
      "are they the configs of this checkpoint's model?",
  );
  throw new ConfigError(`${where}: cannot convert to diffusers:\n  ${parts.join('\n  ')}`);
}

/** Converts a whole checkpoint in memory (see loadLdmSingleFile for files). */
export function fromLdmSingleFile(checkpoint: ReadonlyMap<string, RawTensor>, layout: LdmLayout, where = 'checkpoint'): LdmLoadResult {
  const plan = planLdmConversion(checkpoint, layout, where);
  const components = emptyComponents();
  for (const { key, shape } of plan.assignments) {
    const tensor = checkpoint.get(key.ldm)!;
    components[key.component].set(key.diffusers, { dtype: tensor.dtype, shape, data: tensor.data });
  }
  return { components, ignored: plan.ignored };
}

/**
 * The single file of diffusers components (the reverse of fromLdmSingleFile): every tensor of the
 * layout must be in its component, and no other. VAE attention weights become 1×1 conv weights.
 * Keys come in the table's order (U-Net, VAE, text encoder).
 */
export function toLdmSingleFile(
  components: Readonly<Record<LdmComponent, ReadonlyMap<string, RawTensor>>>,
  layout: LdmLayout,
  where = 'components',
): RawStateDict {
  const table = ldmKeyTable(layout);
  const out: RawStateDict = new Map();
  const missing: string[] = [];
  const badShapes: string[] = [];
  for (const key of table) {
    const tensor = components[key.component].get(key.diffusers);
    if (tensor === undefined) {
      if (!key.optional) missing.push(`${key.component}: ${key.diffusers}`);
      continue;
    }
    let shape = tensor.shape;
    if (key.reshape === 'conv1x1-linear') {
      if (shape.length === 2) shape = [...shape, 1, 1];
      else badShapes.push(`${key.component}: ${key.diffusers}: expected a Linear weight [C, C], found ${shapeText(shape)}`);
    }
    out.set(key.ldm, { dtype: tensor.dtype, shape, data: tensor.data });
  }
  const known = new Set(table.map((k) => `${k.component}: ${k.diffusers}`));
  const unknown = LDM_COMPONENTS.flatMap((c) => [...components[c].keys()].map((k) => `${c}: ${k}`)).filter((k) => !known.has(k));
  if (missing.length > 0 || unknown.length > 0 || badShapes.length > 0) {
    const parts: string[] = [];
    if (badShapes.length > 0) parts.push(`${badShapes.length} tensors have the wrong shape:\n${listKeys(badShapes)}`);
    if (unknown.length > 0) parts.push(`${unknown.length} tensors have no place in the single-file layout:\n${listKeys(unknown)}`);
    if (missing.length > 0) parts.push(`${missing.length} tensors are missing:\n${listKeys(missing)}`);
    throw new ConfigError(`${where}: cannot write a single-file checkpoint:\n  ${parts.join('\n  ')}`);
  }
  return out;
}

function emptyComponents(): DiffusersComponents {
  return { unet: new Map(), vae: new Map(), text_encoder: new Map() };
}

export interface SingleFileOptions {
  /**
   * A diffusers Stable Diffusion folder (or one with just unet/, vae/ and text_encoder/ configs)
   * describing the models of the single file, as diffusers' `from_single_file(config=...)`.
   */
  config?: string;
}

function requireConfig(options: SingleFileOptions, path: string): LdmLayout {
  if (options.config === undefined) {
    throw new ConfigError(
      `${path}: a single-file checkpoint does not say how its models are built; pass options.config, the diffusers folder of the same ` +
        'model (e.g. a Stable Diffusion 1.5 or 2.1 folder with unet/config.json, vae/config.json and text_encoder/config.json), ' +
        "as diffusers' from_single_file(config=...) takes it",
    );
  }
  return readLdmLayout(options.config);
}

/** Reads a single-file `.safetensors` checkpoint into diffusers state dicts (training-only tensors are not read). */
export async function loadLdmSingleFile(path: string, options: SingleFileOptions = {}): Promise<LdmLoadResult> {
  const layout = requireConfig(options, path);
  const file = await SafetensorsFile.open(path);
  try {
    const plan = planLdmConversion(file.tensors, layout, path);
    const components = emptyComponents();
    for (const { key, shape } of plan.assignments) {
      const info = file.info(key.ldm);
      components[key.component].set(key.diffusers, { dtype: info.dtype, shape, data: await file.readBytes(key.ldm) });
    }
    return { components, ignored: plan.ignored };
  } finally {
    await file.close();
  }
}

/** Writes diffusers components as one single-file checkpoint (no metadata, like diffusers' conversion script). */
export async function saveLdmSingleFile(
  path: string,
  components: Readonly<Record<LdmComponent, ReadonlyMap<string, RawTensor>>>,
  options: SingleFileOptions = {},
): Promise<void> {
  const layout = requireConfig(options, path);
  await writeSafetensors(path, toLdmSingleFile(components, layout, path));
}

/** Weight files of a diffusers folder's components (single, unsharded safetensors files). */
export const DIFFUSERS_WEIGHT_FILES: Readonly<Record<LdmComponent, string>> = {
  unet: 'unet/diffusion_pytorch_model.safetensors',
  vae: 'vae/diffusion_pytorch_model.safetensors',
  text_encoder: 'text_encoder/model.safetensors',
};

/** Reads a diffusers folder's unet, vae and text_encoder weights as raw tensors. */
export async function readDiffusersComponents(dir: string): Promise<DiffusersComponents> {
  const components = emptyComponents();
  for (const component of LDM_COMPONENTS) {
    const file = await SafetensorsFile.open(nodePath.join(dir, DIFFUSERS_WEIGHT_FILES[component]));
    try {
      for (const [name, info] of file.tensors) components[component].set(name, { dtype: info.dtype, shape: info.shape, data: await file.readBytes(name) });
    } finally {
      await file.close();
    }
  }
  return components;
}

/**
 * Converts a single file into a diffusers folder at `outDir`: the config folder's pipeline files
 * (model_index.json and the component folders it names, without weights) are copied, then the three components' weights written.
 */
export async function convertLdmSingleFileToFolder(path: string, outDir: string, options: SingleFileOptions = {}): Promise<LdmLoadResult> {
  const loaded = await loadLdmSingleFile(path, options);
  const config = options.config!;
  // Only the pipeline's own files: a difftune output used as the config also holds checkpoint-*/,
  // metrics.jsonl and caches, which do not belong in the converted pipeline.
  for (const entry of await pipelineEntries(config)) {
    await fs.cp(nodePath.join(config, entry), nodePath.join(outDir, entry), {
      recursive: true,
      filter: (src) => !/\.(safetensors|bin|ckpt|pt|pth|msgpack|onnx)$/i.test(src),
    });
  }
  for (const component of LDM_COMPONENTS) {
    const target = nodePath.join(outDir, DIFFUSERS_WEIGHT_FILES[component]);
    await fs.mkdir(nodePath.dirname(target), { recursive: true });
    // The metadata diffusers' save_pretrained writes (transformers and diffusers both check it on load).
    await writeSafetensors(target, loaded.components[component], { format: 'pt' });
  }
  return loaded;
}
