/**
 * `npm run convert -- --single-file <model.safetensors> --config <diffusers SD folder> --out <folder>`:
 * an original-layout (CompVis / LDM) Stable Diffusion checkpoint to a diffusers pipeline folder, as
 * diffusers' from_single_file(config=...) reads it; `--to-single-file <diffusers SD folder> --out
 * <model.safetensors>` writes the reverse. Weights are renamed (and 8 VAE attention weights reshaped),
 * never recomputed: the result is bit-identical.
 */
import { existsSync } from 'fs';
import * as path from 'path';
import type { Writable } from 'stream';
import { ConfigError, formatCliError } from '../errors';
import { CliUsageError, defineCli, formatHelp, parseCli, STACK_FLAG, usageHint } from '../util/cli-args';
import { convertLdmSingleFileToFolder, readDiffusersComponents, saveLdmSingleFile } from './ldm-single-file';

export const convertCli = defineCli({
  name: 'convert',
  summary:
    "Converts an original-layout (CompVis / LDM) Stable Diffusion .safetensors checkpoint to a diffusers pipeline folder, as diffusers' from_single_file(config=...) reads it, or a diffusers folder back to one file. Weights are renamed (and 8 VAE attention weights reshaped), never recomputed: the result is bit-identical. Nothing is overwritten.",
  usage: [
    '--single-file <model.safetensors> --config <diffusers Stable Diffusion folder> --out <new folder>',
    '--to-single-file <diffusers Stable Diffusion folder> --out <model.safetensors>',
  ],
  flags: {
    'single-file': { type: 'string', value: '<model.safetensors>', description: 'the single-file checkpoint to convert to a diffusers folder' },
    'to-single-file': { type: 'string', value: '<folder>', description: 'the diffusers Stable Diffusion folder to write as one file' },
    config: {
      type: 'string',
      value: '<folder>',
      description:
        'with --single-file: the diffusers folder of the same model (unet/, vae/, text_encoder/ configs, tokenizer/, scheduler/), since a single file does not say how its models are built',
    },
    out: {
      type: 'string',
      value: '<path>',
      required: true,
      description: 'what to write, which must not exist: a folder for --single-file, a .safetensors file for --to-single-file',
    },
    stack: STACK_FLAG,
  },
  examples: [
    'npm run convert -- --single-file v1-5.safetensors --config stable-diffusion-v1-5 --out sd15',
    'npm run convert -- --to-single-file sd15 --out sd15-single.safetensors',
  ],
});

export async function runConvertCli(argv: readonly string[], out: Writable, err: Writable): Promise<number> {
  const stack = argv.includes('--stack');
  try {
    const args = parseCli(convertCli, argv);
    if (args.help) {
      out.write(formatHelp(convertCli));
      return 0;
    }
    const a = args.values;
    if ((a['single-file'] === undefined) === (a['to-single-file'] === undefined))
      throw new CliUsageError('give exactly one of --single-file and --to-single-file');
    if (a['single-file'] !== undefined && a.config === undefined) {
      throw new CliUsageError(
        '--config: a single file does not say how its models are built; give the diffusers folder of the same model (Stable Diffusion 1.x or 2.x: unet/, vae/, text_encoder/ configs, tokenizer/, scheduler/)',
      );
    }
    const target = path.resolve(a.out);
    if (existsSync(target)) throw new ConfigError(`--out: ${target} already exists; choose a new path (nothing is overwritten)`);
    if (a['single-file'] !== undefined) {
      const result = await convertLdmSingleFileToFolder(path.resolve(a['single-file']), target, { config: path.resolve(a.config!) });
      const counts = Object.entries(result.components).map(([name, tensors]) => `${name} ${tensors.size}`);
      out.write(`wrote ${target} (${counts.join(', ')} tensors${result.ignored.length ? `; ignored ${result.ignored.length} training-only keys` : ''})\n`);
    } else {
      const dir = path.resolve(a['to-single-file']!);
      const components = await readDiffusersComponents(dir);
      await saveLdmSingleFile(target, components, { config: dir });
      out.write(`wrote ${target} (unet ${components.unet.size}, vae ${components.vae.size}, text_encoder ${components.text_encoder.size} tensors)\n`);
    }
    return 0;
  } catch (error) {
    err.write(`${formatCliError('convert', error, stack)}\n${usageHint(convertCli, error)}`);
    return 1;
  }
}
