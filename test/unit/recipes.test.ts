// Every shipped recipe is a valid recipe (schema and sections), so users start from working files.
import * as fs from 'fs';
import * as path from 'path';
import { parseLenientJson } from '../../lib/config/json';
import { parseRecipe } from '../../lib/config/recipe';
import { parseT2iPretrainRecipe } from '../../lib/demo/t2i-base';
import { studyVariantsFileSchema } from '../../lib/demo/transfer-study';
import { parseT2iDemoRecipe } from '../../lib/demo/t2i-transfer-summary';

const DIR = path.join(__dirname, '..', '..', 'recipes');
const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.json'));

test('there are recipes', () => expect(files.length).toBeGreaterThanOrEqual(5));

/** Recipes of other commands than finetune, each read by its own parser. */
const PARSERS: Readonly<Record<string, (raw: unknown, file: string) => unknown>> = {
  'pretrain-t2i.json': parseT2iPretrainRecipe,
  'demo-t2i.json': parseT2iDemoRecipe,
  // transfer-study --variants
  'lora-preset-search.json': (raw) => studyVariantsFileSchema.parse(raw),
};

test.each(files)('%s validates', (file) => {
  const full = path.join(DIR, file);
  const parse = PARSERS[file] ?? parseRecipe;
  expect(() => parse(parseLenientJson(fs.readFileSync(full, 'utf8'), full), full)).not.toThrow();
});
