// validation.wrongCaptions: the held-out loss measured a second time with each sample's caption swapped for
// another caption set's, same samples, noise and timesteps. It is the held-out loss of a held-out set whose
// captions are swapped in the files (so nothing but the caption changes), it differs from the right
// captions' loss on a text-conditioned U-Net, and it is refused where no caption is read.
import * as fs from 'fs';
import * as path from 'path';
import { createDataset } from '../../lib/data/dataset';
import { ConfigError } from '../../lib/errors';
import { finetune } from '../../lib/train/finetune';
import { useTempDir } from '../helpers/temp-dir';

const ROOT = path.join(__dirname, '..', '..');
const PIPELINE = path.join(ROOT, 'test', 'fixtures', 'diffusers', 'sd-pipeline-tiny');
const SHAPES = path.join(ROOT, 'recipes', 'data', 'shapes');
const tmp = useTempDir('wrong-captions');

const recipe = (output: string, heldOut: string, wrongCaptions: boolean) => ({
  model: { pretrained: PIPELINE },
  data: { path: path.join(SHAPES, 'train'), resolution: 32, channels: 3 },
  train: { steps: 2, batchSize: 4, lr: 1e-3, seed: 0 },
  validation: { every: 1, samples: 4, data: { path: heldOut, resolution: 32, channels: 3 }, wrongCaptions },
  output,
});

/** A copy of the held-out shapes whose caption k is the one of image k + 1 in the order the loader serves them. */
async function swappedCopy(dir: string): Promise<string> {
  const from = path.join(SHAPES, 'test');
  const dataset = await createDataset({ path: from, resolution: 32, channels: 3 });
  const files = dataset.items.map((i) => path.relative(from, i.id));
  fs.mkdirSync(dir, { recursive: true });
  for (const f of files) fs.copyFileSync(path.join(from, f), path.join(dir, f));
  const lines = files.map((f, k) => JSON.stringify({ file_name: f, text: dataset.items[(k + 1) % files.length]!.captions }));
  fs.writeFileSync(path.join(dir, 'metadata.jsonl'), `${lines.join('\n')}\n`);
  return dir;
}

test('the wrong-caption loss is the held-out loss with the other captions, and differs from the right captions’ loss', async () => {
  const logs: string[] = [];
  const measured = await finetune(recipe(path.join(tmp(), 'both'), path.join(SHAPES, 'test'), true), { onLog: (l) => logs.push(l) });
  const swapped = await finetune(recipe(path.join(tmp(), 'swapped'), await swappedCopy(path.join(tmp(), 'held-out-swapped')), false));
  expect(measured.validation.map((v) => v.step)).toEqual([0, 1, 2]);
  expect(swapped.validation.map((v) => v.step)).toEqual([0, 1, 2]);
  for (const [i, v] of measured.validation.entries()) {
    expect(Number.isFinite(v.loss) && Number.isFinite(v.wrongCaptionLoss!)).toBe(true);
    // Another caption through the frozen text encoder changes what the U-Net is asked: another loss.
    expect(v.wrongCaptionLoss).not.toBe(v.loss);
    // Same samples, noise and timesteps: only the captions differ, so it is the swapped set's loss (to the
    // last bit or so: the frozen text encoder embeds a batch's new captions together, in another order there).
    const other = swapped.validation[i]!.loss;
    expect([v.step, Math.abs(v.wrongCaptionLoss! - other) < 1e-6 * other]).toEqual([v.step, true]);
    // ... far closer than the two captions' losses are to each other.
    expect(Math.abs(v.wrongCaptionLoss! - v.loss)).toBeGreaterThan(20 * Math.abs(v.wrongCaptionLoss! - other));
  }
  expect(swapped.validation[0]!.wrongCaptionLoss).toBeUndefined();
  const metrics = fs
    .readFileSync(path.join(measured.output, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>)
    .filter((m) => m.validationLoss !== undefined);
  expect(metrics.map((m) => [m.step, m.validationLoss, m.validationLossWrongCaptions])).toEqual(
    measured.validation.map((v) => [v.step, v.loss, v.wrongCaptionLoss]),
  );
  expect(logs.some((l) => /^step 2: held-out loss \d\.\d{5} \(with another class's captions \d\.\d{5}\)$/.test(l))).toBe(true);
});

test('wrongCaptions is refused where no caption is read or there is no other caption set', async () => {
  const pixelRecipe = {
    model: { pretrained: path.join(ROOT, 'models', 'mnist-ddpm') },
    data: { source: 'mnist', resolution: 28, channels: 1, limit: 8 },
    train: { steps: 1, batchSize: 4, lr: 1e-4 },
    validation: { every: 1, samples: 4, wrongCaptions: true },
    output: path.join(tmp(), 'pixels'),
  };
  await expect(finetune(pixelRecipe)).rejects.toThrow(
    new ConfigError('validation.wrongCaptions: expected a text-to-image run (a text-conditioned U-Net in a pipeline folder) but this U-Net takes no captions'),
  );
  // Every held-out image with the same caption: one caption set.
  const same = path.join(tmp(), 'held-out-same');
  await swappedCopy(same);
  const lines = fs
    .readFileSync(path.join(same, 'metadata.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.stringify({ ...(JSON.parse(l) as object), text: 'a shape' }));
  fs.writeFileSync(path.join(same, 'metadata.jsonl'), `${lines.join('\n')}\n`);
  await expect(finetune(recipe(path.join(tmp(), 'same'), same, true))).rejects.toThrow(
    /^validation\.wrongCaptions: expected held-out samples of two caption sets or more \(classes\) but all 4 share one/,
  );
});
