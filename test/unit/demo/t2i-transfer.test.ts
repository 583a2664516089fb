// recipes/demo-t2i.json (npm run demo -- --t2i): the recipe parses, its three runs are valid finetune recipes that
// differ only where they should (start, what trains, learning rate), all measure the wrong-caption loss and keep
// the text encoder frozen; bad settings are refused naming the field; the captions verdict reads the relative gap.
import * as fs from 'fs';
import * as path from 'path';
import { parseFreezeOptions } from '../../../lib/config/freeze';
import { parseLenientJson } from '../../../lib/config/json';
import { parseRecipe } from '../../../lib/config/recipe';
import { planT2iDemoRuns } from '../../../lib/demo/t2i-transfer';
import { matchSentence, steerVerdict } from '../../../lib/demo/t2i-transfer-report';
import { parseT2iDemoRecipe, type T2iDemoSummary } from '../../../lib/demo/t2i-transfer-summary';
import { T2I_HELD_BACK_CLASSES } from '../../../lib/demo/t2i-data';

const ROOT = path.join(__dirname, '..', '..', '..');
const RECIPE = path.join(ROOT, 'recipes', 'demo-t2i.json');
const raw = () => parseLenientJson(fs.readFileSync(RECIPE, 'utf8'), RECIPE) as Record<string, unknown>;

test('the shipped recipe targets the classes the base holds back, from models/t2i-base, with the 1 / 3 / 7.5 sweep', () => {
  const r = parseT2iDemoRecipe(raw(), RECIPE);
  expect(r.classes).toEqual([...T2I_HELD_BACK_CLASSES]);
  expect(r.base).toBe(path.join(ROOT, 'models', 't2i-base'));
  expect(r.guidanceSweep).toEqual([1, 3, 7.5]);
});

test('the three runs are finetune recipes on the same data, budget and validations; scratch and LoRA differ where they should', () => {
  const r = parseT2iDemoRecipe(raw(), RECIPE);
  const data = { train: '/d/train', test: '/d/test' };
  const runs = planT2iDemoRuns(r, '/out', data).map((p) => ({ ...p, parsed: parseRecipe(p.recipe, RECIPE) }));
  expect(runs.map((p) => [p.name, p.folder])).toEqual([
    ['fine-tuned', 'finetuned'],
    ['from scratch', 'scratch'],
    ['LoRA', 'lora'],
  ]);
  for (const { parsed } of runs) {
    expect(parsed.data.path).toBe(data.train);
    expect(parsed.validation).toMatchObject({ every: r.validation.every, samples: r.validation.samples, wrongCaptions: true, data: { path: data.test } });
    expect([parsed.train.steps, parsed.train.batchSize, parsed.train.seed]).toEqual([r.steps, r.batchSize, r.seed]);
    // The text encoder stays frozen in every run (and the VAE always is).
    expect(parseFreezeOptions(parsed.freeze).textEncoder).toBe('frozen');
    expect(parsed.lora?.textEncoder ?? null).toBeNull();
    expect(parsed.model.pretrained).toBe(r.base);
    expect(parsed.textToImage.cacheDir).toBe(path.join('/out', 'cache'));
  }
  const [ft, scratch, lora] = runs.map((p) => p.parsed);
  expect([ft!.model.scratch, scratch!.model.scratch, lora!.model.scratch]).toEqual([false, true, false]);
  expect([ft!.train.lr, scratch!.train.lr, lora!.train.lr]).toEqual([r.finetune.lr, r.scratch.lr, r.lora.lr]);
  expect(scratch!.train.lrSchedule).toMatchObject({ name: 'cosine', warmupSteps: r.scratch.warmupSteps });
  expect(lora!.lora).toMatchObject({ rank: r.lora.rank, saveMerged: true });
  expect(ft!.lora).toBeNull();
});

test.each<[string, (r: Record<string, unknown>) => void, RegExp]>([
  ['one class', (r) => (r.classes = ['sandal']), /demo-t2i\.json: "classes": expected two target classes or more .* but found 1/],
  ['an unknown class', (r) => (r.classes = ['sandal', 'boots']), /"classes\[1\]": expected one of digit-0, .* but found "boots"/],
  ['a class twice', (r) => (r.classes = ['sandal', 'sandal']), /"classes": each class once/],
  ['warmup past the budget', (r) => ((r.scratch as Record<string, unknown>).warmupSteps = 10_000), /"scratch\.warmupSteps": expected at most "steps"/],
  ['an unknown key', (r) => (r.output = 'x'), /demo-t2i\.json: "": Unrecognized key\(s\) in object: 'output'/],
])('%s is refused naming the field', (_name, edit, message) => {
  const r = raw();
  edit(r);
  expect(() => parseT2iDemoRecipe(r, RECIPE)).toThrow(message);
});

test('the captions verdict reads the relative gap, with a 1% band of no difference', () => {
  expect(steerVerdict(0.042)).toBe('the captions steer it: +4.2% with the wrong ones');
  expect(steerVerdict(0.004)).toBe('no clear difference (+0.4%): the captions barely steer it');
  expect(steerVerdict(-0.03)).toBe('the wrong captions do better (-3.0%): the words are not learnt');
  expect(steerVerdict(null)).toBe('not measured');
});

test('the match sentence: after how many steps, never, or already at the base', () => {
  const runs = [{}, { heldOutLoss: 0.1234 }, {}] as unknown as T2iDemoSummary['runs'];
  expect(matchSentence({ stepsToMatchScratch: 37.6, steps: 200, runs })).toBe(
    "The fine-tuned run reached the from-scratch run's final held-out loss (0.1234) after 38 of 200 steps.",
  );
  expect(matchSentence({ stepsToMatchScratch: null, steps: 200, runs })).toBe(
    "The fine-tuned run did not reach the from-scratch run's final held-out loss (0.1234) within the budget.",
  );
  expect(matchSentence({ stepsToMatchScratch: 0, steps: 200, runs })).toBe(
    "The base, before any fine-tuning, was already below the from-scratch run's final held-out loss (0.1234).",
  );
});
