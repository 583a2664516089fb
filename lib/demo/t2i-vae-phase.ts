/**
 * Phase 1 of the text-to-image pretraining (t2i-base.ts): the pipeline's VAE trained on the captioned
 * images with trainVae (lib/train/vae-training.ts), its held-out reconstruction measured, and the
 * trained weights written over the pipeline's vae/ with scaling_factor = 1 / std of the held-out latents.
 * Each step's losses go to <workDir>/metrics.jsonl. trainVae keeps no optimizer checkpoint, so a phase
 * stopped part-way starts again from the pipeline's initial VAE when the run resumes.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { lrScheduleSchema } from '../config/lr-schedule';
import { parseConfigObject } from '../config/schema-object';
import { createDataset } from '../data/dataset';
import { loadVae } from '../models/vae';
import { DEFAULT_KL_WEIGHT, saveTrainedVae, trainVae, type VaeMeasure } from '../train/vae-training';
import { createFolder } from '../util/output-folder';

const posInt = z.number().int().positive();

/** The recipe's `vae` section. */
export const vaePhaseSchema = z
  .object({
    steps: posInt,
    batchSize: posInt,
    lr: z.number().positive().finite(),
    lrSchedule: lrScheduleSchema.optional(),
    klWeight: z.number().min(0).finite().optional(),
    reconstructionLoss: z.enum(['mse', 'l1']).optional(),
    maxGradNorm: z.number().min(0).finite().optional(),
    weightDecay: z.number().min(0).finite().optional(),
    seed: z.number().int().nonnegative().default(0),
  })
  .strict();

const measureSchema = z.object({ images: z.number(), reconstruction: z.number(), kl: z.number(), latentMean: z.number(), latentStd: z.number() });

/** What phase 1 leaves for the model card (<workDir>/result.json). */
export const vaePhaseResultSchema = z.object({
  steps: z.number().int().nonnegative(),
  batchSize: z.number().int().positive(),
  lr: z.number(),
  klWeight: z.number(),
  reconstructionLoss: z.enum(['mse', 'l1']),
  skippedSteps: z.number().int().nonnegative(),
  seconds: z.number(),
  /** The last step's training loss and its two terms. */
  finalLoss: z.object({ loss: z.number(), reconstruction: z.number(), kl: z.number() }).nullable(),
  initialHeldOut: measureSchema,
  heldOut: measureSchema,
  scalingFactor: z.number().positive(),
});

export type VaePhaseResult = z.infer<typeof vaePhaseResultSchema>;

export interface VaePhaseOptions {
  /** The pipeline whose vae/ trains and is replaced. */
  pipelineDir: string;
  /** The phase's own folder (metrics.jsonl). */
  workDir: string;
  trainDir: string;
  testDir: string;
  signal?: AbortSignal;
  log: (line: string) => void;
}

export type VaePhaseOutcome = { status: 'completed'; result: VaePhaseResult } | { status: 'aborted'; steps: number };

const toMeasure = (m: VaeMeasure): VaePhaseResult['heldOut'] => ({
  images: m.images,
  reconstruction: m.reconstruction,
  kl: m.kl,
  latentMean: m.latentMean,
  latentStd: m.latentStd,
});

export async function trainVaePhase(section: unknown, options: VaePhaseOptions): Promise<VaePhaseOutcome> {
  const o = parseConfigObject(vaePhaseSchema, (section ?? {}) as Record<string, unknown>, 'vae');
  const vaeDir = path.join(options.pipelineDir, 'vae');
  using vae = await loadVae(vaeDir);
  const resolution = typeof vae.config.sample_size === 'number' ? vae.config.sample_size : vae.config.sample_size[0]!;
  // metadata.jsonl's order (classes interleaved); the VAE ignores the captions.
  const data = { resolution, channels: vae.config.in_channels };
  const images = await createDataset({ ...data, path: options.trainDir, seed: o.seed }, { onWarning: options.log });
  const heldOut = await createDataset({ ...data, path: options.testDir }, { onWarning: options.log });
  await fs.rm(options.workDir, { recursive: true, force: true });
  await createFolder(options.workDir);
  const metrics = await fs.open(path.join(options.workDir, 'metrics.jsonl'), 'w');
  let r;
  try {
    r = await trainVae(vae, {
      images,
      heldOut,
      steps: o.steps,
      batchSize: o.batchSize,
      lr: o.lr,
      lrSchedule: o.lrSchedule,
      klWeight: o.klWeight,
      reconstructionLoss: o.reconstructionLoss,
      maxGradNorm: o.maxGradNorm,
      weightDecay: o.weightDecay,
      seed: o.seed,
      log: options.log,
      signal: options.signal,
      onStep: async (s) => {
        const line = {
          step: s.step + 1,
          time: new Date().toISOString(),
          loss: s.loss,
          reconstruction: s.reconstruction,
          kl: s.kl,
          lr: s.lr,
          skipped: s.skipped,
        };
        await metrics.write(`${JSON.stringify(line)}\n`);
      },
    });
  } finally {
    await metrics.close();
  }
  if (r.steps < o.steps) return { status: 'aborted', steps: r.steps };
  await saveTrainedVae(vae, vaeDir, { scalingFactor: r.scalingFactor });
  const last = r.losses[r.losses.length - 1];
  return {
    status: 'completed',
    result: {
      steps: r.steps,
      batchSize: o.batchSize,
      lr: o.lr,
      klWeight: o.klWeight ?? DEFAULT_KL_WEIGHT,
      reconstructionLoss: o.reconstructionLoss ?? 'mse',
      skippedSteps: r.skippedSteps,
      seconds: r.seconds,
      finalLoss: last === undefined ? null : { loss: last.loss, reconstruction: last.reconstruction, kl: last.kl },
      initialHeldOut: toMeasure(r.initialHeldOut),
      heldOut: toMeasure(r.heldOut),
      scalingFactor: r.scalingFactor,
    },
  };
}
