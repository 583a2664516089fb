/** A static HTML report of a run or a study: sections of text, tables, images (relative paths), inline SVG charts. Pure. */
export type Block =
  | { kind: 'text'; text: string }
  | { kind: 'pre'; text: string }
  | { kind: 'table'; header: string[]; rows: Array<Array<string | number>> }
  | { kind: 'images'; items: Array<{ src: string; caption: string }> }
  /** Trusted SVG markup (a lineChart), inlined as it is so the report needs no image file for it. */
  | { kind: 'svg'; svg: string };

export interface Section {
  title: string;
  blocks: Block[];
}

function esc(text: string | number): string {
  return String(text).replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}

function block(b: Block): string {
  switch (b.kind) {
    case 'text':
      return `<p>${esc(b.text)}</p>`;
    case 'pre':
      return `<pre>${esc(b.text)}</pre>`;
    case 'table':
      return `<table><thead><tr>${b.header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${b.rows
        .map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
        .join('')}</tbody></table>`;
    case 'images':
      return `<div class="images">${b.items.map((i) => `<figure><img src="${esc(i.src)}" alt="${esc(i.caption)}"><figcaption>${esc(i.caption)}</figcaption></figure>`).join('')}</div>`;
    case 'svg':
      return `<div class="chart">${b.svg}</div>`;
  }
}

export interface ReportOptions {
  /** Reload the page every so many seconds (a report that a running job rewrites). */
  refreshSeconds?: number;
}

export function renderReport(title: string, sections: readonly Section[], options: ReportOptions = {}): string {
  const refresh = options.refreshSeconds === undefined ? '' : `<meta http-equiv="refresh" content="${Math.max(1, Math.round(options.refreshSeconds))}">`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">${refresh}<title>${esc(title)}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 12px; }
.images { display: flex; flex-wrap: wrap; gap: 1.5em; } figure { margin: 0; } img { image-rendering: pixelated; max-width: 100%; }
figcaption { text-align: center; font-size: 0.9em; color: #555; }
.chart { display: inline-block; margin: 0 1em 1em 0; } .chart svg { max-width: 100%; height: auto; }
</style></head><body>
<h1>${esc(title)}</h1>
${sections.map((s) => `<h2>${esc(s.title)}</h2>\n${s.blocks.map(block).join('\n')}`).join('\n')}
</body></html>
`;
}
