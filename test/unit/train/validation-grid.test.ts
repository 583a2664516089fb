// Validation grids without the addon: which grid a recipe asks of which kind of U-Net (and the mistakes it
// refuses, naming the field), and the labelled grid image (rows captioned in a strip on the left).
import sharp from 'sharp';
import { parseRecipe } from '../../../lib/config/recipe';
import { ConfigError } from '../../../lib/errors';
import { gridPng, wrapLabel, type Images } from '../../../lib/sample/image';
import { gridFile, planValidationGrid } from '../../../lib/train/validation-images';

const settings = (validation: Record<string, unknown>) =>
  parseRecipe({ model: { pretrained: 'm' }, data: { source: 'mnist' }, train: { steps: 1, lr: 1 }, output: 'o', validation: { every: 1, ...validation } })
    .validation;
const textToImage = { textToImage: true, classConditional: false, numClassEmbeds: null };
const classCond = { textToImage: false, classConditional: true, numClassEmbeds: 10 };
const unconditional = { textToImage: false, classConditional: false, numClassEmbeds: null };

test('the grid follows the model: prompts for text-to-image, class labels for class-conditional, N samples for unconditional', () => {
  expect(planValidationGrid(settings({ prompts: ['a cat', 'a dog'] }), textToImage)).toEqual({ kind: 'prompts', rows: ['a cat', 'a dog'], perRow: 4 });
  expect(planValidationGrid(settings({ classLabels: [3, 1], numImages: 2 }), classCond)).toEqual({ kind: 'classLabels', rows: [3, 1], perRow: 2 });
  expect(planValidationGrid(settings({ numImages: 9 }), unconditional)).toEqual({ kind: 'unconditional', count: 9 });
  // Nothing asked: no grid (the held-out loss alone, as before).
  for (const model of [textToImage, classCond, unconditional]) expect(planValidationGrid(settings({}), model)).toBeUndefined();
  expect(gridFile(40)).toBe('validation/step-40.png');
});

test.each([
  [{ classLabels: [1] }, textToImage, /validation\.classLabels: this is a text-to-image run/],
  [{ numImages: 2 }, textToImage, /validation\.numImages: .* give validation\.prompts too/],
  [{ prompts: ['x'] }, classCond, /validation\.prompts: only a text-to-image run .* class-conditional \(use validation\.classLabels\)/],
  [{ prompts: ['x'] }, unconditional, /unconditional \(use validation\.numImages\)/],
  [{ numImages: 2 }, classCond, /give validation\.classLabels too/],
  [{ classLabels: [3, 10, 12] }, classCond, /below the U-Net's num_class_embeds \(10\) but found 10, 12/],
  [{ classLabels: [0] }, unconditional, /no class embedding/],
])('settings that do not fit the model are refused, naming the field (%#)', (v, model, message) => {
  expect(() => planValidationGrid(settings(v), model)).toThrow(ConfigError);
  expect(() => planValidationGrid(settings(v), model)).toThrow(message);
});

test('labels wrap at spaces and what does not fit ends in an ellipsis', () => {
  expect(wrapLabel('a red circle, flat style', 12, 3)).toEqual(['a red', 'circle, flat', 'style']);
  expect(wrapLabel('a red circle, flat style', 12, 2)).toEqual(['a red', 'circle, fla…']);
  expect(wrapLabel('supercalifragilistic', 8, 2)).toEqual(['superca…']);
});

function images(count: number, size: number, channels: 1 | 3): Images {
  const pixels = new Uint8Array(count * size * size * channels);
  for (let i = 0; i < count; i++) pixels.fill(40 + 50 * i, i * size * size * channels, (i + 1) * size * size * channels);
  return { count, height: size, width: size, channels, pixels };
}

test('a labelled grid: one caption per row in a strip on the left, the images as they are beside it', async () => {
  const png = await gridPng(images(4, 8, 1), { columns: 2, scale: 2, rowLabels: ['class 0', 'a long prompt about a dog'] });
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  // 2 columns of 8 px + 3 paddings of 2, scaled ×2, after a 200 px label strip.
  expect([info.width, info.height]).toEqual([200 + (2 * 8 + 3 * 2) * 2, (2 * 8 + 3 * 2) * 2]);
  const at = (x: number, y: number) => data[(y * info.width + x) * info.channels]!;
  // The first image of the second row (value 40 + 50·2) where the grid puts it.
  expect(at(200 + 2 * 2 + 1, (2 + 8 + 2) * 2 + 1)).toBe(140);
  // Each row's caption left dark pixels in the strip beside that row.
  const darkIn = (y0: number, y1: number) => {
    let n = 0;
    for (let y = y0; y < y1; y++) for (let x = 0; x < 200; x++) if (at(x, y) < 128) n++;
    return n;
  };
  expect(darkIn(0, 22)).toBeGreaterThan(0);
  expect(darkIn(22, 44)).toBeGreaterThan(0);
  await expect(gridPng(images(4, 8, 3), { columns: 2, rowLabels: ['only one'] })).rejects.toThrow(/2 row labels/);
});
