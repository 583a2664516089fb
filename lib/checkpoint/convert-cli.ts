/**
 * `npm run convert -- --single-file <model.safetensors> --config <diffusers SD folder> --out <folder>`:
 * an original-layout (CompVis / LDM) Stable Diffusion checkpoint to a diffusers pipeline folder, as
 * diffusers' from_single_file(config=...) reads it; `--to-single-file <diffusers SD folder> --out
 * <model.safetensors>` writes the reverse. Weights are renamed (8 VAE attention weights reshaped, SD 2.x's
 * fused OpenCLIP q/k/v cut apart and joined again), never recomputed: the result is bit-identical. A folder
 * with a gelu (OpenCLIP, SD 2.x) text encoder is written in SD 2.x's layout, with the tensors its single
 * file had beyond diffusers' (text_encoder/single_file_extras.safetensors) put back.
 */
import { existsSync } from 'fs';
import * as path from 'path';
import type { Writable } from 'stream';
import { ConfigError, formatCliError } from '../errors';
import { CliUsageError, defineCli, formatHelp, parseCli, STACK_FLAG, usageHint } from '../util/cli-args';
import { convertLdmSingleFileToFolder, SINGLE_FILE_KEPT_FILE, writeLdmSingleFileFromFolder } from './ldm-single-file';

export const convertCli = defineCli({
  name: 'convert',
  summary:
    "Converts an original-layout (CompVis / LDM) Stable Diffusion 1.x or 2.x .safetensors checkpoint to a diffusers pipeline folder, as diffusers' from_single_file(config=...) reads it, or a diffusers folder back to one file (SD 2.x folders in SD 2.x's OpenCLIP layout). Weights are renamed, reshaped or cut/joined (VAE attention, OpenCLIP q/k/v), never recomputed: the result is bit-identical. The OpenCLIP tensors diffusers has no place for are kept in text_encoder/single_file_extras.safetensors and written back. Nothing is overwritten.",
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
      const kept = result.kept.size > 0 ? `; kept ${result.kept.size} more in ${SINGLE_FILE_KEPT_FILE}` : '';
      out.write(
        `wrote ${target} (${counts.join(', ')} tensors${kept}${result.ignored.length ? `; ignored ${result.ignored.length} training-only keys` : ''})\n`,
      );
    } else {
      const written = await writeLdmSingleFileFromFolder(path.resolve(a['to-single-file']!), target);
      const { unet, vae, text_encoder: textEncoder } = written.components;
      const layout = written.textEncoderStyle === 'open-clip' ? 'SD 2.x OpenCLIP text encoder' : 'SD 1.x CLIP text encoder';
      out.write(
        `wrote ${target} (unet ${unet}, vae ${vae}, text_encoder ${textEncoder} tensors, ${layout}` +
          `${written.kept > 0 ? `, ${written.kept} kept tensors from ${SINGLE_FILE_KEPT_FILE}` : ''})\n`,
      );
    }
    return 0;
  } catch (error) {
    err.write(`${formatCliError('convert', error, stack)}\n${usageHint(convertCli, error)}`);
    return 1;
  }
}
