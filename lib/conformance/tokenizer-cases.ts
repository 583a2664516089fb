/**
 * Runner for `tokenizer_encode` cases (clip-tokenizer-tiny): the set folder's CLIP tokenizer (with the
 * case's load-time overrides) encodes each prompt, and every id and mask value must equal the stored
 * I64 tensors exactly; the BPE strings of tokenize() must equal the case's `tokens`. Pure TypeScript.
 */
import { z } from 'zod';
import { SafetensorsFile } from '../checkpoint/safetensors';
import { ConfigError } from '../errors';
import { CLIPTokenizer } from '../text/clip-tokenizer';
import { checkNumbers, type Check } from './compare';
import { caseFields, CASES_FILE, type FixtureCase, type FixtureSet } from './fixture-set';
import type { CaseRegistry } from './registry';
import { TOLERANCES } from './tolerances';

const tokenizerCase = z.object({
  overrides: z
    .object({ pad_token: z.string().min(1).optional() })
    .strict()
    .optional(),
  pad_token_id: z.number().int().optional(),
  call: z.object({
    padding: z.union([z.literal('max_length'), z.literal(false)]),
    max_length: z.number().int().positive().optional(),
    truncation: z.boolean(),
  }),
  prompts: z.array(z.object({ index: z.number().int().nonnegative(), text: z.string(), tokens: z.array(z.string()).optional() })),
  expected: z.object({ input_ids: z.union([z.string(), z.array(z.string())]), attention_mask: z.string().optional() }),
});

async function readIds(file: SafetensorsFile, key: string): Promise<{ shape: readonly number[]; values: number[] }> {
  const t = await file.read(key);
  if (t.dtype !== 'I64') throw new ConfigError(`${file.path}: tensor "${key}" is ${t.dtype}, expected I64 token ids`);
  return { shape: t.shape, values: Array.from(t.data as BigInt64Array, Number) };
}

/** Compares one row of computed ids with row `row` of a stored [rows, width] (or 1-D) tensor. */
function rowCheck(name: string, got: readonly number[], stored: { shape: readonly number[]; values: number[] }, row: number): Check {
  const width = stored.shape.length === 1 ? stored.values.length : stored.shape[stored.shape.length - 1]!;
  return checkNumbers(name, got, stored.values.slice(row * width, (row + 1) * width), TOLERANCES.exact);
}

async function runTokenizerEncode(set: FixtureSet, fixtureCase: FixtureCase): Promise<Check[]> {
  const c = caseFields(set, fixtureCase, tokenizerCase);
  const tokenizer = await CLIPTokenizer.load(set.dir, { overrides: { padToken: c.overrides?.pad_token } });
  const checks: Check[] = [];
  if (c.pad_token_id !== undefined) checks.push(checkNumbers('pad_token_id', [tokenizer.padId ?? -1], [c.pad_token_id], TOLERANCES.exact));
  const tensorsFile = set.file.tensors_file;
  if (typeof tensorsFile !== 'string') throw new ConfigError(`${set.resolve(CASES_FILE)}: no "tensors_file" with the expected ids`);
  const file = await SafetensorsFile.open(set.resolve(tensorsFile));
  try {
    const options = { padding: c.call.padding, maxLength: c.call.max_length, truncation: c.call.truncation } as const;
    const perPrompt = Array.isArray(c.expected.input_ids);
    const ids = perPrompt ? undefined : await readIds(file, c.expected.input_ids as string);
    const mask = c.expected.attention_mask === undefined ? undefined : await readIds(file, c.expected.attention_mask);
    for (const [row, prompt] of c.prompts.entries()) {
      const name = `prompt_${String(prompt.index).padStart(3, '0')}`;
      const enc = tokenizer.encode(prompt.text, options);
      const storedIds = perPrompt ? await readIds(file, (c.expected.input_ids as string[])[row]!) : ids!;
      checks.push(rowCheck(`${name}/input_ids`, enc.inputIds, storedIds, perPrompt ? 0 : row));
      if (mask !== undefined) checks.push(rowCheck(`${name}/attention_mask`, enc.attentionMask, mask, row));
      if (prompt.tokens !== undefined) {
        const got = tokenizer.tokenize(prompt.text);
        const same = got.length === prompt.tokens.length && got.every((t, i) => t === prompt.tokens![i]);
        checks.push({
          name: `${name}/tokens`,
          rel: same ? 0 : Infinity,
          bound: TOLERANCES.exact,
          pass: same,
          note: same ? undefined : `tokenize() gave ${JSON.stringify(got.slice(0, 8))}…`,
        });
      }
    }
  } finally {
    await file.close();
  }
  return checks;
}

export function registerTokenizerCases(registry: CaseRegistry): CaseRegistry {
  return registry.register('tokenizer_encode', runTokenizerEncode);
}
