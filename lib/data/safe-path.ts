/**
 * Keeps every file the dataset reads inside the dataset folder. A file name from metadata.jsonl or a
 * symlink found by the scan that leads outside is a security matter: it stops the run, never read.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { DatasetError } from '../errors';

function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/**
 * The real path of `entry` (relative to the real path `realRoot`), checked lexically before any file
 * system access and again after symlinks are resolved. `where` names the source ("metadata.jsonl line 3").
 */
export async function resolveInside(realRoot: string, entry: string, where: string): Promise<string> {
  const shown = JSON.stringify(entry);
  if (entry.length === 0 || entry.includes('\0')) throw new DatasetError(`${where}: file_name ${shown} is not a valid relative path`);
  if (path.isAbsolute(entry) || path.win32.isAbsolute(entry))
    throw new DatasetError(`${where}: file_name ${shown} is an absolute path; expected a path relative to the dataset folder ${realRoot}`);
  const lexical = path.resolve(realRoot, entry);
  if (!isInside(realRoot, lexical)) throw new DatasetError(`${where}: file_name ${shown} escapes the dataset folder ${realRoot}; refusing to read it`);
  let real: string;
  try {
    real = await fs.realpath(lexical);
  } catch (error) {
    throw new DatasetError(`${where}: file_name ${shown}: no such file in ${realRoot}`, { cause: error });
  }
  if (!isInside(realRoot, real))
    throw new DatasetError(`${where}: file_name ${shown} is a symlink to ${real}, outside the dataset folder ${realRoot}; refusing to read it`);
  return real;
}

/** The real path of a symlink met while listing the folder, refused when it leads outside. */
export async function checkLinkInside(realRoot: string, linkPath: string): Promise<string> {
  const real = await fs.realpath(linkPath);
  if (!isInside(realRoot, real)) throw new DatasetError(`${linkPath}: symlink to ${real}, outside the dataset folder ${realRoot}; refusing to read it`);
  return real;
}
