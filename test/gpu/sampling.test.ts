// Sampling on a CUDA device: the tiny SD pipeline loaded there gives what it gives on the CPU for the
// same seed (the noise is drawn on the CPU either way), within float32's reordering on the GPU.
import * as path from 'path';
import { relError } from '../../lib/conformance/compare';
import { loadStableDiffusion } from '../../lib/models/stable-diffusion';
import { txt2img } from '../../lib/sample/txt2img';
import { CUDA_TOLERANCE_FACTOR, DEVICE, describeGpu } from './gpu';

const PIPELINE = path.join(__dirname, '..', 'fixtures', 'diffusers', 'sd-pipeline-tiny');
/** The pipeline fixtures' CPU bound (1e-4) with the tier's CUDA factor. */
const BOUND = 1e-4 * CUDA_TOLERANCE_FACTOR;

describeGpu('txt2img on CUDA', () => {
  test('latents and images match the CPU run for the same seed', async () => {
    const options = { prompt: ['a red square', 'a blue circle'], steps: 4, seed: 3, guidanceScale: 5 };
    using cpu = await loadStableDiffusion(PIPELINE);
    using gpu = await loadStableDiffusion(PIPELINE, { device: DEVICE });
    expect(gpu.unet.device).toBe(DEVICE);
    const a = await txt2img(cpu, options);
    const b = await txt2img(gpu, options);
    try {
      expect(b.latents.device).toBe(DEVICE);
      expect(relError(await b.latents.data(), await a.latents.data())).toBeLessThanOrEqual(BOUND);
      expect(relError(await b.images.data(), await a.images.data())).toBeLessThanOrEqual(BOUND);
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});
