/**
 * Model folders on disk, for every model class: finding the weight files (single or sharded), loading
 * them into one state dict for the time of a call, and writing a diffusers folder back.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError } from '../errors';
import { parseLenientJson, formatLenientJson } from '../config/json';
import { DEFAULT_DIFFUSERS_VERSION } from '../config/scheduler';
import { loadStateDict, saveStateDict, disposeStateDict, type StateDict } from '../checkpoint/state-dict';
import { writeFileAtomically, writeAll } from '../util/atomic-write';
import { pathKind } from '../util/fs-errors';
import { createFolder } from '../util/output-folder';

/**
 * `<dir>/<base>` alone, or the shards `<dir>/<base>.index.json` maps to (each checked to be a file in
 * the folder); undefined when neither exists.
 */
export function shardedWeightFiles(dir: string, base: string): string[] | undefined {
  const single = path.join(dir, base);
  // pathKind, not fs.existsSync: a symlink loop is an error naming the file, not a missing file.
  if (pathKind(single) !== undefined) return [single];
  const index = `${single}.index.json`;
  if (pathKind(index) === undefined) return undefined;
  const parsed = parseLenientJson(fs.readFileSync(index, 'utf8'), index) as { weight_map?: unknown };
  const map = parsed.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) throw new ConfigError(`${index}: expected an object "weight_map" of tensor name → shard file`);
  const shards = [...new Set(Object.values(map as Record<string, unknown>))];
  for (const shard of shards) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) throw new ConfigError(`${index}: shard ${JSON.stringify(shard)} is not a file name in the folder`);
    if (pathKind(path.join(dir, shard)) === undefined) throw new ConfigError(`${index}: shard ${shard} is missing from ${dir}`);
  }
  return (shards as string[]).map((s) => path.join(dir, s));
}

/**
 * Loads `files` (of folder `dir`) into one state dict and calls `use(weights, source)`, source naming
 * the file or the shard count; the loaded tensors are disposed afterwards.
 */
export async function withWeightFiles<T>(dir: string, files: readonly string[], use: (weights: StateDict, source: string) => Promise<T>): Promise<T> {
  const weights: StateDict = new Map();
  try {
    for (const file of files) {
      for (const [name, t] of await loadStateDict(file)) weights.set(name, t);
    }
    return await use(weights, files.length === 1 ? files[0]! : `${dir} (${files.length} shards)`);
  } finally {
    disposeStateDict(weights);
  }
}

/** The diffusers config.json object: _class_name, _diffusers_version, then every other key (kept unknown keys too) sorted. */
export function diffusersConfigJson(config: { _class_name: string }, extra: Readonly<Record<string, unknown>> = {}): Record<string, unknown> {
  const { _class_name, ...rest } = config;
  const all: Record<string, unknown> = { ...extra, ...rest };
  const out: Record<string, unknown> = { _class_name, _diffusers_version: DEFAULT_DIFFUSERS_VERSION };
  for (const key of Object.keys(all).sort()) out[key] = all[key];
  return out;
}

/** Writes `<dir>/<weightsFile>` (the model's state dict) and then config.json, each atomically. */
export async function saveModelFolder(dir: string, weightsFile: string, stateDict: () => Promise<StateDict>, configJson: () => Record<string, unknown>): Promise<void> {
  await createFolder(dir);
  const weights = await stateDict();
  try {
    await saveStateDict(path.join(dir, weightsFile), weights, { format: 'pt' });
  } finally {
    disposeStateDict(weights);
  }
  const text = Buffer.from(`${formatLenientJson(configJson(), 2)}\n`, 'utf8');
  await writeFileAtomically(path.join(dir, 'config.json'), (handle) => writeAll(handle, text));
}
