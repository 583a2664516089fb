// npm run finetune's display: on a terminal one progress line redrawn in place (\r), cut to the terminal's
// width, with the log printed above it; elsewhere one plain line per step. Fake streams, no addon.
import type { FinetuneProgress } from '../../../lib/train/loop';
import { ProgressDisplay, progressLine, type ProgressStream } from '../../../lib/train/progress';

const ESC = '\u001b';
/** Erase to the end of the line. */
const CLEAR = `${ESC}[K`;

function stream(isTTY: boolean, columns?: number): ProgressStream & { text: string } {
  const s = { isTTY, columns, text: '', write: (chunk: string) => void (s.text += chunk) };
  return s;
}

const at = (step: number, extra: Partial<FinetuneProgress> = {}): FinetuneProgress => ({
  step,
  totalSteps: 100,
  loss: 0.123456,
  lr: 1e-4,
  gradNorm: 1,
  imagesPerSecond: 12.34,
  stepsPerSecond: 2.5,
  etaSeconds: 95,
  skipped: false,
  ...extra,
});

test('a step line holds the bar, step/total, loss, lr, it/s, images/s and ETA', () => {
  const line = progressLine(at(25));
  expect(line).toBe('██████░░░░░░░░░░░░░░░░░░ step 25/100  loss 0.1235  lr 1.00e-4  2.50 it/s  12.3 img/s  ETA 1m35s');
  // A step slower than a second reads as seconds per step, as tqdm shows it.
  expect(progressLine(at(1, { stepsPerSecond: 0.25 }), 0)).toContain('4.00 s/it');
  expect(progressLine(at(1, { skipped: true }), 0)).toContain('(skipped: non-finite)');
});

test('on a terminal the line is redrawn in place, one line, and log lines print above it', () => {
  const out = stream(true, 200);
  const d = new ProgressDisplay(out);
  d.progress(at(1));
  d.progress(at(2));
  d.log('step 2: held-out loss 0.1');
  d.progress(at(3));
  d.end();
  // Every progress write starts with \r and clears what the longer previous line left; only the log and end add newlines.
  expect(out.text.split('\r').filter(Boolean)).toEqual([
    `${progressLine(at(1))}\x1b[K`,
    `${progressLine(at(2))}\x1b[K`,
    `\x1b[Kstep 2: held-out loss 0.1\n${progressLine(at(2))}\x1b[K`,
    `${progressLine(at(3))}\x1b[K\n`,
  ]);
});

test('on a narrow terminal the line is cut to one character less than its width, so it never wraps', () => {
  const out = stream(true, 40);
  new ProgressDisplay(out).progress(at(50));
  expect(out.text.startsWith('\r') && out.text.endsWith(CLEAR)).toBe(true);
  const line = out.text.slice(1, -CLEAR.length);
  expect(line).toHaveLength(39);
  expect(line.endsWith('…')).toBe(true);
});

test('when not a terminal (a pipe, a file) each step is a plain line, with no \\r or escape codes', () => {
  const out = stream(false);
  const d = new ProgressDisplay(out);
  d.progress(at(1));
  d.log('checkpoint runs/x/checkpoint-1');
  d.progress(at(2));
  d.end();
  expect(out.text).toBe(`${progressLine(at(1), 0).trim()}\ncheckpoint runs/x/checkpoint-1\n${progressLine(at(2), 0).trim()}\n`);
  expect(out.text.includes('\r') || out.text.includes(ESC)).toBe(false);
});

test('the stream decides by its isTTY unless told otherwise', () => {
  const tty = stream(true);
  new ProgressDisplay(tty).progress(at(1));
  expect(tty.text.startsWith('\r')).toBe(true);
  const forced = stream(true);
  new ProgressDisplay(forced, false).progress(at(1));
  expect(forced.text.endsWith('\n')).toBe(true);
});
