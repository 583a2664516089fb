/**
 * How `npm run finetune` shows a run: on a terminal one progress line (bar, step/total, loss, learning
 * rate, it/s, images/s, ETA) redrawn in place with \r and cut to the terminal's width so it never wraps,
 * the log lines printed above it; elsewhere (a pipe, a file, CI) one plain line per step, as a log wants.
 */
import type { FinetuneProgress } from './loop';

/** What the display writes to: process.stdout, or any stream; `isTTY` and `columns` as a tty.WriteStream has them. */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  return s >= 3600
    ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
    : s >= 60
      ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
      : `${s}s`;
}

/** Steps per second, or seconds per step when a step takes longer than a second (as tqdm shows them). */
function rate(stepsPerSecond: number): string {
  if (!(stepsPerSecond > 0) || !Number.isFinite(stepsPerSecond)) return '? it/s';
  return stepsPerSecond >= 1 ? `${stepsPerSecond.toFixed(2)} it/s` : `${(1 / stepsPerSecond).toFixed(2)} s/it`;
}

/** One step's line; `width` is the bar's (0: no bar). */
export function progressLine(p: FinetuneProgress, width = 24): string {
  const filled = Math.min(width, Math.max(0, Math.round((p.step / p.totalSteps) * width)));
  const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
  return `${bar} step ${p.step}/${p.totalSteps}  loss ${p.loss.toFixed(4)}  lr ${p.lr.toExponential(2)}  ${rate(p.stepsPerSecond)}  ${p.imagesPerSecond.toFixed(1)} img/s  ETA ${duration(p.etaSeconds)}${p.skipped ? '  (skipped: non-finite)' : ''}`;
}

/** Erase the terminal line from the cursor to its end. */
const CLEAR_TO_END = '\x1b[K';

export class ProgressDisplay {
  readonly #out: ProgressStream;
  readonly #tty: boolean;
  /** The progress line on screen (TTY), to redraw under a log line. */
  #shown: string | undefined;

  constructor(out: ProgressStream, tty: boolean = out.isTTY === true) {
    this.#out = out;
    this.#tty = tty;
  }

  progress(p: FinetuneProgress): void {
    if (!this.#tty) {
      this.#out.write(`${progressLine(p, 0).trim()}\n`);
      return;
    }
    this.#shown = this.fit(progressLine(p));
    this.#out.write(`\r${this.#shown}${CLEAR_TO_END}`);
  }

  /** A log line: above the progress line on a terminal (which is redrawn under it). */
  log(line: string): void {
    if (!this.#tty) {
      this.#out.write(`${line}\n`);
      return;
    }
    this.#out.write(`\r${CLEAR_TO_END}${line}\n${this.#shown === undefined ? '' : `${this.#shown}${CLEAR_TO_END}`}`);
  }

  /** Ends the progress line (the next output starts on a line of its own). */
  end(): void {
    if (this.#tty && this.#shown !== undefined) this.#out.write('\n');
    this.#shown = undefined;
  }

  /** Cut to one character less than the terminal's width: a line that fills it would wrap, and \r would then redraw only its last part. */
  private fit(line: string): string {
    const columns = this.#out.columns;
    if (columns === undefined || !(columns > 1)) return line;
    // Every character of the line is one UTF-16 unit and one column wide (ASCII, █, ░, …).
    return line.length < columns ? line : `${line.slice(0, columns - 2)}…`;
  }
}
