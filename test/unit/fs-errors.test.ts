/**
 * File-system failures become FileSystemErrors naming the path the caller asked for and the real
 * problem: a full disk is not "ENOSPC … write" without a path, a missing folder is not an error about a
 * hidden temp file, a symlink loop is not a missing file, a read-only output is not ENOENT. Failures
 * that need a special file system (full, read-only) are injected by mocking the one fs call that fails,
 * so the tests run as any user on any machine; symlink loops and files-as-folders are real.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileSystemError } from '../../lib/errors';
import { SafetensorsFile, writeSafetensors } from '../../lib/checkpoint/safetensors';
import { type CheckpointState, writeCheckpoint } from '../../lib/checkpoint/train-state';
import { DiskCache } from '../../lib/data/cache';
import { writeFileAtomically, writeAll } from '../../lib/util/atomic-write';
import { fileSystemError, pathKind } from '../../lib/util/fs-errors';
import { checkOutputFile, checkOutputFolder, pseudoFileSystemOf } from '../../lib/util/output-folder';
import { useTempDir } from '../helpers/temp-dir';

const tempDir = useTempDir('fs-errors');
let counter = 0;
const fresh = (): string => {
  const dir = path.join(tempDir(), `case-${counter++}`);
  fs.mkdirSync(dir);
  return dir;
};

/** What Node's fs raises for `code` (the message text is libuv's). */
function systemError(code: string, syscall: string, file?: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected, ${syscall}${file === undefined ? '' : ` '${file}'`}`), { code, errno: -1, syscall, path: file });
}

const tensor = { w: { dtype: 'F32' as const, shape: [4], data: new Float32Array(4) } };

async function caught(run: () => Promise<unknown>): Promise<FileSystemError> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(FileSystemError);
    return error as FileSystemError;
  }
  throw new Error('expected a FileSystemError, but nothing was thrown');
}

/** A symlink pointing at itself through a second one: any stat or open of it fails with ELOOP. */
function symlinkLoop(dir: string, name: string): string {
  const a = path.join(dir, name);
  const b = path.join(dir, `${name}-other`);
  fs.symlinkSync(b, a);
  fs.symlinkSync(a, b);
  return a;
}

afterEach(() => jest.restoreAllMocks());

describe('writing files', () => {
  test('into a missing folder: names the target and its folder, not the hidden temp file', async () => {
    const target = path.join(fresh(), 'missing', 'model.safetensors');
    const e = await caught(() => writeSafetensors(target, tensor));
    expect(e.code).toBe('ERR_FILE_SYSTEM');
    expect(e.errno).toBe('ENOENT');
    expect(e.path).toBe(target);
    expect(e.message).toBe(`cannot write ${target}: the folder ${path.dirname(target)} does not exist (ENOENT)`);
    expect(e.message).not.toMatch(/\.tmp-/);
  });

  test('a full disk names the file (injected: the data write fails with ENOSPC)', async () => {
    const dir = fresh();
    const target = path.join(dir, 'model.safetensors');
    fs.writeFileSync(target, 'old');
    const probe = await fs.promises.open(path.join(dir, 'probe'), 'w');
    const handleProto = Object.getPrototypeOf(probe) as { write: (...args: unknown[]) => Promise<unknown> };
    await probe.close();
    fs.rmSync(path.join(dir, 'probe'));
    jest.spyOn(handleProto, 'write').mockRejectedValue(systemError('ENOSPC', 'write'));
    const e = await caught(() => writeSafetensors(target, tensor));
    expect(e.message).toBe(`cannot write ${target}: no space left on the device (ENOSPC)`);
    expect(e.errno).toBe('ENOSPC');
    // Atomic as before: the old file stays, no temp file is left.
    expect(fs.readFileSync(target, 'utf8')).toBe('old');
    expect(fs.readdirSync(dir)).toEqual(['model.safetensors']);
  });

  test('a read-only file system (injected: creating the temp file fails with EROFS)', async () => {
    const target = path.join(fresh(), 'config.json');
    jest.spyOn(fs.promises, 'open').mockRejectedValueOnce(systemError('EROFS', 'open', `${target}.tmp`));
    const e = await caught(() => writeFileAtomically(target, (h) => writeAll(h, Buffer.from('{}'))));
    expect(e.message).toBe(`cannot write ${target}: the file system is read-only (EROFS)`);
  });

  test('a checkpoint that cannot be written names checkpoint-<step>, not its hidden temporary folder', async () => {
    const output = fresh();
    const state = { step: 3 } as unknown as CheckpointState;
    const fill = async (tmp: string): Promise<void> => {
      throw fileSystemError(systemError('ENOSPC', 'write'), path.join(tmp, 'optimizer.safetensors'), 'write');
    };
    const e = await caught(() => writeCheckpoint(output, state, fill, 0));
    expect(e.message).toBe(`cannot write ${path.join(output, 'checkpoint-3', 'optimizer.safetensors')}: no space left on the device (ENOSPC)`);
    expect(fs.readdirSync(output)).toEqual([]);
  });

  test('a data cache entry on a full disk names the entry, and leaves no temp file (injected: writeFile fails with ENOSPC)', async () => {
    const dir = path.join(fresh(), 'cache');
    const cache = new DiskCache(dir);
    jest.spyOn(fs.promises, 'writeFile').mockRejectedValueOnce(systemError('ENOSPC', 'write'));
    const e = await caught(() => cache.set('abc', { pixels: new Uint8Array(12), width: 2, height: 2, channels: 3 }));
    expect(e.message).toBe(`cannot write ${path.join(dir, 'abc.raw')}: no space left on the device (ENOSPC)`);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test('over a folder: says it is a folder', async () => {
    const target = fresh();
    const e = await caught(() => writeSafetensors(target, tensor));
    expect(e.message).toBe(`cannot write ${target}: it is a folder, not a file (EISDIR)`);
  });
});

describe('reading files', () => {
  test('a symlink loop is a loop, not a missing file', async () => {
    const loop = symlinkLoop(fresh(), 'model.safetensors');
    const e = await caught(() => SafetensorsFile.open(loop));
    expect(e.errno).toBe('ELOOP');
    expect(e.message).toBe(`cannot read ${loop}: too many levels of symbolic links (a symlink loop?) (ELOOP)`);
    expect(() => pathKind(loop)).toThrow(`cannot access ${loop}: too many levels of symbolic links (a symlink loop?) (ELOOP)`);
  });

  test('pathKind: file, folder, or undefined when nothing is there', () => {
    const dir = fresh();
    fs.writeFileSync(path.join(dir, 'f'), '');
    expect(pathKind(dir)).toBe('folder');
    expect(pathKind(path.join(dir, 'f'))).toBe('file');
    expect(pathKind(path.join(dir, 'nothing'))).toBeUndefined();
    expect(pathKind(path.join(dir, 'f', 'below-a-file'))).toBeUndefined();
  });

  test('a missing file says so', async () => {
    const file = path.join(fresh(), 'nothing.safetensors');
    const e = await caught(() => SafetensorsFile.open(file));
    expect(e.message).toBe(`cannot read ${file}: no such file or folder (ENOENT)`);
  });

  test('errors that are not system errors pass through unchanged', () => {
    const plain = new Error('not from the file system');
    expect(fileSystemError(plain, '/x', 'read')).toBe(plain);
  });
});

describe('checkOutputFolder', () => {
  test('creates missing folders and leaves nothing else behind', async () => {
    const dir = path.join(fresh(), 'a', 'b');
    await checkOutputFolder(dir, 'output');
    expect(fs.statSync(dir).isDirectory()).toBe(true);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test('a file is not a folder', async () => {
    const file = path.join(fresh(), 'recipe.json');
    fs.writeFileSync(file, '{}');
    const e = await caught(() => checkOutputFolder(file, 'output'));
    expect(e.message).toBe(`output: expected a folder to write into, but ${file} is a file, not a folder`);
    const below = path.join(file, 'run');
    expect((await caught(() => checkOutputFolder(below, 'output'))).message).toBe(
      `output: expected a folder to write into, but ${file} (on the way to ${below}) is a file, not a folder`,
    );
  });

  test('a read-only file system is named as such, not as ENOENT (injected: mkdir fails with EROFS)', async () => {
    const dir = path.join(fresh(), 'run');
    jest.spyOn(fs.promises, 'mkdir').mockRejectedValueOnce(systemError('EROFS', 'mkdir', dir));
    const e = await caught(() => checkOutputFolder(dir, 'output'));
    expect(e.message).toBe(`output: cannot create the folder ${dir}: the file system is read-only (EROFS)`);
  });

  test('a folder this user may not write into (injected: creating the probe file fails with EACCES)', async () => {
    const dir = fresh();
    jest.spyOn(fs.promises, 'open').mockRejectedValueOnce(systemError('EACCES', 'open', path.join(dir, '.probe')));
    const e = await caught(() => checkOutputFolder(dir, 'output'));
    expect(e.message).toBe(`output: cannot write into ${dir}: permission denied for this user (EACCES)`);
  });

  test('a symlink loop', async () => {
    const loop = symlinkLoop(fresh(), 'out');
    const e = await caught(() => checkOutputFolder(loop, 'output'));
    expect(e.message).toBe(`output: cannot access ${loop}: too many levels of symbolic links (a symlink loop?) (ELOOP)`);
  });

  test('a pseudo file system is refused from the mount table', () => {
    const table = [
      '/dev/vda / ext4 rw 0 0',
      'proc /proc proc rw 0 0',
      'sysfs /sys sysfs rw 0 0',
      'tmpfs /dev/shm tmpfs rw 0 0',
      'devtmpfs /dev devtmpfs rw 0 0',
      '/dev/vdb /mnt/my\\040disk ext4 rw 0 0',
    ].join('\n');
    expect(pseudoFileSystemOf('/proc/1/x', table)).toEqual(['/proc', 'proc']);
    expect(pseudoFileSystemOf('/sys/kernel', table)).toEqual(['/sys', 'sysfs']);
    expect(pseudoFileSystemOf('/dev/shm/run', table)).toBeUndefined();
    expect(pseudoFileSystemOf('/dev/x', table)).toEqual(['/dev', 'devtmpfs']);
    expect(pseudoFileSystemOf('/mnt/my disk/run', table)).toBeUndefined();
    expect(pseudoFileSystemOf('/processed', table)).toBeUndefined();
  });

  // Node's recursive mkdir never returns for a path under /proc; the check must not try it.
  (process.platform === 'linux' && fs.existsSync('/proc/self') ? test : test.skip)('an output under /proc is refused at once', async () => {
    const e = await caught(() => checkOutputFolder('/proc/difftune-output', 'output'));
    expect(e.message).toMatch(/^output: cannot write into \/proc\/difftune-output: it is on the proc pseudo file system \(mounted at \/proc\)/);
  });
});

describe('checkOutputFile', () => {
  test('a folder is not a file; a missing folder on the way is created', async () => {
    const dir = fresh();
    expect((await caught(() => checkOutputFile(dir, '--out'))).message).toBe(`--out: expected a file to write, but ${dir} is a folder`);
    const file = path.join(dir, 'new', 'grid.png');
    await checkOutputFile(file, '--out');
    expect(fs.readdirSync(path.dirname(file))).toEqual([]);
  });
});
