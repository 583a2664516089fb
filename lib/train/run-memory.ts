/**
 * A recipe's memory plan (lib/train/memory-plan.ts) from what the run knows before it trains: the U-Net's
 * config and parameters, what trains (LoRA adapters counted even before they are added), the batch and
 * resolution, and for a text-to-image run the frozen VAE's and text encoder's sizes, read from their
 * configs and weight files' headers (no weights are loaded).
 */
import * as path from 'path';
import { SafetensorsFile } from '../checkpoint/safetensors';
import { parseClipTextConfig } from '../config/clip-text';
import type { Recipe } from '../config/recipe';
import { parseVaeConfig } from '../config/vae';
import { dataOptionsSchema } from '../config/data';
import { resolveTextEncoderWeights } from '../models/clip-text';
import { readConfigJson } from '../models/frozen-model';
import { isTextToImageFolder, type BaseModel } from '../models/model-folder';
import { readModelIndex } from '../models/model-index';
import { resolveWeightFiles, type UNet } from '../models/unet';
import type { NativeParameterInfo } from '../native/types';
import { loraAdapterParameters } from './lora-training';
import { planTrainingMemory, type TrainingMemoryInput, type TrainingMemoryPlan } from './memory-plan';

const numelOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Elements of every tensor in `files` (headers only). */
async function weightElements(files: readonly string[]): Promise<number> {
  let total = 0;
  for (const file of files) {
    await using f = await SafetensorsFile.open(file);
    for (const info of f.tensors.values()) total += numelOf(info.shape);
  }
  return total;
}

async function frozenParts(pipelineDir: string, recipe: Recipe): Promise<TrainingMemoryInput['frozen']> {
  const index = readModelIndex(pipelineDir, { schedulerClass: 'DDPMScheduler' }); // the plan never builds the scheduler: any class may stand there
  const vaeDir = index.componentDir('vae');
  const textDir = index.componentDir('text_encoder');
  const vae = readConfigJson(vaeDir, 'diffusers AutoencoderKL');
  const text = readConfigJson(textDir, 'transformers CLIPTextModel');
  return {
    vaeConfig: parseVaeConfig(vae.raw, vae.file).config,
    vaeNumel: await weightElements(resolveWeightFiles(vaeDir, recipe.model.variant)),
    textEncoderNumel: await weightElements(resolveTextEncoderWeights(textDir, recipe.model.variant)),
    encodesImages: !recipe.textToImage.cacheLatents,
    textTokens: parseClipTextConfig(text.raw, text.file).config.max_position_embeddings,
  } as TrainingMemoryInput['frozen'] & { textTokens: number };
}

/**
 * The plan for `recipe` with `unet` (its own parameters: adapters are not listed among them) and, for a
 * run that trains the U-Net's weights, the names of those that train (default: all). A LoRA recipe's
 * adapters are sized from its targets.
 */
export async function planRunMemory(recipe: Recipe, base: BaseModel, unet: UNet, trainable?: readonly string[]): Promise<TrainingMemoryPlan> {
  const infos: NativeParameterInfo[] = await unet.parameters();
  const isAdapter = (name: string): boolean => /\.lora_[AB]\.weight$/.test(name);
  let parameters = infos.map((p) => ({ name: p.name, numel: numelOf(p.shape) }));
  let names: Set<string>;
  if (recipe.lora) {
    const adapters = loraAdapterParameters(
      infos.filter((p) => !isAdapter(p.name)),
      recipe.lora,
    );
    parameters = [...parameters.filter((p) => !isAdapter(p.name)), ...adapters];
    names = new Set(adapters.map((a) => a.name));
  } else {
    names = new Set(trainable ?? infos.map((p) => p.name));
  }
  const textToImage = base.pipelineDir !== undefined && unet.isConditional && !unet.isClassConditional && isTextToImageFolder(base.pipelineDir);
  const frozen = textToImage
    ? ((await frozenParts(path.resolve(base.pipelineDir!), recipe)) as TrainingMemoryInput['frozen'] & { textTokens: number })
    : undefined;
  const scale = frozen ? 2 ** (frozen.vaeConfig.block_out_channels.length - 1) : 1;
  // The data section is validated when the data opens; a plan only needs its resolution (default 512).
  const data = dataOptionsSchema.safeParse(recipe.data);
  const resolution = data.success ? data.data.resolution : 512;
  return planTrainingMemory({
    unetConfig: unet.config,
    parameters,
    trainable: names,
    loraNumel: parameters.filter((p) => isAdapter(p.name)).reduce((a, p) => a + p.numel, 0),
    frozen,
    batch: recipe.train.batchSize,
    height: Math.ceil(resolution / scale),
    width: Math.ceil(resolution / scale),
    imageHeight: resolution,
    imageWidth: resolution,
    // A class-conditional or unconditional U-Net has no text; a text-conditioned one without a pipeline gets 77 tokens.
    textTokens: frozen?.textTokens ?? (unet.isConditional ? 77 : 0),
    gradientCheckpointing: recipe.train.gradientCheckpointing,
    mixedPrecision: recipe.train.mixedPrecision,
    ema: recipe.train.ema !== null,
    gradientAccumulation: recipe.train.gradientAccumulation,
  });
}
