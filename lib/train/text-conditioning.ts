/**
 * Text-to-image training inputs: the frozen VAE turns each batch's images into latents and the frozen
 * text encoder turns its captions into embeddings, the U-Net's two inputs. Both models stay in eval
 * mode and out of the optimizer, so they stay bit-identical. When the text encoder trains
 * (trainEncoderInStep), captions go to the trainer as token ids instead, which it encodes inside the step.
 *
 * Caching. An image's latent distribution (mean, logvar) is keyed by the sha256 of its transformed
 * pixels (so the file's content and every transform, flips and crops included, are in the key) and of
 * the VAE's weights; a caption's embeddings by the caption, clip-skip and the text encoder's weights.
 * Any change gives another key, so a stale entry is never read. Entries live in memory and, with a
 * cache folder, on disk (one safetensors file each, written atomically) for later runs.
 * The latents themselves are drawn per step, mean + σ·ε with ε from (seed, step, sample index), as
 * diffusers' train_text_to_image draws latent_dist.sample() every step.
 */
import { createHash } from 'crypto';
import { promises as fs } from 'fs';
import * as path from 'path';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../checkpoint/safetensors';
import { ConfigError } from '../errors';
import { hashFiles } from '../checkpoint/train-state';
import { loadTextEncoder, TEXT_ENCODER_WEIGHTS, type CLIPTextModel } from '../models/clip-text';
import { loadVae, type AutoencoderKL } from '../models/vae';
import { Generator } from '../native/generator';
import { concat, gaussianSample, randn, scale } from '../native/ops';
import { Tensor } from '../native/tensor';
import { CLIPTokenizer } from '../text/clip-tokenizer';
import { createFolder } from '../util/output-folder';

export interface TextConditioningOptions {
  /** The text encoder layer −(clipSkip + 1) through its final LayerNorm; null: last_hidden_state. */
  clipSkip: number | null;
  cacheLatents: boolean;
  cacheTextEmbeddings: boolean;
  /** Where cache entries persist across runs; undefined: memory only. */
  cacheDir: string | undefined;
  /** The run's seed: latent draws come from (seed, step, sample index). */
  seed: number;
  /** sha256 of the VAE's and the text encoder's weights files (part of every cache key). */
  vaeIdentity: string;
  textEncoderIdentity: string;
}

export interface CacheStats {
  latentHits: number;
  latentMisses: number;
  textHits: number;
  textMisses: number;
  /** Images the VAE encoded (cache misses and uncached runs). */
  vaeEncoded: number;
}

interface LatentEntry {
  mean: Float32Array;
  logvar: Float32Array;
  shape: number[];
}

const sha256 = (...parts: Array<string | Uint8Array>) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
};

/** Rows `which` of an array [n, ...rest]. */
function pickRows(data: Float32Array, n: number, which: readonly number[]): Float32Array[] {
  const size = data.length / n;
  return which.map((i) => data.subarray(i * size, (i + 1) * size));
}

/** Splits an array [N, ...rest] into N copies of its rows. */
function rows(data: Float32Array, n: number): Float32Array[] {
  const size = data.length / n;
  return Array.from({ length: n }, (_, i) => data.slice(i * size, (i + 1) * size));
}

function stack(parts: readonly Float32Array[], shape: readonly number[]): Tensor {
  const size = parts[0]!.length;
  const out = new Float32Array(size * parts.length);
  parts.forEach((p, i) => out.set(p, i * size));
  return Tensor.from(out, [parts.length, ...shape]);
}

async function floats(t: Tensor): Promise<Float32Array> {
  if (t.dtype === 'float32' && t.device === 'cpu') return (await t.data()) as Float32Array;
  using cpu = await t.to('cpu', 'float32');
  return (await cpu.data()) as Float32Array;
}

/** A batch's conditioning: the captions' embeddings, or their token ids when the text encoder trains in the step. */
export type CaptionInputs = { context: Tensor; inputIds?: undefined } | { inputIds: Tensor; context?: undefined };

export class TextConditioning {
  readonly stats: CacheStats = { latentHits: 0, latentMisses: 0, textHits: 0, textMisses: 0, vaeEncoded: 0 };
  private readonly latents = new Map<string, LatentEntry>();
  private readonly texts = new Map<string, Float32Array>();
  private textShape: number[] | undefined;
  #idsInStep = false;

  constructor(
    readonly vae: AutoencoderKL,
    readonly textEncoder: CLIPTextModel,
    readonly tokenizer: CLIPTokenizer,
    readonly options: TextConditioningOptions,
  ) {
    if (options.clipSkip !== null && (!Number.isSafeInteger(options.clipSkip) || options.clipSkip < 0))
      throw new ConfigError(`textToImage.clipSkip: expected a non-negative integer or null but found ${options.clipSkip}`);
  }

  /**
   * From now on captions become token ids for the trainer, whose conditioning model (this text encoder,
   * training) encodes them inside each step; no caption embedding is computed or cached here.
   */
  trainEncoderInStep(): void {
    this.#idsInStep = true;
  }

  get encoderTrainsInStep(): boolean {
    return this.#idsInStep;
  }

  /**
   * The U-Net's inputs for a batch: latents drawn for `step` (scaled by scaling_factor) and caption
   * embeddings (or token ids). `rawPixels` (the loader's uint8 NHWC bytes of the same images) key the latent cache.
   */
  async prepare(
    pixels: Tensor,
    rawPixels: Uint8Array,
    captions: readonly string[] | null,
    indices: readonly number[],
    step: number,
  ): Promise<{ latents: Tensor } & CaptionInputs> {
    const text = await this.captionInputs(captions, pixels.shape[0]!);
    try {
      const entries = await this.encode(pixels, rawPixels);
      using mean = stack(
        entries.map((e) => e.mean),
        entries[0]!.shape,
      );
      using logvar = stack(
        entries.map((e) => e.logvar),
        entries[0]!.shape,
      );
      using noise = await this.noise(entries[0]!.shape, indices, step);
      const latents = await gaussianSample(mean, logvar, noise, this.vae.scalingFactor);
      return { latents, ...text };
    } catch (error) {
      (text.context ?? text.inputIds).dispose();
      throw error;
    }
  }

  /** Validation inputs: the latent distribution's mean (no draw), scaled, and the captions' embeddings (or token ids). */
  async prepareFixed(pixels: Tensor, rawPixels: Uint8Array, captions: readonly string[] | null): Promise<{ latents: Tensor } & CaptionInputs> {
    const text = await this.captionInputs(captions, pixels.shape[0]!);
    try {
      const entries = await this.encode(pixels, rawPixels);
      using mean = stack(
        entries.map((e) => e.mean),
        entries[0]!.shape,
      );
      return { latents: await scale(mean, this.vae.scalingFactor), ...text };
    } catch (error) {
      (text.context ?? text.inputIds).dispose();
      throw error;
    }
  }

  private async captionInputs(captions: readonly string[] | null, n: number): Promise<CaptionInputs> {
    if (!this.#idsInStep) return { context: await this.embed(captions, n) };
    return { inputIds: this.tokenize(checkCaptions(captions, n)) };
  }

  /** ε per sample from (seed, step, sample index), drawn and stacked natively. */
  private async noise(shape: readonly number[], indices: readonly number[], step: number): Promise<Tensor> {
    const parts: Tensor[] = [];
    try {
      for (const index of indices) {
        // A stream of its own per (seed, step, sample): independent of batch composition and world size.
        const seed = parseInt(sha256(`latent-noise:${this.options.seed}:${step}:${index}`).slice(0, 13), 16); // 52 bits: a safe integer
        using generator = new Generator(seed);
        parts.push(await randn([1, ...shape], { generator }));
      }
      return await concat(parts);
    } finally {
      for (const p of parts) p.dispose();
    }
  }

  private async encode(pixels: Tensor, rawPixels: Uint8Array): Promise<LatentEntry[]> {
    const n = pixels.shape[0]!;
    const imageBytes = rawPixels.length / n;
    if (!Number.isInteger(imageBytes) || imageBytes * n !== rawPixels.length)
      throw new ConfigError(`expected the decoded bytes of ${n} images but found ${rawPixels.length} bytes`);
    const cached = this.options.cacheLatents;
    const keys = cached
      ? Array.from({ length: n }, (_, i) =>
          sha256('latents/2', this.options.vaeIdentity, pixels.shape.slice(1).join('x'), rawPixels.subarray(i * imageBytes, (i + 1) * imageBytes)),
        )
      : [];
    // Filled, not `new Array(n)`: flatMap below skips the holes of a sparse array, so nothing would be encoded.
    const out: Array<LatentEntry | undefined> = cached ? keys.map((k) => this.latents.get(k)) : Array.from({ length: n }, () => undefined);
    if (cached && this.options.cacheDir) {
      for (const [i, k] of keys.entries()) if (!out[i]) out[i] = await this.readLatent(k);
    }
    const missing = out.flatMap((e, i) => (e ? [] : [i]));
    this.stats.latentHits += n - missing.length;
    this.stats.latentMisses += missing.length;
    if (missing.length > 0) {
      // The whole batch goes to the VAE as it is; only a partly cached one is read back to pick the misses.
      using subset = missing.length === n ? undefined : stack(pickRows(await floats(pixels), n, missing), pixels.shape.slice(1));
      const { mean, logvar } = await this.vae.encode(subset ?? pixels);
      try {
        const shape = mean.shape.slice(1);
        const means = rows(await floats(mean), missing.length);
        const logvars = rows(await floats(logvar), missing.length);
        this.stats.vaeEncoded += missing.length;
        for (const [j, i] of missing.entries()) {
          const entry = { mean: means[j]!, logvar: logvars[j]!, shape };
          out[i] = entry;
          if (cached) {
            this.latents.set(keys[i]!, entry);
            if (this.options.cacheDir) await this.writeLatent(keys[i]!, entry);
          }
        }
      } finally {
        mean.dispose();
        logvar.dispose();
      }
    }
    return out as LatentEntry[];
  }

  private async embed(captionsIn: readonly string[] | null, n: number): Promise<Tensor> {
    const captions = checkCaptions(captionsIn, n);
    const keyOf = (c: string) => sha256('text/1', this.options.textEncoderIdentity, String(this.options.clipSkip), c);
    const rowsOut: Array<Float32Array | undefined> = captions.map((c) => (this.options.cacheTextEmbeddings ? this.texts.get(keyOf(c)) : undefined));
    if (this.options.cacheTextEmbeddings && this.options.cacheDir) {
      for (const [i, c] of captions.entries()) if (!rowsOut[i]) rowsOut[i] = await this.readText(keyOf(c));
    }
    const missing = [...new Set(captions.filter((_, i) => !rowsOut[i]))];
    this.stats.textHits += captions.length - captions.filter((_, i) => !rowsOut[i]).length;
    this.stats.textMisses += missing.length;
    if (missing.length > 0) {
      using ids = this.tokenize(missing);
      using embeds = await this.textEncoder.embed(ids, { clipSkip: this.options.clipSkip ?? undefined });
      this.textShape = embeds.shape.slice(1);
      const computed = rows(await floats(embeds), missing.length);
      const byCaption = new Map(missing.map((c, j) => [c, computed[j]!]));
      for (const [i, c] of captions.entries()) if (!rowsOut[i]) rowsOut[i] = byCaption.get(c);
      for (const [c, row] of byCaption) {
        if (!this.options.cacheTextEmbeddings) continue;
        this.texts.set(keyOf(c), row);
        if (this.options.cacheDir) await this.writeText(keyOf(c), row);
      }
    }
    return stack(rowsOut as Float32Array[], this.textShape!);
  }

  /** Token ids [n, 77]; a multi-vector textual inversion token spread over its vectors, as the pipelines do. */
  private tokenize(captions: readonly string[]): Tensor {
    const ids = captions.map((c) => this.tokenizer.encode(this.tokenizer.expandMultiVectorTokens(c), { padding: 'max_length', truncation: true }).inputIds);
    const length = ids[0]!.length;
    const flat = new BigInt64Array(ids.length * length);
    ids.forEach((row, i) => row.forEach((id, j) => (flat[i * length + j] = BigInt(id))));
    return Tensor.from(flat, [ids.length, length]);
  }

  private file(kind: 'latents' | 'text', key: string): string {
    return path.join(this.options.cacheDir!, kind, key.slice(0, 2), `${key}.safetensors`);
  }

  /** An entry's float32 tensors, or undefined when absent or unreadable (a damaged entry is recomputed, never trusted). */
  private async readEntry(file: string, names: readonly string[]): Promise<Array<{ data: Float32Array; shape: number[] }> | undefined> {
    try {
      await using f = await SafetensorsFile.open(file);
      const out: Array<{ data: Float32Array; shape: number[] }> = [];
      for (const name of names) {
        const t = await f.read(name);
        if (t.dtype !== 'F32') return undefined;
        out.push({ data: t.data as Float32Array, shape: [...t.shape] });
      }
      return out;
    } catch {
      return undefined;
    }
  }

  private async readLatent(key: string): Promise<LatentEntry | undefined> {
    const entry = await this.readEntry(this.file('latents', key), ['mean', 'logvar']);
    if (!entry) return undefined;
    const e = { mean: entry[0]!.data, logvar: entry[1]!.data, shape: entry[0]!.shape };
    this.latents.set(key, e);
    return e;
  }

  private async writeLatent(key: string, e: LatentEntry): Promise<void> {
    await this.writeEntry(this.file('latents', key), {
      mean: { dtype: 'F32', shape: e.shape, data: e.mean },
      logvar: { dtype: 'F32', shape: e.shape, data: e.logvar },
    });
  }

  private async readText(key: string): Promise<Float32Array | undefined> {
    const entry = await this.readEntry(this.file('text', key), ['embeddings']);
    if (!entry) return undefined;
    this.textShape ??= entry[0]!.shape;
    this.texts.set(key, entry[0]!.data);
    return entry[0]!.data;
  }

  private async writeText(key: string, row: Float32Array): Promise<void> {
    await this.writeEntry(this.file('text', key), { embeddings: { dtype: 'F32', shape: this.textShape!, data: row } });
  }

  private async writeEntry(file: string, tensors: Record<string, TensorToWrite>): Promise<void> {
    await createFolder(path.dirname(file));
    await writeSafetensors(file, tensors, { format: 'difftune-cache' });
  }
}

function checkCaptions(captions: readonly string[] | null, n: number): readonly string[] {
  if (captions === null)
    throw new ConfigError(
      'data: a text-conditioned U-Net trains on captioned images (metadata.jsonl, or .txt/.caption files beside the images); this dataset has no captions',
    );
  if (captions.length !== n) throw new ConfigError(`data: expected ${n} captions for the batch but found ${captions.length}`);
  return captions;
}

/** The frozen half of a Stable Diffusion pipeline folder, ready to condition a fine-tuning run. */
export interface OpenedTextConditioning extends Disposable {
  readonly conditioning: TextConditioning;
  readonly textEncoder: CLIPTextModel;
  readonly vae: AutoencoderKL;
  /** sha256 of each frozen model's weights as they are in memory now (to show they never change). */
  fingerprint(): Promise<{ textEncoder: string; vae: string }>;
}

async function weightsDigest(model: { stateDict(): Promise<Map<string, Tensor>> }): Promise<string> {
  const weights = await model.stateDict();
  try {
    const h = createHash('sha256');
    for (const name of [...weights.keys()].sort()) {
      const t = weights.get(name)!;
      const data = await t.data();
      h.update(name)
        .update(t.shape.join('x'))
        .update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
    return h.digest('hex');
  } finally {
    for (const t of weights.values()) t.dispose();
  }
}

export async function openTextConditioning(
  pipelineDir: string,
  options: { device: string; clipSkip: number | null; cacheLatents: boolean; cacheTextEmbeddings: boolean; cacheDir: string | undefined; seed: number },
): Promise<OpenedTextConditioning> {
  const dirs = { vae: path.join(pipelineDir, 'vae'), textEncoder: path.join(pipelineDir, 'text_encoder'), tokenizer: path.join(pipelineDir, 'tokenizer') };
  const tokenizer = await CLIPTokenizer.load(dirs.tokenizer);
  const textEncoder = await loadTextEncoder(dirs.textEncoder, { device: options.device });
  let vae: AutoencoderKL | undefined;
  try {
    vae = await loadVae(dirs.vae, { device: options.device });
    const vaeIdentity = await hashFiles([path.join(dirs.vae, 'config.json'), ...(await weightFiles(dirs.vae))]);
    const textEncoderIdentity = await hashFiles([path.join(dirs.textEncoder, 'config.json'), path.join(dirs.textEncoder, TEXT_ENCODER_WEIGHTS)]);
    const conditioning = new TextConditioning(vae, textEncoder, tokenizer, { ...options, vaeIdentity, textEncoderIdentity });
    const v = vae;
    return {
      conditioning,
      textEncoder,
      vae: v,
      fingerprint: async () => ({ textEncoder: await weightsDigest(textEncoder), vae: await weightsDigest(v) }),
      [Symbol.dispose]() {
        v.dispose();
        textEncoder.dispose();
      },
    };
  } catch (error) {
    vae?.dispose();
    textEncoder.dispose();
    throw error;
  }
}

async function weightFiles(dir: string): Promise<string[]> {
  const names = (await fs.readdir(dir)).filter((n) => n.endsWith('.safetensors')).sort();
  if (names.length === 0) throw new ConfigError(`${dir}: expected the VAE's weights (diffusion_pytorch_model.safetensors) but found no .safetensors file`);
  return names.map((n) => path.join(dir, n));
}
