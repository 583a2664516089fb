/** metrics.jsonl: one JSON object per line (training loss per step, held-out loss when measured). */
import { promises as fs } from 'fs';
import * as path from 'path';
import { withFileErrors } from '../util/fs-errors';
import { createFolder } from '../util/output-folder';
import type { FinetuneProgress } from './loop';
import { peakRssBytes } from './memory-plan';

export class MetricsLog {
  constructor(readonly file: string) {}

  async write(entry: Record<string, number | boolean | string>): Promise<void> {
    await createFolder(path.dirname(this.file));
    await withFileErrors(this.file, 'write', () => fs.appendFile(this.file, `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`));
  }
}

/**
 * Rank 0's record of each step: the caller's progress callback, then a metrics line. The other ranks
 * (`enabled` false) record nothing.
 */
export function stepReporter(
  metrics: MetricsLog,
  onProgress: ((progress: FinetuneProgress) => void) | undefined,
  enabled: boolean,
): (progress: FinetuneProgress) => Promise<void> {
  return async (p) => {
    if (!enabled) return;
    onProgress?.(p);
    // The process's peak resident memory so far, to hold against the memory plan (lib/train/memory-plan.ts).
    const peakRssMb = Math.round(peakRssBytes() / 1e5) / 10;
    await metrics.write({ step: p.step, loss: p.loss, lr: p.lr, gradNorm: p.gradNorm, imagesPerSecond: p.imagesPerSecond, skipped: p.skipped, peakRssMb });
  };
}
