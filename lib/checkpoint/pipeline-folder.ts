/**
 * The files that make up a diffusers pipeline folder: model_index.json and the subfolders of the
 * components it names. Anything else in the folder (difftune's checkpoint-*, metrics.jsonl, caches) is
 * not part of the pipeline and is not copied when a pipeline is converted or fine-tuned.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { parseLenientJson } from '../config/json';
import { ConfigError } from '../errors';
import { writeAll, writeFileAtomically } from '../util/atomic-write';
import { withFileErrors } from '../util/fs-errors';

export const PIPELINE_INDEX_FILE = 'model_index.json';

/**
 * model_index.json and the component folders it names (`[library, class]`, not `[null, null]`) that
 * exist in `dir`, as names relative to `dir`.
 */
export async function pipelineEntries(dir: string): Promise<string[]> {
  const file = path.join(dir, PIPELINE_INDEX_FILE);
  const text = await withFileErrors(file, 'read', () => fs.readFile(file, 'utf8'));
  const index = parseLenientJson(text, file);
  if (typeof index !== 'object' || index === null || Array.isArray(index)) {
    throw new ConfigError(`${file}: expected a JSON object (a diffusers model_index.json), found ${JSON.stringify(index)}`);
  }
  const entries = [PIPELINE_INDEX_FILE];
  for (const [key, value] of Object.entries(index)) {
    if (key.startsWith('_') || !Array.isArray(value) || value[0] === null) continue;
    const stat = await fs.stat(path.join(dir, key)).catch(() => undefined);
    if (stat?.isDirectory()) entries.push(key);
  }
  return entries;
}

/** Writes `<dir>/model_index.json` as diffusers' save_pretrained does (keys sorted, two-space indent). */
export async function writePipelineIndex(
  dir: string,
  className: string,
  diffusersVersion: string,
  components: Readonly<Record<string, readonly [string, string]>>,
): Promise<void> {
  const index: Record<string, unknown> = { _class_name: className, _diffusers_version: diffusersVersion };
  for (const name of Object.keys(components).sort()) index[name] = components[name];
  const bytes = Buffer.from(`${JSON.stringify(index, null, 2)}\n`, 'utf8');
  await writeFileAtomically(path.join(dir, PIPELINE_INDEX_FILE), (handle) => writeAll(handle, bytes));
}
