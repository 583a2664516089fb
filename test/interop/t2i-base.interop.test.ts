// difftune → diffusers, the text-to-image base (issue 19): the pipeline `npm run pretrain:t2i` packages — a
// shortened run here, and the shipped models/t2i-base — opens with StableDiffusionPipeline.from_pretrained
// without a warning (its VAE with the measured scaling_factor, the CLIPTextModel trained from scratch, the real
// CLIP tokenizer, DDIM) and draws from the same latents the images difftune's txt2img draws.
import * as path from 'node:path';
import { useTempDir } from '../helpers/temp-dir';
import { ROOT, runShortT2i } from '../helpers/t2i-short';
import { describeInterop } from './helpers/harness';
import { compareTxt2img } from './helpers/sd';

const tmp = useTempDir('interop-t2i-base');
const SHIPPED = path.join(ROOT, 'models', 't2i-base');

describeInterop('StableDiffusionPipeline.from_pretrained opens the text-to-image base difftune pretrains', () => {
  test('a shortened pretraining run’s package: same latents, same images over 2 steps', async () => {
    const { model } = await runShortT2i(tmp());
    const r = await compareTxt2img(model, { pipeline: model }, { prompt: 'a handwritten digit seven', guidanceScale: 5, steps: 2, seed: 0 }, tmp());
    expect(r.response.warnings).toEqual([]);
    expect(r.response.components).toEqual({
      scheduler: 'DDIMScheduler',
      text_encoder: 'CLIPTextModel',
      tokenizer: 'CLIPTokenizer',
      unet: 'UNet2DConditionModel',
      vae: 'AutoencoderKL',
    });
    expect(r.rel).toBeLessThanOrEqual(r.bound);
    expect(r.levels).toBeLessThanOrEqual(1);
  }, 600_000);

  test('models/t2i-base: same latents, same images over 2 steps', async () => {
    const r = await compareTxt2img(SHIPPED, { pipeline: SHIPPED }, { prompt: 'a photo of a sneaker', guidanceScale: 5, steps: 2, seed: 1 }, tmp());
    expect(r.response.warnings).toEqual([]);
    expect(r.rel).toBeLessThanOrEqual(r.bound);
    expect(r.levels).toBeLessThanOrEqual(1);
  }, 600_000);
});
