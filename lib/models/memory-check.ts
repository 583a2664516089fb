/**
 * Refusing, before anything is allocated, a model or a step that cannot fit in this machine's memory,
 * with an OutOfMemoryError naming what makes it large (the config key, the argument). The estimates are
 * lower bounds (lib/config/model-size.ts), compared with the memory the process could ever have — the
 * physical memory, or the cgroup limit where lower — not with the memory free right now: free memory
 * changes from second to second and the OS can reclaim caches or swap, so only what cannot fit even in
 * an otherwise empty machine is refused, and a realistic model is never refused falsely. Whatever passes
 * and still does not fit fails in the allocator, which the addon also reports as an OutOfMemoryError.
 */
import * as os from 'os';
import { OutOfMemoryError } from '../errors';
import { sizeDrivers, unetSkipElements, vaeDecodeElements } from '../config/model-size';
import type { UNetConfig } from '../config/unet';
import type { AutoencoderKLConfig } from '../config/vae';

/** Bytes this process could ever hold at once: physical memory, or its cgroup's limit where lower. */
export function memoryLimitBytes(): number {
  const constrained = process.constrainedMemory?.() ?? 0;
  const total = os.totalmem();
  return constrained > 0 && constrained < total ? constrained : total;
}

/** "1.2 GB (1234567890 bytes)": decimal units, as the addon's out-of-memory messages write them. */
export function formatByteCount(bytes: number): string {
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]} (${bytes.toLocaleString('en-US')} bytes)`;
}

function valueText(value: unknown): string {
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** What a model's config says about its size, for checkModelFits. */
export interface ModelSize<C extends object> {
  /** "UNet2DConditionModel", "AutoencoderKL", "CLIPTextModel". */
  model: string;
  /** Where the config came from (file path), for the message. */
  source: string;
  config: C;
  /** Lower bound on the parameter count (lib/config/model-size.ts). */
  count: (config: C) => number;
  /** Per config key, about the largest value released models use: the keys above it are the ones named. */
  caps: Readonly<Partial<Record<keyof C & string, number>>>;
}

/**
 * Refuses a model whose float32 weights alone exceed the memory limit (models are created in float32
 * on the CPU, then converted or moved), naming the config keys that make it that large.
 */
export function checkModelFits<C extends object>(size: ModelSize<C>, limitBytes = memoryLimitBytes()): void {
  const numel = size.count(size.config);
  const bytes = numel * 4;
  if (bytes <= limitBytes) return;
  const keys = sizeDrivers(size.config, size.count, size.caps);
  const config = size.config as Record<string, unknown>;
  const why =
    keys.length > 0
      ? `${keys.map((k) => `"${k}" ${valueText(config[k])}`).join(' and ')} make${keys.length === 1 ? 's' : ''} it this large`
      : 'no single key is beyond released models\' sizes: the depth and width together make it this large';
  throw new OutOfMemoryError(
    `${size.source}: a ${size.model} with this config has at least ${numel.toLocaleString('en-US')} parameters, ${formatByteCount(bytes)} as float32, ` +
      `more than the ${formatByteCount(limitBytes)} of memory this machine has; ${why}. Nothing was allocated.`,
  );
}

/** A U-Net forward (or training step) over `sample`, described for checkUNetActivationsFit. */
export interface UNetStep {
  config: UNetConfig;
  /** The argument's name in the caller's API ("sample", "batch.pixels"), and its shape [N, C, H, W]. */
  param: string;
  shape: readonly number[];
  /** Bytes per activation element: 2 under bf16/fp16 weights or autocast, else 4. */
  activationBytes: number;
  /** Bytes the weights already take. */
  parameterBytes: number;
  /** "a forward" / "a training step", for the message. */
  action: string;
}

/**
 * Refuses a U-Net step whose activations cannot fit next to the weights, naming the argument and its
 * batch and resolution, before any native work starts. Shapes other than [N, C, H, W] pass (the addon
 * reports them).
 */
export function checkUNetActivationsFit(step: UNetStep, limitBytes = memoryLimitBytes()): void {
  if (step.shape.length !== 4) return;
  const skip = unetSkipElements(step.config, step.shape);
  const activations = skip.elements * step.activationBytes;
  if (activations + step.parameterBytes <= limitBytes) return;
  const [n, , h, w] = step.shape;
  throw new OutOfMemoryError(
    `${step.param} [${step.shape.join(', ')}]: ${step.action} of the U-Net over it keeps at least ${formatByteCount(activations)} of activations ` +
      `(the first level's ${skip.maps} skip connections: batch ${n} × ${skip.channels} channels × ${h}×${w} pixels × ${step.activationBytes} bytes) ` +
      `besides ${formatByteCount(step.parameterBytes)} of weights, more than the ${formatByteCount(limitBytes)} of memory this machine has; ` +
      'use a smaller batch or resolution. Nothing was allocated.',
  );
}

/** What a VAE decode will do to fit in memory, and why (see planVaeDecode). */
export interface VaeDecodePlan {
  slicing: boolean;
  tiling: boolean;
  /** Estimated activation bytes of the plain decode (the whole batch at once, no tiles). */
  plainBytes: number;
  /** Estimated activation bytes with the chosen savers. */
  bytes: number;
  /** What the decode may take. */
  budgetBytes: number;
  /** A log line when a saver was turned on; undefined otherwise. */
  note?: string;
}

/**
 * Which of diffusers' VAE memory savers a decode of `latents` [N, C, h, w] needs so that its activations
 * (vaeDecodeElements, float32) fit in `budgetBytes` (default: 90% of what this process can still grow by:
 * the machine's or cgroup's memory less its resident size now). None when the plain decode fits; slicing
 * first (one image at a time: the same images); tiling too when one image alone does not fit (tiles of
 * `tileLatentSize` latents: slightly different images, as in diffusers).
 */
export function planVaeDecode(
  config: AutoencoderKLConfig,
  latents: readonly number[],
  tile: { tileSampleSize: number; tileLatentSize: number; overlap: number },
  budgetBytes = 0.9 * Math.max(0, memoryLimitBytes() - process.memoryUsage().rss),
): VaeDecodePlan {
  const [n = 1, , h = 1, w = 1] = latents;
  const f = 2 ** (config.block_out_channels.length - 1);
  const output = n * config.out_channels * h * f * w * f;
  const bytesOf = (batch: number, tiled: boolean): number => {
    if (!tiled) return 4 * (vaeDecodeElements(config, [h, w], batch) + output);
    // One tile at a time, all of an image's decoded tiles kept until they are blended (as diffusers does).
    const stride = Math.max(1, Math.trunc(tile.tileLatentSize * (1 - tile.overlap)));
    const tiles = Math.ceil(h / stride) * Math.ceil(w / stride);
    const t = Math.min(tile.tileLatentSize, Math.max(h, w));
    return 4 * (vaeDecodeElements(config, [Math.min(t, h), Math.min(t, w)], 1) + batch * tiles * config.out_channels * tile.tileSampleSize ** 2 + output);
  };
  const plainBytes = bytesOf(n, false);
  const plan = (slicing: boolean, tiling: boolean, bytes: number): VaeDecodePlan => {
    if (!slicing && !tiling) return { slicing, tiling, plainBytes, bytes, budgetBytes };
    const savers = [
      slicing ? 'one image at a time (slicing, as diffusers\' enable_vae_slicing)' : '',
      tiling ? `in ${tile.tileSampleSize}-pixel tiles (tiling, as diffusers' enable_vae_tiling)` : '',
    ].filter(Boolean);
    const note =
      `VAE decode of latents [${latents.join(', ')}]: about ${formatGigabytes(plainBytes)} of activations at once, more than the ` +
      `${formatGigabytes(budgetBytes)} this process can still use; decoding ${savers.join(' and ')}: about ${formatGigabytes(bytes)}`;
    return { slicing, tiling, plainBytes, bytes, budgetBytes, note };
  };
  if (plainBytes <= budgetBytes) return plan(false, false, plainBytes);
  if (n > 1 && bytesOf(1, false) <= budgetBytes) return plan(true, false, bytesOf(1, false));
  return plan(n > 1, true, bytesOf(1, true));
}

function formatGigabytes(bytes: number): string {
  return `${(bytes / 1e9).toFixed(1)} GB`;
}
