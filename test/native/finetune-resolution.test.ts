// Fine-tuning at a data resolution other than the model's sample_size: nothing in finetune ties the two
// (the U-Net is fully convolutional), so a grown model trains at twice the resolution and an ordinary one
// at another size; the saved model's sample_size is the trained size (what pipelines sample at) and it runs
// at that size. Outputs of bare U-Net folders are pipeline folders where a diffusers pipeline runs them.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { growModelFolder } from '../../lib/models/grow-folder';
import { loadUNet } from '../../lib/models/unet';
import { Tensor } from '../../lib/native/tensor';
import { finetune } from '../../lib/train/finetune';

const BASE = path.join(__dirname, '..', 'fixtures', 'diffusers', 'unet2d-classcond');

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-ft-res-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function recipe(pretrained: string, resolution: number, output: string) {
  return {
    model: { pretrained },
    data: { source: 'mnist', resolution, channels: 1, limit: 32 },
    freeze: { preset: 'full' },
    train: { steps: 3, batchSize: 4, lr: 1e-3, seed: 3 },
    validation: { every: 3, samples: 8 },
    output,
    checkpoint: { every: 3, keep: 1 },
  };
}

test.each([
  ['the fixture (sample_size 16) at 24 px', false, 24],
  ['the fixture grown to 32 px (sample_size 32) at 32 px', true, 32],
])('%s', async (_name, grow, resolution) => {
  let pretrained = BASE;
  if (grow) {
    pretrained = path.join(tmp, 'grown');
    await growModelFolder(BASE, pretrained);
  }
  const result = await finetune(recipe(pretrained, resolution, path.join(tmp, 'run')));
  expect(result.status).toBe('completed');
  expect(result.validation.map((v) => v.step)).toEqual([0, 3]);
  for (const v of result.validation) expect(Number.isFinite(v.loss)).toBe(true);
  using unet = await loadUNet(result.unetDir);
  expect(unet.config.sample_size).toBe(resolution);
  // Class-conditional: DDPMPipeline cannot pass the labels, so no model_index.json claims it.
  expect(fs.existsSync(path.join(tmp, 'run', 'model_index.json'))).toBe(false);
  expect(unet.config.block_out_channels.length).toBe(grow ? 3 : 2);
  using x = Tensor.from(new Float32Array(resolution * resolution), [1, 1, resolution, resolution]);
  using t = Tensor.from(new Float32Array([10]), [1]);
  using labels = Tensor.from(new BigInt64Array([3n]), [1]);
  using y = await unet.forward(x, t, { classLabels: labels });
  expect(y.shape).toEqual([1, 1, resolution, resolution]);
});

test('a bare pixel U-Net folder without sample_size fine-tunes into a DDPMPipeline folder sized at the training resolution', async () => {
  const shipped = path.join(__dirname, '..', '..', 'models', 'mnist-ddpm');
  const unetDir = path.join(tmp, 'unet');
  fs.cpSync(path.join(shipped, 'unet'), unetDir, { recursive: true });
  const config = JSON.parse(fs.readFileSync(path.join(unetDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  delete config.sample_size;
  fs.writeFileSync(path.join(unetDir, 'config.json'), JSON.stringify(config));
  const output = path.join(tmp, 'run');
  const result = await finetune({ ...recipe(unetDir, 16, output), train: { steps: 1, batchSize: 2, lr: 1e-4, seed: 3 }, validation: { every: 0 } });
  expect(result.status).toBe('completed');
  expect(JSON.parse(fs.readFileSync(path.join(output, 'unet', 'config.json'), 'utf8')).sample_size).toBe(16);
  expect(JSON.parse(fs.readFileSync(path.join(output, 'model_index.json'), 'utf8'))).toEqual({
    _class_name: 'DDPMPipeline',
    _diffusers_version: '0.31.0',
    scheduler: ['diffusers', 'DDPMScheduler'],
    unet: ['diffusers', 'UNet2DModel'],
  });
  expect(fs.existsSync(path.join(output, 'scheduler', 'scheduler_config.json'))).toBe(true);
});

test('the shipped models/mnist-ddpm is a DDPMPipeline folder whose U-Net has a sample_size', () => {
  const shipped = path.join(__dirname, '..', '..', 'models', 'mnist-ddpm');
  expect(JSON.parse(fs.readFileSync(path.join(shipped, 'unet', 'config.json'), 'utf8')).sample_size).toBe(28);
  expect(JSON.parse(fs.readFileSync(path.join(shipped, 'model_index.json'), 'utf8'))._class_name).toBe('DDPMPipeline');
});
