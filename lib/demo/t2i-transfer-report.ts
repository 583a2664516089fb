/**
 * What the text-to-image transfer demo shows: its charts (held-out loss, right vs wrong captions), the
 * sentences and verdicts of its tables, and report.html, from the summary t2i-transfer.ts measured.
 */
import { renderReport, type Section } from '../report/html';
import { duration } from '../report/run-report';
import { lineChart, type Series } from '../report/svg-chart';
import type { T2iDemoRun, T2iDemoSummary } from './t2i-transfer-summary';
import { writeChart } from './transfer-study';

/** The per-prompt grids' first row. */
export const BASE_ROW = 'base, before training';

const COLORS = { 'fine-tuned': '#1f77b4', 'from scratch': '#d62728', LoRA: '#2ca02c' } as const;
/** The wrong captions' curves: the run's colour, lighter. */
const LIGHT = { 'fine-tuned': '#9ecae1', 'from scratch': '#fc9f9f', LoRA: '#a1d99b' } as const;

/** A loss in the report's tables (n/a: not finite). */
export const lossText = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(4));
/** A relative gap as a signed percentage. */
export const percentText = (x: number | null): string => (x === null ? 'n/a' : `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`);
/** Below this relative gap either way the two losses are taken as the same: the captions barely matter. */
const STEER_THRESHOLD = 0.01;

/** "the captions steer it: +4.2% with the wrong ones" and the like, from the relative gap. */
export function steerVerdict(relativeGap: number | null): string {
  if (relativeGap === null) return 'not measured';
  if (relativeGap > STEER_THRESHOLD) return `the captions steer it: ${percentText(relativeGap)} with the wrong ones`;
  if (relativeGap < -STEER_THRESHOLD) return `the wrong captions do better (${percentText(relativeGap)}): the words are not learnt`;
  return `no clear difference (${percentText(relativeGap)}): the captions barely steer it`;
}

export async function writeCharts(out: string, runs: readonly T2iDemoRun[], heldOut: number): Promise<void> {
  const pts = (r: T2iDemoRun, key: 'loss' | 'wrongCaptionLoss') => r.curve.map((c) => [c.step, c[key] ?? NaN] as const);
  await writeChart(
    out,
    'loss',
    lineChart(
      runs.map((r) => ({ name: r.name, color: COLORS[r.name], points: pts(r, 'loss') })),
      {
        title: `Held-out loss on the new classes (${heldOut} images with their captions, fixed noise and timesteps)`,
        xLabel: 'training step',
        yLabel: 'held-out loss',
        logY: true,
        width: 760,
        height: 460,
      },
    ),
  );
  // Short legend names (the legend is narrow): the title and the report say which is which. The light
  // curves first, so that where the two coincide (captions not read) the dark one shows on top.
  const series: Series[] = [
    ...runs.map((r) => ({ name: `${r.name}, wrong`, color: LIGHT[r.name], points: pts(r, 'wrongCaptionLoss') })),
    ...runs.map((r) => ({ name: r.name, color: COLORS[r.name], points: pts(r, 'loss') })),
  ];
  await writeChart(
    out,
    'captions',
    lineChart(series, {
      title: "Held-out loss with each image's own caption (dark) and another class's (light, wrong)",
      xLabel: 'training step',
      yLabel: 'held-out loss',
      logY: true,
      width: 760,
      height: 460,
    }),
  );
}

/** Whether and when the fine-tuned run reached the from-scratch run's final held-out loss, in a sentence. */
export function matchSentence(s: Pick<T2iDemoSummary, 'stepsToMatchScratch' | 'steps' | 'runs'>): string {
  const target = lossText(s.runs[1].heldOutLoss);
  if (s.stepsToMatchScratch === null) return `The fine-tuned run did not reach the from-scratch run's final held-out loss (${target}) within the budget.`;
  // The base before any step is already as good: worth saying in words, not as "after 0 steps".
  if (s.stepsToMatchScratch === 0) return `The base, before any fine-tuning, was already below the from-scratch run's final held-out loss (${target}).`;
  return `The fine-tuned run reached the from-scratch run's final held-out loss (${target}) after ${Math.round(s.stepsToMatchScratch)} of ${s.steps} steps.`;
}

/** report.html: the result, the curves, whether captions steer, the grids, the guidance sweep, how the runs were set up. */
export function renderT2iDemoReport(s: T2iDemoSummary, plan: string): string {
  const [ft, scratch, lora] = s.runs;
  const classes = s.target.classes.map((c) => `${c.key} ("${c.prompt}")`).join(', ');
  const steerWords = (name: string, c: T2iDemoRun['captionsSteer']) =>
    `${name}: ${lossText(c.right)} with the right captions, ${lossText(c.wrong)} with another class's — ${steerVerdict(c.relativeGap)}`;
  const sections: Section[] = [
    {
      title: 'Result',
      blocks: [
        {
          kind: 'text',
          text: `The base pipeline (${s.base}) never saw ${classes}: none of their nouns occurs in its captions. Each run trains ${s.steps} steps of batch ${s.batchSize} on ${s.target.trainImages} captioned images of them, with the base's text encoder and VAE frozen (their weights' sha256 the same before and after every run), and is measured on ${s.validation.samples} held-out images every ${s.validation.every} steps.`,
        },
        {
          kind: 'text',
          text: `Held-out loss at the last step: fine-tuned ${lossText(ft.heldOutLoss)}, from scratch ${lossText(scratch.heldOutLoss)}, LoRA ${lossText(lora.heldOutLoss)} (the base before any training: ${lossText(s.baseHeldOut.right)}). ${matchSentence(s)}`,
        },
        {
          kind: 'table',
          header: ['run', 'trainable parameters', '% of the U-Net', 'learning rate', 'held-out loss', "another class's captions", 'gap', 's / step'],
          rows: [
            [BASE_ROW, '—', '—', '—', lossText(s.baseHeldOut.right), lossText(s.baseHeldOut.wrong), percentText(s.baseHeldOut.relativeGap), '—'],
            ...s.runs.map((r) => [
              r.name,
              r.trainableParams.toLocaleString('en-US'),
              r.trainablePercent.toFixed(1),
              `${r.lr} (${r.lrSchedule})`,
              lossText(r.heldOutLoss),
              lossText(r.captionsSteer.wrong),
              percentText(r.captionsSteer.relativeGap),
              r.secondsPerStep.toFixed(3),
            ]),
          ],
        },
      ],
    },
    { title: 'Held-out loss', blocks: [{ kind: 'images', items: [{ src: s.plots.loss, caption: 'held-out loss vs step (log scale)' }] }] },
    {
      title: 'Do the captions steer the images?',
      blocks: [
        {
          kind: 'text',
          text: "At every validation the same held-out images are measured twice, with the same noise and timesteps: with each image's own caption, and with the caption drawn for the next held-out image of another target class (validation.wrongCaptions). A model that reads its captions denoises an image better when told what it is: the wrong captions' loss is higher, and the gap grows as the new words come to mean the new objects.",
        },
        { kind: 'text', text: `${steerWords('The base, before training', s.baseHeldOut)}.` },
        ...[ft, scratch, lora].map((r): { kind: 'text'; text: string } => ({ kind: 'text', text: `${steerWords(r.name, r.captionsSteer)}.` })),
        { kind: 'images', items: [{ src: s.plots.captions, caption: "held-out loss, right captions (dark) vs another class's (light)" }] },
        {
          kind: 'table',
          header: ['step', 'fine-tuned', 'wrong captions', 'gap', 'from scratch', 'wrong captions', 'gap'],
          rows: ft.curve.map((c, i) => {
            const sc = scratch.curve[i];
            const g = (x: { loss: number | null; wrongCaptionLoss: number | null } | undefined) =>
              x === undefined || x.loss === null || x.wrongCaptionLoss === null || x.loss === 0 ? null : (x.wrongCaptionLoss - x.loss) / x.loss;
            return [
              c.step,
              lossText(c.loss),
              lossText(c.wrongCaptionLoss),
              percentText(g(c)),
              lossText(sc?.loss ?? null),
              lossText(sc?.wrongCaptionLoss ?? null),
              percentText(g(sc)),
            ];
          }),
        },
      ],
    },
    {
      title: `Samples, one grid per prompt (${s.samples.scheduler}, ${s.samples.steps} steps, guidance ${s.samples.guidanceScale}, seed ${s.samples.seed})`,
      blocks: [
        {
          kind: 'text',
          text: `Rows, top to bottom: ${s.samples.rows.join('; ')}. Every row starts from the same noise, so the rows differ by their model alone.`,
        },
        { kind: 'images', items: s.samples.grids.map((g) => ({ src: g.file, caption: `"${g.prompt}"` })) },
      ],
    },
    {
      title: 'Guidance scale (the fine-tuned pipeline)',
      blocks: [
        {
          kind: 'text',
          text: `Each prompt at classifier-free guidance ${s.guidanceSweep.scales.join(', ')}, from the same noise: at 1 the conditional prediction alone, above 1 pushed away from the unconditional one (captions were dropped ${Math.round(100 * s.target.captionDropout)}% of the time in training, so the model knows both).`,
        },
        { kind: 'images', items: [{ src: s.guidanceSweep.file, caption: `guidance ${s.guidanceSweep.scales.join(', ')}, row by row for each prompt` }] },
      ],
    },
    {
      title: 'How the runs are set up',
      blocks: [
        ...s.runs.map((r): { kind: 'text'; text: string } => ({
          kind: 'text',
          text: `${r.name} (${r.folder}/): ${r.description}; AdamW at ${r.lr}, ${r.lrSchedule}.`,
        })),
        {
          kind: 'text',
          text: `All three see the same images in the same order with the same batch size, seed, caption dropout (${s.target.captionDropout}) and step budget. Frozen text encoder sha256 ${s.frozen.textEncoder.slice(0, 16)}…, VAE ${s.frozen.vae.slice(0, 16)}….`,
        },
        { kind: 'pre', text: plan },
      ],
    },
    {
      title: 'Time',
      blocks: [
        {
          kind: 'text',
          text: `${duration(s.seconds.total)} on ${s.machine} (${s.date}): training ${duration(s.seconds.training)} (${s.runs.map((r) => `${r.name} ${r.secondsPerStep.toFixed(3)} s/step`).join(', ')}, validations included), sampling ${duration(s.seconds.sampling)}.`,
        },
      ],
    },
  ];
  return renderReport('difftune transfer demo, text-to-image: new classes and new words', sections);
}
