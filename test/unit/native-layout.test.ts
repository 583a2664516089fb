// The native folders' include graph, as README's Architecture section draws it: nn/ is what every
// model uses and includes no model, no two folders include each other, and torch headers stay out of
// the N-API glue (and <torch/torch.h> out of everything: it costs minutes of compile on 2 cores).
import * as fs from 'fs';
import * as path from 'path';

const nativeDir = path.resolve(__dirname, '..', '..', 'native');

interface Include {
  file: string; // relative to native/, e.g. "nn/layers.cc"
  target: string; // as written, e.g. "nn/module.h" or "<ATen/ATen.h>"
  quoted: boolean;
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(full);
    return /\.(h|cc)$/.test(e.name) ? [path.relative(nativeDir, full).split(path.sep).join('/')] : [];
  });
}

const includes: Include[] = sourceFiles(nativeDir).flatMap((file) =>
  [...fs.readFileSync(path.join(nativeDir, file), 'utf8').matchAll(/^\s*#\s*include\s*([<"])([^>"]+)[>"]/gm)].map((m) => ({
    file,
    target: m[2]!,
    quoted: m[1] === '"',
  })),
);
const folderOf = (p: string): string => p.split('/')[0]!;

test('every quoted include names a file under native/', () => {
  const missing = includes.filter((i) => i.quoted && !fs.existsSync(path.join(nativeDir, i.target))).map((i) => `${i.file} → ${i.target}`);
  expect(missing).toEqual([]);
});

test('nn/ includes only nn/ and tensor/ (no model, trainer or glue)', () => {
  const outside = includes
    .filter((i) => i.quoted && folderOf(i.file) === 'nn' && !['nn', 'tensor'].includes(folderOf(i.target)))
    .map((i) => `${i.file} → ${i.target}`);
  expect(outside).toEqual([]);
});

test('no two native folders include each other, directly or through others', () => {
  const edges = new Map<string, Set<string>>();
  for (const i of includes) {
    if (!i.quoted || folderOf(i.file) === folderOf(i.target)) continue;
    if (!edges.has(folderOf(i.file))) edges.set(folderOf(i.file), new Set());
    edges.get(folderOf(i.file))!.add(folderOf(i.target));
  }
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (folder: string, trail: string[]): void => {
    if (state.get(folder) === 'done') return;
    if (state.get(folder) === 'open') {
      cycles.push([...trail.slice(trail.indexOf(folder)), folder].join(' → '));
      return;
    }
    state.set(folder, 'open');
    for (const next of edges.get(folder) ?? []) visit(next, [...trail, folder]);
    state.set(folder, 'done');
  };
  for (const folder of edges.keys()) visit(folder, []);
  expect(cycles).toEqual([]);
});

test('binding/ includes no torch headers and nothing includes <torch/torch.h>', () => {
  const heavy = includes
    .filter((i) => !i.quoted && (i.target === 'torch/torch.h' || (folderOf(i.file) === 'binding' && /^(torch|ATen|c10)\//.test(i.target))))
    .map((i) => `${i.file} → <${i.target}>`);
  expect(heavy).toEqual([]);
});
