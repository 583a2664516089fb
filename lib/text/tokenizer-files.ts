/**
 * The files of a CLIP tokenizer folder (Stable Diffusion's `tokenizer/`): vocab.json, merges.txt,
 * tokenizer_config.json and special_tokens_map.json, read and validated with zod. Pure apart from
 * reading the files.
 */
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors';
import { parseWithSchema } from '../config/schema-object';
import { parseLenientJson } from '../config/json';

export const VOCAB_FILE = 'vocab.json';
export const MERGES_FILE = 'merges.txt';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';
export const SPECIAL_TOKENS_MAP_FILE = 'special_tokens_map.json';
/** Added tokens by id (transformers reads it only when tokenizer_config.json has no added_tokens_decoder). */
export const ADDED_TOKENS_FILE = 'added_tokens.json';

/**
 * transformers' CLIPTokenizer reads at most this many merge lines (49152 − 256 − 2: CLIP's vocabulary
 * less the 256 bytes and the two special tokens).
 */
export const MAX_MERGES = 49152 - 256 - 2;

/** A special token as the files write it: a string, or an AddedToken object of which `content` is the text. */
const addedTokenSchema = z
  .object({
    __type: z.literal('AddedToken').optional(),
    content: z.string().min(1),
    lstrip: z.boolean().optional(),
    rstrip: z.boolean().optional(),
    single_word: z.boolean().optional(),
    normalized: z.boolean().optional(),
    special: z.boolean().optional(),
  })
  .passthrough();
const tokenSpecSchema = z.union([z.string().min(1), addedTokenSchema]);
export type TokenSpec = z.infer<typeof tokenSpecSchema>;

const specialTokenFields = {
  bos_token: tokenSpecSchema.nullable().optional(),
  eos_token: tokenSpecSchema.nullable().optional(),
  unk_token: tokenSpecSchema.nullable().optional(),
  pad_token: tokenSpecSchema.nullable().optional(),
  additional_special_tokens: z.array(tokenSpecSchema).optional(),
};

export const specialTokensMapSchema = z.object(specialTokenFields).passthrough();
export type SpecialTokensMap = z.infer<typeof specialTokensMapSchema>;

export const tokenizerConfigSchema = z
  .object({
    ...specialTokenFields,
    /** Longest input the text encoder takes (77 for CLIP); transformers writes 1e30 for "no limit". */
    model_max_length: z.number().positive().optional(),
    tokenizer_class: z.string().optional(),
    /** Tokens outside the BPE vocabulary, by id (newer transformers versions write this). */
    added_tokens_decoder: z.record(z.string().regex(/^\d+$/, 'expected an integer id'), addedTokenSchema).optional(),
  })
  .passthrough();
export type TokenizerConfig = z.infer<typeof tokenizerConfigSchema>;

export const vocabSchema = z.record(z.number().int().nonnegative());

/** Everything a CLIPTokenizer is made of, as read from the folder. */
export interface TokenizerFiles {
  /** BPE symbol → id. */
  vocab: Map<string, number>;
  /** Merge pairs in rank order (merges.txt without its first line). */
  merges: Array<[string, string]>;
  config: TokenizerConfig;
  specialTokensMap: SpecialTokensMap;
  /** added_tokens.json: token → id, where the folder has one. */
  addedTokens?: Record<string, number>;
}

/** vocab.json → Map (ids must be distinct). */
export function parseVocab(text: string, file: string): Map<string, number> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${file}: invalid JSON: ${(error as Error).message}`, { cause: error });
  }
  const record = parseWithSchema(vocabSchema, json, file);
  const vocab = new Map<string, number>();
  const byId = new Map<number, string>();
  for (const [token, id] of Object.entries(record)) {
    const other = byId.get(id);
    if (other !== undefined) throw new ConfigError(`${file}: id ${id} is given to both ${JSON.stringify(other)} and ${JSON.stringify(token)}`);
    byId.set(id, token);
    vocab.set(token, id);
  }
  if (vocab.size === 0) throw new ConfigError(`${file}: the vocabulary is empty`);
  return vocab;
}

/**
 * merges.txt → pairs in rank order, as transformers reads it: the whole text stripped, split into
 * lines, the first line (`#version: 0.2`) dropped, at most MAX_MERGES lines kept, each line split on
 * whitespace. A kept line must hold exactly two symbols.
 */
export function parseMerges(text: string, file: string): Array<[string, string]> {
  const lines = text
    .trim()
    .split('\n')
    .slice(1, MAX_MERGES + 1);
  return lines.map((line, index) => {
    const parts = line.trim().split(/\s+/);
    if (parts.length !== 2 || parts[0] === '') {
      throw new ConfigError(`${file}:${index + 2}: expected a merge of two symbols separated by a space, found ${JSON.stringify(line)}`);
    }
    return [parts[0]!, parts[1]!];
  });
}

export function parseTokenizerConfig(text: string, file: string): TokenizerConfig {
  return parseWithSchema(tokenizerConfigSchema, parseLenientJson(text, file), file);
}

export function parseSpecialTokensMap(text: string, file: string): SpecialTokensMap {
  return parseWithSchema(specialTokensMapSchema, parseLenientJson(text, file), file);
}

async function readText(path: string, required: boolean, what: string): Promise<string | undefined> {
  try {
    return await fs.readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !required) return undefined;
    throw new ConfigError(`cannot read ${what} ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Reads a tokenizer folder. vocab.json and merges.txt are required (a folder with only a fast
 * tokenizer's tokenizer.json is refused: difftune implements the Python CLIPTokenizer from the slow
 * files); tokenizer_config.json and special_tokens_map.json are optional, as for transformers.
 */
export async function readTokenizerFiles(dir: string): Promise<TokenizerFiles> {
  const stat = await fs.stat(dir).catch(() => undefined);
  if (stat === undefined || !stat.isDirectory())
    throw new ConfigError(`${dir}: expected a tokenizer folder (with ${VOCAB_FILE} and ${MERGES_FILE}), found ${stat === undefined ? 'nothing' : 'a file'}`);
  const path = (name: string): string => nodePath.join(dir, name);
  for (const name of [VOCAB_FILE, MERGES_FILE]) {
    if (!(await fs.stat(path(name)).catch(() => undefined))?.isFile()) {
      const fast = (await fs.stat(path('tokenizer.json')).catch(() => undefined))?.isFile() === true;
      throw new ConfigError(
        `${dir}: no ${name}. A CLIP tokenizer folder needs ${VOCAB_FILE} and ${MERGES_FILE}` +
          (fast ? " (this folder has only a fast tokenizer's tokenizer.json, which difftune does not read)" : ''),
      );
    }
  }
  const vocab = parseVocab((await readText(path(VOCAB_FILE), true, 'the vocabulary'))!, path(VOCAB_FILE));
  const merges = parseMerges((await readText(path(MERGES_FILE), true, 'the merges'))!, path(MERGES_FILE));
  const configText = await readText(path(TOKENIZER_CONFIG_FILE), false, 'the tokenizer config');
  const mapText = await readText(path(SPECIAL_TOKENS_MAP_FILE), false, 'the special tokens map');
  const addedText = await readText(path(ADDED_TOKENS_FILE), false, 'the added tokens');
  return {
    vocab,
    merges,
    config: configText === undefined ? {} : parseTokenizerConfig(configText, path(TOKENIZER_CONFIG_FILE)),
    specialTokensMap: mapText === undefined ? {} : parseSpecialTokensMap(mapText, path(SPECIAL_TOKENS_MAP_FILE)),
    ...(addedText === undefined
      ? {}
      : { addedTokens: parseWithSchema(vocabSchema, parseLenientJson(addedText, path(ADDED_TOKENS_FILE)), path(ADDED_TOKENS_FILE)) }),
  };
}
