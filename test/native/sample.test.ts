// Sampling: the pipeline's loop is diffusers' (it reproduces the fixture's DDIM sampling loop from the
// same initial noise), it is seeded, and a grid PNG comes out.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { PassThrough } from 'stream';
import { disposeStateDict } from '../../lib/checkpoint/state-dict';
import { relError } from '../../lib/conformance/compare';
import { FixtureSet } from '../../lib/conformance/fixture-set';
import { loadUNet } from '../../lib/models/unet';
import { runSampleCli } from '../../lib/sample/cli';
import { toImages, writeGrid } from '../../lib/sample/image';
import { sample } from '../../lib/sample/pipeline';
import { loadScheduler } from '../../lib/schedulers/scheduler';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');

test('the pipeline reproduces diffusers’ DDIM sampling loop (unet2d-tiny) from the same noise', async () => {
  const dir = path.join(FIXTURES, 'unet2d-tiny');
  const set = await FixtureSet.open(dir);
  const c = set.cases.find((x) => x.type === 'unet_sampling_loop') as unknown as {
    inputs: { init_noise: string };
    steps: Array<{ prev_sample: string }>;
    num_inference_steps: number;
  };
  const last = c.steps[c.steps.length - 1]!.prev_sample;
  const tensors = await set.tensors([c.inputs.init_noise, last]);
  using unet = await loadUNet(dir);
  using scheduler = await loadScheduler(path.join(dir, 'scheduler'));
  using out = await sample(unet, scheduler, {
    batchSize: tensors.get(c.inputs.init_noise)!.shape[0]!,
    steps: c.num_inference_steps,
    seed: 0,
    initialNoise: tensors.get(c.inputs.init_noise),
  });
  expect(relError(out.toArray(), tensors.get(last)!.toArray())).toBeLessThan(1e-4);
  disposeStateDict(tensors);
});

test('seeded: the same seed gives the same samples, another seed other ones; class labels are required where needed', async () => {
  const dir = path.join(FIXTURES, 'unet2d-classcond');
  using unet = await loadUNet(dir);
  using scheduler = await loadScheduler(path.join(dir, 'scheduler'));
  const run = async (seed: number) => {
    using s = await sample(unet, scheduler, { batchSize: 2, steps: 3, seed, classLabels: [1, 7] });
    return s.toArray() as Float32Array;
  };
  const [a, b, c] = [await run(5), await run(5), await run(6)];
  expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
  expect(relError(a, c)).toBeGreaterThan(1e-3);
  await expect(sample(unet, scheduler, { batchSize: 2, steps: 3, seed: 0 })).rejects.toThrow(/class-conditional: pass classLabels/);
});

test('a grid PNG of the samples', async () => {
  const dir = path.join(FIXTURES, 'unet2d-classcond');
  using unet = await loadUNet(dir);
  using scheduler = await loadScheduler(path.join(dir, 'scheduler'));
  using s = await sample(unet, scheduler, { batchSize: 6, steps: 2, seed: 1, classLabels: [0, 1, 2, 3, 4, 5], height: 16, width: 16 });
  const images = await toImages(s);
  expect(images).toMatchObject({ count: 6, height: 16, width: 16, channels: 1 });
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-grid-')), 'grid.png');
  await writeGrid(file, images, { columns: 3, padding: 2 });
  const meta = await sharp(file).metadata();
  expect([meta.width, meta.height]).toEqual([3 * 16 + 4 * 2, 2 * 16 + 3 * 2]);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
});

describe('npm run sample checks --out before sampling', () => {
  async function run(argv: string[]): Promise<{ code: number; err: string }> {
    const err = new PassThrough();
    let text = '';
    err.on('data', (c) => (text += String(c)));
    const code = await runSampleCli(argv, new PassThrough(), err);
    return { code, err: text };
  }

  test('a folder, a path below a file and /proc fail at once, naming --out; no step is sampled', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-sample-out-'));
    try {
      const model = path.join(FIXTURES, 'unet2d-tiny');
      const file = path.join(dir, 'file.png');
      fs.writeFileSync(file, '');
      const cases: Array<[string, string]> = [
        [dir, `sample: --out: expected a file to write, but ${dir} is a folder (ERR_FILE_SYSTEM)`],
        [path.join(file, 'grid.png'), `sample: --out: expected a folder to write into, but ${file} is a file, not a folder (ERR_FILE_SYSTEM)`],
      ];
      if (process.platform === 'linux' && fs.existsSync('/proc/self')) {
        cases.push([
          '/proc/difftune-grid.png',
          'sample: --out: cannot write into /proc: it is on the proc pseudo file system (mounted at /proc), a kernel view that stores no files; choose a folder on a disk (ERR_FILE_SYSTEM)',
        ]);
      }
      for (const [out, message] of cases) {
        const r = await run(['--model', model, '--steps', '2', '--count', '1', '--out', out]);
        expect({ code: r.code, err: r.err.trim() }).toEqual({ code: 1, err: message });
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
