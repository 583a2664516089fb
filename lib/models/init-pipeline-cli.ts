/**
 * `npm run init-pipeline -- --config <folder> --out <folder> [--seed S] [--dtype fp16]`: a Stable
 * Diffusion pipeline folder of the config folder's exact structure with seeded random weights (see
 * init-pipeline.ts); prints each model's tensor and parameter counts.
 */
import * as path from 'path';
import type { Writable } from 'stream';
import { formatCliError } from '../errors';
import { defineCli, formatHelp, integerValue, oneOfValue, parseCli, STACK_FLAG, usageHint } from '../util/cli-args';
import { initPipeline, type InitDType } from './init-pipeline';

const DTYPE_FLAGS = { fp32: 'float32', fp16: 'float16', bf16: 'bfloat16' } as const satisfies Record<string, InitDType>;

export const initPipelineCli = defineCli({
  name: 'init-pipeline',
  summary:
    "Writes a diffusers Stable Diffusion pipeline folder with the exact structure of a config folder (its model_index.json, unet/, vae/ and text_encoder/ configs, tokenizer/ and scheduler/ — e.g. test/fixtures/real-configs/sd-v2-1) and seeded random weights: the real model's tensors, parameter count and compute, without its weights. Tensors are drawn and written one at a time.",
  flags: {
    config: { type: 'string', value: '<folder>', required: true, description: 'the diffusers Stable Diffusion folder whose configs to build (its weights, if any, are not read)' },
    out: { type: 'string', value: '<folder>', required: true, description: 'the new pipeline folder; it must not exist or must be empty' },
    seed: { type: 'string', value: '<S>', ...integerValue(0), default: 0, description: 'seed of the random weights (the same seed writes the same files)' },
    dtype: { type: 'string', value: '<fp32|fp16|bf16>', ...oneOfValue(['fp32', 'fp16', 'bf16']), default: 'fp32', description: 'the weight files\' dtype' },
    stack: STACK_FLAG,
  },
  examples: [
    'npm run init-pipeline -- --config test/fixtures/real-configs/sd-v1-5 --out models/sd15-random --seed 0',
    'npm run init-pipeline -- --config test/fixtures/real-configs/sd-v2-1 --out models/sd21-random --seed 0 --dtype fp16',
  ],
});

export async function runInitPipelineCli(argv: readonly string[], out: Writable, err: Writable): Promise<number> {
  const stack = argv.includes('--stack');
  try {
    const args = parseCli(initPipelineCli, argv);
    if (args.help) {
      out.write(formatHelp(initPipelineCli));
      return 0;
    }
    const a = args.values;
    const target = path.resolve(a.out);
    const result = await initPipeline(path.resolve(a.config), target, { seed: a.seed, dtype: DTYPE_FLAGS[a.dtype], log: (line) => out.write(`${line}\n`) });
    const total = result.components.reduce((n, c) => n + c.parameters, 0);
    out.write(`wrote ${target}: ${total.toLocaleString('en-US')} parameters (seed ${a.seed}, ${a.dtype})\n`);
    return 0;
  } catch (error) {
    err.write(`${formatCliError('init-pipeline', error, stack)}\n${usageHint(initPipelineCli, error)}`);
    return 1;
  }
}
