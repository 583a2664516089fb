/**
 * `npm run sample -- --model <Stable Diffusion folder> --prompt "..." [--prompt "..."]
 * [--negative-prompt "..."] [--guidance 7.5] [--steps 50] [--seed S] [--clip-skip K]
 * [--height H --width W] [--latents file.safetensors] [--scheduler ...] [--lora file] --out image.png`:
 * text-to-image sampling with classifier-free guidance; several prompts give a grid.
 */
import type { Writable } from 'stream';
import { SafetensorsFile } from '../checkpoint/safetensors';
import type { SchedulerClassName } from '../config/scheduler';
import { ConfigError } from '../errors';
import { applyLoraFile } from '../models/lora';
import { loadStableDiffusion } from '../models/stable-diffusion';
import { Tensor } from '../native/tensor';
import { describeLoad } from '../models/native-model';
import { toImages, writeGrid } from './image';
import { txt2img } from './txt2img';

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
  lora?: string;
  schedulerClass?: SchedulerClassName;
  eta?: number;
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

export async function runTxt2ImgCli(a: Txt2ImgArgs, out: Writable, err: Writable): Promise<number> {
  if (a.prompts.length === 0) throw new ConfigError(`--prompt: ${a.model} is a text-to-image pipeline; give at least one --prompt "..."`);
  if (a.negativePrompts.length > 1 && a.negativePrompts.length !== a.prompts.length) {
    throw new ConfigError(`--negative-prompt: expected one, or one per --prompt (${a.prompts.length}), but found ${a.negativePrompts.length}`);
  }
  using sd = await loadStableDiffusion(a.model, { schedulerClass: a.schedulerClass });
  if (a.lora) {
    await applyLoraFile(sd.unet, a.lora);
  }
  using latents = a.latents ? await readLatents(a.latents) : undefined;
  const started = Date.now();
  const result = await txt2img(sd, {
    prompt: a.prompts,
    negativePrompt: a.negativePrompts.length === 0 ? null : a.negativePrompts.length === 1 ? a.negativePrompts[0]! : a.negativePrompts,
    guidanceScale: a.guidance,
    steps: a.steps,
    seed: a.seed,
    clipSkip: a.clipSkip,
    height: a.height,
    width: a.width,
    latents,
    eta: a.eta,
    onStep: ({ index, total }) => void err.write(`\rsampling: step ${index + 1}/${total}`),
  });
  try {
    err.write('\n');
    await writeGrid(a.out, await toImages(result.images), { padding: a.prompts.length === 1 ? 0 : 2 });
  } finally {
    result.dispose();
  }
  out.write(
    `wrote ${a.out} (${a.prompts.length} image${a.prompts.length === 1 ? '' : 's'}, ${sd.scheduler.className}, ${a.steps} steps, guidance ${a.guidance}, seed ${a.seed}, ${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
  );
  return 0;
}
  for (const [name, model] of [
    ['U-Net', sd.unet],
    ['VAE', sd.vae],
    ['text encoder', sd.textEncoder],
  ] as const) {
    if (model.loadStats !== undefined) err.write(`loaded the ${name}: ${describeLoad(model.loadStats)}\n`);
  }
