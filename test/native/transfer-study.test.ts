// The data-efficiency study (npm run transfer-study -- --data-sizes …) shortened: two sizes, a few steps of
// the shipped base model. study.json passes the summary schema with a run per (variant, size) and the goals,
// the plots are PNGs, report.html names its files and renders in headless Chromium where it is installed.
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { dataEfficiencySummarySchema, runDataEfficiencyStudy, type DataEfficiencySummary } from '../../lib/demo/data-efficiency';
import { parseRecipe } from '../../lib/config/recipe';
import { defaultVariants, keptRun, RUN_RECORD, runTransferStudy, transferStudySchema } from '../../lib/demo/transfer-study';
import { ConfigError } from '../../lib/errors';
import { expectReportRenders, testWithChromium } from '../helpers/report-render';
import { useTempDir } from '../helpers/temp-dir';

const ROOT = path.join(__dirname, '..', '..');
const tmp = useTempDir('data-efficiency');

const recipe = (output: string) => ({
  model: { pretrained: path.join(ROOT, 'models', 'mnist-ddpm') },
  data: { source: 'fashion-mnist', resolution: 28, channels: 1, split: 'train', limit: 512 },
  train: { steps: 4, batchSize: 8, lr: 1e-4, seed: 0 },
  validation: { every: 2, samples: 16, data: { source: 'fashion-mnist', resolution: 28, channels: 1, split: 'test' } },
  output,
});

describe('the data-efficiency study at 16 and 64 images, 4 steps', () => {
  const out = () => path.join(tmp(), 'study');
  let returned: DataEfficiencySummary;
  const lines: string[] = [];

  beforeAll(async () => {
    returned = await runDataEfficiencyStudy(recipe(out()), path.join(tmp(), 'r.json'), out(), [64, 16], (l) => lines.push(l));
  }, 120_000);

  test('study.json is the summary returned and passes the schema: both variants at both sizes, matches, goals, time', () => {
    const saved = dataEfficiencySummarySchema.parse(JSON.parse(fs.readFileSync(path.join(out(), 'study.json'), 'utf8')));
    expect(saved).toEqual(returned);
    expect(saved.sizes).toEqual([16, 64]);
    expect(saved.runs.map((r) => `${r.variant} ${r.images}`)).toEqual(['from scratch 16', 'fine-tuned 16', 'from scratch 64', 'fine-tuned 64']);
    for (const r of saved.runs) {
      expect(r.steps).toBe(4);
      expect(r.curve.map((c) => c.step)).toEqual([0, 2, 4]);
      expect(r.heldOutLoss).toBe(r.curve[2]!.loss);
    }
    // The pretrained start is far better than a random one on the same held-out images, at step 0 already.
    expect(saved.runs[1]!.curve[0]!.loss!).toBeLessThan(saved.runs[0]!.curve[0]!.loss!);
    expect(saved.matches.map((m) => m.images)).toEqual([16, 64]);
    expect(saved.goals.images.scratchImages).toBe(64);
    expect(saved.goals.steps.perSize.map((p) => p.budget)).toEqual([4, 4]);
    expect(saved.heldOut).toEqual({ data: 'fashion-mnist (test split)', samples: 16 });
    expect(saved.seconds).toBeGreaterThan(0);
    // Each run trained on its own subset (data.limit), in its own folder.
    const runDirs = fs.readdirSync(out()).filter((f) => f.startsWith('run-'));
    expect(runDirs.sort()).toEqual([
      'run-0-from-scratch-16-images',
      'run-1-fine-tuned-16-images',
      'run-2-from-scratch-64-images',
      'run-3-fine-tuned-64-images',
    ]);
  });

  test('study.md holds the table, both goals and the time taken', () => {
    const md = fs.readFileSync(path.join(out(), 'study.md'), 'utf8');
    expect(md).toMatch(/\| 16 \| \d\.\d{4} \| \d\.\d{4} \| /);
    expect(md).toMatch(/\| 64 \| \d\.\d{4} \| \d\.\d{4} \| /);
    expect(md).toMatch(/≤ 1\/5 of the steps: \*\*(not )?met\*\*/);
    expect(md).toMatch(/≤ 1\/10 of the images, fine-tuned matches scratch on all of them: \*\*not met\*\* — .*no size ≤ 1\/10 of 64 was measured/);
    expect(md).toMatch(/The study took \d+ s \(4 runs\) on /);
    expect(lines.some((l) => l.startsWith('data-efficiency study: '))).toBe(true);
  });

  test('the plots are PNGs that decode', async () => {
    for (const f of ['loss-vs-images.png', 'loss.png']) {
      const { info } = await sharp(path.join(out(), f)).raw().toBuffer({ resolveWithObject: true });
      expect([f, info.width, info.height]).toEqual([f, 760, 460]);
    }
    const svg = fs.readFileSync(path.join(out(), 'loss-vs-images.svg'), 'utf8');
    expect(svg.match(/<circle /g)).toHaveLength(4); // a marker per measurement
    expect(svg).toContain('training images (log)');
  });

  test('report.html names the plots, the goals and the statements', () => {
    const html = fs.readFileSync(path.join(out(), 'report.html'), 'utf8');
    expect(html).toContain('src="loss-vs-images.png"');
    expect(html).toContain('src="loss.png"');
    expect(html).toContain('Goals');
    expect(html).toContain('fine-tuning with 16 images ');
    expect(html).toContain('The study took ');
  });

  testWithChromium(
    'report.html renders in headless Chromium (scripts/check-report.sh)',
    () => expectReportRenders(path.join(out(), 'report.html'), path.join(tmp(), 'report.png')),
    100_000,
  );

  test('--resume keeps each run whose study-run.json has the same recipe and trains the others', async () => {
    const dirs = ['run-0-from-scratch-16-images', 'run-1-fine-tuned-16-images', 'run-2-from-scratch-64-images', 'run-3-fine-tuned-64-images'];
    const record = (i: number) => path.join(out(), dirs[i]!, RUN_RECORD);
    // Run 1's recipe differs (as if the base recipe had changed since), run 3 never finished.
    const edited = JSON.parse(fs.readFileSync(record(1), 'utf8')) as { recipe: { train: { lr: number } }; parsed: { train: { lr: number } } };
    edited.recipe.train.lr *= 2;
    edited.parsed.train.lr *= 2;
    fs.writeFileSync(record(1), JSON.stringify(edited));
    fs.rmSync(record(3));
    const again: string[] = [];
    const resumed = await runDataEfficiencyStudy(recipe(out()), path.join(tmp(), 'r.json'), out(), [64, 16], (l) => again.push(l), { resume: true });
    const kept = again.filter((l) => l.includes(': kept from '));
    expect(kept.map((l) => l.slice(0, l.indexOf(':')))).toEqual(['from scratch, 16 images', 'from scratch, 64 images']);
    expect(again).toContain('fine-tuned, 16 images');
    expect(again).toContain('fine-tuned, 64 images');
    // Kept runs are the earlier numbers exactly; every run has its record again; the time counts the kept runs'.
    expect(resumed.runs[0]).toEqual(returned.runs[0]);
    expect(resumed.runs[2]).toEqual(returned.runs[2]);
    for (let i = 0; i < 4; i++) expect(fs.existsSync(record(i))).toBe(true);
    expect(resumed.seconds).toBeGreaterThan(returned.runs[0]!.seconds + returned.runs[2]!.seconds);
    expect(dataEfficiencySummarySchema.parse(JSON.parse(fs.readFileSync(path.join(out(), 'study.json'), 'utf8')))).toEqual(resumed);
  }, 120_000);
});

describe('the transfer study, every default variant at 4 steps', () => {
  const out = () => path.join(tmp(), 'transfer');
  const variants = defaultVariants(1e-4);

  beforeAll(async () => {
    await runTransferStudy(recipe(out()), path.join(tmp(), 'r.json'), out(), variants);
  }, 180_000);

  test('study.json passes its schema: a row per variant in order, the curve at every validation, the locon preset at 9.4%', () => {
    const rows = transferStudySchema.parse(JSON.parse(fs.readFileSync(path.join(out(), 'study.json'), 'utf8')));
    expect(rows.map((r) => r.name)).toEqual(variants.map((v) => v.name));
    for (const r of rows) {
      expect(r.curve.map((c) => c.step)).toEqual([0, 2, 4]);
      expect(r.heldOutLoss).toBe(r.curve[2]!.loss);
      expect(Number.isFinite(r.heldOutLoss)).toBe(true);
    }
    const full = rows.find((r) => r.name === 'full')!;
    expect(full.trainablePercent).toBe(100);
    // The adapters the file holds: 232,576 on models/mnist-ddpm (README, the preset search).
    expect(rows.at(-1)!.trainableParams).toBe(232_576);
    expect(rows.at(-1)!.trainableParams / full.trainableParams).toBeLessThan(0.1);
    const md = fs.readFileSync(path.join(out(), 'study.md'), 'utf8');
    for (const r of rows) expect(md).toContain(`| ${r.name} | ${r.trainableParams.toLocaleString('en-US')} (`);
  });

  test('the plot is a PNG that decodes, and report.html names it', async () => {
    const { info } = await sharp(path.join(out(), 'loss.png')).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([760, 460]);
    expect(fs.readFileSync(path.join(out(), 'report.html'), 'utf8')).toContain('src="loss.png"');
  });

  testWithChromium(
    'report.html renders in headless Chromium',
    () => expectReportRenders(path.join(out(), 'report.html'), path.join(tmp(), 'transfer-report.png')),
    100_000,
  );
});

test('--resume keeps a run only when its recipe as parsed then is what this version makes of the planned one', async () => {
  const dir = path.join(tmp(), 'parsed-record');
  fs.mkdirSync(dir, { recursive: true });
  const planned = { ...recipe(dir), lora: { preset: 'locon' } };
  const run = { name: 'LoRA locon', dir, recipe: planned };
  const row = {
    name: 'LoRA locon',
    trainableParams: 1,
    trainablePercent: 0.1,
    heldOutLoss: 0.05,
    secondsPerStep: 0.5,
    curve: [{ step: 4, loss: 0.05 }],
    seconds: 2,
    steps: 4,
  };
  const now = parseRecipe(planned);
  const write = (record: object) => fs.writeFileSync(path.join(dir, RUN_RECORD), JSON.stringify(record));
  write({ recipe: planned, parsed: now, row });
  expect(await keptRun(run)).toEqual({ ...row, kept: true });
  // Made when the preset left the samplers out: the same text, another recipe.
  write({ recipe: planned, parsed: { ...now, lora: { ...now.lora, resamplers: false } }, row });
  expect(await keptRun(run)).toBeNull();
  // Records of earlier versions (no parsed recipe) compare as written.
  write({ recipe: planned, row });
  expect(await keptRun(run)).toEqual({ ...row, kept: true });
  write({ recipe: { ...planned, lora: { preset: 'locon', rank: 8 } }, row });
  expect(await keptRun(run)).toBeNull();
  expect(await keptRun({ ...run, name: 'another' })).toBeNull();
});

test('sizes the training data cannot give are refused before any run', async () => {
  const out = path.join(tmp(), 'too-many');
  const small = { ...recipe(out), data: { source: 'mnist', resolution: 28, channels: 1, split: 'test', classes: [0] } };
  await expect(runDataEfficiencyStudy(small, path.join(tmp(), 'r.json'), out, [16, 5000])).rejects.toThrow(
    new ConfigError('--data-sizes: expected sizes up to the 143 images mnist (test split) holds but found 5000'),
  );
  expect(fs.existsSync(out)).toBe(false);
});
