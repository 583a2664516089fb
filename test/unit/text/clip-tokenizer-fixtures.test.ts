/**
 * The CLIP tokenizer against test/fixtures/diffusers/clip-tokenizer-tiny: every id of every prompt of
 * the three cases that transformers' Python CLIPTokenizer produced, the BPE strings of tokenize(), and
 * the stored I64 tensors of cases.safetensors (read without the addon).
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { SafetensorsFile } from '../../../lib/checkpoint/safetensors';
import { CLIPTokenizer } from '../../../lib/text/clip-tokenizer';

const SET = path.join(__dirname, '../../fixtures/diffusers/clip-tokenizer-tiny');

interface Prompt {
  index: number;
  text: string;
  tokens?: string[];
  input_ids: number[];
  attention_mask?: number[];
  num_tokens_untruncated?: number;
  truncated?: boolean;
}
interface Case {
  name: string;
  overrides?: { pad_token?: string };
  pad_token_id?: number;
  call: { padding: 'max_length' | false; max_length?: number; truncation: boolean };
  prompts: Prompt[];
  expected: { input_ids: string | string[]; attention_mask?: string };
}
const file = JSON.parse(readFileSync(path.join(SET, 'cases.json'), 'utf8')) as { cases: Case[]; special_tokens: Record<string, [string, number]> };
const byName = (name: string): Case => file.cases.find((c) => c.name === name)!;

async function tensorRows(st: SafetensorsFile, key: string): Promise<number[][]> {
  const t = await st.read(key);
  const values = Array.from(t.data as BigInt64Array, Number);
  const width = t.shape[t.shape.length - 1]!;
  const rows: number[][] = [];
  for (let i = 0; i < values.length; i += width) rows.push(values.slice(i, i + width));
  return t.shape.length === 1 ? [values] : rows;
}

describe('clip-tokenizer-tiny fixtures', () => {
  let plain: CLIPTokenizer;
  let padBang: CLIPTokenizer;
  let st: SafetensorsFile;
  beforeAll(async () => {
    plain = await CLIPTokenizer.load(SET);
    padBang = await CLIPTokenizer.load(SET, { overrides: { padToken: byName('encode_max_length_pad_override').overrides!.pad_token! } });
    st = await SafetensorsFile.open(path.join(SET, 'cases.safetensors'));
  });
  afterAll(async () => st.close());

  it('has three cases of 13 prompts each', () => {
    expect(file.cases.map((c) => c.name).sort()).toEqual(['encode_max_length', 'encode_max_length_pad_override', 'encode_no_padding']);
    for (const c of file.cases) expect(c.prompts).toHaveLength(13);
  });

  it('reads the special tokens and model_max_length', () => {
    expect(plain.bosId).toBe(file.special_tokens.bos![1]);
    expect(plain.eosId).toBe(file.special_tokens.eos![1]);
    expect(plain.padId).toBe(file.special_tokens.pad![1]);
    expect(plain.maxLength).toBe(77);
    expect(plain.vocabSize).toBe(1000);
    expect(padBang.padId).toBe(byName('encode_max_length_pad_override').pad_token_id);
  });

  for (const name of ['encode_max_length', 'encode_max_length_pad_override']) {
    describe(name, () => {
      const c = byName(name);
      const tok = (): CLIPTokenizer => (c.overrides ? padBang : plain);
      it.each(c.prompts.map((p) => [p.index, p.text, p] as const))('prompt %i %j', (_i, text, p) => {
        const enc = tok().encode(text, { padding: c.call.padding, maxLength: c.call.max_length, truncation: c.call.truncation });
        expect(enc.inputIds).toEqual(p.input_ids);
        expect(enc.attentionMask).toEqual(p.attention_mask);
        if (p.tokens !== undefined) expect(tok().tokenize(text)).toEqual(p.tokens);
        if (p.num_tokens_untruncated !== undefined) {
          expect(tok().encode(text).inputIds.length).toBe(p.num_tokens_untruncated);
          expect(p.truncated).toBe(p.num_tokens_untruncated > 77);
        }
      });
      it('matches the stored tensors as a batch', async () => {
        const batch = tok().encodeBatch(
          c.prompts.map((p) => p.text),
          { padding: 'max_length', maxLength: 77, truncation: true },
        );
        expect(batch.inputIds).toEqual(await tensorRows(st, c.expected.input_ids as string));
        expect(batch.attentionMask).toEqual(await tensorRows(st, c.expected.attention_mask!));
      });
    });
  }

  describe('encode_no_padding', () => {
    const c = byName('encode_no_padding');
    it.each(c.prompts.map((p) => [p.index, p.text, p] as const))('prompt %i %j', async (i, text, p) => {
      const enc = plain.encode(text);
      expect(enc.inputIds).toEqual(p.input_ids);
      expect(enc.attentionMask).toEqual(p.input_ids.map(() => 1));
      expect([enc.inputIds]).toEqual(await tensorRows(st, (c.expected.input_ids as string[])[i]!));
    });
  });

  it('truncates at least one prompt (the fixtures cover truncation)', () => {
    const long = byName('encode_max_length').prompts.filter((p) => p.truncated === true);
    expect(long.length).toBeGreaterThan(0);
    for (const p of long) expect(plain.encode(p.text).inputIds.length).toBeGreaterThan(77);
  });
});
