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
import { convertLdmSingleFileToFolder, readDiffusersComponents, saveLdmSingleFile } from './ldm-single-file';

const USAGE =
  'npm run convert -- --single-file <model.safetensors> --config <diffusers Stable Diffusion folder> --out <new folder>\n' +
  '       npm run convert -- --to-single-file <diffusers Stable Diffusion folder> --out <model.safetensors>';

interface Args {
  singleFile?: string;
  toSingleFile?: string;
  config?: string;
  out?: string;
  stack: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { stack: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = () => {
      const value = argv[++i];
      if (value === undefined || value.startsWith('--')) throw new ConfigError(`${k}: expected a path after it\nusage: ${USAGE}`);
      return value;
    };
    if (k === '--single-file') a.singleFile = v();
    else if (k === '--to-single-file') a.toSingleFile = v();
    else if (k === '--config') a.config = v();
    else if (k === '--out') a.out = v();
    else if (k === '--stack') a.stack = true;
    else throw new ConfigError(`unknown argument ${k}\nusage: ${USAGE}`);
  }
  if ((a.singleFile === undefined) === (a.toSingleFile === undefined)) throw new ConfigError(`give exactly one of --single-file and --to-single-file\nusage: ${USAGE}`);
  if (a.out === undefined) throw new ConfigError(`--out is required\nusage: ${USAGE}`);
  if (a.singleFile !== undefined && a.config === undefined) {
    throw new ConfigError(`--config: a single file does not say how its models are built; give the diffusers folder of the same model (Stable Diffusion 1.x or 2.x: unet/, vae/, text_encoder/ configs, tokenizer/, scheduler/)\nusage: ${USAGE}`);
  }
  return a;
}

export async function runConvertCli(argv: readonly string[], out: Writable, err: Writable): Promise<number> {
  let stack = argv.includes('--stack');
  try {
    const a = parseArgs(argv);
    stack = a.stack;
    const target = path.resolve(a.out!);
    if (existsSync(target)) throw new ConfigError(`--out: ${target} already exists; choose a new path (nothing is overwritten)`);
    if (a.singleFile !== undefined) {
      const result = await convertLdmSingleFileToFolder(path.resolve(a.singleFile), target, { config: path.resolve(a.config!) });
      const counts = Object.entries(result.components).map(([name, tensors]) => `${name} ${tensors.size}`);
      out.write(`wrote ${target} (${counts.join(', ')} tensors${result.ignored.length ? `; ignored ${result.ignored.length} training-only keys` : ''})\n`);
    } else {
      const dir = path.resolve(a.toSingleFile!);
      const components = await readDiffusersComponents(dir);
      await saveLdmSingleFile(target, components, { config: dir });
      out.write(`wrote ${target} (unet ${components.unet.size}, vae ${components.vae.size}, text_encoder ${components.text_encoder.size} tensors)\n`);
    }
    return 0;
  } catch (error) {
    err.write(`${formatCliError('convert', error, stack)}\n`);
    return 1;
  }
}
