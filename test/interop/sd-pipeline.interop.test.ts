// difftune → diffusers, Stable Diffusion: a text-to-image fine-tune of the tiny fixture pipeline opens
// with StableDiffusionPipeline.from_pretrained(<output>) without warnings, and from the same latents
// draws the images difftune's txt2img draws (within one 8-bit level).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { useTempDir } from '../helpers/temp-dir';
import { describeInterop } from './helpers/harness';
import { compareTxt2img, finetuneTinySd } from './helpers/sd';

const tmp = useTempDir('interop-sd');

describeInterop('StableDiffusionPipeline.from_pretrained opens a difftune fine-tune', () => {
  test('same latents, same images: with and without guidance, a negative prompt', async () => {
    const output = path.join(tmp(), 'sd-finetuned');
    const result = await finetuneTinySd(output);
    expect(result.status).toBe('completed');
    // The run's cache and checkpoints are beside the pipeline, not named by model_index.json.
    expect(fs.existsSync(path.join(output, '.cache'))).toBe(true);

    const guided = await compareTxt2img(
      output,
      { pipeline: output },
      { prompt: 'a red circle', negativePrompt: 'blurry', guidanceScale: 7.5, steps: 8, seed: 1 },
      tmp(),
    );
    expect(guided.response.warnings).toEqual([]);
    expect(guided.response.components).toEqual({
      scheduler: expect.any(String),
      text_encoder: 'CLIPTextModel',
      tokenizer: 'CLIPTokenizer',
      unet: 'UNet2DConditionModel',
      vae: 'AutoencoderKL',
    });
    expect(guided.rel).toBeLessThanOrEqual(guided.bound);
    expect(guided.levels).toBeLessThanOrEqual(1);

    const plain = await compareTxt2img(output, { pipeline: output }, { prompt: 'a blue square, flat style', guidanceScale: 1, steps: 5, seed: 2 }, tmp());
    expect(plain.rel).toBeLessThanOrEqual(plain.bound);
    expect(plain.levels).toBeLessThanOrEqual(1);
  }, 600_000);
});
