// The text-to-image base's captions and recipe, without the addon: every class has several captions with its
// word, the held-back classes' nouns never occur in the base's captions (on the real CLIP tokenizer's tokens,
// which is what the text encoder sees), and recipes/pretrain-t2i.json parses — its U-Net phase as a finetune
// recipe too — while mistakes name the field.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseLenientJson } from '../../../lib/config/json';
import { parseRecipe } from '../../../lib/config/recipe';
import { ConfigError } from '../../../lib/errors';
import { parseT2iPretrainRecipe, t2iRunFolders, unetPhaseRecipe } from '../../../lib/demo/t2i-base';
import { captionedClass, classCaptions, classPrompt, T2I_BASE_CLASSES, T2I_CLASSES, T2I_HELD_BACK_CLASSES } from '../../../lib/demo/t2i-data';
import { CLIPTokenizer } from '../../../lib/text/clip-tokenizer';

const ROOT = path.join(__dirname, '..', '..', '..');
const RECIPE = path.join(ROOT, 'recipes', 'pretrain-t2i.json');
const raw = () => parseLenientJson(fs.readFileSync(RECIPE, 'utf8'), RECIPE) as Record<string, unknown>;

test('20 classes: the 10 digits and Fashion-MNIST’s 10, each with several captions naming it', () => {
  expect(T2I_CLASSES.map((c) => c.key)).toEqual([
    ...Array.from({ length: 10 }, (_, i) => `digit-${i}`),
    't-shirt',
    'trouser',
    'pullover',
    'dress',
    'coat',
    'sandal',
    'shirt',
    'sneaker',
    'bag',
    'ankle-boot',
  ]);
  expect(classPrompt(captionedClass('digit-7'))).toBe('a handwritten digit seven');
  expect(classCaptions(captionedClass('digit-7'))).toContain('the number 7 written by hand');
  expect(classPrompt(captionedClass('sneaker'))).toBe('a photo of a sneaker');
  expect(classCaptions(captionedClass('sneaker'))).toContain('a grey sneaker, product photo');
  expect(classPrompt(captionedClass('ankle-boot'))).toBe('a photo of an ankle boot');
  for (const c of T2I_CLASSES) {
    const captions = classCaptions(c);
    expect(new Set(captions).size).toBe(captions.length);
    expect(captions.length).toBeGreaterThanOrEqual(6);
    // A digit's captions name it in words or as a numeral.
    const names = [...c.nouns.map(([, noun]) => noun), ...(c.source === 'mnist' ? [String(c.label)] : [])];
    for (const caption of captions) expect([caption, names.some((name) => caption.includes(name))]).toEqual([caption, true]);
  }
  expect([...T2I_BASE_CLASSES, ...T2I_HELD_BACK_CLASSES].sort()).toEqual(T2I_CLASSES.map((c) => c.key).sort());
  expect(() => captionedClass('boots')).toThrow(ConfigError);
});

test('no token of a held-back class’s nouns occurs in the base’s captions (but "of")', async () => {
  const tokenizer = await CLIPTokenizer.load(path.join(ROOT, 'recipes', 'pretrain-t2i', 'tokenizer'));
  const base = new Set(T2I_BASE_CLASSES.flatMap((k) => classCaptions(captionedClass(k)).flatMap((c) => tokenizer.tokenize(c))));
  for (const key of T2I_HELD_BACK_CLASSES) {
    const tokens = captionedClass(key).nouns.flatMap(([, noun]) => tokenizer.tokenize(noun));
    expect([key, tokens.filter((t) => base.has(t) && t !== 'of</w>')]).toEqual([key, []]);
  }
  // The base classes' own nouns are in it, as a check of the check.
  expect(base.has('sneaker</w>')).toBe(true);
});

test('recipes/pretrain-t2i.json parses, holds the base/held-back split, and its U-Net phase is a valid finetune recipe', () => {
  const recipe = parseT2iPretrainRecipe(raw(), RECIPE);
  expect(recipe.data.classes).toEqual([...T2I_BASE_CLASSES]);
  expect(recipe.data.heldBack).toEqual([...T2I_HELD_BACK_CLASSES]);
  expect(recipe.pipeline).toBe(path.join(ROOT, 'recipes', 'pretrain-t2i'));
  expect(recipe.output).toBe(path.join(ROOT, 'runs', 'pretrain-t2i'));
  const run = t2iRunFolders(recipe.output);
  const unet = parseRecipe(unetPhaseRecipe(recipe, run, false), RECIPE);
  expect(unet.model.pretrained).toBe(run.init);
  expect(unet.data.path).toBe(run.train);
  expect(unet.validation.data).toEqual({ path: run.test, resolution: 32, channels: 3 });
  expect(unet.output).toBe(run.unet);
  expect(unet.resume).toBeUndefined();
  expect(parseRecipe(unetPhaseRecipe(recipe, run, true), RECIPE).resume).toBe('latest');
});

test.each<[string, (r: Record<string, unknown>) => void, RegExp]>([
  ['a held-back class in the base', (r) => ((r.data as { heldBack: string[] }).heldBack = ['sneaker']), /"data\.heldBack": sneaker also in data\.classes/],
  [
    'an unknown class',
    (r) => ((r.data as { classes: string[] }).classes = ['digit-7', 'boots']),
    /"data\.classes\[1\]": expected one of digit-0, .* but found "boots"/,
  ],
  ['unet.model given', (r) => ((r.unet as Record<string, unknown>).model = { pretrained: 'x' }), /"unet\.model": set by pretrain:t2i/],
  ['an unknown key', (r) => (r.steps = 5), /pretrain-t2i\.json: "": Unrecognized key\(s\) in object: 'steps'/],
])('%s is refused naming the field', (_name, edit, message) => {
  const r = raw();
  edit(r);
  expect(() => parseT2iPretrainRecipe(r, RECIPE)).toThrow(message);
});
