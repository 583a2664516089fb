/**
 * Every run's <output>/report.html (lib/report/run-report.ts renders it): rank 0 keeps each step's loss,
 * learning rate and throughput, and rewrites the report atomically at every validation and when the run
 * ends (completed, stopped or failed), so a browser can watch it. A resumed run starts from the steps and
 * held-out losses metrics.jsonl holds up to its checkpoint, and the grids already in validation/.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { listCheckpoints } from '../checkpoint/train-state';
import type { Recipe } from '../config/recipe';
import { renderRunReport, type RunReport, type RunStatus } from '../report/run-report';
import { writeAll, writeFileAtomically } from '../util/atomic-write';
import type { FinetuneProgress } from './loop';
import type { ValidationGrid } from './validation-images';

export const REPORT_FILE = 'report.html';

type StepPoint = RunReport['steps'][number];
type HeldOutPoint = RunReport['heldOut'][number];

/** What the report reads from the rest of the run each time it is written. */
export interface RunReportSources {
  heldOut(): readonly HeldOutPoint[];
  grids(): readonly ValidationGrid[];
  /** How the grids are sampled, or undefined when the run makes none. */
  gridSettings: string | undefined;
}

export class RunReportWriter {
  readonly file: string;
  readonly #steps: StepPoint[] = [];
  #earlierHeldOut: HeldOutPoint[] = [];
  #earlierGrids: Array<{ step: number; file: string; rows: string[] }> = [];
  #step: number;
  readonly #started = performance.now();

  private constructor(
    private readonly o: { recipe: Recipe; plan: string; sources: RunReportSources; enabled: boolean },
    start: number,
  ) {
    this.file = path.join(o.recipe.output, REPORT_FILE);
    this.#step = start;
  }

  /** The writer of a run starting at step `start` (a resumed run reads its earlier curves back). */
  static async open(o: { recipe: Recipe; plan: string; sources: RunReportSources; enabled: boolean; start: number }): Promise<RunReportWriter> {
    const writer = new RunReportWriter(o, o.start);
    if (o.enabled && o.start > 0) await writer.readEarlier(o.start);
    return writer;
  }

  /** Records a step (call it for every step's progress). */
  onStep(p: FinetuneProgress): void {
    this.#step = p.step;
    this.#steps.push({ step: p.step, loss: p.loss, lr: p.lr, imagesPerSecond: p.imagesPerSecond });
  }

  /** Rewrites report.html (rank 0): while running at each validation, then once more with how the run ended. */
  async write(status: RunStatus, extra: { error?: string; outputs?: readonly string[] } = {}): Promise<void> {
    if (!this.o.enabled) return;
    const { recipe, plan, sources } = this.o;
    const output = recipe.output;
    const grids = new Map(this.#earlierGrids.map((g) => [g.step, g]));
    for (const g of sources.grids()) grids.set(g.step, g);
    const heldOut = new Map(this.#earlierHeldOut.map((v) => [v.step, v]));
    for (const v of sources.heldOut()) heldOut.set(v.step, v);
    const report: RunReport = {
      output,
      status,
      error: extra.error,
      step: this.#step,
      totalSteps: recipe.train.steps,
      elapsedSeconds: (performance.now() - this.#started) / 1000,
      // maxRSS is in kibibytes (getrusage's ru_maxrss).
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      updated: new Date().toISOString(),
      steps: this.#steps,
      heldOut: [...heldOut.values()].sort((a, b) => a.step - b.step),
      grids: [...grids.values()],
      gridSettings: sources.gridSettings,
      checkpoints: (await listCheckpoints(output)).map((c) => path.relative(output, c.dir)),
      outputs: extra.outputs ?? [],
      plan,
      recipe: JSON.stringify(recipe, null, 2),
    };
    const html = Buffer.from(renderRunReport(report), 'utf8');
    await writeFileAtomically(this.file, (handle) => writeAll(handle, html));
  }

  /** Steps, held-out losses and grids of the run this one resumes, up to its checkpoint's step. */
  private async readEarlier(start: number): Promise<void> {
    const steps = new Map<number, StepPoint>();
    const heldOut = new Map<number, HeldOutPoint>();
    for (const entry of await readMetrics(path.join(this.o.recipe.output, 'metrics.jsonl'))) {
      const step = entry.step;
      if (typeof step !== 'number' || step > start) continue;
      if (typeof entry.validationLoss === 'number') heldOut.set(step, { step, loss: entry.validationLoss });
      else if (typeof entry.loss === 'number' && typeof entry.lr === 'number' && typeof entry.imagesPerSecond === 'number')
        steps.set(step, { step, loss: entry.loss, lr: entry.lr, imagesPerSecond: entry.imagesPerSecond });
    }
    this.#steps.push(...[...steps.values()].sort((a, b) => a.step - b.step));
    this.#earlierHeldOut = [...heldOut.values()];
    const names = await fs.readdir(path.join(this.o.recipe.output, 'validation')).catch(() => [] as string[]);
    for (const name of names) {
      const m = /^step-(\d+)\.png$/.exec(name);
      if (m !== null && Number(m[1]) <= start) this.#earlierGrids.push({ step: Number(m[1]), file: path.posix.join('validation', name), rows: [] });
    }
  }
}

/** metrics.jsonl's entries; a line that does not parse (a write cut short by a crash) is left out. */
async function readMetrics(file: string): Promise<Array<Record<string, unknown>>> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  const entries: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const value: unknown = JSON.parse(line);
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) entries.push(value as Record<string, unknown>);
    } catch {
      // a partial last line
    }
  }
  return entries;
}
