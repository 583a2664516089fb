/**
 * `npm run grow -- --model <folder> --out <folder> [--resolution N] [--seed S] [--no-check]`: writes the
 * U-Net grown to twice the resolution (same layout as the input) and prints the measured property error
 * max |avgpool(g(up2 x)) − f(x)| / max |f(x)| on random N×N inputs. --resolution is the old model's
 * resolution: the default when its config has no sample_size (the grown one gets twice it).
 */
import * as path from 'path';
import type { Writable } from 'stream';
import { formatCliError } from '../errors';
import { defineCli, formatHelp, integerValue, parseCli, STACK_FLAG, usageHint } from '../util/cli-args';
import { checkGrowth } from './grow-check';
import { growModelFolder } from './grow-folder';
import { loadUNet } from './unet';

export const growCli = defineCli({
  name: 'grow',
  summary:
    'Writes the U-Net of a diffusers folder grown to twice the resolution (a level prepended, every old tensor kept; same layout as the input) and prints the measured property error max |avgpool(g(up2 x)) − f(x)| / max |f(x)| on random inputs at the old resolution.',
  flags: {
    model: { type: 'string', value: '<folder>', required: true, description: 'the diffusers U-Net or pipeline folder to grow' },
    out: { type: 'string', value: '<folder>', required: true, description: 'the new folder to write; it must not exist or must be empty' },
    resolution: { type: 'string', value: '<px>', ...integerValue(1), description: "the old model's resolution, when its config has no sample_size (the grown one gets twice it)" },
    seed: { type: 'string', value: '<S>', ...integerValue(0), default: 0, description: "seed of the new tensors' initialisation and the check's inputs" },
    'no-check': { type: 'boolean', description: 'skip the property check after writing' },
    stack: STACK_FLAG,
  },
  examples: ['npm run grow -- --model models/mnist-ddpm --out runs/grow-mnist-56 --resolution 28'],
});

export async function runGrowCli(argv: readonly string[], out: Writable, err: Writable): Promise<number> {
  const stack = argv.includes('--stack');
  try {
    const args = parseCli(growCli, argv);
    if (args.help) {
      out.write(formatHelp(growCli));
      return 0;
    }
    const a = args.values;
    const grown = await growModelFolder(path.resolve(a.model), path.resolve(a.out), { seed: a.seed, resolution: a.resolution });
    const levels = (grown.config.block_out_channels as number[]).length;
    const size = grown.config.sample_size as number | number[] | null;
    out.write(`wrote ${a.out}: ${levels} levels ${JSON.stringify(grown.config.block_out_channels)}, sample_size ${JSON.stringify(size)}\n`);
    if (a['no-check']) return 0;
    using old = await loadUNet(grown.inputUnetDir);
    using g = await loadUNet(grown.unetDir);
    // Inputs at the old resolution (any size works; the old sample_size when known).
    const r = a.resolution ?? (typeof size === 'number' ? size / 2 : Array.isArray(size) ? size[0]! / 2 : 2 ** (levels - 1));
    for (const c of await checkGrowth(old, g, { resolution: r, seed: a.seed })) {
      out.write(`t=${c.timestep}: max|avgpool(g(up2 x)) − f(x)| / max|f(x)| = ${c.relativeError.toExponential(2)} (pixel by pixel, g(up2 x) vs up2(f(x)): ${c.pixelwiseRelativeError.toExponential(2)})\n`);
    }
    return 0;
  } catch (error) {
    err.write(`${formatCliError('grow', error, stack)}\n${usageHint(growCli, error)}`);
    return 1;
  }
}
