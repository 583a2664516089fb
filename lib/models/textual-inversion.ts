/**
 * Textual inversion embeddings: new tokens whose rows of the text encoder's token embedding were learned
 * (lib/train/textual-inversion.ts trains them). Files: diffusers' `learned_embeds.safetensors`
 * (`{ token: [n, D] }`, or [D] for one vector), and A1111's safetensors (`emb_params`, or
 * `string_to_param.*`, the token being the file's name). loadTextualInversion is diffusers'
 * load_textual_inversion: a multi-vector embedding becomes the tokens `t`, `t_1`, …, `t_{n−1}` (prompts
 * spread `t` over all of them: CLIPTokenizer.expandMultiVectorTokens), appended to the tokenizer and to
 * the token embedding. Pickle files (.pt, .bin) are refused, as everywhere.
 */
import * as path from 'path';
import { SafetensorsFile, writeSafetensors } from '../checkpoint/safetensors';
import { ConfigError, expected } from '../errors';
import { fromSafetensorsDtype, toSafetensorsDtype } from '../native/dtype';
import { Tensor } from '../native/tensor';
import type { CLIPTokenizer } from '../text/clip-tokenizer';
import type { CLIPTextModel } from './clip-text';

/** The file diffusers' textual_inversion.py writes and load_textual_inversion looks for. */
export const LEARNED_EMBEDS = 'learned_embeds.safetensors';

/** A1111's single-tensor key, and the key of its `string_to_param: { '*': tensor }` flattened into a safetensors file. */
const A1111_KEYS = ['emb_params', 'string_to_param.*'] as const;

export interface TextualInversionEmbedding {
  /** The token the prompt names (the first vector's; the others are `<token>_1`, …). */
  token: string;
  /** [n, hidden_size] float32: one row per vector. */
  vectors: Tensor;
  layout: 'diffusers' | 'a1111';
}

/** The tokens of an n-vector embedding of `token`, as diffusers names them. */
export function multiVectorTokens(token: string, n: number): string[] {
  return [token, ...Array.from({ length: n - 1 }, (_, i) => `${token}_${i + 1}`)];
}

/**
 * Reads a textual inversion file: diffusers' layout (one tensor, its key the token) or A1111's (`emb_params`
 * or `string_to_param.*`; the token from the metadata's `name`, else the file's name without extension, as
 * A1111 names it). `token` renames it (diffusers' `token=`). The vectors are returned as float32 [n, D].
 */
export async function readTextualInversionFile(file: string, options: { token?: string } = {}): Promise<TextualInversionEmbedding> {
  if (options.token !== undefined && (typeof options.token !== 'string' || options.token.trim() === ''))
    throw expected('a non-empty token', 'options.token', options.token);
  await using st = await SafetensorsFile.open(file);
  const names = st.names();
  const a1111 = A1111_KEYS.find((k) => names.includes(k));
  let key: string;
  let token: string;
  if (a1111 !== undefined) {
    key = a1111;
    token = options.token ?? st.metadata?.name ?? path.basename(file).replace(/\.safetensors$/i, '');
  } else if (names.length === 1) {
    key = names[0]!;
    token = options.token ?? key;
  } else {
    throw new ConfigError(
      `${file}: expected a textual inversion embedding — one tensor named by its token (diffusers' learned_embeds.safetensors) or A1111's "emb_params" / "string_to_param.*" — but found ${names.length} tensors: ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', …' : ''}`,
    );
  }
  const info = st.info(key);
  const dtype = fromSafetensorsDtype(info.dtype);
  if (dtype === undefined || !(dtype.startsWith('float') || dtype === 'bfloat16'))
    throw new ConfigError(`${file}: tensor "${key}" has dtype ${info.dtype}; a textual inversion embedding is floating point`);
  if (info.shape.length < 1 || info.shape.length > 2 || info.shape.some((d) => d < 1))
    throw new ConfigError(`${file}: tensor "${key}" has shape [${info.shape.join(', ')}]; expected [hidden_size] (one vector) or [vectors, hidden_size]`);
  const shape = info.shape.length === 1 ? [1, info.shape[0]!] : [...info.shape];
  using raw = await Tensor.fromAsync(await st.readBytes(key), shape, { dtype });
  const vectors = await raw.to('cpu', 'float32');
  return { token, vectors, layout: a1111 === undefined ? 'diffusers' : 'a1111' };
}

/**
 * Writes diffusers' layout: `{ token: vectors }` with metadata format "pt", [D] for a single vector and
 * [n, D] for several (load_textual_inversion reads both).
 */
export async function saveTextualInversionFile(file: string, token: string, vectors: Tensor): Promise<void> {
  if (vectors.shape.length !== 2) throw expected('vectors of shape [n, hidden_size]', 'vectors', vectors.shape);
  const shape = vectors.shape[0] === 1 ? [vectors.shape[1]!] : [...vectors.shape];
  const data = await vectors.data({ raw: true });
  await writeSafetensors(file, [[token, { dtype: toSafetensorsDtype(vectors.dtype) as 'F32', shape, data }]], { format: 'pt' });
}

/**
 * Adds an embedding's tokens to `tokenizer` and its rows to `textEncoder`'s token embedding (diffusers'
 * load_textual_inversion). Refused, with nothing changed: a token the tokenizer already has, vectors of
 * another width than the encoder's, and an encoder whose vocabulary is not the tokenizer's size (the new
 * ids would not be the new rows). Returns the tokens and their ids.
 */
export async function addTextualInversion(
  target: { tokenizer: CLIPTokenizer; textEncoder: CLIPTextModel },
  embedding: Pick<TextualInversionEmbedding, 'token' | 'vectors'>,
  where: string,
): Promise<{ tokens: string[]; ids: number[] }> {
  const { tokenizer, textEncoder } = target;
  const [n = 0, width] = embedding.vectors.shape;
  if (width !== textEncoder.hiddenSize)
    throw new ConfigError(`${where}: the embedding's vectors are ${width} wide but the text encoder's hidden_size is ${textEncoder.hiddenSize}`);
  const tokens = multiVectorTokens(embedding.token, n);
  const taken = tokens.filter((t) => tokenizer.hasToken(t));
  if (taken.length > 0)
    throw new ConfigError(`${where}: the tokenizer already has the token ${JSON.stringify(taken[0])}; load the embedding under another token (--token / options.token)`);
  if (tokenizer.vocabSize !== textEncoder.config.vocab_size)
    throw new ConfigError(
      `${where}: the tokenizer has ${tokenizer.vocabSize} tokens but the text encoder's token embedding ${textEncoder.config.vocab_size} rows: new tokens' ids would not be their rows`,
    );
  const first = await textEncoder.appendTokenEmbeddings(embedding.vectors);
  tokenizer.addTokens(tokens);
  const ids = tokenizer.convertTokensToIds(tokens);
  // add_tokens numbers from the tokenizer's size, which equals the encoder's old vocabulary (checked above).
  if (ids[0] !== first) throw new ConfigError(`${where}: the new tokens got ids from ${ids[0]} but their rows start at ${first}`);
  return { tokens, ids };
}

/**
 * diffusers' `pipe.load_textual_inversion(file, token=...)`: reads the file and adds its tokens and vectors
 * to a pipeline's tokenizer and text encoder; prompts then use them (a multi-vector token spreads over all
 * its vectors). Returns the token and its vector tokens.
 */
export async function loadTextualInversion(
  pipeline: { tokenizer: CLIPTokenizer; textEncoder: CLIPTextModel },
  file: string,
  options: { token?: string } = {},
): Promise<{ token: string; tokens: string[]; layout: TextualInversionEmbedding['layout'] }> {
  const embedding = await readTextualInversionFile(file, options);
  try {
    using rows = await embedding.vectors.to(pipeline.textEncoder.device, pipeline.textEncoder.dtype);
    const { tokens } = await addTextualInversion(pipeline, { token: embedding.token, vectors: rows }, file);
    return { token: embedding.token, tokens, layout: embedding.layout };
  } finally {
    embedding.vectors.dispose();
  }
}
