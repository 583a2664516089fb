// The first scan of real folders: layouts, captions, labels, and every bad-input rule.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createDataset } from '../../../lib/data/dataset';
import { DataLoader } from '../../../lib/data/loader';
import { DatasetError } from '../../../lib/errors';
import { tempDir, writeImage, writeText, writeTruncatedPng } from './folders';

const quiet = { onWarning: () => undefined };

async function metadataFolder(lines: string[]): Promise<string> {
  const dir = tempDir();
  await writeImage(path.join(dir, 'a.png'), 40, 30, 10);
  await writeImage(path.join(dir, 'sub/b.jpg'), 30, 40, 20, 'jpeg');
  writeText(path.join(dir, 'metadata.jsonl'), lines.join('\n'));
  return dir;
}

describe('metadata.jsonl layout', () => {
  test('reads file_name and the caption column (string or list), in line order', async () => {
    const dir = await metadataFolder([
      JSON.stringify({ file_name: 'a.png', text: 'a red square', other: 'x' }),
      '',
      JSON.stringify({ file_name: 'sub/b.jpg', text: ['one', 'two', 'three'] }),
    ]);
    const ds = await createDataset({ path: dir, resolution: 16 }, quiet);
    expect(ds.layout).toBe('metadata');
    expect(ds.items.map((i) => path.basename(i.id))).toEqual(['a.png', 'b.jpg']);
    expect(ds.items[1]!.captions).toEqual(['one', 'two', 'three']);
    expect(ds.classNames).toBeNull();
  });

  test('a metadata.jsonl that is not UTF-8 is warned about, naming the file and line', async () => {
    const dir = await metadataFolder([JSON.stringify({ file_name: 'a.png', text: 'ok' })]);
    fs.appendFileSync(
      path.join(dir, 'metadata.jsonl'),
      Buffer.concat([Buffer.from('\n{"file_name": "sub/b.jpg", "text": "na'), Buffer.from([0xef, 0xbf]), Buffer.from('ve"}\n')]),
    );
    const warnings: string[] = [];
    const ds = await createDataset({ path: dir, resolution: 16 }, { onWarning: (w) => warnings.push(w) });
    expect(warnings).toEqual([
      expect.stringMatching(/metadata\.jsonl is not valid UTF-8: byte \d+ \(line 2\) and any other invalid bytes were read as U\+FFFD/),
    ]);
    expect(ds.items[1]!.captions).toEqual(['na\ufffdve']);
  });

  test('a custom caption column', async () => {
    const dir = await metadataFolder([JSON.stringify({ file_name: 'a.png', prompt: 'p' })]);
    const ds = await createDataset({ path: dir, captionColumn: 'prompt', resolution: 16 }, quiet);
    expect(ds.items[0]!.captions).toEqual(['p']);
  });

  test('list captions: one picked per sample, the same for the same seed, all used across epochs', async () => {
    const dir = await metadataFolder([JSON.stringify({ file_name: 'sub/b.jpg', text: ['one', 'two', 'three'] })]);
    const ds = await createDataset({ path: dir, resolution: 16, batchSize: 1 }, quiet);
    const run = async (): Promise<string[]> => {
      const loader = new DataLoader(ds);
      const out: string[] = [];
      for (let i = 0; i < 12; i++) out.push((await loader.nextRaw()).captions![0]!);
      return out;
    };
    const a = await run();
    expect(await run()).toEqual(a);
    expect(new Set(a)).toEqual(new Set(['one', 'two', 'three']));
  });

  test.each([
    ['invalid JSON', '{"file_name": "a.png", ', /metadata\.jsonl:2: invalid JSON/],
    ['no file_name', JSON.stringify({ text: 'x' }), /metadata\.jsonl:2: expected an object with a string "file_name" but found undefined/],
    ['an array', '[1, 2]', /metadata\.jsonl:2: expected an object/],
    [
      'a missing caption',
      JSON.stringify({ file_name: 'a.png' }),
      /metadata\.jsonl:2: expected caption column "text" to be a string or a non-empty list of strings but found undefined/,
    ],
    ['a missing file', JSON.stringify({ file_name: 'nope.png', text: 'x' }), /metadata\.jsonl:2: file_name "nope\.png": no such file/],
  ])('a bad line (%s) stops the scan naming file and line', async (_what, bad, message) => {
    const dir = await metadataFolder([JSON.stringify({ file_name: 'a.png', text: 'ok' }), bad]);
    const error = await createDataset({ path: dir, resolution: 16 }, quiet).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatasetError);
    expect((error as Error).message).toMatch(message);
  });

  test.each([
    ['../outside.png', /metadata\.jsonl:1: file_name "\.\.\/outside\.png" escapes the dataset folder/],
    ['sub/../../outside.png', /metadata\.jsonl:1: file_name "sub\/\.\.\/\.\.\/outside\.png" escapes the dataset folder/],
    ['/etc/passwd', /metadata\.jsonl:1: file_name "\/etc\/passwd" is an absolute path/],
    ['link.png', /metadata\.jsonl:1: file_name "link\.png" is a symlink to .*outside\.png, outside the dataset folder/],
  ])('file_name %s escaping the folder is an error naming the line and entry', async (entry, message) => {
    const parent = tempDir();
    await writeImage(path.join(parent, 'outside.png'), 8, 8, 1);
    const dir = path.join(parent, 'data');
    await writeImage(path.join(dir, 'a.png'), 8, 8, 1);
    fs.symlinkSync(path.join(parent, 'outside.png'), path.join(dir, 'link.png'));
    writeText(path.join(dir, 'metadata.jsonl'), JSON.stringify({ file_name: entry, text: 'x' }));
    await expect(createDataset({ path: dir, resolution: 8 }, quiet)).rejects.toThrow(message);
  });
});

describe('folder layouts without metadata', () => {
  test('kohya sidecars: .txt and .caption next to each image', async () => {
    const dir = tempDir();
    await writeImage(path.join(dir, 'x.png'), 16, 16, 1);
    await writeImage(path.join(dir, 'y.jpg'), 16, 16, 2, 'jpeg');
    await writeImage(path.join(dir, 'z.webp'), 16, 16, 3, 'webp');
    writeText(path.join(dir, 'x.txt'), 'from txt\n');
    writeText(path.join(dir, 'y.caption'), 'from caption');
    const warnings: string[] = [];
    const ds = await createDataset({ path: dir, resolution: 16 }, { onWarning: (w) => warnings.push(w) });
    expect(ds.layout).toBe('sidecar');
    expect(ds.items.map((i) => i.captions)).toEqual([['from txt'], ['from caption'], ['']]);
    expect(warnings.join('\n')).toMatch(/1 image\(s\) .* have no caption file/);
  });

  // Read as 'utf8', invalid bytes became U+FFFD in the caption without a word.
  test('a caption file that is not UTF-8 is warned about, naming the file and the first bad byte', async () => {
    const dir = tempDir();
    await writeImage(path.join(dir, 'a.png'), 16, 16, 1);
    await writeImage(path.join(dir, 'b.png'), 16, 16, 2);
    await writeImage(path.join(dir, 'c.png'), 16, 16, 3);
    fs.writeFileSync(path.join(dir, 'a.txt'), Buffer.from('caf\xe9 au lait', 'latin1'));
    fs.writeFileSync(path.join(dir, 'b.txt'), Buffer.from('\ufeffa cat', 'utf16le'));
    fs.writeFileSync(path.join(dir, 'c.txt'), 'caf\u00e9, fine');
    const warnings: string[] = [];
    const ds = await createDataset({ path: dir, resolution: 16 }, { onWarning: (w) => warnings.push(w) });
    const root = fs.realpathSync(dir);
    expect(warnings).toEqual([
      `${path.join(root, 'a.txt')} is not valid UTF-8: byte 3 (line 1) and any other invalid bytes were read as U+FFFD (\ufffd); save the file as UTF-8`,
      `${path.join(root, 'b.txt')} is not valid UTF-8 (it starts like UTF-16): byte 0 (line 1) and any other invalid bytes were read as U+FFFD (\ufffd); save the file as UTF-8`,
    ]);
    expect(ds.items[0]!.captions).toEqual(['caf\ufffd au lait']);
    expect(ds.items[2]!.captions).toEqual(['caf\u00e9, fine']);
  });

  test('plain folder: unconditional (no captions, no labels)', async () => {
    const dir = tempDir();
    await writeImage(path.join(dir, 'a.png'), 16, 16, 1);
    await writeImage(path.join(dir, 'b.png'), 16, 16, 2);
    const ds = await createDataset({ path: dir, resolution: 16 }, quiet);
    expect(ds.layout).toBe('plain');
    const batch = await new DataLoader(ds, { batchSize: 2 }).nextRaw();
    expect(batch.captions).toBeNull();
    expect(batch.labels).toBeNull();
  });

  test('class subfolders: sorted folder names are label ids; data.classes filters without renumbering', async () => {
    const dir = tempDir();
    for (const [cls, n] of [
      ['dog', 2],
      ['cat', 1],
      ['bird', 1],
    ] as const)
      for (let i = 0; i < n; i++) await writeImage(path.join(dir, cls, `${i}.png`), 16, 16, i);
    const ds = await createDataset({ path: dir, resolution: 16 }, quiet);
    expect(ds.layout).toBe('classes');
    expect(ds.classNames).toEqual(['bird', 'cat', 'dog']);
    expect(ds.items.map((i) => i.label)).toEqual([0, 1, 2, 2]);
    const dogs = await createDataset({ path: dir, resolution: 16, classes: ['dog'] }, quiet);
    expect(dogs.items.map((i) => i.label)).toEqual([2, 2]);
    await expect(createDataset({ path: dir, resolution: 16, classes: ['fish'] }, quiet)).rejects.toThrow(
      /data\.classes: no class folder "fish" .*found: bird, cat, dog/,
    );
  });

  test('a symlink leading out of the folder stops the scan', async () => {
    const parent = tempDir();
    await writeImage(path.join(parent, 'secret.png'), 8, 8, 1);
    const dir = path.join(parent, 'data');
    await writeImage(path.join(dir, 'a.png'), 8, 8, 1);
    fs.symlinkSync(path.join(parent, 'secret.png'), path.join(dir, 'b.png'));
    await expect(createDataset({ path: dir, resolution: 8 }, quiet)).rejects.toThrow(/b\.png: symlink to .*secret\.png, outside the dataset folder/);
  });

  test('limit and repeats', async () => {
    const dir = tempDir();
    for (let i = 0; i < 5; i++) await writeImage(path.join(dir, `${i}.png`), 8, 8, i);
    const ds = await createDataset({ path: dir, resolution: 8, limit: 3, repeats: 4 }, quiet);
    expect(ds.items.map((i) => path.basename(i.id))).toEqual(['0.png', '1.png', '2.png']);
    expect(ds.size).toBe(12);
  });
});

describe('bad images', () => {
  async function badFolder(): Promise<string> {
    const dir = tempDir();
    await writeImage(path.join(dir, 'good.png'), 16, 16, 1);
    writeText(path.join(dir, 'empty.png'), '');
    writeText(path.join(dir, 'garbage.jpg'), 'this is not a jpeg at all');
    writeText(path.join(dir, 'old.bmp'), 'BM' + 'x'.repeat(100));
    await writeTruncatedPng(path.join(dir, 'truncated.png'));
    return dir;
  }

  test('zero-byte, corrupt and unsupported files are skipped with a warning naming each, and counted', async () => {
    const dir = await badFolder();
    const warnings: string[] = [];
    const ds = await createDataset({ path: dir, resolution: 16 }, { onWarning: (w) => warnings.push(w) });
    const byName = Object.fromEntries(ds.skipped.map((s) => [path.basename(s.file), s.reason]));
    expect(Object.keys(byName).sort()).toEqual(['empty.png', 'garbage.jpg', 'old.bmp']);
    expect(byName['empty.png']).toBe('zero-byte file');
    expect(warnings.filter((w) => w.startsWith('skipping ')).length).toBe(3);
    expect(warnings.join('\n')).toContain(path.join(fs.realpathSync(dir), 'garbage.jpg'));
    // The header of the truncated PNG reads: the loader meets it, skips it and counts it.
    const loaderWarnings: string[] = [];
    const loader = new DataLoader(ds, { batchSize: 2, shuffle: false, onWarning: (w) => loaderWarnings.push(w) });
    const batch = await loader.nextRaw();
    expect(batch.ids.map((i) => path.basename(i))).toEqual(['good.png']);
    expect(batch.skipped.map((i) => path.basename(i))).toEqual(['truncated.png']);
    expect(batch.shape[0]).toBe(1);
    expect(loader.skippedAtLoad).toBe(1);
    expect(loaderWarnings.join('\n')).toMatch(/skipping .*truncated\.png/);
  });

  test('validate "full" finds the truncated file in the scan', async () => {
    const dir = await badFolder();
    const ds = await createDataset({ path: dir, resolution: 16, validate: 'full' }, quiet);
    expect(ds.skipped.map((s) => path.basename(s.file)).sort()).toEqual(['empty.png', 'garbage.jpg', 'old.bmp', 'truncated.png']);
    expect(ds.items.length).toBe(1);
  });

  test('onBadImage "fail" stops at the first bad file, naming it', async () => {
    const dir = await badFolder();
    await expect(createDataset({ path: dir, resolution: 16, onBadImage: 'fail' }, quiet)).rejects.toThrow(/empty\.png: cannot use this image: zero-byte file/);
  });

  test('an empty dataset after filtering is a clear error', async () => {
    const dir = tempDir();
    writeText(path.join(dir, 'empty.png'), '');
    await expect(createDataset({ path: dir, resolution: 16 }, quiet)).rejects.toThrow(/no usable images \(1 found by the plain layout, 1 skipped\)/);
    const none = tempDir();
    await expect(createDataset({ path: none, resolution: 16 }, quiet)).rejects.toThrow(/no usable images \(0 found/);
  });

  test('a missing folder names data.path', async () => {
    await expect(createDataset({ path: '/nonexistent/difftune', resolution: 16 }, quiet)).rejects.toThrow(
      /data\.path: expected a dataset folder but "\/nonexistent\/difftune"/,
    );
  });
});
