// Watching a run: validation grids at step 0 and every N steps from the same noise (two runs' step-0 grids
// identical, a run's grids changing as it trains, the grid showing what sample() makes from that seed),
// EMA weights swapped in for the grids and put back bit for bit, and report.html (curves, grids by step,
// files it names present; rendered by headless Chromium where it is installed) written by every finetune,
// with the progress line on a terminal.
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { Writable } from 'stream';
import { SafetensorsFile } from '../../lib/checkpoint/safetensors';
import { loadUNet } from '../../lib/models/unet';
import { toImages } from '../../lib/sample/image';
import { sample } from '../../lib/sample/pipeline';
import { loadScheduler } from '../../lib/schedulers/scheduler';
import { runFinetuneCli } from '../../lib/train/cli';
import { finetune } from '../../lib/train/finetune';
import { expectReportRenders, testWithChromium } from '../helpers/report-render';
import { useTempDir } from '../helpers/temp-dir';

const ROOT = path.join(__dirname, '..', '..');
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'diffusers');
const SHAPES = path.join(ROOT, 'recipes', 'data', 'shapes');
/** The grid's caption strip (lib/sample/image.ts) and upscale of 16 px images (lib/train/validation-images.ts). */
const LABEL_WIDTH = 200;
const tmp = useTempDir('grids');

async function raw(file: string): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

function classCondRecipe(output: string, train: Record<string, unknown>) {
  return {
    model: { pretrained: path.join(FIXTURES, 'unet2d-classcond') },
    data: { source: 'mnist', resolution: 16, channels: 1, limit: 32 },
    freeze: { preset: 'full' },
    train: { steps: 4, batchSize: 4, lr: 5e-3, ...train },
    validation: { every: 2, samples: 8, classLabels: [0, 7], numImages: 3, steps: 4 },
    output,
  };
}

test('class-conditional grids: written at 0, 2 and 4 from the same noise; step 0 identical across runs, later steps changed by training', async () => {
  const a = await finetune(classCondRecipe(path.join(tmp(), 'a'), { seed: 1 }));
  const b = await finetune(classCondRecipe(path.join(tmp(), 'b'), { seed: 2, lr: 1e-3 }));
  expect(a.validationGrids.map((g) => [g.step, g.file, g.rows])).toEqual([0, 2, 4].map((s) => [s, `validation/step-${s}.png`, ['class 0', 'class 7']]));
  const grid = (run: typeof a, step: number) => raw(path.join(run.output, 'validation', `step-${step}.png`));
  const [a0, a2, a4, b0] = await Promise.all([grid(a, 0), grid(a, 2), grid(a, 4), grid(b, 0)]);
  // 3 images of 16 px per row with 2 px padding, upscaled ×4, after the caption strip; 2 rows.
  expect([a0.width, a0.height]).toEqual([LABEL_WIDTH + (3 * 16 + 4 * 2) * 4, (2 * 16 + 3 * 2) * 4]);
  // Before training, the grid depends only on the base model and validation.seed, not on the run's seed or lr.
  expect(b0.data.equals(a0.data)).toBe(true);
  // As the run trains, the same noise gives other images.
  expect(a2.data.equals(a0.data)).toBe(false);
  expect(a4.data.equals(a2.data)).toBe(false);

  // The grid's first row is what sample() draws for class 0 from validation.seed with the validation scheduler.
  using unet = await loadUNet(path.join(FIXTURES, 'unet2d-classcond'));
  using scheduler = await loadScheduler(path.join(FIXTURES, 'unet2d-classcond', 'scheduler'), { className: 'DDIMScheduler' });
  using samples = await sample(unet, scheduler, { batchSize: 3, steps: 4, seed: 1234, classLabels: [0, 0, 0] });
  const expected = await toImages(samples);
  const pixel = (x: number, y: number) => a0.data[(y * a0.width + x) * a0.channels]!;
  let mismatches = 0;
  for (let i = 0; i < 3; i++)
    for (let y = 0; y < 16; y++)
      for (let x = 0; x < 16; x++) {
        const gx = LABEL_WIDTH + (2 + i * 18 + x) * 4 + 1;
        const gy = (2 + y) * 4 + 1;
        if (pixel(gx, gy) !== expected.pixels[(i * 16 + y) * 16 + x]) mismatches++;
      }
  expect(mismatches).toBe(0);

  // report.html: curves inline, every grid by step, the held-out loss, the plan; every file it names is there.
  const html = fs.readFileSync(a.report, 'utf8');
  expect(a.report).toBe(path.join(a.output, 'report.html'));
  for (const s of [0, 2, 4]) expect(html).toContain(`src="validation/step-${s}.png"`);
  expect(html.match(/<svg /g)!.length).toBe(3);
  expect(html).toContain('held-out loss');
  expect(html).toContain('<td>status</td><td>completed</td>');
  expect(html).toContain('Rows, top to bottom: 1. class 0; 2. class 7');
  for (const src of [...html.matchAll(/src="([^"]+)"/g)].map((m) => m[1]!)) expect([src, fs.existsSync(path.join(a.output, src))]).toEqual([src, true]);
});

test('a stopped and resumed run: the report keeps the earlier steps, held-out losses and grids', async () => {
  const output = path.join(tmp(), 'resumed');
  const controller = new AbortController();
  const first = await finetune(
    { ...classCondRecipe(output, { seed: 3 }), checkpoint: { every: 2 } },
    { signal: controller.signal, onProgress: (p) => p.step === 2 && controller.abort() },
  );
  expect(first.status).toBe('aborted');
  expect(fs.readFileSync(first.report, 'utf8')).toContain('<td>status</td><td>aborted</td>');
  const second = await finetune({ ...classCondRecipe(output, { seed: 3 }), checkpoint: { every: 2 }, resume: 'latest' });
  expect(second.validationGrids.map((g) => g.step)).toEqual([4]);
  const html = fs.readFileSync(second.report, 'utf8');
  for (const s of [0, 2, 4]) expect(html).toContain(`src="validation/step-${s}.png"`);
  // The training-loss curve has all 4 steps, the held-out one its 3 validations (0 and 2 from the first run).
  const curves = [...html.matchAll(/<polyline[^>]* points="([^"]+)"/g)].map((m) => m[1]!.split(' ').length);
  expect(curves.slice(0, 2)).toEqual([4, 3]);
});

async function unetWeights(dir: string): Promise<Map<string, Buffer>> {
  const f = await SafetensorsFile.open(path.join(dir, 'diffusion_pytorch_model.safetensors'));
  try {
    const out = new Map<string, Buffer>();
    for (const name of f.names()) out.set(name, await f.readBytes(name));
    return out;
  } finally {
    await f.close();
  }
}

test('with an EMA the grids sample the averaged weights and training goes on bit-identical; an image folder without held-out images still gets grids', async () => {
  const recipe = (output: string, validation: Record<string, unknown>) => ({
    model: { pretrained: path.join(FIXTURES, 'unet2d-tiny') },
    data: { path: path.join(SHAPES, 'train'), resolution: 32, channels: 3 },
    freeze: { preset: 'full' },
    train: { steps: 3, batchSize: 4, lr: 2e-3, seed: 5, ema: { decay: 0.5 } },
    validation,
    output,
  });
  const logs: string[] = [];
  const withGrids = await finetune(recipe(path.join(tmp(), 'ema-grids'), { every: 2, numImages: 4, steps: 3 }), { onLog: (l) => logs.push(l) });
  const plain = await finetune(recipe(path.join(tmp(), 'ema-plain'), {}));
  expect(logs.some((l) => /validation grids: 4 samples, DDIMScheduler 3 steps, seed 1234 .*from the EMA weights/.test(l))).toBe(true);
  expect(logs).toContain('validation: no held-out loss (validation.data names no held-out image folder); validation grids only');
  expect(withGrids.validation).toEqual([]);
  expect(withGrids.validationGrids.map((g) => g.step)).toEqual([0, 2, 3]);
  // 4 unconditional samples: a 2 × 2 grid of 32 px images (×2), no caption strip.
  const g = await raw(path.join(withGrids.output, 'validation', 'step-3.png'));
  expect([g.width, g.height]).toEqual([(2 * 32 + 3 * 2) * 2, (2 * 32 + 3 * 2) * 2]);
  // Swapping the EMA in for the grids and the trained weights back changed nothing the run computes.
  const [a, b] = await Promise.all([unetWeights(withGrids.unetDir), unetWeights(plain.unetDir)]);
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [name, bytes] of a) expect([name, bytes.equals(b.get(name)!)]).toEqual([name, true]);
  expect(fs.existsSync(plain.report)).toBe(true);
});

describe('npm run finetune on a text-to-image pipeline with validation prompts', () => {
  const output = () => path.join(tmp(), 'sd');
  let out = '';

  beforeAll(async () => {
    const recipeFile = path.join(tmp(), 'sd.json');
    fs.writeFileSync(
      recipeFile,
      JSON.stringify({
        model: { pretrained: path.join(FIXTURES, 'sd-pipeline-tiny') },
        data: { path: path.join(SHAPES, 'train'), resolution: 32, channels: 3 },
        train: { steps: 2, batchSize: 4, lr: 1e-3 },
        validation: {
          every: 2,
          samples: 4,
          data: { path: path.join(SHAPES, 'test'), resolution: 32, channels: 3 },
          prompts: ['a red circle, flat style', 'a blue square'],
          numImages: 2,
          steps: 3,
          guidanceScale: 3,
        },
        output: output(),
      }),
    );
    // A terminal as the CLI sees one: isTTY and a width.
    const terminal = Object.assign(
      new Writable({
        write(chunk, _enc, done) {
          out += String(chunk);
          done();
        },
      }),
      { isTTY: true, columns: 120 },
    );
    let err = '';
    const errors = new Writable({
      write(chunk, _enc, done) {
        err += String(chunk);
        done();
      },
    });
    const code = await runFinetuneCli(['--recipe', recipeFile], terminal, errors);
    expect([code, err]).toEqual([0, '']);
  });

  test('the progress line is redrawn in place with step, loss, it/s and ETA; the summary names the report', () => {
    const clear = '\u001b[K';
    // Each progress write starts with \r and ends clearing the rest of the line.
    expect(out).toContain(`\r${'█'.repeat(12)}`);
    expect(out).toContain(clear);
    const progress = out
      .split(/[\r\n]/)
      .map((l) => l.split(clear).join(''))
      .filter((l) => / step \d\/2 {2}loss /.test(l));
    expect(progress.some((l) => /^█+░* step 1\/2 {2}loss \d\.\d{4} {2}lr 1\.00e-3 {2}\d+\.\d\d (it\/s|s\/it) {2}\d+\.\d img\/s {2}ETA \S+$/.test(l))).toBe(
      true,
    );
    expect(progress.some((l) => /^█+ step 2\/2 /.test(l))).toBe(true);
    // Progress lines fit the terminal (log lines above them may wrap).
    for (const line of progress) expect(line.length).toBeLessThan(120);
    expect(out).toContain(`report: ${path.join(output(), 'report.html')}`);
  });

  test('the prompts are the rows of each grid, at steps 0 and 2', async () => {
    for (const s of [0, 2]) {
      const g = await raw(path.join(output(), 'validation', `step-${s}.png`));
      // 2 images of 32 px per row (×2), 2 rows, after the caption strip.
      expect([g.width, g.height]).toEqual([LABEL_WIDTH + (2 * 32 + 3 * 2) * 2, (2 * 32 + 3 * 2) * 2]);
    }
    const html = fs.readFileSync(path.join(output(), 'report.html'), 'utf8');
    expect(html).toContain('Rows, top to bottom: 1. a red circle, flat style; 2. a blue square');
    expect(html).toContain('guidance 3');
  });

  testWithChromium(
    'report.html renders in headless Chromium (scripts/check-report.sh)',
    () => expectReportRenders(path.join(output(), 'report.html'), path.join(tmp(), 'report.png')),
    100_000,
  );
});
