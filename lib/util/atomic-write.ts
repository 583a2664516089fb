/**
 * Replace-or-create a file so that readers and crashes see either the old file or the complete new
 * one, never a partial write: write a temp file in the same folder, fsync it, rename it over the
 * target, fsync the folder so the rename itself is durable.
 */

import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as nodePath from 'node:path';
import { InternalError } from '../errors';
import { fileSystemError } from './fs-errors';

/** The temp file name for `target`: hidden, in the same folder (rename is only atomic within one file system). */
export function tempPathFor(target: string): string {
  const name = `.${nodePath.basename(target)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  return nodePath.join(nodePath.dirname(target), name);
}

/**
 * Writes all of `bytes` at the handle's current position: FileHandle.write may write less than asked,
 * and one call is limited to 2 GiB.
 */
export async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  const chunk = 1 << 30;
  let done = 0;
  while (done < bytes.byteLength) {
    const length = Math.min(chunk, bytes.byteLength - done);
    const { bytesWritten } = await handle.write(bytes, done, length);
    if (bytesWritten <= 0)
      throw new InternalError(
        `writeAll: expected the file system to write at least 1 byte but write returned ${bytesWritten} with ${bytes.byteLength - done} left to write`,
      );
    done += bytesWritten;
  }
}

/**
 * Creates `target` (or replaces it) with what `writeBody` writes to the handle. On any failure the temp
 * file is removed, an existing target is left untouched, and the error is rethrown.
 */
export async function writeFileAtomically(target: string, writeBody: (handle: FileHandle) => Promise<void>): Promise<void> {
  const temp = tempPathFor(target);
  let handle: FileHandle;
  try {
    // 'wx': never follow or reuse an existing path at the temp name.
    handle = await fs.open(temp, 'wx');
  } catch (error) {
    // The temp file is an implementation detail: the error names the file the caller asked for.
    throw fileSystemError(error, target, 'write');
  }
  let closed = false;
  try {
    await writeBody(handle);
    await handle.sync();
    closed = true;
    await handle.close();
    await fs.rename(temp, target);
  } catch (error) {
    if (!closed) await handle.close().catch(() => undefined);
    await fs.rm(temp, { force: true }).catch(() => undefined);
    throw fileSystemError(error, target, 'write');
  }
  try {
    await syncDirectory(nodePath.dirname(target));
  } catch (error) {
    throw fileSystemError(error, nodePath.dirname(target), 'sync the folder');
  }
}

async function syncDirectory(dir: string): Promise<void> {
  // Windows cannot open a folder for fsync, and NTFS journals renames anyway.
  if (process.platform === 'win32') return;
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
