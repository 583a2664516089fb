// npm run finetune: a bad recipe exits 1 with the field path in the message, no stack trace.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PassThrough } from 'stream';
import { runFinetuneCli } from '../../lib/train/cli';

async function run(recipe: unknown, extra: string[] = []): Promise<{ code: number; err: string; out: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-cli-'));
  const file = path.join(dir, 'r.json');
  fs.writeFileSync(file, JSON.stringify(recipe));
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: '', err: '' };
  out.on('data', (c) => (chunks.out += String(c)));
  err.on('data', (c) => (chunks.err += String(c)));
  try {
    const code = await runFinetuneCli(['--recipe', file, ...extra], out, err, false);
    return { code, ...chunks };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const good = {
  model: { pretrained: path.join(__dirname, '..', 'fixtures', 'diffusers', 'unet2d-classcond') },
  data: { source: 'mnist', resolution: 16, channels: 1, limit: 16 },
  train: { steps: 2, batchSize: 4, lr: 1e-4 },
  output: 'out',
};

test.each([
  [{ ...good, train: { ...good.train, optimizer: 'sgd' } }, /train: Unrecognized key\(s\) in object: 'optimizer'/],
  [{ ...good, train: { ...good.train, lr: 'fast' } }, /train\.lr: Expected number, received string/],
  [{ ...good, model: { pretrained: '/nonexistent/model' } }, /model\.pretrained: \/nonexistent\/model is not a folder/],
  [{ ...good, freeze: { trainable: ['nothing.**'] } }, /freeze\.trainable\[0\]/],
])('bad recipe %# exits 1 naming the field', async (recipe, message) => {
  const r = await run(recipe);
  expect(r.code).toBe(1);
  expect(r.err).toMatch(message);
  expect(r.err).not.toMatch(/\n\s+at /);
});

test('--dry-run prints the plan and trains nothing', async () => {
  const r = await run(good, ['--dry-run']);
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/Freeze plan \(preset "full"\)/);
});
