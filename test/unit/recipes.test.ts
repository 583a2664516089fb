// Every shipped recipe is a valid recipe (schema and sections), so users start from working files.
import * as fs from 'fs';
import * as path from 'path';
import { parseLenientJson } from '../../lib/config/json';
import { parseRecipe } from '../../lib/config/recipe';

const DIR = path.join(__dirname, '..', '..', 'recipes');
const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.json'));

test('there are recipes', () => expect(files.length).toBeGreaterThanOrEqual(5));

test.each(files)('%s validates', (file) => {
  const full = path.join(DIR, file);
  expect(() => parseRecipe(parseLenientJson(fs.readFileSync(full, 'utf8'), full), full)).not.toThrow();
});
