/**
 * A Stable Diffusion pipeline folder of exactly a config folder's structure — e.g. the real SD 1.5 / 2.1
 * configs of test/fixtures/real-configs — with seeded random weights: the same tensors, parameter count
 * and compute as the real model, for tests and benchmarks where its weights cannot be had. The configs,
 * tokenizer and scheduler are copied as they are; each model is built once from its config to list its
 * tensors (names, shapes: the model's own, so they are what loading expects), then its weight file is
 * written one tensor at a time, each drawn natively by the rule of init-weights.ts, written and freed
 * before the next: SD 2.1's 3.4 GB U-Net never exists twice in memory.
 */
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import { DIFFUSERS_WEIGHT_FILES } from '../checkpoint/ldm-single-file';
import { PIPELINE_INDEX_FILE } from '../checkpoint/pipeline-folder';
import { writeSafetensorsStreamed } from '../checkpoint/safetensors-stream';
import { f32ToBf16, f32ToF16, type DType as SafetensorsDType } from '../checkpoint/safetensors';
import { parseLenientJson } from '../config/json';
import { ConfigError, expected } from '../errors';
import { toSafetensorsDtype } from '../native/dtype';
import { Generator } from '../native/generator';
import { randn, scale } from '../native/ops';
import type { Tensor } from '../native/tensor';
import type { NativeParameterInfo } from '../native/types';
import { writeAll, writeFileAtomically } from '../util/atomic-write';
import { withFileErrors } from '../util/fs-errors';
import { createFolder } from '../util/output-folder';
import { CLIPTextModel } from './clip-text';
import { initRule, type InitRule } from './init-weights';
import { readModelIndex, STABLE_DIFFUSION_COMPONENT_NAMES } from './model-index';
import { UNet } from './unet';
import { AutoencoderKL } from './vae';

/** The dtypes a random-weight pipeline can be written in. */
export const INIT_DTYPES = ['float32', 'float16', 'bfloat16'] as const;
export type InitDType = (typeof INIT_DTYPES)[number];

export interface InitPipelineOptions {
  /** Seeds the one generator the three models draw from, in the order unet, vae, text_encoder. Default 0. */
  seed?: number;
  /** The weight files' dtype (drawn in float32, then rounded). Default float32. */
  dtype?: InitDType;
  /** Hears one line per component written. */
  log?: (line: string) => void;
}

export interface InitComponentResult {
  name: 'unet' | 'vae' | 'text_encoder';
  /** The weight file written. */
  file: string;
  tensors: number;
  parameters: number;
  bytes: number;
  seconds: number;
}

export interface InitPipelineResult {
  dir: string;
  components: InitComponentResult[];
}

type ModelComponent = InitComponentResult['name'];

/** Each model's tensors as its class builds it from `config.json` (built, listed, disposed). */
const LIST_TENSORS: Readonly<Record<ModelComponent, (raw: unknown, source: string) => Promise<NativeParameterInfo[]>>> = {
  unet: async (raw, source) => {
    using model = await UNet.fromConfig(raw, { source });
    return await model.parameters();
  },
  vae: async (raw, source) => {
    using model = await AutoencoderKL.fromConfig(raw, { source });
    return await model.parameters();
  },
  text_encoder: async (raw, source) => {
    using model = await CLIPTextModel.fromConfig(raw, { source });
    return await model.parameters();
  },
};

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** `value` repeated `count` times as `dtype`'s raw bytes. */
function constantBytes(value: number, count: number, dtype: InitDType): Uint8Array {
  if (dtype === 'float32') return new Uint8Array(new Float32Array(count).fill(value).buffer);
  return new Uint8Array(new Uint16Array(count).fill(dtype === 'float16' ? f32ToF16(value) : f32ToBf16(value)).buffer);
}

/** One tensor drawn by `rule` from `generator`, as `dtype`'s raw bytes; the native intermediates are freed at once. */
async function drawTensor(rule: InitRule, shape: readonly number[], dtype: InitDType, generator: Generator): Promise<ArrayBufferView> {
  if (rule.kind === 'constant') return constantBytes(rule.value, numel(shape), dtype);
  const owned: Tensor[] = [];
  try {
    const draw = await randn(shape, { generator });
    owned.push(draw);
    let t = await scale(draw, rule.std);
    owned.push(t);
    if (dtype !== 'float32') {
      t = await t.to('cpu', dtype);
      owned.push(t);
    }
    return await t.data({ raw: true });
  } finally {
    for (const t of owned) t.dispose();
  }
}

/** model_index.json of the new folder: the config folder's, with the components not written (safety checker, feature extractor) [null, null]. */
async function writeIndex(configDir: string, outDir: string): Promise<void> {
  const file = nodePath.join(configDir, PIPELINE_INDEX_FILE);
  const index = parseLenientJson(await withFileErrors(file, 'read', () => fs.readFile(file, 'utf8')), file) as Record<string, unknown>;
  const written = new Set<string>(STABLE_DIFFUSION_COMPONENT_NAMES);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(index)) out[key] = Array.isArray(value) && !key.startsWith('_') && !written.has(key) ? [null, null] : value;
  const bytes = Buffer.from(`${JSON.stringify(out, null, 2)}\n`, 'utf8');
  await writeFileAtomically(nodePath.join(outDir, PIPELINE_INDEX_FILE), (handle) => writeAll(handle, bytes));
}

async function writeModel(
  configDir: string,
  outDir: string,
  name: ModelComponent,
  generator: Generator,
  dtype: InitDType,
): Promise<InitComponentResult> {
  const started = performance.now();
  const configFile = nodePath.join(configDir, name, 'config.json');
  const raw = parseLenientJson(await withFileErrors(configFile, 'read', () => fs.readFile(configFile, 'utf8')), configFile);
  const tensors = await LIST_TENSORS[name](raw, configFile);
  await createFolder(nodePath.join(outDir, name));
  await fs.copyFile(configFile, nodePath.join(outDir, name, 'config.json'));
  const shapes = new Map(tensors.map((t) => [t.name, t.shape]));
  const stDtype = toSafetensorsDtype(dtype) as SafetensorsDType;
  const file = nodePath.join(outDir, DIFFUSERS_WEIGHT_FILES[name]);
  const entries = tensors.map((t) => ({ name: t.name, dtype: stDtype, shape: t.shape }));
  // {"format": "pt"}: what save_pretrained writes, which transformers checks on load.
  await writeSafetensorsStreamed(file, entries, (e) => drawTensor(initRule(e.name, shapes), e.shape, dtype, generator), { format: 'pt' });
  const parameters = tensors.reduce((n, t) => n + numel(t.shape), 0);
  return { name, file, tensors: tensors.length, parameters, bytes: (await fs.stat(file)).size, seconds: (performance.now() - started) / 1000 };
}

/**
 * Writes the pipeline of `configDir` (a diffusers Stable Diffusion folder: model_index.json, unet/, vae/,
 * text_encoder/ configs, tokenizer/, scheduler/; weights, if any, are not read) with seeded random weights
 * to `outDir`, which must not exist or be empty.
 */
export async function initPipeline(configDir: string, outDir: string, options: InitPipelineOptions = {}): Promise<InitPipelineResult> {
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) throw expected('a non-negative integer', 'seed', options.seed);
  const dtype = options.dtype ?? 'float32';
  if (!(INIT_DTYPES as readonly string[]).includes(dtype)) throw expected(`one of ${INIT_DTYPES.join(', ')}`, 'dtype', options.dtype);
  readModelIndex(configDir); // every component present, of a class difftune builds, before anything is written
  const existing = await fs.readdir(outDir).catch(() => undefined);
  if (existing !== undefined && existing.length > 0) throw new ConfigError(`--out: ${outDir} exists and is not empty; pick a new folder`);
  await createFolder(outDir, '--out');

  await writeIndex(configDir, outDir);
  for (const name of ['tokenizer', 'scheduler']) {
    await withFileErrors(nodePath.join(outDir, name), 'write', () => fs.cp(nodePath.join(configDir, name), nodePath.join(outDir, name), { recursive: true }));
  }
  using generator = new Generator(seed);
  const components: InitComponentResult[] = [];
  for (const name of ['unet', 'vae', 'text_encoder'] as const) {
    const result = await writeModel(configDir, outDir, name, generator, dtype);
    components.push(result);
    options.log?.(
      `${name}: ${result.tensors} tensors, ${result.parameters.toLocaleString('en-US')} parameters, ` +
        `${(result.bytes / 1e9).toFixed(2)} GB ${dtype} in ${result.seconds.toFixed(1)} s`,
    );
  }
  return { dir: outDir, components };
}
