/**
 * Captioned images from the datasets that ship with difftune (MNIST digits, Fashion-MNIST clothes), for
 * text-to-image pretraining and transfer: each class has several caption templates and synonyms, and
 * a chosen set of classes is written as a diffusers `imagefolder` (PNG files + metadata.jsonl whose
 * "text" column lists every caption of the image's class: the loader picks one per sample and epoch).
 * Images are 32×32 RGB: the 28×28 grey originals padded by 2 black pixels on each side (both sets have
 * black backgrounds, so nothing is resampled), the shape of a Stable Diffusion VAE's input.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { parseDataOptions } from '../config/data';
import { BUILTIN_SETS, loadBuiltin } from '../data/builtin';
import { mapLimit } from '../data/limit';
import { METADATA_FILE } from '../data/metadata';
import { ConfigError } from '../errors';
import { withFileErrors } from '../util/fs-errors';
import { createFolder } from '../util/output-folder';

/** Side of the written images. */
export const T2I_IMAGE_SIZE = 32;
const SOURCE_SIZE = 28;

export interface CaptionedClass {
  /** The class's key in recipes (`digit-7`, `sneaker`). */
  readonly key: string;
  readonly source: 'mnist' | 'fashion-mnist';
  /** Its label id in the built-in set. */
  readonly label: number;
  /** The words that name it (the first is the canonical prompt's), each with its article. */
  readonly nouns: ReadonlyArray<readonly [article: string, noun: string]>;
}

const DIGIT_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];

const FASHION_NOUNS: ReadonlyArray<readonly [key: string, nouns: ReadonlyArray<readonly [string, string]>]> = [
  [
    't-shirt',
    [
      ['a', 't-shirt'],
      ['a', 'tee'],
    ],
  ],
  [
    'trouser',
    [
      ['a', 'pair of trousers'],
      ['a', 'pair of pants'],
    ],
  ],
  [
    'pullover',
    [
      ['a', 'pullover'],
      ['a', 'sweater'],
      ['a', 'jumper'],
    ],
  ],
  ['dress', [['a', 'dress']]],
  [
    'coat',
    [
      ['a', 'coat'],
      ['a', 'jacket'],
    ],
  ],
  ['sandal', [['a', 'sandal']]],
  [
    'shirt',
    [
      ['a', 'shirt'],
      ['a', 'button-up shirt'],
    ],
  ],
  [
    'sneaker',
    [
      ['a', 'sneaker'],
      ['a', 'trainer'],
    ],
  ],
  [
    'bag',
    [
      ['a', 'bag'],
      ['a', 'handbag'],
    ],
  ],
  [
    'ankle-boot',
    [
      ['an', 'ankle boot'],
      ['a', 'boot'],
    ],
  ],
];

/** All 20 classes: the 10 digits (`digit-0` … `digit-9`), then Fashion-MNIST's 10 in label order. */
export const T2I_CLASSES: readonly CaptionedClass[] = [
  ...DIGIT_WORDS.map((word, label): CaptionedClass => ({ key: `digit-${label}`, source: 'mnist', label, nouns: [['', word]] })),
  ...FASHION_NOUNS.map(([key, nouns], label): CaptionedClass => ({ key, source: 'fashion-mnist', label, nouns })),
];

/**
 * The classes the text-to-image base learns and the ones kept out of it for a transfer to fine-tune on
 * (new objects and new words: no caption of the base contains "trousers", "pants", "sandal", "bag",
 * "handbag", "ankle" or "boot" — test/unit/demo/t2i-data.test.ts checks it on the tokenizer's tokens).
 */
export const T2I_BASE_CLASSES: readonly string[] = [...DIGIT_WORDS.map((_, i) => `digit-${i}`), 't-shirt', 'pullover', 'dress', 'coat', 'shirt', 'sneaker'];
export const T2I_HELD_BACK_CLASSES: readonly string[] = ['trouser', 'sandal', 'bag', 'ankle-boot'];

/** Bump when templates, nouns or the image transform change: a dataset written before is then rewritten. */
const FORMAT_VERSION = 1;

export function captionedClass(key: string, field = 'classes'): CaptionedClass {
  const found = T2I_CLASSES.find((c) => c.key === key);
  if (found === undefined) throw new ConfigError(`${field}: expected one of ${T2I_CLASSES.map((c) => c.key).join(', ')} but found ${JSON.stringify(key)}`);
  return found;
}

/** Every caption of a class: its templates with each of its nouns. */
export function classCaptions(c: CaptionedClass): string[] {
  if (c.source === 'mnist') {
    const n = String(c.label);
    const w = c.nouns[0]![1];
    return [
      `a handwritten digit ${w}`,
      `the number ${n} written by hand`,
      `a handwritten ${n}`,
      `the digit ${w}`,
      `a white ${w} on a black background`,
      `the numeral ${n}, handwritten`,
      `a scan of a handwritten number ${w}`,
    ];
  }
  return c.nouns.flatMap(([a, noun]) => [
    `a photo of ${a} ${noun}`,
    `${a} grey ${noun}, product photo`,
    `${a} ${noun}`,
    `a small black and white picture of ${a} ${noun}`,
    `${a} ${noun} on a black background`,
    `a catalogue photo of ${a} ${noun}`,
  ]);
}

/** One prompt per class, for sample grids: "a handwritten digit seven", "a photo of a sneaker". */
export function classPrompt(c: CaptionedClass): string {
  return classCaptions(c)[0]!;
}

export interface CaptionedSetSpec {
  /** Class keys (T2I_CLASSES), in the order their images interleave. */
  classes: readonly string[];
  /** The built-in sets' train split (first 6/7 of each class) or test split (last 1/7). */
  split: 'train' | 'test';
  /** At most this many images per class (the first ones of the split). */
  perClass: number;
}

export interface CaptionedSetInfo extends CaptionedSetSpec {
  format: number;
  /** Images written per class key. */
  counts: Record<string, number>;
  images: number;
  /** sha256 of the spec and format: a folder holding another is rewritten. */
  key: string;
}

/** The file that marks a complete folder and says what it holds. */
export const CAPTIONED_SET_INFO = 'dataset.json';

function specKey(spec: CaptionedSetSpec): string {
  const captions = spec.classes.map((k) => classCaptions(captionedClass(k)));
  return createHash('sha256')
    .update(JSON.stringify({ format: FORMAT_VERSION, classes: spec.classes, split: spec.split, perClass: spec.perClass, captions }))
    .digest('hex');
}

/** 28×28 grey → 32×32 RGB, padded with black. */
function padToRgb(grey: Uint8Array): Uint8Array {
  const side = T2I_IMAGE_SIZE;
  const pad = (side - SOURCE_SIZE) / 2;
  const out = new Uint8Array(side * side * 3);
  for (let y = 0; y < SOURCE_SIZE; y++)
    for (let x = 0; x < SOURCE_SIZE; x++) {
      const v = grey[y * SOURCE_SIZE + x]!;
      const o = ((y + pad) * side + x + pad) * 3;
      out[o] = v;
      out[o + 1] = v;
      out[o + 2] = v;
    }
  return out;
}

/** What the folder holds when it is complete and was written for `spec`; undefined otherwise. */
export async function readCaptionedSet(dir: string, spec: CaptionedSetSpec): Promise<CaptionedSetInfo | undefined> {
  const text = await fs.readFile(path.join(dir, CAPTIONED_SET_INFO), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const info = JSON.parse(text) as CaptionedSetInfo;
    return info.key === specKey(spec) ? info : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Writes the captioned images of `spec` into `dir` (an imagefolder with metadata.jsonl; images under
 * <class key>/<index in the built-in set>.png), unless `dir` already holds exactly that set. The folder is
 * written beside and renamed into place, so an interrupted write leaves nothing that looks complete.
 */
export async function writeCaptionedSet(dir: string, spec: CaptionedSetSpec): Promise<CaptionedSetInfo> {
  if (!Number.isSafeInteger(spec.perClass) || spec.perClass < 1) throw new ConfigError(`perClass: expected a positive integer but found ${spec.perClass}`);
  if (spec.classes.length === 0) throw new ConfigError('classes: expected at least one class key');
  if (new Set(spec.classes).size !== spec.classes.length) throw new ConfigError(`classes: each class once, found ${JSON.stringify(spec.classes)}`);
  const existing = await readCaptionedSet(dir, spec);
  if (existing !== undefined) return existing;

  const tmp = `${dir}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await createFolder(tmp);
  const perClass: Array<{ c: CaptionedClass; captions: string[]; files: Array<{ file: string; pixels: Uint8Array }> }> = [];
  for (const key of spec.classes) {
    const c = captionedClass(key);
    const options = parseDataOptions({ source: c.source, classes: [c.label], split: spec.split, limit: spec.perClass, resolution: SOURCE_SIZE, channels: 1 });
    const { items } = await loadBuiltin(options);
    await createFolder(path.join(tmp, key));
    const files = items.map((item) => {
      if (item.image.kind !== 'pixels') throw new ConfigError(`${item.id}: expected pixels from ${BUILTIN_SETS[c.source].packageName}`);
      // item.id is `<source>:<label>:<index in the class file>`.
      return { file: `${key}/${item.id.split(':')[2]!.padStart(4, '0')}.png`, pixels: padToRgb(item.image.pixels) };
    });
    perClass.push({ c, captions: classCaptions(c), files });
  }
  // Interleaved across classes (class 0's first, class 1's first, ...): the first N held-out images, which
  // validation uses, cover every class.
  const order: Array<{ file: string; pixels: Uint8Array; captions: string[] }> = [];
  for (let k = 0; perClass.some((p) => k < p.files.length); k++)
    for (const p of perClass) if (k < p.files.length) order.push({ ...p.files[k]!, captions: p.captions });
  const side = T2I_IMAGE_SIZE;
  await mapLimit(order, 8, async ({ file, pixels }) => {
    const png = await sharp(pixels, { raw: { width: side, height: side, channels: 3 } })
      .png()
      .toBuffer();
    await withFileErrors(path.join(tmp, file), 'write', () => fs.writeFile(path.join(tmp, file), png));
  });
  const lines = order.map(({ file, captions }) => JSON.stringify({ file_name: file, text: captions }));
  await fs.writeFile(path.join(tmp, METADATA_FILE), `${lines.join('\n')}\n`);
  const info: CaptionedSetInfo = {
    ...spec,
    classes: [...spec.classes],
    format: FORMAT_VERSION,
    counts: Object.fromEntries(perClass.map((p) => [p.c.key, p.files.length])),
    images: order.length,
    key: specKey(spec),
  };
  await fs.writeFile(path.join(tmp, CAPTIONED_SET_INFO), `${JSON.stringify(info, null, 2)}\n`);
  await fs.rm(dir, { recursive: true, force: true });
  await fs.rename(tmp, dir);
  return info;
}
