// npm run demo -- --t2i shortened: the shipped recipes/demo-t2i.json at a few steps, on a shortened pretrain:t2i
// output (test/helpers/t2i-short.ts: digits 7 and 1 and sneakers) with two classes it never saw. summary.json
// passes its schema with the three runs, their right- and wrong-caption held-out curves (which differ) and the
// frozen models' digests; the plots and grids are PNGs that decode; report.html names them and renders in
// headless Chromium where it is installed. A missing base says how to make it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { parseLenientJson } from '../../lib/config/json';
import { applyOverrides } from '../../lib/config/recipe';
import { runT2iTransferDemo } from '../../lib/demo/t2i-transfer';
import { t2iDemoSummarySchema, type T2iDemoSummary } from '../../lib/demo/t2i-transfer-summary';
import { ConfigError } from '../../lib/errors';
import { loadStableDiffusion } from '../../lib/models/stable-diffusion';
import { expectReportRenders, testWithChromium } from '../helpers/report-render';
import { useTempDir } from '../helpers/temp-dir';
import { ROOT, runShortT2i } from '../helpers/t2i-short';

const RECIPE = path.join(ROOT, 'recipes', 'demo-t2i.json');
/** gridPng's caption strip (lib/sample/image.ts). */
const LABEL_WIDTH = 200;
const tmp = useTempDir('demo-t2i');

/** The shipped recipe at test size: 2 new classes × 8 images, 4 steps of batch 8, 2-step grids of 2 per prompt. */
function shortRecipe(base: string, extra: readonly string[] = []): Record<string, unknown> {
  const raw = parseLenientJson(fs.readFileSync(RECIPE, 'utf8'), RECIPE);
  return applyOverrides(raw, [
    `base=${JSON.stringify(base)}`,
    'classes=["sandal","trouser"]',
    'data.trainPerClass=8',
    'data.testPerClass=4',
    'steps=4',
    'batchSize=8',
    'scratch.warmupSteps=1',
    'validation={"every":2,"samples":8}',
    'samples.perPrompt=2',
    'samples.steps=2',
    ...extra,
  ]);
}

const out = () => path.join(tmp(), 'demo');
let base = '';
let returned: T2iDemoSummary;
const logs: string[] = [];

beforeAll(async () => {
  base = (await runShortT2i(path.join(tmp(), 'base'))).model;
  // An earlier demo's result is replaced; a file the demo does not write is left alone.
  fs.mkdirSync(out(), { recursive: true });
  fs.writeFileSync(path.join(out(), 'notes.txt'), 'mine');
  fs.writeFileSync(path.join(out(), 'summary.json'), '{}');
  returned = await runT2iTransferDemo(shortRecipe(base), { recipeFile: RECIPE, out: out(), onLog: (l) => logs.push(l) });
}, 300_000);

test('summary.json is the summary returned and passes its schema: three runs, curves with both captions, frozen digests', () => {
  const saved = t2iDemoSummarySchema.parse(JSON.parse(fs.readFileSync(path.join(out(), 'summary.json'), 'utf8')));
  expect(saved).toEqual(returned);
  expect(saved.runs.map((r) => [r.name, r.folder, r.steps])).toEqual([
    ['fine-tuned', 'finetuned', 4],
    ['from scratch', 'scratch', 4],
    ['LoRA', 'lora', 4],
  ]);
  expect(saved.target).toEqual({
    classes: [
      { key: 'sandal', prompt: 'a photo of a sandal', train: 8, test: 4 },
      { key: 'trouser', prompt: 'a photo of a pair of trousers', train: 8, test: 4 },
    ],
    trainImages: 16,
    heldOutImages: 8,
    captionDropout: 0.1,
  });
  for (const r of saved.runs) {
    expect(r.curve.map((c) => c.step)).toEqual([0, 2, 4]);
    expect(r.heldOutLoss).toBe(r.curve[2]!.loss);
    const [right, wrong] = [r.curve[2]!.loss!, r.curve[2]!.wrongCaptionLoss!];
    expect(r.captionsSteer).toEqual({ right, wrong, gap: wrong - right, relativeGap: (wrong - right) / right });
    // The wrong-caption measure reads the new classes' captions through the frozen text encoder: another loss at every step.
    for (const c of r.curve)
      expect([r.name, c.step, c.wrongCaptionLoss !== null && c.loss !== null && c.wrongCaptionLoss !== c.loss]).toEqual([r.name, c.step, true]);
  }
  // Before any step the fine-tuned and LoRA runs are the base itself (LoRA's B starts at zero): the same held-out numbers.
  expect(saved.runs[2].curve[0]).toEqual(saved.runs[0].curve[0]);
  expect(saved.baseHeldOut).toEqual({
    right: saved.runs[0].curve[0].loss,
    wrong: saved.runs[0].curve[0].wrongCaptionLoss,
    gap: expect.any(Number),
    relativeGap: expect.any(Number),
  });
  // The full fine-tune trains the whole U-Net; LoRA a small part of it.
  expect(saved.runs[0].trainablePercent).toBe(100);
  expect(saved.runs[1].trainablePercent).toBe(100);
  expect(saved.runs[2].trainablePercent).toBeLessThan(50);
  expect(saved.frozen.textEncoder).toMatch(/^[0-9a-f]{64}$/);
  expect(saved.guidanceSweep).toEqual({ scales: [1, 3, 7.5], file: 'guidance.png' });
  expect(saved.samples.grids).toEqual([
    { key: 'sandal', prompt: 'a photo of a sandal', file: 'samples-sandal.png' },
    { key: 'trouser', prompt: 'a photo of a pair of trousers', file: 'samples-trouser.png' },
  ]);
  expect(saved.samples.rows).toEqual(['base, before training', 'fine-tuned', 'from scratch', 'LoRA']);
  expect(saved.seconds.total).toBeGreaterThanOrEqual(saved.seconds.training + saved.seconds.sampling);
  expect(logs.some((l) => l.startsWith('t2i demo: '))).toBe(true);
});

test('a file the demo does not write survives in --out', () => {
  expect(fs.readFileSync(path.join(out(), 'notes.txt'), 'utf8')).toBe('mine');
});

test('each run is a whole pipeline with the base’s text encoder and VAE files', async () => {
  for (const folder of ['finetuned', 'scratch', 'lora']) {
    for (const c of ['text_encoder/model.safetensors', 'vae/diffusion_pytorch_model.safetensors'])
      expect([folder, c, fs.readFileSync(path.join(out(), folder, c)).equals(fs.readFileSync(path.join(base, c)))]).toEqual([folder, c, true]);
    using sd = await loadStableDiffusion(path.join(out(), folder));
    expect([folder, sd.unet.isConditional]).toEqual([folder, true]);
  }
});

test('the plots and the grids are PNGs that decode', async () => {
  for (const f of ['loss.png', 'captions.png']) {
    const { info } = await sharp(path.join(out(), f)).raw().toBuffer({ resolveWithObject: true });
    expect([f, info.width, info.height]).toEqual([f, 760, 460]);
  }
  const captions = fs.readFileSync(path.join(out(), 'captions.svg'), 'utf8');
  expect(captions).toContain('fine-tuned, wrong');
  // Per prompt: a row per model (base, fine-tuned, scratch, LoRA) of 2 images of 32 px (×2), labelled on the left.
  const side = (n: number) => (n * 32 + (n + 1) * 2) * 2;
  for (const f of ['samples-sandal.png', 'samples-trouser.png']) {
    const { info } = await sharp(path.join(out(), f)).raw().toBuffer({ resolveWithObject: true });
    expect([f, info.width, info.height]).toEqual([f, LABEL_WIDTH + side(2), side(4)]);
  }
  // The sweep: a row per (prompt, scale).
  const { info } = await sharp(path.join(out(), 'guidance.png')).raw().toBuffer({ resolveWithObject: true });
  expect([info.width, info.height]).toEqual([LABEL_WIDTH + side(2), side(6)]);
});

test('report.html names the plots, the grids, the sweep and the captions measure', () => {
  const html = fs.readFileSync(path.join(out(), 'report.html'), 'utf8');
  for (const src of ['loss.png', 'captions.png', 'samples-sandal.png', 'samples-trouser.png', 'guidance.png']) expect(html).toContain(`src="${src}"`);
  expect(html).toContain('Do the captions steer the images?');
  expect(html).toContain('the same U-Net architecture from random weights');
  expect(html).toMatch(
    /fine-tuned: \d\.\d{4} with the right captions, \d\.\d{4} with another class's — (the captions steer it|no clear difference|the wrong captions do better)/,
  );
});

testWithChromium(
  'report.html renders in headless Chromium (scripts/check-report.sh)',
  () => expectReportRenders(path.join(out(), 'report.html'), path.join(tmp(), 'report.png')),
  100_000,
);

test('a missing base says how to make it; a class the base learned is refused', async () => {
  const missing = path.join(tmp(), 'no-base');
  await expect(runT2iTransferDemo(shortRecipe(missing), { recipeFile: RECIPE, out: path.join(tmp(), 'x') })).rejects.toThrow(
    new ConfigError(
      `${missing}: expected the text-to-image base pipeline (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/) but found no such folder; make it with \`npm run pretrain:t2i\` (hours on a CPU), or point --base (${RECIPE}: "base") at another Stable Diffusion folder`,
    ),
  );
  await expect(runT2iTransferDemo(shortRecipe(base, ['classes=["sandal","sneaker"]']), { recipeFile: RECIPE, out: path.join(tmp(), 'x') })).rejects.toThrow(
    /"classes": expected classes the base never saw but found sneaker, which .*summary\.json lists among its training classes/,
  );
  expect(fs.existsSync(path.join(tmp(), 'x'))).toBe(false);
});
