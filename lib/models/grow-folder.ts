/**
 * Growing a model folder on disk: reads a diffusers U-Net folder, pipeline folder or fine-tuning output,
 * writes the grown U-Net in the same layout (a pipeline stays a pipeline: model_index.json and the other
 * components are copied beside the new unet/; a U-Net folder keeps its scheduler/ subfolder).
 */
import * as fs from 'fs';
import * as path from 'path';
import { disposeStateDict } from '../checkpoint/state-dict';
import { parseLenientJson } from '../config/json';
import { ConfigError } from '../errors';
import { growUNetParts, type GrowOptions } from './grow';
import { saveModelFolder, withWeightFiles } from './model-folder';
import { resolveWeightFiles, UNET_WEIGHTS } from './unet';

export interface GrownFolder {
  /** The input's U-Net folder. */
  inputUnetDir: string;
  /** Where the grown U-Net's config.json and weights are. */
  unetDir: string;
  config: Record<string, unknown>;
}

interface Layout {
  unetDir: string;
  /** Entries of the input folder to copy beside the grown U-Net. */
  copy: string[];
  /** The grown U-Net goes to <output>/<unetSubdir> ('' for a U-Net folder). */
  unetSubdir: string;
}

function layoutOf(input: string): Layout {
  if (!fs.existsSync(input) || !fs.statSync(input).isDirectory()) throw new ConfigError(`--model: ${input} is not a folder (expected a diffusers U-Net folder or pipeline folder)`);
  const has = (...parts: string[]): boolean => fs.existsSync(path.join(input, ...parts));
  if (has('model_index.json') || (!has('config.json') && has('unet', 'config.json'))) {
    if (!has('unet', 'config.json')) throw new ConfigError(`--model: the pipeline folder ${input} has no unet/config.json`);
    // As finetune does: model_index.json and the component folders; the old model card and images are not the new model's.
    const copy = fs
      .readdirSync(input, { withFileTypes: true })
      .filter((e) => e.name !== 'unet' && (e.isDirectory() || e.name === 'model_index.json'))
      .map((e) => e.name);
    return { unetDir: path.join(input, 'unet'), copy, unetSubdir: 'unet' };
  }
  if (!has('config.json')) throw new ConfigError(`--model: ${input} has neither model_index.json (a pipeline) nor config.json (a U-Net)`);
  return { unetDir: input, copy: ['scheduler', 'scheduler_config.json'].filter((e) => has(e)), unetSubdir: '' };
}

/** Writes the grown model of `input` to `output` (which must not exist or be empty). */
export async function growModelFolder(input: string, output: string, options: Pick<GrowOptions, 'seed' | 'resolution'> = {}): Promise<GrownFolder> {
  const layout = layoutOf(input);
  if (fs.existsSync(output) && fs.readdirSync(output).length > 0) throw new ConfigError(`--out: ${output} exists and is not empty; pick a new folder`);
  const configFile = path.join(layout.unetDir, 'config.json');
  const raw = parseLenientJson(fs.readFileSync(configFile, 'utf8'), configFile);
  return withWeightFiles(layout.unetDir, resolveWeightFiles(layout.unetDir), async (weights) => {
    const grown = await growUNetParts(raw, weights, { ...options, source: configFile });
    try {
      const unetDir = path.join(output, layout.unetSubdir);
      await saveModelFolder(unetDir, UNET_WEIGHTS, async () => grown.weights, () => grown.config);
      for (const entry of layout.copy) fs.cpSync(path.join(input, entry), path.join(output, entry), { recursive: true });
      return { inputUnetDir: layout.unetDir, unetDir, config: grown.config };
    } finally {
      disposeStateDict(grown.weights);
    }
  });
}
