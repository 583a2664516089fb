/**
 * `npm run sample -- --model <Stable Diffusion folder> --prompt "..." [--prompt "..."]
 * [--negative-prompt "..."] [--guidance 7.5] [--steps 50] [--seed S] [--clip-skip K]
 * [--height H --width W] [--latents file.safetensors] [--scheduler ...] [--lora file]
 * [--textual-inversion file [--token t]] --out image.png`:
 * text-to-image sampling with classifier-free guidance; several prompts give a grid. With
 * `--init-image photo.png [--strength 0.8]` image-to-image instead, every prompt starting from that image.
 */
import sharp from 'sharp';
import type { Writable } from 'stream';
import { SafetensorsFile } from '../checkpoint/safetensors';
import type { SchedulerClassName } from '../config/scheduler';
import { ConfigError } from '../errors';
import { applyLoraFile } from '../models/lora';
import { describeLoad } from '../models/native-model';
import { loadTextualInversion } from '../models/textual-inversion';
import { loadStableDiffusion } from '../models/stable-diffusion';
import { Tensor } from '../native/tensor';
import { withFileErrors } from '../util/fs-errors';
import { toImages, writeGrid, type Images } from './image';
import { img2img } from './img2img';
import { txt2img, type Txt2ImgResult } from './txt2img';

export interface Txt2ImgArgs {
  model: string;
  out: string;
  prompts: string[];
  negativePrompts: string[];
  guidance: number;
  steps: number;
  seed: number;
  clipSkip: number | null;
  height?: number;
  width?: number;
  latents?: string;
  /** Image-to-image: the starting image file, and how far it is noised. */
  initImage?: string;
  strength?: number;
  lora?: string;
  /** Textual inversion embeddings, each under its file's token or the one given. */
  textualInversions?: ReadonlyArray<{ file: string; token?: string }>;
  schedulerClass?: SchedulerClassName;
  eta?: number;
  /** Force the VAE's memory savers on (otherwise each turns on by itself when the decode would not fit). */
  vaeSlicing?: boolean;
  vaeTiling?: boolean;
}

/** Reads the initial latents: the file's only tensor, or the one named "latents". */
async function readLatents(file: string): Promise<Tensor> {
  await using f = await SafetensorsFile.open(file);
  const names = f.names();
  const name = names.length === 1 ? names[0]! : names.includes('latents') ? 'latents' : undefined;
  if (name === undefined)
    throw new ConfigError(`--latents ${file}: expected one tensor, or one named "latents", but found ${names.length}: ${names.slice(0, 5).join(', ')}`);
  const t = await f.read(name);
  if (t.dtype !== 'F32') throw new ConfigError(`--latents ${file}: expected float32 latents but "${name}" is ${t.dtype}`);
  return Tensor.from(t.data, t.shape);
}

/**
 * An image file as the pipeline's RGB input: EXIF-oriented and alpha dropped, as diffusers' load_image and
 * convert("RGB") do; a size that is not a multiple of `factor` is resized (Lanczos) to the multiple below,
 * as VaeImageProcessor resizes a PIL image (sharp's Lanczos-3, so not PIL's pixels exactly).
 */
export async function readInitImage(file: string, factor: number): Promise<Images> {
  return withFileErrors(
    file,
    'read',
    async () => {
      const decoded = await sharp(file).rotate().removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      const { width, height, channels } = decoded.info;
      const w = width - (width % factor);
      const h = height - (height % factor);
      if (w === 0 || h === 0) throw new ConfigError(`--init-image ${file}: expected an image at least ${factor}×${factor} pixels but found ${width}×${height}`);
      const { data, info } =
        w === width && h === height
          ? decoded
          : await sharp(decoded.data, { raw: { width, height, channels } })
              .resize({ width: w, height: h, fit: 'fill', kernel: 'lanczos3' })
              .raw()
              .toBuffer({ resolveWithObject: true });
      return {
        count: 1,
        height: info.height,
        width: info.width,
        channels: info.channels,
        pixels: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      };
    },
    { field: '--init-image' },
  );
}

export async function runTxt2ImgCli(a: Txt2ImgArgs, out: Writable, err: Writable): Promise<number> {
  if (a.prompts.length === 0) throw new ConfigError(`--prompt: ${a.model} is a text-to-image pipeline; give at least one --prompt "..."`);
  if (a.negativePrompts.length > 1 && a.negativePrompts.length !== a.prompts.length) {
    throw new ConfigError(`--negative-prompt: expected one, or one per --prompt (${a.prompts.length}), but found ${a.negativePrompts.length}`);
  }
  if (a.initImage === undefined && a.strength !== undefined) throw new ConfigError('--strength: only with --init-image (image-to-image)');
  if (a.initImage !== undefined) {
    for (const [flag, given] of [
      ['--latents', a.latents],
      ['--height', a.height],
      ['--width', a.width],
    ] as const)
      if (given !== undefined) throw new ConfigError(`${flag}: not with --init-image (the image sizes the output and is the start)`);
  }
  using sd = await loadStableDiffusion(a.model, { schedulerClass: a.schedulerClass });
  for (const [name, model] of [
    ['U-Net', sd.unet],
    ['VAE', sd.vae],
    ['text encoder', sd.textEncoder],
  ] as const) {
    if (model.loadStats !== undefined) err.write(`loaded the ${name}: ${describeLoad(model.loadStats)}\n`);
  }
  if (a.lora) {
    // The U-Net's and, where the file has them, the text encoder's adapters (as diffusers' load_lora_weights).
    await applyLoraFile(sd, a.lora);
  }
  for (const ti of a.textualInversions ?? []) {
    const loaded = await loadTextualInversion(sd, ti.file, { token: ti.token });
    err.write(`textual inversion: ${loaded.token} (${loaded.tokens.length} vector${loaded.tokens.length === 1 ? '' : 's'}) from ${ti.file}\n`);
  }
  using latents = a.latents ? await readLatents(a.latents) : undefined;
  const initImage = a.initImage === undefined ? undefined : await readInitImage(a.initImage, sd.vae.vaeScaleFactor);
  const started = Date.now();
  const common = {
    prompt: a.prompts,
    negativePrompt: a.negativePrompts.length === 0 ? null : a.negativePrompts.length === 1 ? a.negativePrompts[0]! : a.negativePrompts,
    guidanceScale: a.guidance,
    steps: a.steps,
    seed: a.seed,
    clipSkip: a.clipSkip,
    eta: a.eta,
    onStep: ({ index, total }: { index: number; total: number }) => void err.write(`\rsampling: step ${index + 1}/${total}`),
    vaeSlicing: a.vaeSlicing === true ? true : ('auto' as const),
    vaeTiling: a.vaeTiling === true ? true : ('auto' as const),
    onLog: (line: string) => void err.write(`\n${line}`),
  };
  const result: Txt2ImgResult = initImage
    ? await img2img(sd, { ...common, image: initImage, strength: a.strength })
    : await txt2img(sd, { ...common, height: a.height, width: a.width, latents });
  try {
    err.write('\n');
    await writeGrid(a.out, await toImages(result.images), { padding: a.prompts.length === 1 ? 0 : 2 });
  } finally {
    result.dispose();
  }
  out.write(
    `wrote ${a.out} (${a.prompts.length} image${a.prompts.length === 1 ? '' : 's'}, ${sd.scheduler.className}, ${a.steps} steps, ${initImage ? `strength ${a.strength ?? 0.8}, ` : ''}guidance ${a.guidance}, seed ${a.seed}, ${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
  );
  return 0;
}
