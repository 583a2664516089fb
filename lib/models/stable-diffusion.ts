/**
 * A Stable Diffusion pipeline folder (model_index.json with unet/, vae/, text_encoder/, tokenizer/,
 * scheduler/), SD 1.x or 2.x, loaded into its five components. The U-Net may come from elsewhere
 * (a fine-tuned unet/ folder) while the rest comes from the pipeline.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError } from '../errors';
import type { SchedulerClassName } from '../config/scheduler';
import { loadScheduler, Scheduler, SCHEDULER_CONFIG_FILE } from '../schedulers/scheduler';
import { CLIPTokenizer } from '../text/clip-tokenizer';
import { CLIPTextModel, loadTextEncoder, TEXT_ENCODER_WEIGHTS } from './clip-text';
import { addVariant, hasWeightFiles } from './model-folder';
import { readModelIndex } from './model-index';
import { loadUNet, UNet, UNET_WEIGHTS } from './unet';
import { AutoencoderKL, loadVae, VAE_WEIGHTS } from './vae';

export interface StableDiffusion {
  readonly dir: string;
  readonly device: string;
  readonly unet: UNet;
  readonly vae: AutoencoderKL;
  readonly textEncoder: CLIPTextModel;
  readonly tokenizer: CLIPTokenizer;
  readonly scheduler: Scheduler;
  dispose(): void;
  [Symbol.dispose](): void;
}

export interface LoadStableDiffusionOptions {
  device?: string;
  /** A U-Net folder to use instead of the pipeline's unet/ (e.g. a fine-tuned one). */
  unetDir?: string;
  /** Another scheduler class, configured from the pipeline's scheduler_config.json (as diffusers' from_config). */
  schedulerClass?: SchedulerClassName;
  /**
   * Weights variant, e.g. "fp16": each component whose folder has files of it loads them (as diffusers'
   * from_pretrained(variant=...) does: `save_pretrained(variant=...)` writes them for every model), the
   * others their plain files. A variant no component has is an error.
   */
  variant?: string;
}

export async function loadStableDiffusion(dir: string, options: LoadStableDiffusionOptions = {}): Promise<StableDiffusion> {
  if (!fs.existsSync(path.join(dir, 'model_index.json'))) {
    throw new ConfigError(`${dir}: expected a Stable Diffusion pipeline folder with model_index.json (unet/, vae/, text_encoder/, tokenizer/, scheduler/)`);
  }
  const index = readModelIndex(dir, { schedulerClass: options.schedulerClass });
  const device = options.device ?? 'cpu';
  const unetDir = options.unetDir ?? index.componentDir('unet');
  const variants = componentVariants(
    [
      [index.componentDir('text_encoder'), TEXT_ENCODER_WEIGHTS],
      [index.componentDir('vae'), VAE_WEIGHTS],
      [unetDir, UNET_WEIGHTS],
    ],
    options.variant,
    dir,
  );
  const opened: Array<{ dispose(): void }> = [];
  try {
    const tokenizer = await CLIPTokenizer.load(index.componentDir('tokenizer'));
    const textEncoder = await loadTextEncoder(index.componentDir('text_encoder'), { device, variant: variants[0] });
    opened.push(textEncoder);
    const vae = await loadVae(index.componentDir('vae'), { device, variant: variants[1] });
    opened.push(vae);
    const unet = await loadUNet(unetDir, { device, variant: variants[2] });
    opened.push(unet);
    const scheduler = await loadScheduler(path.join(index.componentDir('scheduler'), SCHEDULER_CONFIG_FILE), { className: options.schedulerClass });
    opened.push(scheduler);
    const config = unet.config;
    if (config._class_name !== 'UNet2DConditionModel') throw new ConfigError(`${dir}/unet: expected a UNet2DConditionModel (text-conditioned) for a Stable Diffusion pipeline but found ${config._class_name}`);
    const crossDim = config.cross_attention_dim;
    const hidden = textEncoder.config.hidden_size;
    if (typeof crossDim === 'number' && crossDim !== hidden) {
      throw new ConfigError(`${dir}: the U-Net's cross_attention_dim (${crossDim}) does not match the text encoder's hidden_size (${hidden})`);
    }
    const dispose = () => {
      for (const c of opened.splice(0).reverse()) c.dispose();
    };
    return { dir, device, unet, vae, textEncoder, tokenizer, scheduler, dispose, [Symbol.dispose]: dispose };
  } catch (error) {
    for (const c of opened.reverse()) c.dispose();
    throw error;
  }
}

/** The variant each component loads: `variant` where its folder has weights of it, else none (its plain files). */
function componentVariants(components: ReadonlyArray<readonly [string, string]>, variant: string | undefined, dir: string): Array<string | undefined> {
  if (variant === undefined) return components.map(() => undefined);
  const has = components.map(([folder, weights]) => hasWeightFiles(folder, weights, variant));
  if (!has.some(Boolean)) {
    const looked = components.map(([folder, weights]) => path.join(path.relative(dir, folder), addVariant(weights, variant)));
    throw new ConfigError(
      `${dir}: options.variant is "${variant}" but no component has weights of it (looked for ${looked.join(', ')} and their shard indexes); leave the variant out to load the plain weights`,
    );
  }
  return has.map((h) => (h ? variant : undefined));
}
