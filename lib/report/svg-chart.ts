/**
 * A small line chart as SVG (loss curves): axes with ticks, one polyline per series, a legend.
 * Rendered to PNG by sharp (librsvg); no browser or canvas needed. Pure.
 */
export interface Series {
  name: string;
  color: string;
  points: ReadonlyArray<readonly [number, number]>;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** Log scale on y (losses span decades early in training). */
  logY?: boolean;
  /** Log scale on x (dataset sizes 64, 256, 1024, 4096 spaced evenly); points at x ≤ 0 are left out. */
  logX?: boolean;
  /** A dot at every point, for series of a few measurements where the line alone hides where they are. */
  markers?: boolean;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function niceTicks(min: number, max: number, count: number): number[] {
  if (!(max > min)) return [min];
  const step = 10 ** Math.floor(Math.log10((max - min) / count));
  const err = (max - min) / count / step;
  const nice = step * (err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1);
  const ticks: number[] = [];
  for (let v = Math.ceil(min / nice) * nice; v <= max + nice * 1e-9; v += nice) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** Ticks at 1, 2 and 5 × 10^k inside [10^lo, 10^hi] (lo, hi in log10 units); decades only when that is enough. */
function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let k = Math.floor(lo); k <= Math.ceil(hi); k++) for (const m of [1, 2, 5]) out.push(m * 10 ** k);
  const inside = out.filter((v) => Math.log10(v) >= lo && Math.log10(v) <= hi);
  const decades = inside.filter((v) => Number((v / 10 ** Math.floor(Math.log10(v) + 1e-9)).toPrecision(3)) === 1);
  return (decades.length >= 3 ? decades : inside).map((v) => Number(v.toPrecision(6)));
}

function format(v: number, digits = 1): string {
  return Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(digits) : String(Number(v.toPrecision(digits + 2)));
}

/** Tick labels with as few digits as tell them apart (ticks 1.0e-4 and 1.05e-4 would both read 1.0e-4 or 1.1e-4 with one). */
function tickLabels(values: readonly number[]): string[] {
  for (let digits = 1; digits < 6; digits++) {
    const labels = values.map((v) => format(v, digits));
    if (new Set(labels).size === labels.length) return labels;
  }
  return values.map((v) => String(v));
}

export function lineChart(series: readonly Series[], options: ChartOptions): string {
  const width = options.width ?? 640;
  const height = options.height ?? 400;
  const m = { left: 64, right: 16, top: 36, bottom: 48 };
  const kept = (x: number, y: number): boolean => Number.isFinite(x) && Number.isFinite(y) && (!options.logY || y > 0) && (!options.logX || x > 0);
  const tx = (x: number): number => (options.logX ? Math.log10(x) : x);
  const ty = (y: number): number => (options.logY ? Math.log10(y) : y);
  const all = series.flatMap((s) => s.points).filter(([x, y]) => kept(x, y));
  const xs = all.map(([x]) => tx(x));
  const ys = all.map(([, y]) => ty(y));
  let [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  // A constant series (a constant learning rate) gets a range around its value at its own scale (half a decade on a log scale).
  if (y1 === y0) {
    const half = options.logY || y0 === 0 ? 0.5 : Math.abs(y0) * 0.1;
    [y0, y1] = [y0 - half, y1 + half];
  }
  // On a log x scale the ends are padded too, so the first and last sizes' markers are not on the frame.
  if (options.logX) {
    const padX = x1 > x0 ? (x1 - x0) * 0.05 : 0.5;
    [x0, x1] = [x0 - padX, x1 + padX];
  }
  const pad = (y1 - y0) * 0.05;
  [y0, y1] = [y0 - pad, y1 + pad];
  const px = (x: number) => m.left + ((x - x0) / (x1 - x0 || 1)) * (width - m.left - m.right);
  const py = (y: number) => height - m.bottom - ((y - y0) / (y1 - y0)) * (height - m.top - m.bottom);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(options.title)}</text>`,
  ];
  const xTicks = options.logX ? logTicks(x0, x1).map((v) => Math.log10(v)) : niceTicks(x0, x1, 6);
  const xValues = xTicks.map((t) => (options.logX ? Number((10 ** t).toPrecision(6)) : t));
  // Counts on a log axis (images: 100, 1000, 5000) read better whole than as 1.0e+3.
  const xLabels = options.logX && xValues.every((v) => Number.isInteger(v) && v < 1e7) ? xValues.map(String) : tickLabels(xValues);
  xTicks.forEach((t, i) => {
    out.push(`<line x1="${px(t)}" y1="${m.top}" x2="${px(t)}" y2="${height - m.bottom}" stroke="#eee"/>`);
    out.push(`<text x="${px(t)}" y="${height - m.bottom + 16}" text-anchor="middle">${xLabels[i]!}</text>`);
  });
  const yTicks = options.logY ? logTicks(y0, y1).map((v) => Math.log10(v)) : niceTicks(y0, y1, 6);
  const yLabels = tickLabels(yTicks.map((t) => (options.logY ? 10 ** t : t)));
  yTicks.forEach((t, i) => {
    out.push(`<line x1="${m.left}" y1="${py(t)}" x2="${width - m.right}" y2="${py(t)}" stroke="#eee"/>`);
    out.push(`<text x="${m.left - 6}" y="${py(t) + 4}" text-anchor="end">${yLabels[i]!}</text>`);
  });
  out.push(`<rect x="${m.left}" y="${m.top}" width="${width - m.left - m.right}" height="${height - m.top - m.bottom}" fill="none" stroke="#333"/>`);
  out.push(
    `<text x="${(m.left + width - m.right) / 2}" y="${height - 12}" text-anchor="middle">${escapeXml(options.xLabel)}${options.logX ? ' (log)' : ''}</text>`,
  );
  out.push(
    `<text transform="translate(16 ${(m.top + height - m.bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(options.yLabel)}${options.logY ? ' (log)' : ''}</text>`,
  );
  series.forEach((s, i) => {
    const xy = s.points.filter(([x, y]) => kept(x, y)).map(([x, y]) => [px(tx(x)).toFixed(1), py(ty(y)).toFixed(1)] as const);
    if (xy.length) out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${xy.map(([x, y]) => `${x},${y}`).join(' ')}"/>`);
    if (options.markers) for (const [x, y] of xy) out.push(`<circle cx="${x}" cy="${y}" r="3.5" fill="${s.color}"/>`);
    const ly = m.top + 16 + i * 18;
    out.push(`<line x1="${width - m.right - 150}" y1="${ly - 4}" x2="${width - m.right - 130}" y2="${ly - 4}" stroke="${s.color}" stroke-width="3"/>`);
    out.push(`<text x="${width - m.right - 124}" y="${ly}">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
