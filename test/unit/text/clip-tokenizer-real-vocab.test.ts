/**
 * The CLIP tokenizer on the real Stable Diffusion vocabulary and merges (test/fixtures/real-configs:
 * SD 1.5's tokenizer, and SD 2.1's, whose special_tokens_map.json pads with "!"), against the ids
 * transformers' Python CLIPTokenizer gave (tokenizer-cases.json, written by make_tokenizer_cases.py
 * there): punctuation, numbers, accents, emoji, CJK, special tokens in the text, empty and blank
 * prompts, and prompts past 77 tokens.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { CLIPTokenizer } from '../../../lib/text/clip-tokenizer';

const DIR = path.join(__dirname, '../../fixtures/real-configs');

interface Case {
  text: string;
  tokens: string[];
  ids: number[];
  ids_77: number[];
  mask_77: number[];
}
interface TokenizerCases {
  folder: string;
  pad_token: string;
  pad_token_id: number;
  bos_token_id: number;
  eos_token_id: number;
  model_max_length: number;
  vocab_size: number;
  cases: Case[];
}
const fixture = JSON.parse(readFileSync(path.join(DIR, 'tokenizer-cases.json'), 'utf8')) as { tokenizers: Record<string, TokenizerCases> };

describe.each(Object.entries(fixture.tokenizers))('%s tokenizer', (_name, spec) => {
  let tokenizer: CLIPTokenizer;
  beforeAll(async () => {
    // No overrides: SD 2.x's "!" padding must come from its special_tokens_map.json, as in from_pretrained.
    tokenizer = await CLIPTokenizer.load(path.join(DIR, spec.folder));
  });

  it('has the special tokens, length and vocabulary size transformers reports', () => {
    expect({ pad: tokenizer.padId, bos: tokenizer.bosId, eos: tokenizer.eosId, max: tokenizer.maxLength, vocab: tokenizer.vocabSize }).toEqual({
      pad: spec.pad_token_id,
      bos: spec.bos_token_id,
      eos: spec.eos_token_id,
      max: spec.model_max_length,
      vocab: spec.vocab_size,
    });
  });

  it('covers what the issue asks for: >77 tokens, empty, blank, emoji, CJK, accents, "!"', () => {
    const texts = spec.cases.map((c) => c.text);
    expect(spec.cases.some((c) => c.ids.length > 77)).toBe(true);
    expect(texts).toEqual(expect.arrayContaining(['', ' ', '!']));
    expect(texts.some((t) => /\p{Extended_Pictographic}/u.test(t))).toBe(true);
    expect(texts.some((t) => /\p{Script=Han}/u.test(t))).toBe(true);
    expect(texts.some((t) => /[\u0300-\u036f]/u.test(t))).toBe(true);
  });

  it.each(spec.cases.map((c, i) => [i, JSON.stringify(c.text).slice(0, 50), c] as const))('prompt %i %s', (_i, _t, c) => {
    expect(tokenizer.tokenize(c.text)).toEqual(c.tokens);
    expect(tokenizer.encode(c.text).inputIds).toEqual(c.ids);
    const padded = tokenizer.encode(c.text, { padding: 'max_length', truncation: true });
    expect(padded.inputIds).toEqual(c.ids_77);
    expect(padded.attentionMask).toEqual(c.mask_77);
  });

  it('encodes a batch as the single prompts', () => {
    const batch = tokenizer.encodeBatch(
      spec.cases.map((c) => c.text),
      { padding: 'max_length', truncation: true },
    );
    expect(batch.inputIds).toEqual(spec.cases.map((c) => c.ids_77));
  });
});
