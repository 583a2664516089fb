/**
 * Checks an output location before any long work starts: a fine-tune should not load a model and data
 * for seconds only to find that its output folder is read-only, a file, or inside /proc. The folder is
 * created (each missing part with its own mkdir, so the error names the part and the real errno: a
 * recursive mkdir reports EROFS as ENOENT, and on /proc it never returns) and a probe file is written.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import * as nodePath from 'node:path';
import { FileSystemError } from '../errors';
import { errnoOf, fileSystemError } from './fs-errors';

/** File systems that hold no files: kernel and device views, not storage. */
const PSEUDO_FILE_SYSTEMS = new Set([
  'proc',
  'sysfs',
  'devtmpfs',
  'devpts',
  'cgroup',
  'cgroup2',
  'debugfs',
  'tracefs',
  'securityfs',
  'configfs',
  'pstore',
  'bpf',
  'fusectl',
  'efivarfs',
  'mqueue',
  'binfmt_misc',
  'autofs',
  'hugetlbfs',
  'rpc_pipefs',
  'nsfs',
]);

/** Where no mount table can be read: the usual mount points of those file systems. */
const PSEUDO_PREFIXES: ReadonlyArray<readonly [string, string]> = [
  ['/proc', 'proc'],
  ['/sys', 'sysfs'],
];

/** /proc/self/mounts escapes space, tab, newline and backslash in mount points as octal. */
function unescapeMount(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

function isInside(path: string, root: string): boolean {
  return root === '/' || path === root || path.startsWith(root.endsWith('/') ? root : `${root}/`);
}

/** The pseudo file system `realPath` lies on, as [mount point, type], or undefined for storage. */
export function pseudoFileSystemOf(realPath: string, mountTable?: string): readonly [string, string] | undefined {
  let table = mountTable;
  if (table === undefined && process.platform === 'linux') {
    try {
      table = readFileSync('/proc/self/mounts', 'utf8');
    } catch {
      // no /proc: fall back to the usual mount points
    }
  }
  if (table === undefined) return PSEUDO_PREFIXES.find(([root]) => isInside(realPath, root));
  let best: readonly [string, string] | undefined;
  for (const line of table.split('\n')) {
    const fields = line.split(' ');
    if (fields.length < 3) continue;
    const mountPoint = unescapeMount(fields[1]!);
    if (isInside(realPath, mountPoint) && (best === undefined || mountPoint.length >= best[0].length)) best = [mountPoint, fields[2]!];
  }
  return best !== undefined && PSEUDO_FILE_SYSTEMS.has(best[1]) ? best : undefined;
}

/** The nearest existing folder on the way to `target`, and the parts below it that do not exist yet. */
async function walkToExisting(target: string, field: string | undefined): Promise<{ existing: string; missing: string[] }> {
  const context = { field };
  const prefix = field === undefined ? '' : `${field}: `;
  const missing: string[] = [];
  let existing = target;
  for (;;) {
    let isFolder: boolean;
    try {
      isFolder = (await fs.stat(existing)).isDirectory();
    } catch (error) {
      const code = errnoOf(error);
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || nodePath.dirname(existing) === existing) throw fileSystemError(error, existing, 'access', context);
      missing.unshift(existing);
      existing = nodePath.dirname(existing);
      continue;
    }
    if (!isFolder) {
      const what = existing === target ? `${target} is a file` : `${existing} (on the way to ${target}) is a file`;
      throw new FileSystemError(target, 'ENOTDIR', `${prefix}expected a folder to write into, but ${what}, not a folder`);
    }
    return { existing, missing };
  }
}

async function makeFolders(parts: readonly string[], field: string | undefined): Promise<void> {
  for (const part of parts) {
    try {
      await fs.mkdir(part);
    } catch (error) {
      // Another process may have created it in between.
      if (
        errnoOf(error) === 'EEXIST' &&
        (await fs.stat(part).then(
          (s) => s.isDirectory(),
          () => false,
        ))
      )
        continue;
      if (
        errnoOf(error) === 'EEXIST' &&
        (await fs.lstat(part).then(
          (s) => s.isSymbolicLink(),
          () => false,
        ))
      ) {
        const prefix = field === undefined ? '' : `${field}: `;
        throw new FileSystemError(
          part,
          'EEXIST',
          `${prefix}cannot create the folder ${part}: it is a symbolic link to ${await fs.readlink(part)}, which does not exist`,
        );
      }
      throw fileSystemError(error, part, 'create the folder', { field });
    }
  }
}

/**
 * `mkdir -p dir`, one mkdir per missing part, so that a failure names that part and its real errno
 * (Node's recursive mkdir reports a read-only file system as ENOENT). Errors are FileSystemErrors,
 * prefixed with `field` when given.
 */
export async function createFolder(dir: string, field?: string): Promise<void> {
  const { missing } = await walkToExisting(nodePath.resolve(dir), field);
  await makeFolders(missing, field);
}

/**
 * Makes sure `dir` is a folder this process can write files into, creating it if needed. Errors are
 * FileSystemErrors whose message starts with `field` (`output`, `--out`) and names the path and problem.
 */
export async function checkOutputFolder(dir: string, field: string): Promise<void> {
  const target = nodePath.resolve(dir);
  const { existing, missing } = await walkToExisting(target, field);
  const real = await fs.realpath(existing).catch(() => existing);
  const pseudo = pseudoFileSystemOf(real);
  if (pseudo !== undefined) {
    throw new FileSystemError(
      target,
      undefined,
      `${field}: cannot write into ${target}: it is on the ${pseudo[1]} pseudo file system (mounted at ${pseudo[0]}), a kernel view that stores no files; choose a folder on a disk`,
    );
  }
  await makeFolders(missing, field);
  const probe = nodePath.join(target, `.difftune-write-test-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const handle = await fs.open(probe, 'wx');
    try {
      await handle.write(Buffer.from('x'));
    } finally {
      await handle.close();
    }
  } catch (error) {
    await fs.rm(probe, { force: true }).catch(() => undefined);
    throw fileSystemError(error, target, 'write into', { field });
  }
  await fs.rm(probe, { force: true });
}

/**
 * Makes sure `file` can be written: not a folder, in a folder checkOutputFolder accepts (created if
 * missing). For outputs written only at the end of a long run (an image after sampling).
 */
export async function checkOutputFile(file: string, field: string): Promise<void> {
  const target = nodePath.resolve(file);
  let isFolder = false;
  try {
    isFolder = (await fs.stat(target)).isDirectory();
  } catch (error) {
    const code = errnoOf(error);
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw fileSystemError(error, target, 'access', { field });
  }
  if (isFolder) throw new FileSystemError(target, 'EISDIR', `${field}: expected a file to write, but ${target} is a folder`);
  await checkOutputFolder(nodePath.dirname(target), field);
}
