/**
 * The run's training data: this process's shard of each global batch (data-parallel ranks read
 * disjoint samples), continuing from the checkpoint's position when the run resumes. With data.buckets the
 * buckets' sides are multiples of the model's downsampling factor, and the plan names each bucket's count.
 */
import type { Recipe } from '../config/recipe';
import { describeBuckets } from '../data/buckets';
import { createDataset } from '../data/dataset';
import { DataLoader } from '../data/loader';
import { ConfigError } from '../errors';
import { loaderPosition, type ResumePoint } from './resume';

export async function openTrainingLoader(
  recipe: Recipe,
  dp: { readonly torchThreads: number | undefined; readonly shard: { rank: number; worldSize: number } | undefined },
  resumed: ResumePoint | undefined,
  log: (line: string) => void,
  /** Image pixels per position at the U-Net's deepest level (its downsampling × a latent model's VAE scale factor): bucket sides are multiples of it. */
  sizeMultiple = 1,
): Promise<DataLoader> {
  const t = recipe.train;
  const dataset = await createDataset(
    { ...recipe.data, batchSize: t.batchSize, seed: recipe.data.seed ?? t.seed },
    { onWarning: log, bucketStep: sizeMultiple },
  );
  if (dataset.buckets !== null) {
    const b = dataset.buckets;
    if (b.step % sizeMultiple !== 0)
      throw new ConfigError(`data.buckets.step: expected a multiple of the model's downsampling factor, ${sizeMultiple} pixels, but found ${b.step}`);
    log(`aspect-ratio buckets (sides multiples of ${b.step} px, about ${dataset.options.resolution}² pixels): ${describeBuckets(b)} images`);
  }
  const loader = new DataLoader(dataset, {
    batchSize: t.batchSize,
    torchThreads: t.threads ?? dp.torchThreads,
    shard: dp.shard,
    onWarning: log,
    state: loaderPosition(resumed),
  });
  // Now, not at the first batch: the held-out inputs and the step-0 validation come before it.
  await loader.applyThreadBudget();
  return loader;
}
