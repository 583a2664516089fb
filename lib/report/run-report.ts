/**
 * The report of one fine-tuning run (<output>/report.html): where it stands, the loss, held-out loss,
 * learning-rate and throughput curves (inline SVG), the validation grids by step (PNG files beside it,
 * referenced relatively), the checkpoints, peak memory, the plan and the recipe. Self-contained: the folder
 * can be copied or opened from anywhere. Pure: the caller collects the numbers and writes the file.
 */
import { renderReport, type Block, type Section } from './html';
import { lineChart, type Series } from './svg-chart';

export type RunStatus = 'running' | 'completed' | 'aborted' | 'failed';

export interface RunReport {
  /** The output folder (shown; every path below is relative to it). */
  output: string;
  status: RunStatus;
  /** What stopped a failed run. */
  error?: string;
  step: number;
  totalSteps: number;
  /** Wall time of this process's run so far. */
  elapsedSeconds: number;
  /** Peak resident set size of the process (bytes). */
  peakRssBytes: number;
  /** When the report was written (ISO 8601). */
  updated: string;
  /** One point per optimizer step. */
  steps: ReadonlyArray<{ step: number; loss: number; lr: number; imagesPerSecond: number }>;
  heldOut: ReadonlyArray<{ step: number; loss: number }>;
  /** Validation grids, relative paths; `rows` captions each grid row (prompts, classes). */
  grids: ReadonlyArray<{ step: number; file: string; rows: readonly string[] }>;
  /** How the grids were sampled (scheduler, steps, seed, weights), or undefined when the run makes none. */
  gridSettings?: string;
  /** Checkpoint folders present, relative. */
  checkpoints: readonly string[];
  /** The final model's files and folders, relative (a completed run). */
  outputs: readonly string[];
  /** The freeze/LoRA plan as `--dry-run` prints it. */
  plan: string;
  /** The recipe as the run read it (JSON). */
  recipe: string;
}

/** Seconds between reloads of a running run's report in a browser. */
const REFRESH_SECONDS = 30;
/** Points drawn per curve at most; longer runs are averaged into this many buckets. */
const MAX_POINTS = 800;

/** Wall time in words: 42 s, 3 min 5 s, 1 h 4 min (a run's report, the transfer studies). */
export function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

/** At most `max` points: consecutive points averaged in equal buckets (non-finite values left out of the means). */
export function thinPoints(points: ReadonlyArray<readonly [number, number]>, max = MAX_POINTS): Array<readonly [number, number]> {
  if (points.length <= max) return [...points];
  const out: Array<readonly [number, number]> = [];
  const size = points.length / max;
  for (let b = 0; b < max; b++) {
    const bucket = points.slice(Math.floor(b * size), Math.floor((b + 1) * size));
    const finite = bucket.filter(([, y]) => Number.isFinite(y));
    if (finite.length === 0) continue;
    const x = finite.reduce((s, [px]) => s + px, 0) / finite.length;
    const y = finite.reduce((s, [, py]) => s + py, 0) / finite.length;
    out.push([x, y]);
  }
  return out;
}

function chart(series: Series[], title: string, yLabel: string, logY: boolean): Block {
  return { kind: 'svg', svg: lineChart(series, { title, xLabel: 'optimizer step', yLabel, logY, width: 500, height: 300 }) };
}

const last = <T>(list: readonly T[]): T | undefined => list[list.length - 1];

export function renderRunReport(r: RunReport): string {
  const lastStep = last(r.steps);
  const lastHeldOut = last(r.heldOut);
  const summary: Array<[string, string]> = [
    ['status', r.status === 'failed' && r.error ? `failed: ${r.error}` : r.status],
    ['step', `${r.step} of ${r.totalSteps}`],
    ['training loss (last step)', lastStep ? lastStep.loss.toFixed(5) : '—'],
    [
      'held-out loss',
      lastHeldOut ? `${r.heldOut[0]!.loss.toFixed(5)} (step ${r.heldOut[0]!.step}) → ${lastHeldOut.loss.toFixed(5)} (step ${lastHeldOut.step})` : '—',
    ],
    ['images/s', lastStep ? lastStep.imagesPerSecond.toFixed(1) : '—'],
    ['wall time (this process)', duration(r.elapsedSeconds)],
    ['peak memory (RSS)', bytes(r.peakRssBytes)],
    ['output', r.output],
    ['updated', r.updated],
  ];
  const stepPoints = (pick: (p: RunReport['steps'][number]) => number) => thinPoints(r.steps.map((p) => [p.step, pick(p)] as const));
  const sections: Section[] = [
    { title: 'Run', blocks: [{ kind: 'table', header: ['what', 'value'], rows: summary }] },
    {
      title: 'Curves',
      blocks:
        r.steps.length === 0 && r.heldOut.length === 0
          ? [{ kind: 'text', text: 'No step has run yet.' }]
          : [
              chart(
                [
                  { name: 'training loss', color: '#1f77b4', points: stepPoints((p) => p.loss) },
                  { name: 'held-out loss', color: '#d62728', points: r.heldOut.map((v) => [v.step, v.loss] as const) },
                ],
                'Loss',
                'loss',
                true,
              ),
              chart([{ name: 'learning rate', color: '#2ca02c', points: stepPoints((p) => p.lr) }], 'Learning rate', 'lr', false),
              chart([{ name: 'images/s', color: '#9467bd', points: stepPoints((p) => p.imagesPerSecond) }], 'Throughput', 'images/s', false),
            ],
    },
    {
      title: 'Validation grids',
      blocks:
        r.grids.length === 0
          ? [
              {
                kind: 'text',
                text: r.gridSettings === undefined ? 'This run samples no validation grids (validation.prompts, classLabels or numImages).' : 'No grid yet.',
              },
            ]
          : [
              ...(r.gridSettings === undefined ? [] : [{ kind: 'text', text: r.gridSettings } as const]),
              ...gridRowsNote(r.grids),
              { kind: 'images', items: [...r.grids].sort((a, b) => a.step - b.step).map((g) => ({ src: g.file, caption: `step ${g.step}` })) },
            ],
    },
    {
      title: 'Checkpoints and outputs',
      blocks: [
        {
          kind: 'table',
          header: ['what', 'path (in the output folder)'],
          rows: [
            ...r.checkpoints.map((c) => ['checkpoint', c]),
            ...r.outputs.map((o) => ['final model', o]),
            ['metrics (one JSON line per step)', 'metrics.jsonl'],
          ],
        },
      ],
    },
    { title: 'What trains', blocks: [{ kind: 'pre', text: r.plan }] },
    { title: 'Recipe', blocks: [{ kind: 'pre', text: r.recipe }] },
  ];
  return renderReport(`difftune fine-tuning: ${r.output}`, sections, r.status === 'running' ? { refreshSeconds: REFRESH_SECONDS } : {});
}

/** The rows of the grids (prompts, classes), listed once when every grid has the same. */
function gridRowsNote(grids: RunReport['grids']): Block[] {
  const rows = grids.find((g) => g.rows.length > 0)?.rows;
  if (rows === undefined) return [];
  return [{ kind: 'text', text: `Rows, top to bottom: ${rows.map((x, i) => `${i + 1}. ${x}`).join('; ')}` }];
}
