/**
 * Single-file Stable Diffusion checkpoints (the original CompVis / LDM layout of model-sharing sites)
 * ⇄ diffusers state dicts for `unet`, `vae` and `text_encoder`. The structure comes from a diffusers
 * folder's configs (like diffusers' `from_single_file(config=...)`); block numbers are derived from it
 * (ldm-layout.ts). Loading renames tensors, reshapes the 8 VAE attention weights and, for SD 2.x's
 * OpenCLIP text encoder, cuts each fused q/k/v into its three row blocks, nothing else: the bytes are the
 * file's, and writing joins them back. Training-only keys (the LDM noise schedule, EMA copies) are skipped
 * and listed; the OpenCLIP tensors diffusers has no place for (the 24th residual block, text_projection,
 * logit_scale) are kept — a converted folder stores them in text_encoder/single_file_extras.safetensors
 * — and written back; any other unknown key, or a missing one, is an error. Pure TypeScript (no addon).
 */
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import { ConfigError } from '../errors';
import { readLdmLayout, withTextEncoderStyle } from './ldm-configs';
import {
  isKeptOpenClipKey,
  LDM_COMPONENTS,
  LDM_PREFIXES,
  ldmKeyTable,
  ldmPrefix,
  OPEN_CLIP_PREFIX,
  type LdmComponent,
  type LdmKey,
  type LdmLayout,
  type TextEncoderStyle,
} from './ldm-layout';
import { pipelineEntries } from './pipeline-folder';
import { SafetensorsFile, writeSafetensors, type DType } from './safetensors';
import { tensorByteLength, type HeaderEntry } from './safetensors-format';
import { writeSafetensorsStreamed } from './safetensors-stream';

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
  /**
   * Tensors of the file that no diffusers component holds but that belong to its model, by single-file
   * key, kept to write the file back whole (SD 2.x: OpenCLIP's unused last block, text_projection, logit_scale).
   */
  kept: RawStateDict;
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
const OTHER_LAYOUTS: Array<[string, string]> = [['conditioner.embedders.', 'an SDXL checkpoint (conditioner.embedders.…), which difftune does not convert']];

/**
 * The text-encoder style of a file's keys: OpenCLIP's when it has `cond_stage_model.model.` keys and no
 * `cond_stage_model.transformer.` ones, OpenAI CLIP's in the opposite case, else the configs' (a file with
 * both, or no text encoder, then fails against one table with every odd key named).
 */
function fileTextEncoderStyle(keys: Iterable<string>, layout: LdmLayout): TextEncoderStyle {
  let openClip = false;
  let openAi = false;
  for (const key of keys) {
    if (key.startsWith(OPEN_CLIP_PREFIX)) openClip = true;
    else if (key.startsWith(LDM_PREFIXES.text_encoder)) openAi = true;
  }
  if (openClip !== openAi) return openClip ? 'open-clip' : 'openai-clip';
  return layout.textEncoder.style;
}

/** The keys of a table by single-file key (OpenCLIP's fused q/k/v is one file tensor for three diffusers ones). */
function groupByLdm(table: readonly LdmKey[]): Map<string, LdmKey[]> {
  const byLdm = new Map<string, LdmKey[]>();
  for (const key of table) {
    const group = byLdm.get(key.ldm);
    if (group === undefined) byLdm.set(key.ldm, [key]);
    else group.push(key);
  }
  return byLdm;
}

/** The bytes of part `part.index` of a tensor made of `part.of` equal row blocks (a view, no copy). */
function partBytes(data: Uint8Array, part: NonNullable<LdmKey['part']>): Uint8Array {
  const size = data.byteLength / part.of;
  return data.subarray(part.index * size, (part.index + 1) * size);
}

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
  /** Per diffusers tensor, in file order (the three parts of a fused q/k/v one after another). */
  assignments: LdmAssignment[];
  ignored: string[];
  /** Single-file keys kept for writing the file back (see LdmLoadResult.kept). */
  kept: string[];
  /** The layout the file was read with: the configs', its text encoder in the file's own style. */
  layout: LdmLayout;
}

/**
 * Matches a checkpoint's keys and shapes (its header) against the layout: every key must be a
 * tensor of the layout or training-only, and every tensor of the layout must be there. One
 * ConfigError lists the unknown and the missing keys.
 */
export function planLdmConversion(tensors: ReadonlyMap<string, { readonly shape: readonly number[] }>, configLayout: LdmLayout, where: string): LdmPlan {
  const layout = withTextEncoderStyle(configLayout, fileTextEncoderStyle(tensors.keys(), configLayout));
  const table = ldmKeyTable(layout);
  const byLdm = groupByLdm(table);
  const assignments: LdmAssignment[] = [];
  const ignored: string[] = [];
  const kept: string[] = [];
  const unknown: string[] = [];
  const badShapes: string[] = [];
  const found = new Set<string>();
  for (const [name, { shape }] of tensors) {
    const keys = byLdm.get(name);
    if (keys === undefined) {
      if (isKeptOpenClipKey(name, layout.textEncoder)) kept.push(name);
      else (isTrainingOnlyKey(name) ? ignored : unknown).push(name);
      continue;
    }
    found.add(name);
    for (const key of keys) {
      let target = shape;
      if (key.reshape === 'conv1x1-linear') {
        if (shape.length === 4 && shape[2] === 1 && shape[3] === 1) target = shape.slice(0, 2);
        else if (shape.length !== 2) badShapes.push(`${name}: expected a 1×1 conv weight [C, C, 1, 1] (or [C, C]), found ${shapeText(shape)}`);
      }
      if (key.part !== undefined) {
        const { of, rows } = key.part;
        if (shape[0] !== of * rows) {
          badShapes.push(`${name}: expected ${of} × ${rows} rows (q, k, v of the text encoder's hidden_size ${rows}), found ${shapeText(shape)}`);
          break;
        }
        target = [rows, ...shape.slice(1)];
      }
      assignments.push({ key, shape: target });
    }
  }
  const missing = [...byLdm.keys()].filter((ldm) => !byLdm.get(ldm)!.every((k) => k.optional === true) && !found.has(ldm));
  if (unknown.length === 0 && missing.length === 0 && badShapes.length === 0) return { assignments, ignored, kept, layout };

  const parts: string[] = [];
  for (const [prefix, what] of OTHER_LAYOUTS) {
    if (unknown.some((k) => k.startsWith(prefix))) parts.push(`it looks like ${what}`);
  }
  const names = [...tensors.keys()];
  if (names.some((k) => k.startsWith(OPEN_CLIP_PREFIX)) && names.some((k) => k.startsWith(LDM_PREFIXES.text_encoder))) {
    parts.push(`it has text-encoder keys of both layouts, "${LDM_PREFIXES.text_encoder}…" (SD 1.x) and "${OPEN_CLIP_PREFIX}…" (SD 2.x OpenCLIP)`);
  }
  const prefixes = [...LDM_COMPONENTS.map((c) => LDM_PREFIXES[c]), OPEN_CLIP_PREFIX];
  if (!names.some((k) => prefixes.some((p) => k.startsWith(p)))) {
    parts.push(`no key starts with ${prefixes.map((p) => `"${p}"`).join(', ')}: this is not an original-layout Stable Diffusion checkpoint`);
  }
  if (badShapes.length > 0) parts.push(`${badShapes.length} tensors have the wrong shape:\n${listKeys(badShapes)}`);
  if (unknown.length > 0) parts.push(`${unknown.length} keys are not part of this structure:\n${listKeys(unknown)}`);
  if (missing.length > 0) {
    const perComponent = LDM_COMPONENTS.map((c) => [c, missing.filter((k) => k.startsWith(ldmPrefix(c, layout.textEncoder.style))).length] as const).filter(
      ([, n]) => n > 0,
    );
    parts.push(`${missing.length} keys are missing (${perComponent.map(([c, n]) => `${c} ${n}`).join(', ')}):\n${listKeys(missing)}`);
  }
  const l = layout.unet;
  parts.push(
    `the keys were derived from the configs (U-Net: ${l.blockOutChannels.length} levels, layers_per_block ${l.layersPerBlock}; ` +
      `VAE: ${layout.vae.blockOutChannels.length} levels, layers_per_block ${layout.vae.layersPerBlock}; ` +
      `text encoder: ${layout.textEncoder.numHiddenLayers} layers of width ${layout.textEncoder.hiddenSize}, read in the ${layout.textEncoder.style} layout): ` +
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
    const data = key.part === undefined ? tensor.data : partBytes(tensor.data, key.part);
    components[key.component].set(key.diffusers, { dtype: tensor.dtype, shape, data });
  }
  return { components, ignored: plan.ignored, kept: new Map(plan.kept.map((k) => [k, checkpoint.get(k)!])) };
}

/** A tensor as a header describes it (a RawTensor, or a file's TensorInfo before its bytes are read). */
export interface TensorShape {
  readonly dtype: DType;
  readonly shape: readonly number[];
}

/** Where one diffusers-side tensor of a single-file tensor is: a component's tensor, or a kept one ("kept"). */
export interface LdmSource {
  readonly component: LdmComponent | 'kept';
  readonly name: string;
}

/** One tensor of a single file to write: its bytes are those of `sources`, one after another (OpenCLIP's q/k/v rows stack). */
export interface LdmSingleFileEntry extends HeaderEntry {
  readonly sources: readonly LdmSource[];
}

/** Why parts cannot stack into one single-file tensor (OpenCLIP's q/k/v), or undefined when they can. */
function partsMismatch(keys: readonly LdmKey[], parts: readonly TensorShape[]): string | undefined {
  const first = parts[0]!;
  const rest = first.shape.slice(1).join();
  const rows = keys[0]!.part!.rows;
  const odd = parts.findIndex((t) => t.dtype !== first.dtype || t.shape[0] !== rows || t.shape.slice(1).join() !== rest);
  if (odd < 0) return undefined;
  const list = parts.map((t, i) => `${keys[i]!.diffusers} ${t.dtype} ${shapeText(t.shape)}`).join(', ');
  return `${keys[0]!.ldm}: expected ${keys.length} tensors of one dtype and shape [${rows}, …] to stack, found ${list}`;
}

/**
 * The tensors of the single file of diffusers components, from their headers alone (the plan both
 * toLdmSingleFile and the streamed writeLdmSingleFileFromFolder fill): every tensor of the layout must be in
 * its component, and no other. VAE attention weights become 1×1 conv weights. Keys come in the table's
 * order (U-Net, VAE, text encoder), then the kept ones. One ConfigError lists every problem.
 */
export function planLdmSingleFile(
  components: Readonly<Record<LdmComponent, ReadonlyMap<string, TensorShape>>>,
  layout: LdmLayout,
  where = 'components',
  kept: ReadonlyMap<string, TensorShape> = new Map(),
): LdmSingleFileEntry[] {
  const table = ldmKeyTable(layout);
  const out: LdmSingleFileEntry[] = [];
  const written = new Set<string>();
  const missing: string[] = [];
  const badShapes: string[] = [];
  for (const [ldm, keys] of groupByLdm(table)) {
    const tensors = keys.map((key) => components[key.component].get(key.diffusers));
    const absent = keys.filter((key, i) => tensors[i] === undefined && key.optional !== true);
    missing.push(...absent.map((key) => `${key.component}: ${key.diffusers}`));
    if (absent.length > 0 || tensors.some((t) => t === undefined)) continue;
    const present = tensors as TensorShape[];
    const sources = keys.map((key) => ({ component: key.component, name: key.diffusers }));
    written.add(ldm);
    if (keys[0]!.part !== undefined) {
      const mismatch = partsMismatch(keys, present);
      if (mismatch !== undefined) badShapes.push(mismatch);
      else out.push({ name: ldm, dtype: present[0]!.dtype, shape: [keys[0]!.part.rows * keys.length, ...present[0]!.shape.slice(1)], sources });
      continue;
    }
    const [key, tensor] = [keys[0]!, present[0]!];
    let shape = tensor.shape;
    if (key.reshape === 'conv1x1-linear') {
      if (shape.length === 2) shape = [...shape, 1, 1];
      else badShapes.push(`${key.component}: ${key.diffusers}: expected a Linear weight [C, C], found ${shapeText(shape)}`);
    }
    out.push({ name: ldm, dtype: tensor.dtype, shape, sources });
  }
  const known = new Set(table.map((k) => `${k.component}: ${k.diffusers}`));
  const unknown = LDM_COMPONENTS.flatMap((c) => [...components[c].keys()].map((k) => `${c}: ${k}`)).filter((k) => !known.has(k));
  for (const [name, tensor] of kept) {
    if (isKeptOpenClipKey(name, layout.textEncoder) && !written.has(name)) {
      written.add(name);
      out.push({ name, dtype: tensor.dtype, shape: tensor.shape, sources: [{ component: 'kept', name }] });
    } else unknown.push(`kept single-file tensor ${name} (the text encoder is written in the ${layout.textEncoder.style} layout)`);
  }
  if (missing.length > 0 || unknown.length > 0 || badShapes.length > 0) {
    const parts: string[] = [];
    if (badShapes.length > 0) parts.push(`${badShapes.length} tensors have the wrong shape:\n${listKeys(badShapes)}`);
    if (unknown.length > 0) parts.push(`${unknown.length} tensors have no place in the single-file layout:\n${listKeys(unknown)}`);
    if (missing.length > 0) parts.push(`${missing.length} tensors are missing:\n${listKeys(missing)}`);
    throw new ConfigError(`${where}: cannot write a single-file checkpoint:\n  ${parts.join('\n  ')}`);
  }
  return out;
}

/**
 * The single file of diffusers components in memory (the reverse of fromLdmSingleFile; see
 * planLdmSingleFile). A fused q/k/v is a new buffer; every other tensor shares its component's bytes.
 */
export function toLdmSingleFile(
  components: Readonly<Record<LdmComponent, ReadonlyMap<string, RawTensor>>>,
  layout: LdmLayout,
  where = 'components',
  kept: ReadonlyMap<string, RawTensor> = new Map(),
): RawStateDict {
  const out: RawStateDict = new Map();
  for (const { name, dtype, shape, sources } of planLdmSingleFile(components, layout, where, kept)) {
    const parts = sources.map(({ component, name: n }) => (component === 'kept' ? kept : components[component]).get(n)!.data);
    if (parts.length === 1) {
      out.set(name, { dtype, shape, data: parts[0]! });
      continue;
    }
    const data = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let offset = 0;
    for (const p of parts) {
      data.set(p, offset);
      offset += p.byteLength;
    }
    out.set(name, { dtype, shape, data });
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

export interface SaveSingleFileOptions extends SingleFileOptions {
  /** Tensors to write besides the components' (LdmLoadResult.kept, readSingleFileKept of a converted folder). */
  kept?: ReadonlyMap<string, RawTensor>;
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
    // The three parts of a fused q/k/v follow each other: the tensor is read once for them.
    let last: { name: string; data: Uint8Array } | undefined;
    for (const { key, shape } of plan.assignments) {
      if (last?.name !== key.ldm) last = { name: key.ldm, data: await file.readBytes(key.ldm) };
      const data = key.part === undefined ? last.data : partBytes(last.data, key.part);
      components[key.component].set(key.diffusers, { dtype: file.info(key.ldm).dtype, shape, data });
    }
    const kept: RawStateDict = new Map();
    for (const name of plan.kept) kept.set(name, { dtype: file.info(name).dtype, shape: file.info(name).shape, data: await file.readBytes(name) });
    return { components, ignored: plan.ignored, kept };
  } finally {
    await file.close();
  }
}

/**
 * Writes diffusers components as one single-file checkpoint (no metadata, like diffusers' conversion
 * script), its text encoder in the configs' style (SD 2.x's OpenCLIP layout for a gelu text encoder), with
 * `options.kept` besides.
 */
export async function saveLdmSingleFile(
  path: string,
  components: Readonly<Record<LdmComponent, ReadonlyMap<string, RawTensor>>>,
  options: SaveSingleFileOptions = {},
): Promise<void> {
  const layout = requireConfig(options, path);
  await writeSafetensors(path, toLdmSingleFile(components, layout, path, options.kept));
}

/** Weight files of a diffusers folder's components (single, unsharded safetensors files). */
export const DIFFUSERS_WEIGHT_FILES: Readonly<Record<LdmComponent, string>> = {
  unet: 'unet/diffusion_pytorch_model.safetensors',
  vae: 'vae/diffusion_pytorch_model.safetensors',
  text_encoder: 'text_encoder/model.safetensors',
};

/**
 * Where a converted folder keeps LdmLoadResult.kept, under their single-file keys: in text_encoder/
 * (the model they belong to, which fine-tuning copies along), under a name transformers and diffusers
 * never read.
 */
export const SINGLE_FILE_KEPT_FILE = 'text_encoder/single_file_extras.safetensors';

/** The kept single-file tensors of a folder (SINGLE_FILE_KEPT_FILE), or none. */
export async function readSingleFileKept(dir: string): Promise<RawStateDict> {
  const kept: RawStateDict = new Map();
  const path = nodePath.join(dir, SINGLE_FILE_KEPT_FILE);
  if (!(await fs.stat(path).catch(() => undefined))?.isFile()) return kept;
  const file = await SafetensorsFile.open(path);
  try {
    for (const [name, info] of file.tensors) kept.set(name, { dtype: info.dtype, shape: info.shape, data: await file.readBytes(name) });
  } finally {
    await file.close();
  }
  return kept;
}

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

/** What a streamed conversion wrote, from the headers (no tensor data is held). */
export interface LdmConversionResult {
  /** Per component, the diffusers tensors written. */
  components: Record<LdmComponent, Map<string, TensorShape>>;
  /** Checkpoint keys skipped as training-only, in file order. */
  ignored: string[];
  /** The single-file tensors kept beside the components (see LdmLoadResult.kept). */
  kept: Map<string, TensorShape>;
}

/** A buffer for the largest of `entries`, reused for each tensor of a streamed write (each is written before the next is read). */
function scratchFor(entries: readonly HeaderEntry[], where: string): Buffer {
  return Buffer.allocUnsafeSlow(Math.max(1, ...entries.map((e) => tensorByteLength(e.dtype, e.shape, `${where}: tensor "${e.name}"`))));
}

/**
 * Converts a single file into a diffusers folder at `outDir`: the config folder's pipeline files
 * (model_index.json and the component folders it names, without weights) are copied — so prediction type,
 * upcast_attention and sample size are the config folder's —, then the three components' weights written,
 * and the kept tensors, if any, to SINGLE_FILE_KEPT_FILE. Streamed: each component's file is written one
 * tensor at a time, each read from the single file just before (only its rows for a part of a fused q/k/v),
 * so memory holds one tensor, not the checkpoint; the bytes are those of writeSafetensors on the loaded dicts.
 */
export async function convertLdmSingleFileToFolder(path: string, outDir: string, options: SingleFileOptions = {}): Promise<LdmConversionResult> {
  const layout = requireConfig(options, path);
  const file = await SafetensorsFile.open(path);
  try {
    const plan = planLdmConversion(file.tensors, layout, path);
    const config = options.config!;
    // Only the pipeline's own files: a difftune output used as the config also holds checkpoint-*/,
    // metrics.jsonl and caches, which do not belong in the converted pipeline.
    for (const entry of await pipelineEntries(config)) {
      await fs.cp(nodePath.join(config, entry), nodePath.join(outDir, entry), {
        recursive: true,
        filter: (src) => !/\.(safetensors|bin|ckpt|pt|pth|msgpack|onnx)$/i.test(src),
      });
    }
    const result: LdmConversionResult = { components: { unet: new Map(), vae: new Map(), text_encoder: new Map() }, ignored: plan.ignored, kept: new Map() };
    for (const component of LDM_COMPONENTS) {
      const entries = plan.assignments
        .filter(({ key }) => key.component === component)
        .map(({ key, shape }) => ({ name: key.diffusers, dtype: file.info(key.ldm).dtype, shape, key }));
      for (const e of entries) result.components[component].set(e.name, { dtype: e.dtype, shape: e.shape });
      const target = nodePath.join(outDir, DIFFUSERS_WEIGHT_FILES[component]);
      await fs.mkdir(nodePath.dirname(target), { recursive: true });
      const scratch = scratchFor(entries, target);
      await writeSafetensorsStreamed(
        target,
        entries,
        ({ key }) => {
          if (key.part === undefined) return file.readInto(key.ldm, scratch);
          const size = file.info(key.ldm).byteLength / key.part.of;
          return file.readInto(key.ldm, scratch, { offset: key.part.index * size, length: size });
        },
        // The metadata diffusers' save_pretrained writes (transformers and diffusers both check it on load).
        { format: 'pt' },
      );
    }
    if (plan.kept.length > 0) {
      const entries = plan.kept.map((name) => ({ name, dtype: file.info(name).dtype, shape: file.info(name).shape }));
      for (const e of entries) result.kept.set(e.name, { dtype: e.dtype, shape: e.shape });
      const target = nodePath.join(outDir, SINGLE_FILE_KEPT_FILE);
      const scratch = scratchFor(entries, target);
      await writeSafetensorsStreamed(target, entries, ({ name }) => file.readInto(name, scratch), {
        format: 'pt',
        difftune:
          'tensors of the single file that diffusers has no place for, under their single-file keys; written back by npm run convert -- --to-single-file',
      });
    }
    return result;
  } finally {
    await file.close();
  }
}

/** What writeLdmSingleFileFromFolder wrote: tensors per component and kept, and the text encoder's layout. */
export interface LdmSingleFileWritten {
  components: Record<LdmComponent, number>;
  kept: number;
  textEncoderStyle: TextEncoderStyle;
}

/**
 * Writes a diffusers folder's unet, vae and text_encoder weights (and its SINGLE_FILE_KEPT_FILE, if any) as
 * one single-file checkpoint at `path`, as saveLdmSingleFile would write them (same bytes), streamed: the
 * plan comes from the files' headers, then each single-file tensor is read just before it is written (the
 * three tensors of a fused q/k/v into one buffer), so memory holds one tensor, not the model.
 * `options.config` defaults to `dir`.
 */
export async function writeLdmSingleFileFromFolder(dir: string, path: string, options: SingleFileOptions = {}): Promise<LdmSingleFileWritten> {
  const layout = requireConfig({ config: options.config ?? dir }, path);
  const opened: SafetensorsFile[] = [];
  try {
    const files = {} as Record<LdmComponent | 'kept', SafetensorsFile | undefined>;
    for (const component of LDM_COMPONENTS) {
      files[component] = await SafetensorsFile.open(nodePath.join(dir, DIFFUSERS_WEIGHT_FILES[component]));
      opened.push(files[component]);
    }
    const keptPath = nodePath.join(dir, SINGLE_FILE_KEPT_FILE);
    if ((await fs.stat(keptPath).catch(() => undefined))?.isFile()) {
      files.kept = await SafetensorsFile.open(keptPath);
      opened.push(files.kept);
    }
    const tensorsOf = (f: SafetensorsFile | undefined): ReadonlyMap<string, TensorShape> => f?.tensors ?? new Map<string, TensorShape>();
    const components = { unet: tensorsOf(files.unet), vae: tensorsOf(files.vae), text_encoder: tensorsOf(files.text_encoder) };
    const entries = planLdmSingleFile(components, layout, path, tensorsOf(files.kept));
    const scratch = scratchFor(entries, path);
    await writeSafetensorsStreamed(path, entries, async ({ sources }) => {
      let offset = 0;
      for (const { component, name } of sources) offset += (await files[component]!.readInto(name, scratch.subarray(offset))).byteLength;
      return scratch.subarray(0, offset);
    });
    return {
      components: { unet: components.unet.size, vae: components.vae.size, text_encoder: components.text_encoder.size },
      kept: tensorsOf(files.kept).size,
      textEncoderStyle: layout.textEncoder.style,
    };
  } finally {
    for (const f of opened) await f.close();
  }
}
