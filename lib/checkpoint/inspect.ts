/**
 * The logic of the `inspect` CLI (scripts/inspect.ts only wires it to the process), kept here so tests
 * can run it without a build: print what a .safetensors file or a diffusers model folder holds.
 */

import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import { formatLenientJson, parseLenientJson } from '../config/json';
import { ConfigError, formatCliError } from '../errors';
import { CliUsageError, defineCli, formatHelp, parseCli, STACK_FLAG, usageHint } from '../util/cli-args';
import { SafetensorsFile } from './safetensors';

/** Where the CLI writes: process.stdout / process.stderr, or a collector in tests. */
export interface TextSink {
  write(text: string): unknown;
}

export const inspectCli = defineCli({
  name: 'inspect',
  summary:
    "Lists what a .safetensors file holds (metadata; each tensor's name, dtype, shape and bytes) or a diffusers model folder (its configs, then each weights file). A malformed file exits 1 naming the file and the problem.",
  flags: { stack: STACK_FLAG },
  positionals: { value: '<file.safetensors | model-folder>', description: 'what to list (after --, a path that starts with a dash)' },
  examples: ['npm run inspect -- test/fixtures/diffusers/unet2d-tiny', 'npm run inspect -- unet/diffusion_pytorch_model.safetensors'],
});

/** Config files printed for a folder, in this order. */
const CONFIG_FILES = ['model_index.json', 'config.json', 'scheduler_config.json'];
const PICKLE_FILE = /\.(bin|ckpt|pt|pth)$/i;

export async function runInspect(argv: readonly string[], out: TextSink, err: TextSink): Promise<number> {
  let showStack = false;
  try {
    const args = parseCli(inspectCli, argv);
    if (args.help) {
      out.write(formatHelp(inspectCli));
      return 0;
    }
    showStack = args.values.stack;
    const paths = args.positionals;
    if (paths.length !== 1) throw new CliUsageError(paths.length === 0 ? 'no path given' : `expected one path, got ${paths.length}`);
    await inspectPath(paths[0] as string, out);
    return 0;
  } catch (error) {
    // A usage error is the caller's, not a bug: no stack even with --stack.
    err.write(`${formatCliError('inspect', error, showStack && !(error instanceof CliUsageError))}\n${usageHint(inspectCli, error)}`);
    return 1;
  }
}

async function inspectPath(path: string, out: TextSink): Promise<void> {
  let stat;
  try {
    stat = await fs.stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ConfigError(`${path}: no such file or directory`, { cause: error });
    throw error;
  }
  if (stat.isDirectory()) await inspectFolder(path, out);
  else await inspectFile(path, out);
}

async function inspectFolder(dir: string, out: TextSink): Promise<void> {
  out.write(`folder: ${dir}\n`);
  const shown = await inspectFolderLevel(dir, '', out);
  const entries = await fs.readdir(dir, { withFileTypes: true });
  const subfolders = entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
  let total = shown;
  for (const sub of subfolders) total += await inspectFolderLevel(nodePath.join(dir, sub), `${sub}/`, out);
  if (total === 0) {
    throw new ConfigError(`${dir}: found no ${CONFIG_FILES.join(', ')} or *.safetensors file in it or in its immediate subfolders`);
  }
}

/** Prints the configs and safetensors files directly in `dir`; returns how many it printed. */
async function inspectFolderLevel(dir: string, label: string, out: TextSink): Promise<number> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  const files = entries
    .filter((e) => e.isFile())
    .map((e) => e.name)
    .sort();
  let count = 0;
  for (const name of CONFIG_FILES) {
    if (!files.includes(name)) continue;
    const file = nodePath.join(dir, name);
    const config = parseLenientJson(await fs.readFile(file, 'utf8'), file);
    out.write(`\n== ${label}${name}\n${formatLenientJson(config, 2, true)}\n`);
    count += 1;
  }
  for (const name of files.filter((f) => f.endsWith('.safetensors'))) {
    out.write(`\n== ${label}${name}\n`);
    await inspectFile(nodePath.join(dir, name), out);
    count += 1;
  }
  for (const name of files.filter((f) => PICKLE_FILE.test(f))) {
    out.write(`\n== ${label}${name}\nskipped: a pickle checkpoint, never loaded (convert it to .safetensors; see the error for that file)\n`);
  }
  return count;
}

function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(2)} ${units[unit]}`;
}

async function inspectFile(path: string, out: TextSink): Promise<void> {
  const file = await SafetensorsFile.open(path);
  try {
    const lines: string[] = [];
    lines.push(`file: ${path}`);
    lines.push(`size: ${file.size} bytes (header ${file.header.headerLength} bytes, data from byte ${file.header.dataStart})`);
    const metadata = file.metadata;
    if (metadata === undefined || Object.keys(metadata).length === 0) lines.push('metadata: (none)');
    else {
      lines.push('metadata:');
      for (const [key, value] of Object.entries(metadata)) lines.push(`  ${key}: ${value}`);
    }
    const infos = [...file.tensors.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const rows = infos.map((t) => [t.name, t.dtype, `[${t.shape.join(', ')}]`, String(t.byteLength)] as const);
    const head = ['name', 'dtype', 'shape', 'bytes'] as const;
    const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
    const format = (r: readonly string[]): string =>
      `  ${r
        .slice(0, 3)
        .map((c, i) => c.padEnd(width[i] ?? 0))
        .join('  ')}  ${(r[3] ?? '').padStart(width[3] ?? 0)}`;
    lines.push('tensors:');
    lines.push(format(head));
    for (const row of rows) lines.push(format(row));
    const bytes = infos.reduce((acc, t) => acc + t.byteLength, 0);
    const elements = infos.reduce((acc, t) => acc + t.numel, 0);
    lines.push(`total: ${infos.length} tensors, ${elements} elements, ${bytes} bytes (${formatBytes(bytes)})`);
    out.write(`${lines.join('\n')}\n`);
  } finally {
    await file.close();
  }
}
