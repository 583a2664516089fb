// Loss charts render (SVG → PNG through sharp) and reports escape what they are given. Pure TS + sharp.
import sharp from 'sharp';
import { renderReport } from '../../lib/report/html';
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
