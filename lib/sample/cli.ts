/**
 * `npm run sample -- --model <folder> [--lora <file>] [--textual-inversion <file> [--token <t>]] [--scheduler <short or class name>]
 * [--steps N] [--seed S] [--count N] [--class-label K] [--eta E] --out grid.png`: a PNG grid.
 * The model folder's own scheduler (or DDPM defaults) unless --scheduler picks another class.
 * A Stable Diffusion folder samples text-to-image, or image-to-image with --init-image (txt2img-cli.ts).
 */
import * as path from 'path';
import type { Writable } from 'stream';
import { ConfigError, formatCliError } from '../errors';
import { z } from 'zod';
import { resolveSchedulerName, SCHEDULER_CLASSES, SCHEDULER_SHORT_NAMES, type SchedulerClassName } from '../config/scheduler';
import { defineCli, formatHelp, integerValue, numberValue, parseCli, STACK_FLAG, usageHint } from '../util/cli-args';
import { applyLoraFile } from '../models/lora';
import { loadUNet, unknownConfigKeysWarning } from '../models/unet';
import { isTextToImageFolder, openFolderScheduler, resolveModelFolder } from '../models/model-folder';
import { checkOutputFile } from '../util/output-folder';
import { toImages, writeGrid } from './image';
import { sample } from './pipeline';

/** --scheduler: a short name (lib/config/scheduler.ts) or any supported diffusers class name, parsed to the class name. */
const SCHEDULER_VALUE = {
  schema: z.string().transform((name, ctx): SchedulerClassName => {
    const className = resolveSchedulerName(name);
    if (className === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom });
      return z.NEVER;
    }
    return className;
  }),
  expected: `one of ${Object.keys(SCHEDULER_SHORT_NAMES).join(', ')} or a class name (${SCHEDULER_CLASSES.join(', ')})`,
};

export const sampleCli = defineCli({
  name: 'sample',
  summary:
    "Samples a PNG grid from a U-Net folder, a pipeline folder or a fine-tuning output, with the folder's own scheduler unless --scheduler picks another class. A Stable Diffusion pipeline folder samples text-to-image with classifier-free guidance: one image per --prompt.",
  flags: {
    model: { type: 'string', value: '<folder>', required: true, description: 'a U-Net folder, a pipeline folder or a fine-tuning output' },
    out: { type: 'string', value: '<grid.png>', required: true, description: 'the PNG to write; checked (and its folder created) before sampling starts' },
    lora: { type: 'string', value: '<file.safetensors>', description: 'LoRA weights (PEFT/diffusers or kohya) applied to the U-Net' },
    'textual-inversion': {
      type: 'string',
      value: '<file.safetensors>',
      multiple: true,
      description: "text-to-image: a textual inversion embedding (diffusers' learned_embeds.safetensors or A1111's) whose token prompts may use; repeatable",
    },
    token: {
      type: 'string',
      value: '<token>',
      multiple: true,
      description: "text-to-image: the token of each --textual-inversion, in order (default: the file's own)",
    },
    scheduler: {
      type: 'string',
      value: '<name>',
      ...SCHEDULER_VALUE,
      description: `another scheduler class, configured from the folder's scheduler_config.json (as diffusers' from_config): ${Object.keys(SCHEDULER_SHORT_NAMES).join(', ')} or a class name`,
    },
    steps: { type: 'string', value: '<N>', ...integerValue(1), description: 'sampling steps (default 1000 for DDPM, otherwise 50)' },
    seed: { type: 'string', value: '<S>', ...integerValue(0), default: 0, description: 'seed of the initial noise and every random draw' },
    count: { type: 'string', value: '<N>', ...integerValue(1), default: 16, description: 'images in the grid, for unconditional and class-conditional models' },
    'class-label': { type: 'string', value: '<K>', ...integerValue(0), description: 'the class of every image, for class-conditional models' },
    eta: { type: 'string', value: '<E>', ...numberValue(), description: "DDIM's eta (0: deterministic)" },
    prompt: { type: 'string', value: '<text>', multiple: true, description: 'a prompt for a text-to-image pipeline, one image each' },
    'negative-prompt': { type: 'string', value: '<text>', multiple: true, description: 'the negative prompt: one, or one per --prompt' },
    guidance: { type: 'string', value: '<scale>', ...numberValue(), description: 'text-to-image: the classifier-free guidance scale (default 7.5)' },
    'clip-skip': {
      type: 'string',
      value: '<K>',
      ...integerValue(0),
      description: "text-to-image: use the text encoder's layer -(K+1) through its final LayerNorm (1: SD 2.x's penultimate layer)",
    },
    height: {
      type: 'string',
      value: '<px>',
      ...integerValue(1),
      description: "text-to-image: the image height (default: the U-Net's sample_size × the VAE's scale factor)",
    },
    width: {
      type: 'string',
      value: '<px>',
      ...integerValue(1),
      description: "text-to-image: the image width (default: the U-Net's sample_size × the VAE's scale factor)",
    },
    latents: {
      type: 'string',
      value: '<file.safetensors>',
      description: 'text-to-image: the initial latents, the file\'s only tensor or the one named "latents"',
    },
    'init-image': {
      type: 'string',
      value: '<image.png>',
      description: "image-to-image: start from this image (PNG, JPEG or WebP; its size, cut to a multiple of the VAE's scale factor, is the output's)",
    },
    strength: {
      type: 'string',
      value: '<s>',
      ...numberValue(),
      description: 'image-to-image: how far the image is noised, 0–1 (default 0.8): the last ⌊steps·s⌋ steps run',
    },
    'vae-slicing': {
      type: 'boolean',
      description: "text-to-image: decode the images one at a time (diffusers' enable_vae_slicing); on by itself when the batch would not fit in memory",
    },
    'vae-tiling': {
      type: 'boolean',
      description:
        "text-to-image: decode in overlapping tiles of the VAE's sample_size (diffusers' enable_vae_tiling; slightly different images); on by itself when one image would not fit in memory",
    },
    stack: STACK_FLAG,
  },
  examples: [
    'npm run sample -- --model runs/demo/finetuned --scheduler ddim --steps 50 --seed 0 --out grid.png',
    'npm run sample -- --model runs/sd-tiny-shapes --prompt "a red circle, flat style" --negative-prompt "blurry" --guidance 7.5 --steps 30 --out circle.png',
    'npm run sample -- --model runs/sd-tiny-shapes --init-image photo.png --strength 0.6 --prompt "a blue square, flat style" --out square.png',
    'npm run sample -- --model sd15 --textual-inversion runs/textual-inversion-tiny/learned_embeds.safetensors --prompt "a photo of <cat-toy>" --out toy.png',
  ],
});

export async function runSampleCli(argv: readonly string[], out: Writable, err: Writable): Promise<number> {
  const stack = argv.includes('--stack');
  try {
    const args = parseCli(sampleCli, argv);
    if (args.help) {
      out.write(formatHelp(sampleCli));
      return 0;
    }
    const { values: v } = args;
    const a = {
      ...v,
      prompts: v.prompt,
      negativePrompts: v['negative-prompt'],
      classLabel: v['class-label'],
      clipSkip: v['clip-skip'],
      initImage: v['init-image'],
    };
    if (a.token.length > a['textual-inversion'].length)
      throw new ConfigError(`--token: expected at most one per --textual-inversion (${a['textual-inversion'].length}) but found ${a.token.length}`);
    // The image is written after sampling: a bad --out must fail now, not minutes later.
    await checkOutputFile(a.out, '--out');
    if (isTextToImageFolder(path.resolve(a.model))) {
      const { runTxt2ImgCli } = await import('./txt2img-cli');
      return await runTxt2ImgCli(
        {
          model: path.resolve(a.model),
          out: a.out,
          prompts: a.prompts,
          negativePrompts: a.negativePrompts,
          guidance: a.guidance ?? 7.5,
          steps: a.steps ?? 50,
          seed: a.seed,
          clipSkip: a.clipSkip ?? null,
          height: a.height,
          width: a.width,
          latents: a.latents,
          initImage: a.initImage,
          strength: a.strength,
          lora: a.lora,
          textualInversions: a['textual-inversion'].map((file, i) => ({ file, token: a.token[i] })),
          schedulerClass: a.scheduler,
          eta: a.eta,
          vaeSlicing: a['vae-slicing'],
          vaeTiling: a['vae-tiling'],
        },
        out,
        err,
      );
    }
    if (a.prompts.length > 0 || a.initImage !== undefined || a['textual-inversion'].length > 0)
      throw new ConfigError(
        `${a.prompts.length > 0 ? '--prompt' : a.initImage !== undefined ? '--init-image' : '--textual-inversion'}: ${a.model} is not a text-to-image pipeline folder (model_index.json with text_encoder/ and vae/)`,
      );
    const warn = (message: string) => void err.write(`${message}\n`);
    const folder = resolveModelFolder(path.resolve(a.model), warn);
    using unet = await loadUNet(folder.unetDir);
    const unknownKeys = unknownConfigKeysWarning(unet, path.join(folder.unetDir, 'config.json'));
    if (unknownKeys !== undefined) warn(unknownKeys);
    if (a.lora) {
      await applyLoraFile(unet, a.lora);
    }
    using scheduler = await openFolderScheduler(folder, a.scheduler);
    const steps = a.steps ?? (scheduler.className === 'DDPMScheduler' ? 1000 : 50);
    const classLabels = a.classLabel !== undefined ? Array.from({ length: a.count }, () => a.classLabel!) : undefined;
    const started = Date.now();
    let last = 0;
    using samples = await sample(unet, scheduler, {
      batchSize: a.count,
      steps,
      seed: a.seed,
      classLabels,
      eta: a.eta,
      onStep: (i, n) => {
        if (Date.now() - last > 1000 || i === n) {
          last = Date.now();
          err.write(`\rsampling: step ${i}/${n}`);
        }
      },
    });
    err.write('\n');
    await writeGrid(a.out, await toImages(samples), { scale: unet.config.in_channels === 1 ? 2 : 1 });
    out.write(`wrote ${a.out} (${a.count} samples, ${scheduler.className}, ${steps} steps, seed ${a.seed}, ${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
    return 0;
  } catch (error) {
    err.write(`${formatCliError('sample', error, stack)}\n${usageHint(sampleCli, error)}`);
    return 1;
  }
}
