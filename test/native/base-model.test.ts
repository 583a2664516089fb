// Packaging a pretraining run as the base model: the DDPMPipeline folder, the grid, and a model card
// whose numbers come from the run (steps, batch, schedule, time, held-out loss) and from the
// recognisability measure of its samples next to real digits' ceiling.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { listCheckpoints } from '../../lib/checkpoint/train-state';
import { measureBaseModel, packageBaseModel } from '../../lib/demo/base-model';
import { finetune } from '../../lib/train/finetune';

const ROOT = path.join(__dirname, '..', '..');

const TINY_CONFIG = {
  _class_name: 'UNet2DModel',
  in_channels: 1,
  out_channels: 1,
  sample_size: 28,
  block_out_channels: [8, 16],
  layers_per_block: 1,
  down_block_types: ['DownBlock2D', 'AttnDownBlock2D'],
  up_block_types: ['AttnUpBlock2D', 'UpBlock2D'],
  norm_num_groups: 4,
  attention_head_dim: 8,
};

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-base-model-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

test("packageBaseModel writes the pipeline folder, samples.png and a card with the run's and the measure's numbers", async () => {
  fs.writeFileSync(path.join(tmp, 'unet-config.json'), JSON.stringify(TINY_CONFIG));
  const recipe = {
    model: { config: 'unet-config.json' },
    data: { source: 'mnist', resolution: 28, channels: 1, split: 'train', limit: 16 },
    train: { steps: 2, batchSize: 4, lr: 1e-3, lrSchedule: { name: 'cosine', warmupSteps: 1 }, seed: 0, ema: { decay: 0.999 } },
    validation: { every: 2, samples: 4 },
    output: 'run',
    checkpoint: { every: 0, keep: 1 },
  };
  const recipeFile = path.join(tmp, 'recipe.json');
  fs.writeFileSync(recipeFile, JSON.stringify(recipe, null, 2));
  const result = await finetune(recipe, { recipeFile });
  expect(result.status).toBe('completed');

  const target = path.join(tmp, 'model');
  const measured = await packageBaseModel(result, target, recipeFile, { measureSamples: 3, heldOut: 20 });
  for (const f of ['model_index.json', 'samples.png', 'README.md', 'unet/config.json', 'scheduler/scheduler_config.json'])
    expect([f, fs.existsSync(path.join(target, f))]).toEqual([f, true]);
  expect(measured.samples.count).toBe(3);
  expect(measured.realDigits.count).toBe(20);
  expect(measured.trainDigits + measured.testDigits).toBe(10_000);

  const card = fs.readFileSync(path.join(target, 'README.md'), 'utf8');
  expect(card).toContain('block_out_channels\n[8,16], attention at 14×14 and in the middle block');
  expect(card).toContain('2 optimizer steps of batch 4, AdamW at 0.001, cosine');
  expect(card).toContain('with 1 warmup steps, EMA of the weights (decay 0.999');
  expect(card).toMatch(/\n {2}\d+ (s|min) of training on a 2-core CPU shared with other work\.\n/);
  expect(card).toMatch(
    /held-out loss \(MNIST test split, fixed noise and timesteps\)\n {2}\d\.\d{4} at step 0 → \d\.\d{4} at step 2 \(lowest \d\.\d{4}, step \d\)/,
  );
  expect(card).toContain('DDPM, linear betas 0.0001…0.02 over 1,000 steps, epsilon prediction');
  expect(card).toMatch(/Recognisable digits: \d+\.\d% of 3 DDIM-50 samples \(real held-out MNIST digits: \d+\.\d%, the\n {2}ceiling\)/);
  expect(card).toContain(
    `(${measured.trainDigits.toLocaleString('en-US')} of 10,000; the other ${measured.testDigits.toLocaleString('en-US')} are the held-out set)`,
  );
  expect(card).toContain('## Why MNIST → Fashion-MNIST');
  expect(card).toContain(JSON.stringify(recipe, null, 2));

  // The same measure on the packaged folder, as the card's comparison with earlier models uses it.
  const again = await measureBaseModel(target, { measureSamples: 3, heldOut: 20 });
  expect(again.samples.predicted).toEqual(measured.samples.predicted);
});

// The pretraining run is hours long and gets stopped: SIGTERM/SIGINT used to kill it outright, losing the
// steps since the last periodic checkpoint; now it stops at the next step with a checkpoint, as finetune does.
test.each<[NodeJS.Signals, number]>([
  ['SIGINT', 130],
  ['SIGTERM', 143],
])('npm run pretrain:mnist stops on %s with a checkpoint and exits %d (nothing packaged)', async (signal, exitCode) => {
  fs.writeFileSync(path.join(tmp, 'unet-config.json'), JSON.stringify(TINY_CONFIG));
  const output = path.join(tmp, 'run');
  const target = path.join(tmp, 'model');
  const sets = [
    `model.config=${path.join(tmp, 'unet-config.json')}`,
    `output=${output}`,
    'train.steps=5000',
    'train.batchSize=2',
    'data.limit=32',
    'validation.every=10000',
    'checkpoint.every=0',
  ];
  const args = [path.join(ROOT, 'dist', 'scripts', 'pretrain-mnist.js'), ...sets.flatMap((s) => ['--set', s]), '--out', target];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let interrupted = false;
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (!interrupted && /step 50\/5000/.test(stdout)) {
      interrupted = true;
      child.kill(signal);
    }
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  expect([interrupted, code]).toEqual([true, exitCode]);
  expect(stderr).toMatch(/pretrain:mnist: stopped at step \d+ with a checkpoint; run again with --set resume=latest/);
  const checkpoints = await listCheckpoints(output);
  expect(checkpoints).toHaveLength(1);
  expect(checkpoints[0]!.step).toBeGreaterThanOrEqual(50);
  expect(checkpoints[0]!.step).toBeLessThan(5000);
  expect(fs.existsSync(target)).toBe(false);
});
