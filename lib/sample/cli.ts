/**
 * `npm run sample -- --model <folder> [--lora <file>] [--scheduler ddpm|ddim|pndm|euler|dpmpp]
 * [--steps N] [--seed S] [--count N] [--class-label K] [--eta E] --out grid.png`: a PNG grid.
 * The model folder's own scheduler (or DDPM defaults) unless --scheduler picks another class.
 */
import * as path from 'path';
import type { Writable } from 'stream';
import { ConfigError, formatCliError } from '../errors';
import { applyLoraFile } from '../models/lora';
import { loadUNet, unknownConfigKeysWarning } from '../models/unet';
import { isTextToImageFolder, openFolderScheduler, resolveModelFolder } from '../models/model-folder';
import { checkOutputFile } from '../util/output-folder';
import { toImages, writeGrid } from './image';
import { sample } from './pipeline';

const SCHEDULERS = {
  ddpm: 'DDPMScheduler',
  ddim: 'DDIMScheduler',
  pndm: 'PNDMScheduler',
  euler: 'EulerDiscreteScheduler',
  dpmpp: 'DPMSolverMultistepScheduler',
} as const;

interface Args {
  model?: string;
  lora?: string;
  scheduler?: keyof typeof SCHEDULERS;
  steps?: number;
  seed: number;
  count: number;
  classLabel?: number;
  eta?: number;
  out?: string;
  stack: boolean;
  prompts: string[];
  negativePrompts: string[];
  guidance?: number;
  clipSkip?: number;
  height?: number;
  width?: number;
  latents?: string;
}

function intArg(name: string, value: string | undefined, min: number): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) throw new ConfigError(`${name}: expected an integer ≥ ${min} but found ${JSON.stringify(value)}`);
  return n;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { seed: 0, count: 16, stack: false, prompts: [], negativePrompts: [] };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = () => argv[++i];
    if (k === '--model') a.model = v();
    else if (k === '--lora') a.lora = v();
    else if (k === '--scheduler') {
      const s = v();
      if (!s || !(s in SCHEDULERS)) throw new ConfigError(`--scheduler: expected one of ${Object.keys(SCHEDULERS).join(', ')} but found ${JSON.stringify(s)}`);
      a.scheduler = s as keyof typeof SCHEDULERS;
    } else if (k === '--steps') a.steps = intArg('--steps', v(), 1);
    else if (k === '--seed') a.seed = intArg('--seed', v(), 0);
    else if (k === '--count') a.count = intArg('--count', v(), 1);
    else if (k === '--class-label') a.classLabel = intArg('--class-label', v(), 0);
    else if (k === '--eta') a.eta = Number(v());
    else if (k === '--out') a.out = v();
    else if (k === '--stack') a.stack = true;
    else if (k === '--prompt') a.prompts.push(v() ?? '');
    else if (k === '--negative-prompt') a.negativePrompts.push(v() ?? '');
    else if (k === '--guidance') {
      const g = Number(v());
      if (!Number.isFinite(g)) throw new ConfigError(`--guidance: expected a number but found ${JSON.stringify(argv[i])}`);
      a.guidance = g;
    } else if (k === '--clip-skip') a.clipSkip = intArg('--clip-skip', v(), 0);
    else if (k === '--height') a.height = intArg('--height', v(), 1);
    else if (k === '--width') a.width = intArg('--width', v(), 1);
    else if (k === '--latents') a.latents = v();
    else throw new ConfigError(`unknown argument ${k} (see the usage in README: npm run sample -- --model <folder> --out grid.png)`);
  }
  if (!a.model) throw new ConfigError('--model <folder> is required');
  if (!a.out) throw new ConfigError('--out <grid.png> is required');
  return a;
}

export async function runSampleCli(argv: readonly string[], out: Writable, err: Writable): Promise<number> {
  let stack = argv.includes('--stack');
  try {
    const a = parseArgs(argv);
    stack = a.stack;
    // The image is written after sampling: a bad --out must fail now, not minutes later.
    await checkOutputFile(a.out!, '--out');
    if (isTextToImageFolder(path.resolve(a.model!))) {
      const { runTxt2ImgCli } = await import('./txt2img-cli');
      return await runTxt2ImgCli(
        {
          model: path.resolve(a.model!),
          out: a.out!,
          prompts: a.prompts,
          negativePrompts: a.negativePrompts,
          guidance: a.guidance ?? 7.5,
          steps: a.steps ?? 50,
          seed: a.seed,
          clipSkip: a.clipSkip ?? null,
          height: a.height,
          width: a.width,
          latents: a.latents,
          lora: a.lora,
          schedulerClass: a.scheduler ? SCHEDULERS[a.scheduler] : undefined,
          eta: a.eta,
        },
        out,
        err,
      );
    }
    if (a.prompts.length > 0) throw new ConfigError(`--prompt: ${a.model} is not a text-to-image pipeline folder (model_index.json with text_encoder/ and vae/)`);
    const warn = (message: string) => void err.write(`${message}\n`);
    const folder = resolveModelFolder(path.resolve(a.model!), warn);
    using unet = await loadUNet(folder.unetDir);
    const unknownKeys = unknownConfigKeysWarning(unet, path.join(folder.unetDir, 'config.json'));
    if (unknownKeys !== undefined) warn(unknownKeys);
    if (a.lora) {
      await applyLoraFile(unet, a.lora);
    }
    const className = a.scheduler ? SCHEDULERS[a.scheduler] : undefined;
    using scheduler = await openFolderScheduler(folder, className);
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
    await writeGrid(a.out!, await toImages(samples), { scale: unet.config.in_channels === 1 ? 2 : 1 });
    out.write(`wrote ${a.out} (${a.count} samples, ${scheduler.className}, ${steps} steps, seed ${a.seed}, ${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
    return 0;
  } catch (error) {
    err.write(`${formatCliError('sample', error, stack)}\n`);
    return 1;
  }
}
