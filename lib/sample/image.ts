/** Samples to pictures: model output in [-1, 1] → 8-bit pixels → a PNG grid (sharp). */
import sharp from 'sharp';
import { expected } from '../errors';
import type { Tensor } from '../native/tensor';

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

/** Lays images out in a grid (row-major, `columns` wide, `padding` px of background between) and writes a PNG. */
export async function writeGrid(file: string, images: Images, options: { columns?: number; padding?: number; scale?: number } = {}): Promise<void> {
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
  await img.png().toFile(file);
}
