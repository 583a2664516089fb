/**
 * `npm run grow -- --model <folder> --out <folder> [--resolution N] [--seed S] [--no-check]`: writes the
 * U-Net grown to twice the resolution (same layout as the input) and prints the measured property error
 * max |avgpool(g(up2 x)) − f(x)| / max |f(x)| on random N×N inputs. --resolution is the old model's
 * resolution: the default when its config has no sample_size (the grown one gets twice it).
 */
import * as path from 'path';
import type { Writable } from 'stream';
import { ConfigError, formatCliError } from '../errors';
import { checkGrowth } from './grow-check';
import { growModelFolder } from './grow-folder';
import { loadUNet } from './unet';

interface Args {
  model?: string;
  out?: string;
  seed: number;
  resolution?: number;
  check: boolean;
  stack: boolean;
}

const USAGE = 'npm run grow -- --model <diffusers U-Net or pipeline folder> --out <new folder> [--resolution <old px>] [--seed S] [--no-check]';

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
    else if (k === '--resolution') a.resolution = intArg('--resolution', v(), 1);
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
    const grown = await growModelFolder(path.resolve(a.model!), path.resolve(a.out!), { seed: a.seed, resolution: a.resolution });
    const levels = (grown.config.block_out_channels as number[]).length;
    const size = grown.config.sample_size as number | number[] | null;
    out.write(`wrote ${a.out}: ${levels} levels ${JSON.stringify(grown.config.block_out_channels)}, sample_size ${JSON.stringify(size)}\n`);
    if (!a.check) return 0;
    using old = await loadUNet(grown.inputUnetDir);
    using g = await loadUNet(grown.unetDir);
    // Inputs at the old resolution (any size works; the old sample_size when known).
    const r = a.resolution ?? (typeof size === 'number' ? size / 2 : Array.isArray(size) ? size[0]! / 2 : 2 ** (levels - 1));
    for (const c of await checkGrowth(old, g, { resolution: r, seed: a.seed })) {
      out.write(`t=${c.timestep}: max|avgpool(g(up2 x)) − f(x)| / max|f(x)| = ${c.relativeError.toExponential(2)} (pixel by pixel, g(up2 x) vs up2(f(x)): ${c.pixelwiseRelativeError.toExponential(2)})\n`);
    }
    return 0;
  } catch (error) {
    err.write(`${formatCliError('grow', error, stack)}\n`);
    return 1;
  }
}
