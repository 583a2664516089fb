/**
 * The one place that turns Node's file-system errors (`EACCES: permission denied, open '.x.tmp-…'`) into
 * FileSystemErrors naming the path the caller asked for and the real problem: a read-only or full file
 * system, a symlink loop, a file where a folder belongs. Reading and writing code wraps its fs calls here
 * instead of interpreting errno codes at each call site.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { DifftuneError, FileSystemError } from '../errors';

/** What each errno means for the user, in words (the code itself follows in parentheses). */
const PROBLEMS: Readonly<Record<string, string>> = {
  EACCES: 'permission denied for this user',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is used up',
  ELOOP: 'too many levels of symbolic links (a symlink loop?)',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'it is a folder, not a file',
  ENOENT: 'no such file or folder',
  EEXIST: 'it already exists',
  ENAMETOOLONG: 'the name is too long for this file system',
  EMFILE: 'too many open files in this process (raise the limit: ulimit -n)',
  ENFILE: 'too many open files on this system',
  EIO: 'an input/output error (a failing disk or an unreachable network file system?)',
  EFBIG: 'the file is larger than this file system allows',
  EBUSY: 'the file or folder is busy',
  EXDEV: 'it cannot be moved to another file system',
  ENXIO: 'no such device',
  ENODEV: 'no such device',
  ETXTBSY: 'the file is busy (a running program)',
};

/** Actions whose ENOENT means "the folder to write into is missing" rather than "the file is missing". */
const WRITING = new Set(['write', 'create', 'create the folder', 'write into']);

/** The errno code (`ENOSPC`, ...) of a Node.js system error, undefined for any other value. */
export function errnoOf(error: unknown): string | undefined {
  if (error instanceof DifftuneError || error === null || typeof error !== 'object') return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

export interface FsErrorContext {
  /** The recipe field or CLI option the path came from (`output`, `--out`), as the message's prefix. */
  readonly field?: string;
}

/**
 * `error` as a FileSystemError saying `cannot <action> <path>: <problem> (<ERRNO>)` when it is a system
 * error; anything else (a DifftuneError included) is returned unchanged. `path` is what the caller
 * asked for: a failure on an internal temp file is reported against its target.
 */
export function fileSystemError(error: unknown, path: string, action: string, context: FsErrorContext = {}): unknown {
  const code = errnoOf(error);
  if (code === undefined) return error;
  let problem = PROBLEMS[code];
  if (code === 'ENOENT' && WRITING.has(action)) problem = `the folder ${nodePath.dirname(path)} does not exist`;
  if (problem === undefined)
    problem = String((error as { message?: unknown }).message)
      .replace(/^E[A-Z0-9]+: /, '')
      .replace(/, \w+ '.*'$/, '');
  const prefix = context.field === undefined ? '' : `${context.field}: `;
  return new FileSystemError(path, code, `${prefix}cannot ${action} ${path}: ${problem} (${code})`, { cause: error });
}

/** Runs `run`, rethrowing a system error as fileSystemError(error, path, action). */
export async function withFileErrors<T>(path: string, action: string, run: () => Promise<T>, context: FsErrorContext = {}): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw fileSystemError(error, path, action, context);
  }
}

export type PathKind = 'file' | 'folder' | 'other';

function kindOf(stat: fs.Stats): PathKind {
  return stat.isFile() ? 'file' : stat.isDirectory() ? 'folder' : 'other';
}

/**
 * What is at `path`, following symlinks: a file, a folder, something else, or undefined when nothing
 * is (ENOENT, or ENOTDIR: a file on the way). Unlike fs.existsSync, a symlink loop or a folder this user
 * may not enter is an error naming the path, not a "missing" file.
 */
export function pathKind(path: string, context: FsErrorContext = {}): PathKind | undefined {
  try {
    return kindOf(fs.statSync(path));
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw fileSystemError(error, path, 'access', context);
  }
}
