/**
 * Textual inversion (diffusers' textual_inversion.py) as a piece of the loop: the tokenizer learns the
 * placeholder token(s) `<t>`, `<t>_1`, … (transformers' add_tokens), the token embedding grows by as many
 * rows, each a copy of the initializer token's, and those rows are the only weights that train — the
 * trainer zeroes the other rows' gradients and restores them bit for bit after each update, as diffusers
 * restores index_no_updates (weight decay would move them). The U-Net and the rest of the text encoder
 * stay frozen. Uncaptioned images are captioned with a template ("a photo of a {}") chosen from
 * (seed, epoch, sample index), so a resumed run captions as a straight one. The rows are saved as
 * learned_embeds.safetensors (diffusers' layout) in each checkpoint and the output; with
 * saveAsFullPipeline the output is also a whole pipeline whose tokenizer and text encoder have the tokens.
 */
import * as path from 'path';
import { TEXT_ENCODER_DIR } from '../checkpoint/train-state';
import type { Recipe } from '../config/recipe';
import { OBJECT_TEMPLATES, STYLE_TEMPLATES, type TextualInversionOptions } from '../config/textual-inversion';
import { hashInts } from '../data/random';
import { ConfigError } from '../errors';
import type { CLIPTextModel } from '../models/clip-text';
import { addTextualInversion, LEARNED_EMBEDS, multiVectorTokens, readTextualInversionFile, saveTextualInversionFile } from '../models/textual-inversion';
import { Tensor } from '../native/tensor';
import type { CLIPTokenizer } from '../text/clip-tokenizer';
import { useEmaEncoderWeights } from './ema';
import type { SampleBatch, TrainingBatch } from './hooks';
import { TEXT_ENCODER_PREFIX } from './trainer';
import type { TextEncoderPart } from './weights';

/** The token embedding's parameter, the only one textual inversion trains (some of its rows). */
export const TOKEN_EMBEDDING = 'text_model.embeddings.token_embedding.weight';
const TOKENIZER_DIR = 'tokenizer';
/** Seeds the caption templates' choice apart from the loader's streams. */
const TEMPLATE_STREAM = 0x7469;

/** The templates of uncaptioned images. */
export function captionTemplates(ti: Pick<TextualInversionOptions, 'templates'>): readonly string[] {
  if (ti.templates === 'object') return OBJECT_TEMPLATES;
  if (ti.templates === 'style') return STYLE_TEMPLATES;
  return ti.templates;
}

/** Rows [first, first + n) of the text encoder's token embedding, float32 [n, D]. */
async function tokenRows(textEncoder: CLIPTextModel, first: number, n: number): Promise<Tensor> {
  const state = await textEncoder.stateDict();
  try {
    const table = state.get(TOKEN_EMBEDDING);
    if (table === undefined) throw new ConfigError(`the text encoder has no ${TOKEN_EMBEDDING}`);
    using cpu = await table.to('cpu', 'float32');
    const width = table.shape[1]!;
    const all = cpu.toArray() as Float32Array;
    return Tensor.from(all.slice(first * width, (first + n) * width), [n, width], { dtype: 'float32' });
  } finally {
    for (const t of state.values()) t.dispose();
  }
}

/** The one id `initializerToken` tokenizes to, or a ConfigError naming what it became. */
function initializerId(tokenizer: CLIPTokenizer, token: string): number {
  const ids = tokenizer.encode(token).inputIds.slice(1, -1);
  if (ids.length !== 1)
    throw new ConfigError(
      `textualInversion.initializerToken: "${token}" is ${ids.length} tokens (${tokenizer.tokenize(token).join(' ')}); it must be a single token of the vocabulary (a word such as "toy")`,
    );
  return ids[0]!;
}

/**
 * Adds the placeholder tokens to the pipeline's tokenizer and their rows to its text encoder — copies of the
 * initializer token's row, or a resumed run's from its checkpoint — and says what trains and how it is saved.
 */
export async function openTextualInversion(
  pipeline: { readonly tokenizer: CLIPTokenizer; readonly textEncoder: CLIPTextModel },
  recipe: Recipe,
  at: { resumedDir: string | undefined; seed: number },
): Promise<TextEncoderPart> {
  const ti = recipe.textualInversion!;
  const { tokenizer, textEncoder } = pipeline;
  const tokens = multiVectorTokens(ti.placeholderToken, ti.numVectors);
  const taken = tokens.find((t) => tokenizer.hasToken(t));
  if (taken !== undefined)
    throw new ConfigError(`textualInversion.placeholderToken: the tokenizer already has the token "${taken}"; choose a new one (such as "<my-thing>")`);
  const initializer = initializerId(tokenizer, ti.initializerToken);
  let vectors: Tensor;
  if (at.resumedDir === undefined) {
    using row = await tokenRows(textEncoder, initializer, 1);
    const one = row.toArray() as Float32Array;
    const data = new Float32Array(one.length * ti.numVectors);
    for (let i = 0; i < ti.numVectors; i++) data.set(one, i * one.length);
    vectors = Tensor.from(data, [ti.numVectors, one.length], { dtype: 'float32' });
  } else {
    const file = path.join(at.resumedDir, LEARNED_EMBEDS);
    const saved = await readTextualInversionFile(file);
    if (saved.token !== ti.placeholderToken || saved.vectors.shape[0] !== ti.numVectors) {
      saved.vectors.dispose();
      throw new ConfigError(
        `resume: ${file} holds ${saved.vectors.shape[0]} vector(s) of "${saved.token}" but textualInversion asks for ${ti.numVectors} of "${ti.placeholderToken}"`,
      );
    }
    vectors = saved.vectors;
  }
  let ids: number[];
  try {
    using rows = await vectors.to(textEncoder.device, textEncoder.dtype);
    ({ ids } = await addTextualInversion(pipeline, { token: ti.placeholderToken, vectors: rows }, 'textualInversion'));
  } finally {
    vectors.dispose();
  }
  return new TextualInversion(ti, recipe.train.lr, pipeline, ids, at.seed);
}

class TextualInversion implements TextEncoderPart {
  readonly trainable;
  readonly note: string;
  readonly #templates: readonly string[];

  constructor(
    private readonly ti: TextualInversionOptions,
    lr: number,
    private readonly pipeline: { readonly tokenizer: CLIPTokenizer; readonly textEncoder: CLIPTextModel },
    private readonly ids: readonly number[],
    private readonly seed: number,
  ) {
    // Weight decay on the new rows, as diffusers' AdamW over the embedding (the others are restored anyway).
    this.trainable = [{ name: TEXT_ENCODER_PREFIX + TOKEN_EMBEDDING, lrMultiplier: (ti.lr ?? lr) / lr, weightDecay: true, rows: ids }];
    this.#templates = captionTemplates(ti);
    const tokens = multiVectorTokens(ti.placeholderToken, ti.numVectors);
    this.note =
      `textual inversion: ${tokens.join(', ')} (ids ${ids[0]}${ids.length > 1 ? `–${ids[ids.length - 1]}` : ''}) start as "${ti.initializerToken}"; ` +
      `only their ${ids.length} row${ids.length === 1 ? '' : 's'} of the token embedding train (learning rate ${ti.lr ?? lr}), the U-Net and the rest of the text encoder stay frozen`;
  }

  /** Uncaptioned samples get a template around the placeholder, chosen from (seed, epoch, sample index). */
  async extendBatch(batch: TrainingBatch): Promise<TrainingBatch> {
    if (batch.captions !== null) return batch;
    const captions = batch.indices.map((i) => this.caption(this.#templates[hashInts(this.seed, TEMPLATE_STREAM, batch.epoch, i) % this.#templates.length]!));
    return { ...batch, captions };
  }

  /** Held-out images without captions: the templates in turn. */
  async extendValidation(batch: SampleBatch): Promise<SampleBatch> {
    if (batch.captions !== null) return batch;
    return { ...batch, captions: batch.indices.map((_, k) => this.caption(this.#templates[k % this.#templates.length]!)) };
  }

  private caption(template: string): string {
    return template.split('{}').join(this.ti.placeholderToken);
  }

  async saveCheckpoint(dir: string): Promise<void> {
    await this.saveEmbeds(path.join(dir, LEARNED_EMBEDS));
  }

  async useEma(averages: Map<string, Tensor>): Promise<void> {
    await useEmaEncoderWeights(this.pipeline.textEncoder, averages);
  }

  async export(output: string): Promise<readonly string[]> {
    await this.saveEmbeds(path.join(output, LEARNED_EMBEDS));
    if (!this.ti.saveAsFullPipeline) return [];
    await this.pipeline.textEncoder.save(path.join(output, TEXT_ENCODER_DIR));
    await this.pipeline.tokenizer.save(path.join(output, TOKENIZER_DIR));
    return [TEXT_ENCODER_DIR, TOKENIZER_DIR];
  }

  outputFiles(output: string): string[] {
    return [path.join(output, LEARNED_EMBEDS)];
  }

  private async saveEmbeds(file: string): Promise<void> {
    using rows = await tokenRows(this.pipeline.textEncoder, this.ids[0]!, this.ids.length);
    await saveTextualInversionFile(file, this.ti.placeholderToken, rows);
  }
}
