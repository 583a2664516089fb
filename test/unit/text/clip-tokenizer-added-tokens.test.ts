/**
 * Tokens added to a loaded tokenizer (textual inversion's placeholders), as transformers' add_tokens adds
 * them: ids from the vocabulary's size on, matched exactly (case included) before BPE wherever they stand;
 * diffusers' maybe_convert_prompt spreads a multi-vector token; save() writes them as save_pretrained does
 * and a load reads them back, from added_tokens_decoder or a legacy folder's added_tokens.json.
 */
import { copyFileSync, existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { CLIPTokenizer } from '../../../lib/text/clip-tokenizer';
import { useTempDir } from '../../helpers/temp-dir';

const SET = path.join(__dirname, '../../fixtures/diffusers/sd-pipeline-tiny/tokenizer');
const tmp = useTempDir('tokenizer-added');

const ids = (tok: CLIPTokenizer, text: string) => tok.encode(text).inputIds;

test('add_tokens: new ids from the vocabulary size on, counted once; a vocabulary word is marked, not counted', async () => {
  const tok = await CLIPTokenizer.load(SET);
  expect(tok.vocabSize).toBe(1000);
  expect(tok.addTokens(['<cat-toy>', '<cat-toy>_1'])).toBe(2);
  expect(tok.addTokens(['<cat-toy>', ''])).toBe(0);
  expect(tok.convertTokensToIds(['<cat-toy>', '<cat-toy>_1'])).toEqual([1000, 1001]);
  expect(tok.vocabSize).toBe(1002);
  // "a" is in the vocabulary (as the symbol, not the word "a</w>"): it becomes an added token with its id, nothing new.
  const a = tok.convertTokensToIds(['a'])[0]!;
  expect(a).not.toBe(tok.convertTokensToIds(tok.tokenize('a'))[0]);
  expect(tok.addTokens(['a'])).toBe(0);
  expect(tok.addedTokens.get('a')).toBe(a);
  expect(tok.addTokens(['<dog>'])).toBe(1);
  expect(tok.addedTokens.get('<dog>')).toBe(1002);
});

test('an added token is cut out before BPE wherever it stands, case-sensitive; the rest tokenizes as before', async () => {
  const plain = await CLIPTokenizer.load(SET);
  const tok = await CLIPTokenizer.load(SET);
  tok.addTokens(['<cat-toy>']);
  const [bos, eos] = [plain.bosId, plain.eosId];
  const body = (text: string) => ids(plain, text).slice(1, -1);
  expect(ids(tok, 'a photo of <cat-toy>')).toEqual([bos, ...body('a photo of'), 1000, eos]);
  expect(ids(tok, 'a<cat-toy>photo')).toEqual([bos, ...body('a'), 1000, ...body('photo'), eos]);
  expect(ids(tok, '<cat-toy><cat-toy>')).toEqual([bos, 1000, 1000, eos]);
  // Not the same text: BPE as before (transformers' CLIPTokenizer has no do_lower_case for added tokens).
  expect(ids(tok, 'a <Cat-Toy>')).toEqual(ids(plain, 'a <Cat-Toy>'));
});

test('maybe_convert_prompt: a token with _1, _2, … added becomes all of them; others stay', async () => {
  const tok = await CLIPTokenizer.load(SET);
  tok.addTokens(['<cat-toy>', '<cat-toy>_1', '<cat-toy>_2', '<one>']);
  expect(tok.expandMultiVectorTokens('a <cat-toy> on a <one>, and a <cat-toy>')).toBe(
    'a <cat-toy> <cat-toy>_1 <cat-toy>_2 on a <one>, and a <cat-toy> <cat-toy>_1 <cat-toy>_2',
  );
  expect(tok.expandMultiVectorTokens('no placeholder')).toBe('no placeholder');
});

test('save writes the added tokens as save_pretrained does; a load reads them back', async () => {
  const dir = tmp();
  const tok = await CLIPTokenizer.load(SET);
  tok.addTokens(['<cat-toy>', '<cat-toy>_1']);
  await tok.save(dir);
  expect(JSON.parse(readFileSync(path.join(dir, 'added_tokens.json'), 'utf8'))).toEqual({ '<cat-toy>': 1000, '<cat-toy>_1': 1001 });
  const config = JSON.parse(readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  expect(config.added_tokens_decoder).toMatchObject({
    '1000': { content: '<cat-toy>', lstrip: false, normalized: true, rstrip: false, single_word: false, special: false },
    '1001': { content: '<cat-toy>_1', special: false },
  });
  expect(config.model_max_length).toBe(77);
  expect(JSON.parse(readFileSync(path.join(dir, 'vocab.json'), 'utf8'))).toEqual(JSON.parse(readFileSync(path.join(SET, 'vocab.json'), 'utf8')));
  const back = await CLIPTokenizer.load(dir);
  for (const text of ['a photo of <cat-toy> <cat-toy>_1', 'a red circle, flat style', 'Ünïcode <|endoftext|> ok'])
    expect(ids(back, text)).toEqual(ids(tok, text));

  // A legacy folder: added_tokens.json and no added_tokens_decoder.
  const legacy = tmp();
  mkdirSync(legacy, { recursive: true });
  for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(path.join(SET, f), path.join(legacy, f));
  writeFileSync(path.join(legacy, 'added_tokens.json'), JSON.stringify({ '<cat-toy>': 1000 }));
  const old = await CLIPTokenizer.load(legacy);
  expect(ids(old, 'a <cat-toy>')).toEqual(ids(tok, 'a <cat-toy>'));

  // Nothing added: no added_tokens.json.
  const none = tmp();
  await (await CLIPTokenizer.load(SET)).save(none);
  expect(existsSync(path.join(none, 'added_tokens.json'))).toBe(false);
});
