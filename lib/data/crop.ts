/**
 * Stage two of a sample: the crop to the training size (square, or an aspect-ratio bucket; center or seeded
 * random) and the optional mirror, written straight into the sample's slot of the batch buffer — the only
 * copy of the pixels JS makes.
 */
import type { BucketSize } from './buckets';
import type { DecodedImage } from './decode';
import type { Rng } from './random';

export interface CropPlan {
  readonly x: number;
  readonly y: number;
  readonly flip: boolean;
}

/** torchvision's CenterCrop offset (round half to even aside) or a uniform random one. */
export function planCrop(image: { width: number; height: number }, size: BucketSize, center: boolean, cropRng: Rng, flip: boolean): CropPlan {
  const dx = image.width - size.width;
  const dy = image.height - size.height;
  if (center) return { x: Math.round(dx / 2), y: Math.round(dy / 2), flip };
  return { x: cropRng.int(dx + 1), y: cropRng.int(dy + 1), flip };
}

/** Copies the width × height crop into `out` (HWC, same channels), mirrored when plan.flip. */
export function writeCrop(image: DecodedImage, crop: BucketSize, plan: CropPlan, out: Uint8Array): void {
  const c = image.channels;
  const size = crop.width;
  const rowBytes = size * c;
  for (let row = 0; row < crop.height; row++) {
    const src = ((plan.y + row) * image.width + plan.x) * c;
    const dst = row * rowBytes;
    if (!plan.flip) {
      out.set(image.pixels.subarray(src, src + rowBytes), dst);
      continue;
    }
    for (let col = 0; col < size; col++) {
      const s = src + (size - 1 - col) * c;
      const d = dst + col * c;
      for (let k = 0; k < c; k++) out[d + k] = image.pixels[s + k]!;
    }
  }
}
