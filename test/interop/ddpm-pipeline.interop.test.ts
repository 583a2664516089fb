// difftune → diffusers, pixel models: a fine-tune of a bare UNet2DModel folder, and the shipped
// models/mnist-ddpm, open with DDPMPipeline.from_pretrained(<folder>) and sample, from the same seed,
// the images difftune's sample() draws (issue 15, item 1).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadUNet } from '../../lib/models/unet';
import { loadScheduler } from '../../lib/schedulers/scheduler';
import { sample } from '../../lib/sample/pipeline';
import { finetune } from '../../lib/train/finetune';
import { useTempDir } from '../helpers/temp-dir';
import { describeInterop, floats, FIXTURES, levelDiff, pixels, readTensors, relError, ROOT, runPython, unetForwardBound } from './helpers/harness';

const tmp = useTempDir('interop-ddpm');

/**
 * difftune's sample() and DDPMPipeline.__call__ side by side: the same seed draws the same initial
 * noise and the same variance noise (both libtorch's CPU generator, drawn in the same order), so the
 * images differ only by float32 rounding.
 */
async function compareWithDdpmPipeline(pipelineDir: string, o: { seed: number; steps: number; batch: number }) {
  using unet = await loadUNet(path.join(pipelineDir, 'unet'));
  const scheduler = await loadScheduler(path.join(pipelineDir, 'scheduler'));
  using ours = await sample(unet, scheduler, { batchSize: o.batch, steps: o.steps, seed: o.seed });
  const out = path.join(tmp(), `ddpm-${path.basename(pipelineDir)}-${o.seed}.safetensors`);
  const theirs = await runPython('ddpm_pipeline', { pipeline: pipelineDir, ...o, out });
  const images = await readTensors(out);
  // DDPMPipeline returns (x / 2 + 0.5).clamp(0, 1) in NHWC; bring ours there to compare the floats.
  const want = images.get('images')!.data as Float32Array;
  const [n, c, h, w] = ours.shape as [number, number, number, number];
  const got = new Float32Array(want.length);
  const raw = await floats(ours);
  for (let i = 0; i < n; i++)
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) got[((i * h + y) * w + x) * c + ch] = Math.min(1, Math.max(0, raw[((i * c + ch) * h + y) * w + x]! / 2 + 0.5));
  return {
    response: theirs,
    shape: images.get('images')!.shape,
    rel: relError(got, want),
    levels: levelDiff(await pixels(ours), images.get('images_uint8')!.data as Uint8Array),
    // Per step the U-Net differs by at most unetForwardBound of its output; the scheduler step scales that
    // by its model-output coefficient (≤ 1 here: DDIM/DDPM with clipped x0) and adds it to the previous error.
    bound: o.steps * unetForwardBound(unet.config),
  };
}

describeInterop('DDPMPipeline samples what difftune samples', () => {
  test('a fine-tune of a bare UNet2DModel folder is a DDPMPipeline folder with the trained sample_size', async () => {
    const output = path.join(tmp(), 'finetuned');
    const result = await finetune({
      model: { pretrained: path.join(FIXTURES, 'unet2d-tiny') },
      data: { path: path.join(ROOT, 'recipes', 'data', 'shapes', 'train'), resolution: 24, channels: 3 },
      freeze: { preset: 'full' },
      train: { steps: 3, batchSize: 2, lr: 1e-3, seed: 0 },
      output,
    });
    expect(result.status).toBe('completed');
    expect(JSON.parse(fs.readFileSync(path.join(output, 'model_index.json'), 'utf8'))._class_name).toBe('DDPMPipeline');

    const r = await compareWithDdpmPipeline(output, { seed: 3, steps: 10, batch: 2 });
    expect(r.response.warnings).toEqual([]);
    expect(r.response.unet_class).toBe('UNet2DModel');
    expect(r.response.sample_size).toBe(24);
    expect(r.shape).toEqual([2, 24, 24, 3]);
    expect(r.rel).toBeLessThanOrEqual(r.bound);
    expect(r.levels).toBeLessThanOrEqual(1);
  }, 300_000);

  test('models/mnist-ddpm (DDPMScheduler: variance noise drawn every step but the last)', async () => {
    const r = await compareWithDdpmPipeline(path.join(ROOT, 'models', 'mnist-ddpm'), { seed: 0, steps: 20, batch: 4 });
    expect(r.response.warnings).toEqual([]);
    expect(r.response.scheduler_class).toBe('DDPMScheduler');
    expect(r.shape).toEqual([4, 28, 28, 1]);
    expect(r.rel).toBeLessThanOrEqual(r.bound);
    expect(r.levels).toBeLessThanOrEqual(1);
  }, 300_000);
});
