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
import { CLIPTextModel, loadTextEncoder } from './clip-text';
import { readModelIndex } from './model-index';
import { loadUNet, UNet } from './unet';
import { AutoencoderKL, loadVae } from './vae';

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
  variant?: string;
}

export async function loadStableDiffusion(dir: string, options: LoadStableDiffusionOptions = {}): Promise<StableDiffusion> {
  if (!fs.existsSync(path.join(dir, 'model_index.json'))) {
    throw new ConfigError(`${dir}: expected a Stable Diffusion pipeline folder with model_index.json (unet/, vae/, text_encoder/, tokenizer/, scheduler/)`);
  }
  const index = readModelIndex(dir);
  const device = options.device ?? 'cpu';
  const opened: Array<{ dispose(): void }> = [];
  try {
    const tokenizer = await CLIPTokenizer.load(index.componentDir('tokenizer'));
    const textEncoder = await loadTextEncoder(index.componentDir('text_encoder'), { device });
    opened.push(textEncoder);
    const vae = await loadVae(index.componentDir('vae'), { device });
    opened.push(vae);
    const unet = await loadUNet(options.unetDir ?? index.componentDir('unet'), { device, variant: options.variant });
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
