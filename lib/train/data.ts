/**
 * The run's training data: this process's shard of each global batch (data-parallel ranks read
 * disjoint samples), continuing from the checkpoint's position when the run resumes.
 */
import type { Recipe } from '../config/recipe';
import { createDataset } from '../data/dataset';
import { DataLoader } from '../data/loader';
import { loaderPosition, type ResumePoint } from './resume';

export async function openTrainingLoader(
  recipe: Recipe,
  dp: { readonly torchThreads: number | undefined; readonly shard: { rank: number; worldSize: number } | undefined },
  resumed: ResumePoint | undefined,
  log: (line: string) => void,
): Promise<DataLoader> {
  const t = recipe.train;
  const dataset = await createDataset({ ...recipe.data, batchSize: t.batchSize, seed: recipe.data.seed ?? t.seed }, { onWarning: log });
  return new DataLoader(dataset, {
    batchSize: t.batchSize,
    torchThreads: t.threads ?? dp.torchThreads,
    shard: dp.shard,
    onWarning: log,
    state: loaderPosition(resumed),
  });
}
