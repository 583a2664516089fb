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
  // The memory plan: runtime, weights, optimizer state and the step, each with its size.
  expect(r.out).toMatch(/\nMemory plan: about \d+ MB at the peak/);
  for (const label of ['runtime', 'U-Net weights', 'optimizer state', 'step: activations \\+ gradients'])
    expect(r.out).toMatch(new RegExp(`\\n  ${label} +\\d+ MB  `));
  expect(r.out).toMatch(/batch 4 at 16×16, fp32 activations and gradients: \d+ MB without gradient checkpointing, \d+ MB with it \(off\)/);
});

describe('the output folder is checked before the model and the data load', () => {
  afterEach(() => jest.restoreAllMocks());

  test('a file as output fails at once, naming the field and the path', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-cli-out-'));
    try {
      const file = path.join(dir, 'notes.txt');
      fs.writeFileSync(file, '');
      const r = await run({ ...good, output: file });
      expect(r.code).toBe(1);
      expect(r.err.trim()).toBe(`finetune: output: expected a folder to write into, but ${file} is a file, not a folder (ERR_FILE_SYSTEM)`);
      // The plan line is logged once the model is loaded: it never was.
      expect(r.out).toBe('');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  // Node's recursive mkdir never returns under /proc: the run hung after loading everything.
  (process.platform === 'linux' && fs.existsSync('/proc/self') ? test : test.skip)('an output under /proc is refused', async () => {
    const r = await run({ ...good, output: '/proc/difftune-run' });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^finetune: output: cannot write into \/proc\/difftune-run: it is on the proc pseudo file system/);
    expect(r.out).toBe('');
  });

  // A read-only file system was reported as ENOENT (Node's recursive mkdir), after the model and data
  // loaded. Injected (mkdir fails with EROFS) so that the test runs as any user without a read-only mount.
  test('a read-only file system is named as such', async () => {
    const output = path.join(os.tmpdir(), `difftune-readonly-${process.pid}`, 'run');
    const erofs = Object.assign(new Error(`EROFS: read-only file system, mkdir '${path.dirname(output)}'`), { code: 'EROFS', syscall: 'mkdir' });
    jest.spyOn(fs.promises, 'mkdir').mockRejectedValueOnce(erofs);
    const r = await run({ ...good, output });
    expect(r.code).toBe(1);
    expect(r.err.trim()).toBe(`finetune: output: cannot create the folder ${path.dirname(output)}: the file system is read-only (EROFS) (ERR_FILE_SYSTEM)`);
    expect(r.out).toBe('');
  });
});

test('a kohya-format LoRA run names both adapters files it wrote', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-cli-kohya-'));
  try {
    const lora = { rank: 2, attention: false, format: 'kohya', targets: ['up_blocks.*.resnets.*.conv1'] };
    const r = await run({ ...good, train: { ...good.train, steps: 1 }, lora, output: path.join(dir, 'run') });
    expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: '' });
    const files = [path.join(dir, 'run', 'pytorch_lora_weights.safetensors'), path.join(dir, 'run', 'lora.kohya.safetensors')];
    for (const f of files) expect(fs.existsSync(f)).toBe(true);
    expect(r.out).toContain(`LoRA: ${files.join(', ')}, scheduler:`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe('runs that were accepted silently', () => {
  test('resuming a checkpoint past train.steps is refused; at train.steps the loss is not reported as NaN', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-cli-resume-'));
    try {
      const recipe = { ...good, output: path.join(dir, 'run') };
      expect((await run(recipe)).code).toBe(0);
      const past = await run({ ...recipe, train: { ...good.train, steps: 1 }, resume: 'latest' });
      expect(past.code).toBe(1);
      expect(past.err.trim()).toBe(
        `finetune: resume: ${path.join(dir, 'run', 'checkpoint-2')} is at step 2, past train.steps (1): nothing is left to train; set train.steps above 2 to continue training (ERR_CONFIG)`,
      );
      const at = await run({ ...recipe, resume: 'latest' });
      expect(at.code).toBe(0);
      expect(at.out).toContain('no step is left to train; writing the final model from it');
      expect(at.out).toContain('done: 2 steps, final training loss n/a (no step ran)');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a symlink loop as model.pretrained is a loop, not "not a folder"', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-cli-loop-'));
    try {
      const loop = path.join(dir, 'model');
      fs.symlinkSync(path.join(dir, 'other'), loop);
      fs.symlinkSync(loop, path.join(dir, 'other'));
      const r = await run({ ...good, model: { pretrained: loop }, output: path.join(dir, 'run') });
      expect(r.code).toBe(1);
      expect(r.err.trim()).toBe(
        `finetune: model.pretrained: cannot access ${loop}: too many levels of symbolic links (a symlink loop?) (ELOOP) (ERR_FILE_SYSTEM)`,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('unknown U-Net config keys and an invalid model_index.json beside a valid unet/ are warned about', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-cli-warn-'));
    try {
      const pipeline = path.join(dir, 'pipe');
      const unetDir = path.join(pipeline, 'unet');
      fs.cpSync(good.model.pretrained, unetDir, { recursive: true });
      const config = JSON.parse(fs.readFileSync(path.join(unetDir, 'config.json'), 'utf8')) as Record<string, unknown>;
      fs.writeFileSync(path.join(unetDir, 'config.json'), JSON.stringify({ ...config, my_extra_key: 1 }));
      fs.writeFileSync(path.join(pipeline, 'model_index.json'), '{"_class_name": ');
      const r = await run({ ...good, model: { pretrained: pipeline }, train: { ...good.train, steps: 1 }, output: path.join(dir, 'run') });
      expect(r.code).toBe(0);
      expect(r.out).toContain(
        `${path.join(unetDir, 'config.json')}: UNet2DModel does not take the config key "my_extra_key"; ignored, as diffusers ignores it`,
      );
      expect(r.out).toMatch(
        new RegExp(
          `${path.join(pipeline, 'model_index.json').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}.*invalid JSON.*; using the U-Net in ${unetDir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} regardless`,
        ),
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
