/**
 * Sampling: the denoising loop diffusers' DDPMPipeline / DDIMPipeline run, with any scheduler, a
 * seeded generator (initial noise and the schedulers' own noise), and class labels for
 * class-conditional U-Nets. Tensor math stays native; this only sequences the calls.
 */
import { expected, InvalidArgumentError } from '../errors';
import { classLabelTensor, type UNet } from '../models/unet';
import { Generator } from '../native/generator';
import { randn } from '../native/ops';
import { Tensor } from '../native/tensor';
import type { Scheduler } from '../schedulers/scheduler';

export interface SampleOptions {
  /** Images to draw. */
  batchSize: number;
  /** Denoising steps (scheduler.setTimesteps). */
  steps: number;
  seed: number;
  /** One class id per image, for class-conditional U-Nets. */
  classLabels?: readonly number[];
  /** Default: the model's sample_size. */
  height?: number;
  width?: number;
  /** DDIM's eta (0: deterministic). */
  eta?: number;
  /** Start from this noise instead of drawing it ([batch, channels, height, width]). */
  initialNoise?: Tensor;
  onStep?: (step: number, total: number) => void;
}

/** Runs the denoising loop; resolves to the final samples [batch, channels, height, width] (about [-1, 1]). */
export async function sample(unet: UNet, scheduler: Scheduler, options: SampleOptions): Promise<Tensor> {
  if (!Number.isSafeInteger(options.batchSize) || options.batchSize < 1) throw expected('a positive integer', 'options.batchSize', options.batchSize);
  if (!Number.isSafeInteger(options.steps) || options.steps < 1) throw expected('a positive integer', 'options.steps', options.steps);
  if (unet.isClassConditional && options.classLabels === undefined)
    throw new InvalidArgumentError('this U-Net is class-conditional: pass classLabels (one per image)');
  if (options.classLabels !== undefined && options.classLabels.length !== options.batchSize)
    throw expected(`${options.batchSize} class labels`, 'options.classLabels', options.classLabels);
  if (unet.isConditional && !unet.isClassConditional)
    throw new InvalidArgumentError('text-conditioned U-Nets sample through the text-to-image pipeline (prompts), not here');

  const h = options.height ?? unet.sampleSize ?? 32;
  const w = options.width ?? unet.sampleSize ?? 32;
  const channels = unet.config.in_channels;
  using generator = new Generator(options.seed);
  await scheduler.setTimesteps(options.steps);
  using noise = options.initialNoise ? undefined : await randn([options.batchSize, channels, h, w], { generator });
  let latents = await scheduler.scaleInitialNoise(options.initialNoise ?? noise!);
  using labels = options.classLabels ? classLabelTensor(options.classLabels) : undefined;
  const timesteps = scheduler.timesteps;
  try {
    for (const [i, t] of timesteps.entries()) {
      using input = await scheduler.scaleModelInput(latents, t);
      using ts = scheduler.timestepTensor(t);
      using out = await unet.forward(input, ts, { classLabels: labels });
      const r = await scheduler.step(out, t, latents, { generator, eta: options.eta });
      r.predOriginalSample?.dispose();
      latents.dispose();
      latents = r.prevSample;
      options.onStep?.(i + 1, timesteps.length);
    }
    return latents;
  } catch (error) {
    latents.dispose();
    throw error;
  }
}
