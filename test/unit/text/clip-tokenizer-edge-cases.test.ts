/**
 * The rules of the fixtures' README ("The CLIP tokenizer") one by one, on the tiny tokenizer and on
 * synthetic vocabularies: clean-up, CJK spacing, NFC, the pre-tokenizer, BPE ranks, special tokens,
 * truncation, padding, and errors naming the file and field.
 */
import { mkdirSync, writeFileSync, copyFileSync } from 'node:fs';
import * as path from 'node:path';
import { ConfigError, InvalidArgumentError } from '../../../lib/errors';
import { BYTE_ENCODER, bytesToUnicode } from '../../../lib/text/bytes-to-unicode';
import { cleanText } from '../../../lib/text/clean-text';
import { CLIPTokenizer } from '../../../lib/text/clip-tokenizer';
import type { TokenizerFiles } from '../../../lib/text/tokenizer-files';
import { useTempDir } from '../../helpers/temp-dir';

const SET = path.join(__dirname, '../../fixtures/diffusers/clip-tokenizer-tiny');
const FILES = ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json'];

let tok: CLIPTokenizer;
beforeAll(async () => {
  tok = await CLIPTokenizer.load(SET);
});

describe('bytes_to_unicode', () => {
  it('maps 256 bytes to 256 distinct characters, printable Latin-1 to itself', () => {
    expect(new Set(BYTE_ENCODER).size).toBe(256);
    expect(BYTE_ENCODER[0x21]).toBe('!');
    expect(BYTE_ENCODER[0xe9]).toBe('é');
    expect(BYTE_ENCODER[0x00]).toBe('\u0100');
    expect(BYTE_ENCODER[0x20]).toBe('\u0120'); // the 33rd non-printable byte
    expect(BYTE_ENCODER[0xad]).toBe('\u0143'); // the 68th and last
    expect(bytesToUnicode('é')).toBe('\u00c3\u00a9');
  });
});

describe('clean-up (BasicTokenizer without accent stripping or punctuation splitting)', () => {
  it('drops category C characters, NUL and U+FFFD, but keeps tab/newline as spaces', () => {
    expect(cleanText('zero\u200bwidth soft\u00adhyphen')).toBe('zerowidth softhyphen');
    expect(cleanText('a\u0000b\ufffdc\u0007d')).toBe('abcd');
    expect(cleanText('a\tb\nc\rd')).toBe('a b c d');
    expect(cleanText('\ue000private')).toBe('private'); // Co
  });
  it('turns Zs whitespace into spaces and splits like Python str.split', () => {
    expect(cleanText('a\u00a0b\u3000c')).toBe('a b c');
    expect(cleanText('a\u2028b')).toBe('a b'); // Zl is not Zs, but str.split() splits on it
    expect(cleanText('   lots   of  ')).toBe('lots of');
  });
  it('spaces CJK ideographs but not kana or hangul', () => {
    expect(cleanText('日本の猫')).toBe('日 本 の 猫');
    expect(cleanText('ねこ한국')).toBe('ねこ한국');
    expect(cleanText('x\u{20000}y')).toBe('x \u{20000} y');
  });
  it('NFC-normalises and lower-cases, keeping accents and punctuation', () => {
    expect(cleanText('Cafe\u0301!!')).toBe('café!!');
    expect(cleanText('ÅNGSTRÖM')).toBe('ångström');
  });
});

describe('pre-tokenizer and BPE on the tiny tokenizer', () => {
  const same = (a: string, b: string): void => expect(tok.tokenize(a)).toEqual(tok.tokenize(b));
  const differ = (a: string, b: string): void => expect(tok.tokenize(a)).not.toEqual(tok.tokenize(b));
  it('cuts contractions off as pieces', () => {
    same("it's", "it 's");
    differ("it's", "it ' s");
    same("they're I'd've", "they 're i 'd 've");
  });
  it('keeps punctuation runs together and makes every digit a piece', () => {
    differ('!!', '! !');
    same('1920', '1 9 2 0');
    expect(tok.tokenize('1920').every((t) => t.endsWith('</w>'))).toBe(true);
  });
  it('follows Python regex\'s case-insensitive quirks: U+0345 separates like a space, "\'ſ" is a contraction', () => {
    same('z\u0345x', 'z x');
    same('*\u0345*', '* *');
    same("dog'ſ", "dog 'ſ");
    differ("dog'ſ", "dog ' ſ");
  });
  it('ends a word at a combining mark that NFC cannot compose', () => {
    same('x\u0301y', 'x \u0301 y');
  });
  it('marks the end of each word with </w> and spells bytes in the BPE alphabet', () => {
    const tokens = tok.tokenize('naïve');
    expect(tokens[tokens.length - 1]!.endsWith('</w>')).toBe(true);
    expect(tokens.join('').replace('</w>', '')).toBe(bytesToUnicode('naïve'));
  });
  it('gives the same result from its cache', () => {
    const first = tok.encode('a quiet mountain village').inputIds;
    expect(tok.encode('a quiet mountain village').inputIds).toEqual(first);
  });
});

describe('BPE merge ranks (synthetic vocabulary)', () => {
  function tiny(merges: Array<[string, string]>): CLIPTokenizer {
    const symbols = ['a', 'b', 'c', 'a</w>', 'b</w>', 'c</w>', 'ab', 'bc</w>', 'abc</w>', '<|startoftext|>', '<|endoftext|>'];
    const files: TokenizerFiles = { vocab: new Map(symbols.map((s, i) => [s, i])), merges, config: {}, specialTokensMap: {} };
    return CLIPTokenizer.fromFiles(files);
  }
  it('merges the lowest-ranked pair first', () => {
    expect(
      tiny([
        ['a', 'b'],
        ['b', 'c</w>'],
      ]).tokenize('abc'),
    ).toEqual(['ab', 'c</w>']);
    expect(
      tiny([
        ['b', 'c</w>'],
        ['a', 'b'],
      ]).tokenize('abc'),
    ).toEqual(['a', 'bc</w>']);
    expect(
      tiny([
        ['b', 'c</w>'],
        ['a', 'bc</w>'],
      ]).tokenize('abc'),
    ).toEqual(['abc</w>']);
  });
  it("uses CLIPTokenizer's default special tokens when the folder names none", () => {
    const t = tiny([]);
    expect(t.encode('a').inputIds).toEqual([9, 3, 10]);
    expect(t.padId).toBe(10);
    expect(t.maxLength).toBe(77);
  });
});

describe('special tokens', () => {
  it('cuts special tokens out of the text, ending the word before them', () => {
    const ids = tok.encode('cat<|endoftext|>dog').inputIds;
    expect(ids.slice(1, -1)).toEqual([...tok.encode('cat').inputIds.slice(1, -1), tok.eosId, ...tok.encode('dog').inputIds.slice(1, -1)]);
  });
  it('maps an upper-case special token to its id through the regex (lower-cased, kept whole by BPE)', () => {
    expect(tok.encode('<|ENDOFTEXT|>').inputIds).toEqual([tok.bosId, tok.eosId, tok.eosId]);
  });
  it('with pad_token "!", every "!" is the pad id and is not merged by BPE', async () => {
    const bang = await CLIPTokenizer.load(SET, { overrides: { padToken: '!' } });
    expect(bang.padId).toBe(0);
    const ids = bang.encode('wow!!').inputIds;
    expect(ids.slice(-3)).toEqual([0, 0, bang.eosId]);
    expect(bang.tokenize('wow!!').slice(-2)).toEqual(['!', '!']);
    expect(tok.tokenize('wow!!')).not.toContain('!!');
    expect(tok.encode('wow!!').inputIds).not.toEqual(ids);
  });
  it('gives a special token outside the vocabulary the next free id', async () => {
    const t = await CLIPTokenizer.load(SET, { overrides: { padToken: '<|pad|>' } });
    expect(t.padId).toBe(1000);
    expect(t.vocabSize).toBe(1001);
    expect(t.encode('a<|pad|>', { padding: 'max_length', maxLength: 6 }).inputIds).toEqual([998, 320, 1000, 999, 1000, 1000]);
  });
});

describe('model input', () => {
  it('empty prompt: start, end, padding', () => {
    const enc = tok.encode('', { padding: 'max_length', truncation: true });
    expect(enc.inputIds.slice(0, 3)).toEqual([tok.bosId, tok.eosId, tok.padId]);
    expect(enc.inputIds).toHaveLength(77);
    expect(enc.attentionMask.reduce((a, b) => a + b, 0)).toBe(2);
  });
  it('truncates to maxLength − 2 BPE ids, keeping start and end', () => {
    const text = 'one two three four five six seven eight nine ten';
    const full = tok.encode(text).inputIds;
    expect(full.length).toBeGreaterThan(10);
    const cut = tok.encode(text, { truncation: true, maxLength: 10 });
    expect(cut.inputIds).toEqual([...full.slice(0, 9), tok.eosId]);
    expect(cut.attentionMask).toEqual(new Array(10).fill(1));
    expect(tok.encode(text, { maxLength: 10 }).inputIds).toEqual(full); // no truncation asked for
  });
  it('pads a batch to its longest row', () => {
    const batch = tok.encodeBatch(['a cat', 'a photo of a cat'], { padding: 'longest' });
    expect(batch.inputIds[0]).toHaveLength(batch.inputIds[1]!.length);
    expect(batch.inputIds[0]!.slice(-1)[0]).toBe(tok.padId);
    expect(batch.attentionMask[0]!.filter((m) => m === 1)).toHaveLength(tok.encode('a cat').inputIds.length);
  });
  it('refuses bad options', async () => {
    expect(() => tok.encode('a', { maxLength: 1, truncation: true })).toThrow(InvalidArgumentError);
    expect(() => tok.encode('a', { padding: 'yes' as never })).toThrow(/padding/);
    expect(() => tok.encode(3 as never)).toThrow(/Expected a string for text/);
    const noPad = await CLIPTokenizer.load(SET, { overrides: { padToken: null } });
    expect(noPad.padId).toBeUndefined();
    expect(noPad.encode('a').inputIds).toHaveLength(3);
    expect(() => noPad.encode('a', { padding: 'max_length' })).toThrow(/no pad_token/);
  });
});

describe('tokenizer folders', () => {
  const tmp = useTempDir('tokenizer');
  function folder(name: string, edit: Record<string, string | null> = {}): string {
    const dir = path.join(tmp(), name);
    mkdirSync(dir, { recursive: true });
    for (const f of FILES) if (!(f in edit)) copyFileSync(path.join(SET, f), path.join(dir, f));
    for (const [f, text] of Object.entries(edit)) if (text !== null) writeFileSync(path.join(dir, f), text);
    return dir;
  }
  it('loads without the two optional JSON files', async () => {
    const t = await CLIPTokenizer.load(folder('minimal', { 'tokenizer_config.json': null, 'special_tokens_map.json': null }));
    expect(t.encode('a photo of a cat', { padding: 'max_length', truncation: true })).toEqual(
      tok.encode('a photo of a cat', { padding: 'max_length', truncation: true }),
    );
  });
  it('names the missing file, and mentions a fast tokenizer.json', async () => {
    await expect(CLIPTokenizer.load(folder('novocab', { 'vocab.json': null }))).rejects.toThrow(/no vocab\.json/);
    const fast = folder('fast', { 'merges.txt': null, 'tokenizer.json': '{}' });
    await expect(CLIPTokenizer.load(fast)).rejects.toThrow(/tokenizer\.json/);
    await expect(CLIPTokenizer.load(path.join(tmp(), 'nothing'))).rejects.toThrow(ConfigError);
  });
  it('names the file and line of a bad merge, and the field of a bad config', async () => {
    await expect(CLIPTokenizer.load(folder('badmerge', { 'merges.txt': '#version: 0.2\na b\nc d e\n' }))).rejects.toThrow(/merges\.txt:3: expected a merge/);
    await expect(CLIPTokenizer.load(folder('badconfig', { 'tokenizer_config.json': '{"pad_token": 5}' }))).rejects.toThrow(
      /tokenizer_config\.json field "pad_token"/,
    );
    await expect(CLIPTokenizer.load(folder('badvocab', { 'vocab.json': '{"a": 0, "b": 0}' }))).rejects.toThrow(/id 0 is given to both/);
    await expect(CLIPTokenizer.load(folder('badjson', { 'special_tokens_map.json': '{"pad_token": ' }))).rejects.toThrow(/special_tokens_map\.json:1/);
  });
  it('lets special_tokens_map.json win over tokenizer_config.json, and overrides over both', async () => {
    const dir = folder('precedence', {
      'tokenizer_config.json': '{"pad_token": "a</w>", "model_max_length": 16}',
      'special_tokens_map.json': '{"pad_token": "!"}',
    });
    expect((await CLIPTokenizer.load(dir)).padId).toBe(0);
    expect((await CLIPTokenizer.load(dir)).maxLength).toBe(16);
    expect((await CLIPTokenizer.load(dir, { overrides: { padToken: '<|endoftext|>' } })).padId).toBe(999);
  });
});
