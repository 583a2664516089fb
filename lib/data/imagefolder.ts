/**
 * The first scan of an image folder: finds images and their captions or labels in one of four layouts
 * (metadata.jsonl, class subfolders, kohya sidecars, plain), keeps every path inside the folder, and
 * checks each image (header or full decode), skipping or failing on unreadable ones.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { DataOptions } from '../config/data';
import { DatasetError } from '../errors';
import { decodeResized, firstLine, IMAGE_EXTENSIONS, probeImage, type DecodeSpec } from './decode';
import type { DatasetItem, ScanProgress, SkippedFile } from './item';
import { METADATA_FILE, readMetadata } from './metadata';
import { checkLinkInside, resolveInside } from './safe-path';
import { mapLimit } from './limit';
import { decodeUtf8 } from '../util/utf8';

export interface ScanHooks {
  readonly onProgress?: (progress: ScanProgress) => void;
  readonly onWarning?: (message: string) => void;
}

export interface ScanResult {
  readonly items: DatasetItem[];
  readonly classNames: string[] | null;
  readonly skipped: SkippedFile[];
  readonly layout: 'metadata' | 'sidecar' | 'classes' | 'plain';
}

interface Found {
  readonly file: string;
  /** Class folder name in the classes layout. */
  readonly className: string | null;
}

const PROGRESS_EVERY = 256;

function isImage(name: string): boolean {
  return IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase());
}

/** Files under dir (recursively, hidden names skipped), symlinks checked to stay inside realRoot. */
async function walk(realRoot: string, dir: string, out: string[], hooks: ScanHooks): Promise<void> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    let isDir = entry.isDirectory();
    let isFile = entry.isFile();
    if (entry.isSymbolicLink()) {
      const real = await checkLinkInside(realRoot, full);
      const st = await fs.stat(real);
      isDir = st.isDirectory();
      isFile = st.isFile();
    }
    if (isDir) await walk(realRoot, full, out, hooks);
    else if (isFile) {
      out.push(full);
      if (out.length % PROGRESS_EVERY === 0) hooks.onProgress?.({ phase: 'listing', done: out.length, total: null });
    }
  }
}

async function topLevel(root: string): Promise<{ images: number; dirs: string[] }> {
  const entries = await fs.readdir(root, { withFileTypes: true });
  let images = 0;
  const dirs: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    if (e.isFile() && isImage(e.name)) images++;
    else if (e.isDirectory() || e.isSymbolicLink()) dirs.push(e.name);
  }
  return { images, dirs: dirs.sort() };
}

/** The sidecar caption of an image (first extension that exists), null when none does. */
async function readSidecar(realRoot: string, image: string, extensions: readonly string[], onWarning: (message: string) => void): Promise<string | null> {
  const base = image.slice(0, image.length - path.extname(image).length);
  for (const ext of extensions) {
    const candidate = base + ext;
    try {
      await fs.lstat(candidate);
    } catch {
      continue;
    }
    const real = await resolveInside(realRoot, path.relative(realRoot, candidate), `caption file ${candidate}`);
    return decodeUtf8(await fs.readFile(real), candidate, onWarning).trim();
  }
  return null;
}

async function hasAnySidecar(files: readonly string[], extensions: readonly string[]): Promise<boolean> {
  const names = new Set(files);
  return files.some((f) => isImage(f) && extensions.some((ext) => names.has(f.slice(0, f.length - path.extname(f).length) + ext)));
}

export async function scanImageFolder(options: DataOptions, spec: DecodeSpec, hooks: ScanHooks = {}): Promise<ScanResult> {
  const given = options.path!;
  let realRoot: string;
  try {
    realRoot = await fs.realpath(given);
    if (!(await fs.stat(realRoot)).isDirectory()) throw new DatasetError('not a directory');
  } catch (error) {
    throw new DatasetError(`data.path: expected a dataset folder but ${JSON.stringify(given)} is ${firstLine(error)}`, { cause: error });
  }

  const top = await topLevel(realRoot);
  const metadataFile = path.join(realRoot, METADATA_FILE);
  const hasMetadata = await fs.stat(metadataFile).then(
    (s) => s.isFile(),
    () => false,
  );
  let layout = options.layout;
  let files: string[] = [];
  if (layout === 'metadata' || (layout === 'auto' && hasMetadata)) layout = 'metadata';
  else {
    await walk(realRoot, realRoot, files, hooks);
    files = files.filter((f) => path.basename(f) !== METADATA_FILE);
    if (layout === 'auto') {
      const nested = files.some((f) => isImage(f) && path.dirname(f) !== realRoot);
      if (top.images === 0 && nested) layout = 'classes';
      else layout = (await hasAnySidecar(files, options.captionExtensions)) ? 'sidecar' : 'plain';
    }
  }
  if (options.classes !== undefined && layout !== 'classes')
    throw new DatasetError(`data.classes: only class subfolders have classes, but ${realRoot} has the ${layout} layout`);

  let found: Found[] = [];
  let classNames: string[] | null = null;
  const captions = new Map<string, readonly string[] | null>();
  if (layout === 'metadata') {
    const entries = await readMetadata(metadataFile, options.captionColumn, (message) => hooks.onWarning?.(message));
    for (const entry of entries) {
      const file = await resolveInside(realRoot, entry.fileName, `${metadataFile}:${entry.line}`);
      found.push({ file, className: null });
      captions.set(file, entry.captions);
    }
  } else {
    const images = files.filter(isImage);
    if (layout === 'classes') {
      const classOf = (f: string): string => path.relative(realRoot, f).split(path.sep)[0]!;
      const nested = images.filter((f) => path.dirname(f) !== realRoot);
      if (nested.length < images.length)
        hooks.onWarning?.(`${images.length - nested.length} image(s) at the top of ${realRoot} belong to no class folder; ignored`);
      classNames = [...new Set(nested.map(classOf))].sort();
      found = nested.map((file) => ({ file, className: classOf(file) }));
      if (options.classes !== undefined) {
        const wanted = new Set(options.classes.map(String));
        for (const w of wanted)
          if (!classNames.includes(w))
            throw new DatasetError(`data.classes: no class folder ${JSON.stringify(w)} in ${realRoot} (found: ${classNames.join(', ')})`);
        found = found.filter((f) => wanted.has(f.className!));
      }
    } else found = images.map((file) => ({ file, className: null }));
    const withSidecars = layout === 'sidecar' || (layout === 'classes' && (await hasAnySidecar(files, options.captionExtensions)));
    let missing = 0;
    for (const f of found) {
      if (!withSidecars) {
        captions.set(f.file, null);
        continue;
      }
      const text = await readSidecar(realRoot, f.file, options.captionExtensions, (message) => hooks.onWarning?.(message));
      if (text === null) missing++;
      captions.set(f.file, [text ?? '']);
    }
    if (missing > 0)
      hooks.onWarning?.(`${missing} image(s) in ${realRoot} have no caption file (${options.captionExtensions.join(' or ')}); their caption is ""`);
  }
  if (options.limit !== undefined) found = found.slice(0, options.limit);

  // Check every image: zero-byte files and unreadable headers (or, with validate "full", any decode failure).
  const skipped: SkippedFile[] = [];
  let done = 0;
  hooks.onProgress?.({ phase: 'validating', done: 0, total: found.length });
  const problems = await mapLimit(found, 8, async (f) => {
    const st = await fs.stat(f.file);
    let problem: string | null;
    if (st.size === 0) problem = 'zero-byte file';
    else if (options.validate === 'full') problem = await decodeResized({ kind: 'file', path: f.file }, spec).then(() => null, firstLine);
    else problem = await probeImage(f.file);
    done++;
    if (done % PROGRESS_EVERY === 0 || done === found.length) hooks.onProgress?.({ phase: 'validating', done, total: found.length });
    return problem;
  });
  const items: DatasetItem[] = [];
  found.forEach((f, i) => {
    const problem = problems[i];
    if (problem) {
      if (options.onBadImage === 'fail') throw new DatasetError(`${f.file}: cannot use this image: ${problem} (data.onBadImage is "fail")`);
      skipped.push({ file: f.file, reason: problem });
      hooks.onWarning?.(`skipping ${f.file}: ${problem}`);
      return;
    }
    items.push({
      id: f.file,
      image: { kind: 'file', path: f.file },
      captions: captions.get(f.file) ?? null,
      label: f.className === null ? null : classNames!.indexOf(f.className),
    });
  });
  if (items.length === 0)
    throw new DatasetError(
      `${realRoot}: no usable images (${found.length} found by the ${layout} layout, ${skipped.length} skipped${options.classes ? `, classes ${options.classes.join(', ')}` : ''})`,
    );
  return { items, classNames, skipped, layout };
}
