// Loss charts render (SVG → PNG through sharp) and reports escape what they are given. Pure TS + sharp.
import sharp from 'sharp';
import { renderReport } from '../../lib/report/html';
import { renderRunReport, thinPoints } from '../../lib/report/run-report';
import { lineChart } from '../../lib/report/svg-chart';

test('a line chart renders to a PNG of the asked size, with both series drawn', async () => {
  const svg = lineChart(
    [
      {
        name: 'fine-tuned',
        color: '#1f77b4',
        points: [
          [0, 0.9],
          [25, 0.2],
          [50, 0.1],
        ],
      },
      {
        name: 'scratch <baseline>',
        color: '#d62728',
        points: [
          [0, 1],
          [25, 0.5],
          [50, 0.3],
        ],
      },
    ],
    { title: 'loss', xLabel: 'step', yLabel: 'loss', logY: true, width: 320, height: 200 },
  );
  expect(svg.match(/<polyline/g)).toHaveLength(2);
  expect(svg).toContain('scratch &lt;baseline&gt;');
  const png = await sharp(Buffer.from(svg)).png().toBuffer();
  const meta = await sharp(png).metadata();
  expect([meta.width, meta.height]).toEqual([320, 200]);
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const c = info.channels;
  let reddish = false;
  for (let i = 0; i < data.length; i += c) if (data[i]! > 180 && data[i + 1]! < 80 && data[i + 2]! < 80) reddish = true;
  expect(reddish).toBe(true);
});

test('non-finite and non-positive points are left out on a log scale instead of breaking the chart', () => {
  const svg = lineChart(
    [
      {
        name: 'a',
        color: '#000',
        points: [
          [0, NaN],
          [1, 0],
          [2, 0.5],
          [3, Infinity],
        ],
      },
    ],
    { title: 't', xLabel: 'x', yLabel: 'y', logY: true },
  );
  expect(svg).not.toMatch(/NaN|Infinity/);
});

test('the report escapes HTML and lays out tables and images', () => {
  const html = renderReport('a <b> run', [
    {
      title: 'Numbers',
      blocks: [
        { kind: 'table', header: ['model', 'loss'], rows: [['x & y', 0.5]] },
        { kind: 'images', items: [{ src: 'grid.png', caption: 'samples' }] },
      ],
    },
  ]);
  expect(html).toContain('<title>a &lt;b&gt; run</title>');
  expect(html).toContain('<td>x &amp; y</td>');
  expect(html).toContain('<img src="grid.png" alt="samples">');
});

test("a run's report holds the loss, held-out loss, lr and throughput curves inline, the grids by step, checkpoints and memory", () => {
  const base = {
    output: '/runs/x',
    step: 20,
    totalSteps: 40,
    elapsedSeconds: 75,
    peakRssBytes: 1.5 * 2 ** 30,
    updated: '2026-01-01T00:00:00.000Z',
    steps: Array.from({ length: 20 }, (_, i) => ({ step: i + 1, loss: 1 / (i + 1), lr: 1e-4, imagesPerSecond: 30 })),
    heldOut: [
      { step: 0, loss: 0.9 },
      { step: 10, loss: 0.5 },
      { step: 20, loss: 0.3 },
    ],
    grids: [
      { step: 10, file: 'validation/step-10.png', rows: ['a red <circle>', 'a blue square'] },
      { step: 0, file: 'validation/step-0.png', rows: ['a red <circle>', 'a blue square'] },
    ],
    gridSettings: '2 prompts × 4 images, DDIMScheduler 25 steps',
    checkpoints: ['checkpoint-20'],
    outputs: [],
    plan: 'trainable: 12 of 40 tensors',
    recipe: '{ "train": { "steps": 40 } }',
  };
  const running = renderRunReport({ ...base, status: 'running' });
  // Curves are inline SVG (no chart files): loss + held-out loss, learning rate, images/s.
  expect(running.match(/<svg /g)).toHaveLength(3);
  expect(running.match(/<polyline/g)).toHaveLength(4);
  for (const text of [
    'training loss',
    'held-out loss',
    'learning rate',
    'images/s',
    '0.90000 (step 0) → 0.30000 (step 20)',
    '1.5 GiB',
    'checkpoint-20',
    '<td>step</td><td>20 of 40</td>',
  ])
    expect(running).toContain(text);
  // Grids by step, relative paths, oldest first; the rows (prompts) named, escaped.
  expect(running.indexOf('src="validation/step-0.png"')).toBeLessThan(running.indexOf('src="validation/step-10.png"'));
  expect(running).toContain('1. a red &lt;circle&gt;; 2. a blue square');
  // A running run's page reloads itself; a finished one does not.
  expect(running).toContain('http-equiv="refresh"');
  const done = renderRunReport({ ...base, status: 'completed', outputs: ['unet', 'scheduler'] });
  expect(done).not.toContain('http-equiv="refresh"');
  expect(done).toContain('<td>final model</td><td>unet</td>');
  expect(renderRunReport({ ...base, status: 'failed', error: 'out of <memory>' })).toContain('failed: out of &lt;memory&gt;');
});

test('long runs are drawn from at most so many averaged points', () => {
  const points = Array.from({ length: 10_000 }, (_, i) => [i, i % 2 === 0 ? 1 : 3] as const);
  const thin = thinPoints(points, 100);
  expect(thin).toHaveLength(100);
  for (const [, y] of thin) expect(y).toBeCloseTo(2, 10);
  expect(thinPoints(points.slice(0, 50), 100)).toHaveLength(50);
});

test('a constant series (a constant learning rate) is drawn mid-chart on axes at its own scale, not around 0 ± 1', () => {
  const svg = lineChart([{ name: 'lr', color: '#000', points: [0, 1, 2, 3].map((x) => [x, 1e-4] as const) }], {
    title: 'lr',
    xLabel: 'step',
    yLabel: 'lr',
    height: 300,
  });
  expect(svg).toContain('>1.00e-4</text>');
  // Tick labels are told apart (1.05e-4 is not a second "1.1e-4").
  const labels = [...svg.matchAll(/text-anchor="end">([^<]+)</g)].map((m) => m[1]);
  expect(new Set(labels).size).toBe(labels.length);
  expect(svg).not.toMatch(/text-anchor="end">-?[01]<\/text>/);
  const ys = /<polyline[^>]* points="([^"]+)"/
    .exec(svg)![1]!
    .split(' ')
    .map((p) => Number(p.split(',')[1]));
  // The plot spans y 36 … 252 (margins 36 and 48 of 300): the line sits at its middle.
  for (const y of ys) expect(y).toBeCloseTo((36 + 252) / 2, 0);
});

test('a log x axis spaces 64, 256, 1024, 4096 evenly, labels 100 and 1000, leaves out x ≤ 0 and marks each point', () => {
  const svg = lineChart(
    [
      {
        name: 'scratch',
        color: '#d62728',
        points: [0, 64, 256, 1024, 4096].map((x, i) => [x, 0.1 - i * 0.01] as const),
      },
    ],
    { title: 'held-out loss vs images', xLabel: 'training images', yLabel: 'loss', logX: true, markers: true },
  );
  expect(svg).toContain('training images (log)');
  const xs = [...svg.matchAll(/<circle cx="([\d.]+)"/g)].map((m) => Number(m[1]));
  expect(xs).toHaveLength(4);
  const gaps = xs.slice(1).map((x, i) => x - xs[i]!);
  for (const g of gaps) expect(g).toBeCloseTo(gaps[0]!, 0);
  expect(/<polyline[^>]* points="([^"]+)"/.exec(svg)![1]!.split(' ')).toHaveLength(4);
  const xLabels = [...svg.matchAll(/text-anchor="middle">(\d+)<\/text>/g)].map((m) => m[1]);
  expect(xLabels).toEqual(expect.arrayContaining(['100', '1000']));
  expect(svg).not.toMatch(/NaN|Infinity/);
});
