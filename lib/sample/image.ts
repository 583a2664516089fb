/** Samples to pictures: model output in [-1, 1] → 8-bit pixels → a PNG grid (sharp). */
import { promises as fs } from 'fs';
import sharp from 'sharp';
import { expected } from '../errors';
import type { Tensor } from '../native/tensor';
import { withFileErrors } from '../util/fs-errors';

export interface Images {
  count: number;
  height: number;
  width: number;
  channels: number;
  /** uint8 HWC per image, concatenated. */
  pixels: Uint8Array;
}

/** [N, C, H, W] in [-1, 1] → uint8 NHWC as diffusers' numpy_to_pil does: (x / 2 + 0.5).clamp(0, 1) · 255, rounded. */
export async function toImages(samples: Tensor): Promise<Images> {
  const [n, c, h, w] = samples.shape;
  if (samples.shape.length !== 4 || (c !== 1 && c !== 3)) throw expected('samples of shape [N, 1 or 3, H, W]', 'samples', samples.shape);
  const data = await samples.to('cpu', 'float32').then(async (t) => {
    try {
      return (await t.data()) as Float32Array;
    } finally {
      t.dispose();
    }
  });
  const pixels = new Uint8Array(n! * h! * w! * c);
  for (let i = 0; i < n!; i++)
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < h!; y++)
        for (let x = 0; x < w!; x++) {
          const v = data[((i * c + ch) * h! + y) * w! + x]! / 2 + 0.5;
          pixels[((i * h! + y) * w! + x) * c + ch] = Math.round(Math.min(1, Math.max(0, v)) * 255);
        }
  return { count: n!, height: h!, width: w!, channels: c, pixels };
}

export interface GridOptions {
  /** Images per row (default: about the square root of the count). */
  columns?: number;
  /** Pixels of white between and around the images. */
  padding?: number;
  /** Integer upscale (nearest neighbour), for small images. */
  scale?: number;
  /** One caption per row (a prompt, a class), written in a white strip left of it. */
  rowLabels?: readonly string[];
}

/** Width of the strip that holds the row labels (output pixels). */
const LABEL_WIDTH = 200;
const LABEL_FONT_SIZE = 12;

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** `text` broken at spaces into at most `maxLines` lines of about `maxChars`; what does not fit ends in "…". */
export function wrapLabel(text: string, maxChars: number, maxLines: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const next = line ? `${line} ${word}` : word;
    if (next.length <= maxChars || !line) line = next;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line) lines.push(line);
  const kept = lines.slice(0, Math.max(1, maxLines)).map((l) => (l.length > maxChars ? `${l.slice(0, Math.max(1, maxChars - 1))}…` : l));
  if (lines.length > kept.length) kept[kept.length - 1] = `${kept[kept.length - 1]!.slice(0, Math.max(1, maxChars - 1))}…`;
  return kept;
}

/**
 * Lays images out in a grid (row-major, `columns` wide, `padding` px of background between) and returns
 * the PNG. With `rowLabels`, each row's label is written left of it (SVG text rendered by sharp).
 */
export async function gridPng(images: Images, options: GridOptions = {}): Promise<Buffer> {
  const columns = Math.max(1, Math.min(options.columns ?? Math.ceil(Math.sqrt(images.count)), images.count));
  const rows = Math.ceil(images.count / columns);
  const pad = options.padding ?? 2;
  const { height: h, width: w, channels: c } = images;
  const gw = columns * w + (columns + 1) * pad;
  const gh = rows * h + (rows + 1) * pad;
  const grid = new Uint8Array(gw * gh * c).fill(255);
  for (let i = 0; i < images.count; i++) {
    const ox = pad + (i % columns) * (w + pad);
    const oy = pad + Math.floor(i / columns) * (h + pad);
    for (let y = 0; y < h; y++) {
      const src = (i * h + y) * w * c;
      grid.set(images.pixels.subarray(src, src + w * c), ((oy + y) * gw + ox) * c);
    }
  }
  const scale = options.scale ?? 1;
  let img = sharp(grid, { raw: { width: gw, height: gh, channels: c as 1 | 3 } });
  if (scale !== 1) img = img.resize(gw * scale, gh * scale, { kernel: 'nearest' });
  const labels = options.rowLabels;
  if (labels === undefined) return img.png().toBuffer();
  if (labels.length !== rows) throw expected(`${rows} row labels (one per grid row)`, 'options.rowLabels', labels);
  const rowHeight = h * scale;
  const lineHeight = LABEL_FONT_SIZE + 3;
  const maxLines = Math.max(1, Math.floor(rowHeight / lineHeight));
  const text = labels.map((label, r) => {
    const lines = wrapLabel(label, Math.floor((LABEL_WIDTH - 8) / (LABEL_FONT_SIZE * 0.6)), maxLines);
    const top = (pad + r * (h + pad)) * scale + rowHeight / 2 - (lines.length * lineHeight) / 2 + LABEL_FONT_SIZE;
    return lines.map((l, k) => `<text x="${LABEL_WIDTH - 6}" y="${(top + k * lineHeight).toFixed(1)}" text-anchor="end">${escapeXml(l)}</text>`).join('');
  });
  const height = gh * scale;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${LABEL_WIDTH}" height="${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="${LABEL_FONT_SIZE}" fill="#222">${text.join('')}</svg>`;
  const body = await img.png().toBuffer();
  return sharp({ create: { width: LABEL_WIDTH + gw * scale, height, channels: 3, background: '#ffffff' } })
    .composite([
      { input: Buffer.from(svg), left: 0, top: 0 },
      { input: body, left: LABEL_WIDTH, top: 0 },
    ])
    .png()
    .toBuffer();
}

/** Writes gridPng's PNG to `file`. */
export async function writeGrid(file: string, images: Images, options: GridOptions = {}): Promise<void> {
  const png = await gridPng(images, options);
  await withFileErrors(file, 'write', () => fs.writeFile(file, png));
}
