/**
 * transformers' Python CLIPTokenizer without ftfy, the tokenizer of Stable Diffusion 1.x/2.x
 * (see test/fixtures/diffusers/README.md, "The CLIP tokenizer"): special tokens cut out first, then
 * per piece BasicTokenizer clean-up (category C removal, whitespace, CJK spacing, NFC, lower-case),
 * CLIP's pre-tokenizing regex, byte-level BPE by merge rank, ids from vocab.json; then start and
 * end tokens, truncation and padding. Pure TypeScript: never loads the native addon.
 *
 * Unicode tables (categories, case, NFC) are Node's: a character assigned after the Unicode version
 * of the Python that runs transformers (14.0 for Python 3.11) is kept here where Python drops it as
 * unassigned (category Cn). For every character assigned in Unicode 14 the ids agree.
 *
 * New tokens (textual inversion's placeholders) are added as transformers' add_tokens adds them: ids from
 * the vocabulary's size on, matched exactly (case included) before BPE; save() writes them as
 * save_pretrained does (added_tokens_decoder in tokenizer_config.json, added_tokens.json).
 */
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import { ConfigError, InvalidArgumentError, expected } from '../errors';
import { writeAll, writeFileAtomically } from '../util/atomic-write';
import { createFolder } from '../util/output-folder';
import { BytePairEncoder, pairKey } from './bpe';
import { bytesToUnicode } from './bytes-to-unicode';
import { cleanText } from './clean-text';
import { splitOnAddedTokens, type AddedToken } from './special-tokens';
import {
  ADDED_TOKENS_FILE,
  MERGES_FILE,
  readTokenizerFiles,
  SPECIAL_TOKENS_MAP_FILE,
  TOKENIZER_CONFIG_FILE,
  VOCAB_FILE,
  type TokenSpec,
  type TokenizerFiles,
} from './tokenizer-files';

/**
 * CLIP's pre-tokenizer. transformers compiles it case-insensitive with Python's `regex` module; the
 * text is lower-cased by then, and of all code points that flag changes only two things: "'ſ" (U+017F
 * folds to "s") matches "'s", and U+0345 (a combining mark that folds to the letter ι) matches no
 * alternative at all, so it separates words like a space. Both are spelled out here: a JS /i flag
 * would instead let U+0345 count as a letter.
 */
const PRE_TOKENIZE = /<\|startoftext\|>|<\|endoftext\|>|'[sſ]|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}\u0345]+/gu;
/** Words the BPE keeps whole (transformers hard-codes them in CLIPTokenizer's cache). */
const WHOLE_WORDS = ['<|startoftext|>', '<|endoftext|>'];
/** CLIP's context length: model_max_length when tokenizer_config.json does not give one. */
export const CLIP_MAX_LENGTH = 77;

/** CLIPTokenizer's own defaults, used where neither file names a special token. */
const DEFAULT_SPECIAL = { bos: '<|startoftext|>', eos: '<|endoftext|>', unk: '<|endoftext|>', pad: '<|endoftext|>' } as const;

type SpecialRole = keyof typeof DEFAULT_SPECIAL;

/** Load-time overrides, like `CLIPTokenizer.from_pretrained(dir, pad_token="!")`; null removes a token. */
export interface TokenizerOverrides {
  bosToken?: string | null;
  eosToken?: string | null;
  unkToken?: string | null;
  /** Stable Diffusion 2.x folders set "!": every "!" of a prompt then becomes that token. */
  padToken?: string | null;
  modelMaxLength?: number;
}

export interface LoadTokenizerOptions {
  overrides?: TokenizerOverrides;
}

export interface EncodeOptions {
  /**
   * "max_length": pad to maxLength; "longest" (encodeBatch): pad to the longest text of the batch;
   * false (default): no padding.
   */
  padding?: 'max_length' | 'longest' | false;
  /** Cut the BPE ids so that with the start and end tokens at most maxLength remain. Default false. */
  truncation?: boolean;
  /** Default: model_max_length (77 for Stable Diffusion). */
  maxLength?: number;
}

export interface Encoding {
  inputIds: number[];
  /** 1 from the start token to the end token, 0 on padding. */
  attentionMask: number[];
}

export interface BatchEncoding {
  inputIds: number[][];
  attentionMask: number[][];
}

function tokenText(spec: TokenSpec): string {
  return typeof spec === 'string' ? spec : spec.content;
}

export class CLIPTokenizer {
  readonly #files: TokenizerFiles;
  readonly #vocab: ReadonlyMap<string, number>;
  readonly #bpe: BytePairEncoder;
  /** Special and other added tokens by content: cut out of texts before BPE. */
  readonly #added: Map<string, AddedToken>;
  /** Tokens added after loading (addTokens), in order: save() records them. */
  readonly #newTokens: string[] = [];
  readonly #special: Readonly<Record<SpecialRole, AddedToken | undefined>>;
  /** model_max_length. */
  readonly maxLength: number;

  private constructor(files: TokenizerFiles, overrides: TokenizerOverrides, where: string) {
    this.#files = files;
    this.#vocab = files.vocab;
    const ranks = new Map<string, number>();
    // As Python's dict(zip(merges, range(n))): a repeated pair keeps its last rank.
    files.merges.forEach(([a, b], rank) => ranks.set(pairKey(a, b), rank));
    this.#bpe = new BytePairEncoder(ranks, WHOLE_WORDS);

    const maxLength = overrides.modelMaxLength ?? files.config.model_max_length ?? CLIP_MAX_LENGTH;
    if (!Number.isSafeInteger(maxLength) && maxLength < 1e29) throw expected('an integer model_max_length', `${where} model_max_length`, maxLength);
    // transformers writes 1e30 for "no limit".
    this.maxLength = Number.isSafeInteger(maxLength) ? maxLength : Number.MAX_SAFE_INTEGER;
    if (this.maxLength < 2) throw new ConfigError(`${where}: model_max_length must be at least 2 (start and end tokens), found ${maxLength}`);

    // Ids of tokens outside the vocabulary: added_tokens_decoder first, then the next free ids.
    const added = new Map<string, AddedToken>();
    const ids = new Map<string, number>();
    for (const [id, token] of Object.entries(files.config.added_tokens_decoder ?? {})) ids.set(token.content, Number(id));
    // Legacy folders (no added_tokens_decoder): added_tokens.json, as transformers reads it then.
    const legacy = files.config.added_tokens_decoder === undefined ? Object.entries(files.addedTokens ?? {}) : [];
    for (const [content, id] of legacy) ids.set(content, id);
    let nextId = 0;
    for (const id of [...files.vocab.values(), ...ids.values()]) if (id >= nextId) nextId = id + 1;
    const addToken = (spec: TokenSpec): AddedToken => {
      const content = tokenText(spec);
      const known = added.get(content);
      if (known !== undefined) return known;
      let id = files.vocab.get(content) ?? ids.get(content);
      if (id === undefined) id = nextId++;
      const object = typeof spec === 'string' ? undefined : spec;
      const token: AddedToken = { content, id, lstrip: object?.lstrip ?? false, rstrip: object?.rstrip ?? false, singleWord: object?.single_word ?? false };
      added.set(content, token);
      return token;
    };
    for (const token of Object.values(files.config.added_tokens_decoder ?? {})) addToken(token);
    for (const [content] of legacy) addToken(content);

    // Precedence as in from_pretrained: load-time overrides, then special_tokens_map.json, then
    // tokenizer_config.json, then CLIPTokenizer's defaults.
    const overrideOf: Record<SpecialRole, string | null | undefined> = {
      bos: overrides.bosToken,
      eos: overrides.eosToken,
      unk: overrides.unkToken,
      pad: overrides.padToken,
    };
    const special = {} as Record<SpecialRole, AddedToken | undefined>;
    for (const role of Object.keys(DEFAULT_SPECIAL) as SpecialRole[]) {
      const field = `${role}_token` as const;
      let spec: TokenSpec | null | undefined = overrideOf[role];
      if (spec === undefined) spec = files.specialTokensMap[field];
      if (spec === undefined) spec = files.config[field];
      if (spec === undefined) spec = DEFAULT_SPECIAL[role];
      if (spec !== null && tokenText(spec) === '') throw new ConfigError(`${where}: ${field} is empty`);
      special[role] = spec === null ? undefined : addToken(spec);
    }
    for (const spec of files.specialTokensMap.additional_special_tokens ?? files.config.additional_special_tokens ?? []) addToken(spec);
    this.#added = added;
    this.#special = special;
  }

  /**
   * Reads a tokenizer folder (vocab.json, merges.txt, tokenizer_config.json,
   * special_tokens_map.json), like `CLIPTokenizer.from_pretrained(dir, **overrides)`.
   */
  static async load(dir: string, options: LoadTokenizerOptions = {}): Promise<CLIPTokenizer> {
    if (typeof dir !== 'string' || dir.length === 0) throw expected('a tokenizer folder path', 'dir', dir);
    return new CLIPTokenizer(await readTokenizerFiles(dir), checkOverrides(options.overrides ?? {}), dir);
  }

  /** A tokenizer from already parsed files (see readTokenizerFiles). */
  static fromFiles(files: TokenizerFiles, options: LoadTokenizerOptions = {}): CLIPTokenizer {
    return new CLIPTokenizer(files, checkOverrides(options.overrides ?? {}), 'tokenizer');
  }

  get bosId(): number {
    return this.#requireSpecial('bos').id;
  }

  get eosId(): number {
    return this.#requireSpecial('eos').id;
  }

  /** The padding id; undefined when the tokenizer has no pad token (then padding is refused). */
  get padId(): number | undefined {
    return this.#special.pad?.id;
  }

  /** Entries of vocab.json plus added tokens outside it. */
  get vocabSize(): number {
    let extra = 0;
    for (const token of this.#added.values()) if (!this.#vocab.has(token.content)) extra++;
    return this.#vocab.size + extra;
  }

  /** Whether `token` is a vocabulary entry or an added token (`token in tokenizer.get_vocab()`). */
  hasToken(token: string): boolean {
    return this.#vocab.has(token) || this.#added.has(token);
  }

  /** Every added token (special ones included) and its id: transformers' added_tokens_encoder. */
  get addedTokens(): ReadonlyMap<string, number> {
    return new Map([...this.#added.values()].map((t) => [t.content, t.id]));
  }

  /**
   * transformers' add_tokens: each token not yet an added token becomes one (matched exactly before BPE);
   * one outside the vocabulary gets the next id (the vocabulary's size plus the tokens added so far).
   * Returns how many got a new id (a token already in the vocabulary or added is not counted).
   */
  addTokens(tokens: readonly string[]): number {
    if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === 'string')) throw expected('an array of strings', 'tokens', tokens);
    let added = 0;
    for (const content of tokens) {
      if (content === '' || this.#added.has(content)) continue;
      // len(get_vocab()): the distinct strings of the vocabulary and the added tokens.
      let id = this.#vocab.get(content);
      if (id === undefined) {
        id = new Set([...this.#vocab.keys(), ...this.#added.keys()]).size;
        added++;
      }
      this.#added.set(content, { content, id, lstrip: false, rstrip: false, singleWord: false });
      this.#newTokens.push(content);
    }
    return added;
  }

  /**
   * diffusers' maybe_convert_prompt (TextualInversionLoaderMixin): every added token `t` of the prompt for
   * which `t_1`, `t_2`, … were added too becomes "t t_1 t_2 …", so a multi-vector embedding is used whole.
   */
  expandMultiVectorTokens(prompt: string): string {
    if (typeof prompt !== 'string') throw expected('a string', 'prompt', prompt);
    let out = prompt;
    for (const token of new Set(this.tokenize(prompt))) {
      if (!this.#added.has(token)) continue;
      let replacement = token;
      for (let i = 1; this.#added.has(`${token}_${i}`); i++) replacement += ` ${token}_${i}`;
      if (replacement !== token) out = out.split(token).join(replacement);
    }
    return out;
  }

  /**
   * Writes the tokenizer as transformers' save_pretrained does: vocab.json, merges.txt,
   * special_tokens_map.json, tokenizer_config.json (every added token in added_tokens_decoder) and, when
   * tokens were added outside the vocabulary, added_tokens.json.
   */
  async save(dir: string): Promise<void> {
    if (typeof dir !== 'string' || dir.length === 0) throw expected('a folder path', 'dir', dir);
    await createFolder(dir);
    const files = this.#files;
    const write = async (name: string, text: string): Promise<void> => {
      const bytes = Buffer.from(text, 'utf8');
      await writeFileAtomically(nodePath.join(dir, name), (handle) => writeAll(handle, bytes));
    };
    // Python's json.dumps(sort_keys=True) sorts by code point, not by UTF-16 unit.
    const byCodePoint = (a: string, b: string): number => {
      const x = Array.from(a, (c) => c.codePointAt(0)!);
      const y = Array.from(b, (c) => c.codePointAt(0)!);
      for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
      return x.length - y.length;
    };
    const sorted = (entries: Array<[string, unknown]>): Record<string, unknown> => Object.fromEntries(entries.sort(([a], [b]) => byCodePoint(a, b)));
    await write(VOCAB_FILE, `${JSON.stringify(sorted([...this.#vocab]), null, 2)}\n`);
    await write(MERGES_FILE, `#version: 0.2\n${files.merges.map(([a, b]) => `${a} ${b}`).join('\n')}\n`);
    await write(SPECIAL_TOKENS_MAP_FILE, `${JSON.stringify(files.specialTokensMap, null, 2)}\n`);
    const specials = new Set(Object.values(this.#special).flatMap((t) => (t === undefined ? [] : [t.content])));
    const known = files.config.added_tokens_decoder ?? {};
    const decoder: Record<string, unknown> = {};
    for (const token of [...this.#added.values()].sort((a, b) => a.id - b.id)) {
      const special = specials.has(token.content) || this.#isAdditionalSpecial(token.content);
      decoder[String(token.id)] = known[String(token.id)] ?? {
        content: token.content,
        lstrip: token.lstrip,
        normalized: !special,
        rstrip: token.rstrip,
        single_word: token.singleWord,
        special,
      };
    }
    const config = { ...files.config, added_tokens_decoder: decoder, tokenizer_class: files.config.tokenizer_class ?? 'CLIPTokenizer' };
    await write(TOKENIZER_CONFIG_FILE, `${JSON.stringify(config, null, 2)}\n`);
    // transformers writes the added tokens at or above the vocabulary's size there (legacy readers use it).
    const beyond = [...this.#added.values()].filter((t) => t.id >= this.#vocab.size).map((t): [string, unknown] => [t.content, t.id]);
    if (beyond.length > 0) await write(ADDED_TOKENS_FILE, `${JSON.stringify(sorted(beyond), null, 2)}\n`);
    else await fs.rm(nodePath.join(dir, ADDED_TOKENS_FILE), { force: true });
  }

  #isAdditionalSpecial(content: string): boolean {
    const list = this.#files.specialTokensMap.additional_special_tokens ?? this.#files.config.additional_special_tokens ?? [];
    return list.some((spec) => tokenText(spec) === content);
  }

  /**
   * The tokens of `text` (BPE strings in the byte-to-unicode alphabet, special tokens as their text),
   * without start and end tokens: transformers' `tokenizer.tokenize(text)`.
   */
  tokenize(text: string): string[] {
    if (typeof text !== 'string') throw expected('a string', 'text', text);
    const tokens: string[] = [];
    for (const piece of splitOnAddedTokens(text, this.#added)) {
      if (this.#added.has(piece)) {
        tokens.push(piece);
        continue;
      }
      for (const match of cleanText(piece).matchAll(PRE_TOKENIZE)) tokens.push(...this.#bpe.encode(bytesToUnicode(match[0])));
    }
    return tokens;
  }

  /** Ids of tokens (added tokens first, then the vocabulary, else the unknown token). */
  convertTokensToIds(tokens: readonly string[]): number[] {
    return tokens.map((token) => {
      const id = this.#added.get(token)?.id ?? this.#vocab.get(token) ?? this.#special.unk?.id;
      if (id === undefined) throw new InvalidArgumentError(`token ${JSON.stringify(token)} is not in the vocabulary and the tokenizer has no unk_token`);
      return id;
    });
  }

  /**
   * `tokenizer(text, padding=..., max_length=..., truncation=...)`: start token, the ids (at most
   * maxLength − 2 with truncation), end token, then padding. Stable Diffusion calls it with
   * `{ padding: "max_length", truncation: true }` (77 ids).
   */
  encode(text: string, options: EncodeOptions = {}): Encoding {
    const { padding, maxLength } = this.#checkOptions(options, 'encode');
    const encoding = this.#encodeOne(text, options.truncation === true, maxLength);
    return padding === false ? encoding : this.#pad(encoding, maxLength);
  }

  /** encode() over a batch; with padding "longest", every row is padded to the longest one. */
  encodeBatch(texts: readonly string[], options: EncodeOptions = {}): BatchEncoding {
    if (!Array.isArray(texts)) throw expected('an array of strings', 'texts', texts);
    const { padding, maxLength } = this.#checkOptions(options, 'encodeBatch');
    const rows = texts.map((text: string) => this.#encodeOne(text, options.truncation === true, maxLength));
    let target = maxLength;
    if (padding === 'longest') target = Math.max(0, ...rows.map((r) => r.inputIds.length));
    const padded = padding === false ? rows : rows.map((row) => this.#pad(row, target));
    return { inputIds: padded.map((r) => r.inputIds), attentionMask: padded.map((r) => r.attentionMask) };
  }

  #encodeOne(text: string, truncation: boolean, maxLength: number): Encoding {
    let ids = this.convertTokensToIds(this.tokenize(text));
    if (truncation && ids.length + 2 > maxLength) ids = ids.slice(0, maxLength - 2);
    const inputIds = [this.bosId, ...ids, this.eosId];
    return { inputIds, attentionMask: inputIds.map(() => 1) };
  }

  #pad(encoding: Encoding, length: number): Encoding {
    const missing = length - encoding.inputIds.length;
    if (missing <= 0) return encoding;
    const padId = this.padId;
    if (padId === undefined) throw new InvalidArgumentError('padding was asked for, but the tokenizer has no pad_token (give one with overrides.padToken)');
    return {
      inputIds: [...encoding.inputIds, ...new Array<number>(missing).fill(padId)],
      attentionMask: [...encoding.attentionMask, ...new Array<number>(missing).fill(0)],
    };
  }

  #checkOptions(options: EncodeOptions, method: string): { padding: 'max_length' | 'longest' | false; maxLength: number } {
    if (options === null || typeof options !== 'object') throw expected('an options object', `${method} options`, options);
    const padding = options.padding ?? false;
    if (padding !== false && padding !== 'max_length' && padding !== 'longest') {
      throw expected('"max_length", "longest" or false', `${method} options.padding`, padding);
    }
    if (options.truncation !== undefined && typeof options.truncation !== 'boolean')
      throw expected('a boolean', `${method} options.truncation`, options.truncation);
    const maxLength = options.maxLength ?? this.maxLength;
    if (!Number.isSafeInteger(maxLength) || maxLength < 2) {
      throw expected('an integer of at least 2 (start and end tokens)', `${method} options.maxLength`, options.maxLength);
    }
    return { padding, maxLength };
  }

  #requireSpecial(role: SpecialRole): AddedToken {
    const token = this.#special[role];
    if (token === undefined) throw new InvalidArgumentError(`the tokenizer has no ${role}_token`);
    return token;
  }
}

function checkOverrides(overrides: TokenizerOverrides): TokenizerOverrides {
  if (overrides === null || typeof overrides !== 'object') throw expected('an object', 'options.overrides', overrides);
  for (const key of ['bosToken', 'eosToken', 'unkToken', 'padToken'] as const) {
    const value = overrides[key];
    if (value !== undefined && value !== null && (typeof value !== 'string' || value.length === 0)) {
      throw expected('a non-empty string or null', `options.overrides.${key}`, value);
    }
  }
  const max = overrides.modelMaxLength;
  if (max !== undefined && (!Number.isSafeInteger(max) || max < 2)) throw expected('an integer of at least 2', 'options.overrides.modelMaxLength', max);
  return overrides;
}
