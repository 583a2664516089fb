/**
 * `npm run grow -- --model <folder> --out <folder> [--seed S] [--check-size N] [--no-check]`: writes the
 * U-Net grown to twice the resolution (same layout as the input) and prints the measured property error
 * max |avgpool(g(up2 x)) − f(x)| / max |f(x)| on random inputs.
 */
import * as path from 'path';
import type { Writable } from 'stream';
import { ConfigError } from '../errors';
import { checkGrowth } from './grow-check';
import { growModelFolder } from './grow-folder';
import { loadUNet } from './unet';

interface Args {
  model?: string;
  out?: string;
  seed: number;
  checkSize?: number;
  check: boolean;
  stack: boolean;
}

const USAGE = 'npm run grow -- --model <diffusers U-Net or pipeline folder> --out <new folder>';

function intArg(name: string, value: string | undefined, min: number): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) throw new ConfigError(`${name}: expected an integer ≥ ${min} but found ${JSON.stringify(value)}`);
  return n;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { seed: 0, check: true, stack: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = () => argv[++i];
    if (k === '--model') a.model = v();
    else if (k === '--out') a.out = v();
    else if (k === '--seed') a.seed = intArg('--seed', v(), 0);
    else if (k === '--check-size') a.checkSize = intArg('--check-size', v(), 1);
    else if (k === '--no-check') a.check = false;
    else if (k === '--stack') a.stack = true;
    else throw new ConfigError(`unknown argument ${k} (usage: ${USAGE})`);
  }
  if (!a.model) throw new ConfigError(`--model <folder> is required (usage: ${USAGE})`);
  if (!a.out) throw new ConfigError(`--out <folder> is required (usage: ${USAGE})`);
  return a;
}

export async function runGrowCli(argv: readonly string[], out: Writable, err: Writable): Promise<number> {
  let stack = argv.includes('--stack');
  try {
    const a = parseArgs(argv);
    stack = a.stack;
    const grown = await growModelFolder(path.resolve(a.model!), path.resolve(a.out!), { seed: a.seed });
    const levels = (grown.config.block_out_channels as number[]).length;
    out.write(`wrote ${a.out} (${levels} levels: ${JSON.stringify(grown.config.down_block_types)}, sample_size ${JSON.stringify(grown.config.sample_size ?? null)})\n`);
    if (!a.check) return 0;
    using old = await loadUNet(grown.inputUnetDir);
    using g = await loadUNet(grown.unetDir);
    const oldSize = (grown.config.sample_size as number | number[] | undefined) ?? undefined;
    const multiple = 2 ** (levels - 2);
    const size = a.checkSize ?? (typeof oldSize === 'number' ? oldSize / 2 : Array.isArray(oldSize) ? oldSize[0]! / 2 : 4 * multiple);
    if (size % multiple !== 0) throw new ConfigError(`--check-size: ${size} must be a multiple of ${multiple} (the old model's ${levels - 2} downsamplers)`);
    for (const r of await checkGrowth(old, g, { resolution: size, seed: a.seed })) {
      out.write(`t=${r.timestep}: max|avgpool(g(up2 x)) − f(x)| / max|f(x)| = ${r.relativeError.toExponential(2)} (pixel by pixel, g(up2 x) vs up2(f(x)): ${r.pixelwiseRelativeError.toExponential(2)})\n`);
    }
    return 0;
  } catch (error) {
    err.write(`grow: ${error instanceof Error ? (stack ? error.stack : error.message) : String(error)}\n`);
    return 1;
  }
}
