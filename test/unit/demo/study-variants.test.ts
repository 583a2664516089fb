// `npm run transfer-study -- --variants <file>`: the variants file's schema, and the shipped search
// (recipes/lora-preset-search.json) planned over the transfer-study recipe before any run. Pure.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseLenientJson } from '../../../lib/config/json';
import { planRuns, studyVariantsFileSchema } from '../../../lib/demo/transfer-study';
import { parseCli } from '../../../lib/util/cli-args';
import { cli } from '../../../scripts/transfer-study';

const ROOT = path.join(__dirname, '..', '..', '..');
const read = (f: string): Record<string, unknown> => parseLenientJson(fs.readFileSync(path.join(ROOT, f), 'utf8'), f) as Record<string, unknown>;

test('the shipped LoRA preset search plans every variant over the transfer-study recipe, into its own README block', () => {
  const search = studyVariantsFileSchema.parse(read('recipes/lora-preset-search.json'));
  expect(search.readmeBlock).toBe('lora-preset-search');
  const recipeFile = path.join(ROOT, 'recipes', 'transfer-study-fashion.json');
  const runs = planRuns(read('recipes/transfer-study-fashion.json'), recipeFile, path.join(os.tmpdir(), 'difftune-never-written'), search.variants);
  expect(runs.map((r) => r.name)).toEqual(search.variants.map((v) => v.name));
  // The preset is what the plain LoRA rows train, learning rate and seed the only other changes; the
  // ablations name what they change in theirs.
  const locon = runs.filter((r) => /^LoRA locon, lr [0-9e-]+(, seed \d)?$/.test(r.name));
  expect(locon.length).toBeGreaterThanOrEqual(4);
  for (const r of locon) expect(r.recipe.lora).toEqual({ preset: 'locon' });
  const seeds = runs.filter((r) => r.name.includes(', seed '));
  for (const r of seeds) expect((r.recipe.train as { seed: number }).seed).toBe(Number(r.name.slice(-1)));
  expect(runs.find((r) => r.name.startsWith('LoRA locon without the samplers, lr'))?.recipe.lora).toEqual({ preset: 'locon', resamplers: false });
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  expect(readme).toContain('<!-- lora-preset-search:begin -->');
  expect(readme).toContain('<!-- lora-preset-search:end -->');
});

test('a variants file with repeated names, no variants or a bad block name is refused, naming the field', () => {
  const v = { name: 'a', overrides: {} };
  expect(studyVariantsFileSchema.safeParse({ variants: [v] }).data?.readmeBlock).toBe('transfer-study');
  const issues = (x: unknown) => studyVariantsFileSchema.safeParse(x).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  expect(issues({ variants: [v, v] })).toEqual(['variants.1.name: expected unique names but "a" repeats']);
  expect(issues({ variants: [] })).toEqual(['variants: Array must contain at least 1 element(s)']);
  expect(issues({ variants: [v], readmeBlock: 'Bench!' })).toEqual(['readmeBlock: expected lower-case letters, digits and hyphens']);
  expect(issues({ variants: [{ ...v, extra: 1 }] })?.[0]).toMatch(/^variants\.0: Unrecognized key/);
});

test('--variants and --data-sizes together are refused before anything runs', () => {
  expect(parseCli(cli, ['--recipe', 'r.json', '--variants', 'v.json'])).toMatchObject({ values: { variants: 'v.json' } });
  // The built CLI (npm test compiles it first): exit 1 with the reason, no run folder made.
  const out = path.join(os.tmpdir(), `difftune-variants-${process.pid}`);
  const r = spawnSync(
    process.execPath,
    [
      path.join(ROOT, 'dist', 'scripts', 'transfer-study.js'),
      '--recipe',
      'recipes/transfer-study-fashion.json',
      '--variants',
      'recipes/lora-preset-search.json',
      '--data-sizes',
      '64,256',
      '--set',
      `output=${out}`,
    ],
    { cwd: ROOT, encoding: 'utf8', timeout: 60_000 },
  );
  expect(r.status).toBe(1);
  expect(r.stderr).toContain(
    '--variants: the data-efficiency study (--data-sizes) runs fine-tuned and from scratch at each size; expected one of --variants and --data-sizes but found both',
  );
  expect(fs.existsSync(out)).toBe(false);
});
