// lib/'s layers hold (README "Architecture"): a file imports only from its own layer or below, and no
// files and no folders import each other in a cycle. Imports are read with the TypeScript parser, type-only
// ones included: a type-only upward import still ties a lower layer to a higher one's code.
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';

const LIB = path.join(__dirname, '..', '..', 'lib');

/**
 * Bottom to top. A file's folder is its first path segment under lib/ (`errors` and `index` for
 * lib/errors.ts and lib/index.ts); a new folder must be placed here before its files pass.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['config', 'errors', 'util'],
  ['native', 'checkpoint', 'text'],
  ['models', 'schedulers', 'data', 'freeze'],
  // report/ renders pages from plain data (it imports nothing below): finetune writes each run's report.html.
  ['train', 'sample', 'distributed', 'report'],
  ['bench', 'demo', 'conformance'],
  ['index'],
];

/** lib-relative file (`models/unet.ts`) → the lib-relative files it imports. */
type ImportGraph = ReadonlyMap<string, readonly string[]>;

/**
 * Every module specifier `source` names: `import … from`, `import '…'`, `export … from`,
 * `import x = require('…')`, `require('…')`, `import('…')` and `import('…').T` types. A require of a
 * computed name (lib/native/load.ts loads the addon so) names no module.
 */
function moduleSpecifiers(fileName: string, source: string): string[] {
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push(node.moduleSpecifier.text);
    } else if (
      ts.isImportEqualsDeclaration(node) &&
      ts.isExternalModuleReference(node.moduleReference) &&
      ts.isStringLiteral(node.moduleReference.expression)
    ) {
      found.push(node.moduleReference.expression.text);
    } else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      const [argument] = node.arguments;
      const loads = callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require');
      if (loads && node.arguments.length === 1 && argument !== undefined && ts.isStringLiteralLike(argument)) found.push(argument.text);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      found.push(node.argument.literal.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS));
  return found;
}

/**
 * The import graph of `sources` (lib-relative file → text). A relative specifier resolves to `<p>.ts`
 * or `<p>/index.ts` among the sources; one that resolves to neither stays as its normalised path (the
 * check names it). Packages and node: builtins are not edges.
 */
function importGraph(sources: ReadonlyMap<string, string>): ImportGraph {
  const graph = new Map<string, string[]>();
  for (const [file, text] of sources) {
    const targets = moduleSpecifiers(file, text)
      .filter((specifier) => specifier.startsWith('.'))
      .map((specifier) => {
        const base = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier.replace(/\.js$/, '')));
        return [base, `${base}.ts`, `${base}/index.ts`].find((candidate) => candidate.endsWith('.ts') && sources.has(candidate)) ?? base;
      });
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

function folderOf(file: string): string {
  const slash = file.indexOf('/');
  return slash < 0 ? file.replace(/\.ts$/, '') : file.slice(0, slash);
}

function layerOf(file: string): number | undefined {
  const folder = folderOf(file);
  const index = LAYERS.findIndex((layer) => layer.includes(folder));
  return index < 0 ? undefined : index + 1;
}

/** Strongly connected components with more than one member, or a member importing itself; each sorted. */
function cycles(edges: ReadonlyMap<string, readonly string[]>): string[][] {
  const order = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string): void => {
    order.set(node, order.size);
    low.set(node, order.get(node)!);
    stack.push(node);
    onStack.add(node);
    for (const next of edges.get(node) ?? []) {
      if (!edges.has(next)) continue;
      if (!order.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, order.get(next)!));
      }
    }
    if (low.get(node) !== order.get(node)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || (edges.get(node) ?? []).includes(node)) found.push(component.sort());
  };
  for (const node of edges.keys()) if (!order.has(node)) visit(node);
  return found.sort((a, b) => a[0]!.localeCompare(b[0]!));
}

/** Every way `graph` breaks the layers: files in no layer, imports of missing files, upward imports, file and folder cycles. */
function checkLayers(graph: ImportGraph): string[] {
  const problems: string[] = [];
  const describe = (layer: number) => `layer ${layer} (${LAYERS[layer - 1]!.join(', ')})`;
  for (const [file, targets] of graph) {
    const layer = layerOf(file);
    if (layer === undefined) {
      problems.push(`${file} is in no layer: add the folder ${folderOf(file)} to LAYERS in test/unit/layers.test.ts (and to README's Architecture)`);
      continue;
    }
    for (const target of targets) {
      const targetLayer = layerOf(target);
      if (!graph.has(target)) problems.push(`${file} imports ${target}, which is no file of lib/`);
      else if (targetLayer !== undefined && targetLayer > layer)
        problems.push(`${file} imports ${target}: ${describe(layer)} may not import ${describe(targetLayer)}`);
    }
  }
  for (const component of cycles(graph)) problems.push(`files import each other (a cycle): ${component.join(', ')}`);
  const folders = new Map<string, string[]>();
  for (const [file, targets] of graph) {
    const from = folderOf(file);
    const edges = folders.get(from) ?? [];
    for (const target of targets) if (graph.has(target) && folderOf(target) !== from) edges.push(folderOf(target));
    folders.set(from, edges);
  }
  for (const component of cycles(folders)) problems.push(`folders import each other (a cycle): ${component.join(', ')}`);
  return problems;
}

function readLib(): Map<string, string> {
  const files = fs
    .readdirSync(LIB, { recursive: true })
    .map(String)
    .filter((name) => name.endsWith('.ts') && !name.endsWith('.d.ts'))
    .map((name) => name.split(path.sep).join('/'))
    .sort();
  return new Map(files.map((file) => [file, fs.readFileSync(path.join(LIB, file), 'utf8')]));
}

const graphOf = (edges: Record<string, string[]>): ImportGraph => new Map(Object.entries(edges));

test('the parser reads every form of import, type-only ones included', () => {
  const source = [
    "import * as fs from 'fs';",
    "import { a } from './a';",
    "import type { B } from '../b/b';",
    "import { type C } from './c';",
    "import './side-effect';",
    "export { d } from './d';",
    "export type { E } from './e';",
    "export * from './f';",
    "import g = require('./g');",
    "const h = require('./h');",
    "const name = './computed';",
    'const computed = require(name);',
    "async function later() { return import('./i'); }",
    "let j: import('./j').J;",
    "// import { k } from './comment';",
  ].join('\n');
  expect(moduleSpecifiers('x.ts', source)).toEqual(['fs', './a', '../b/b', './c', './side-effect', './d', './e', './f', './g', './h', './i', './j']);
});

test('the checker reports an upward import, a file cycle, a folder cycle, a folder in no layer and a missing file', () => {
  expect(
    checkLayers(
      graphOf({
        'config/recipe.ts': ['errors.ts'],
        'errors.ts': [],
        'train/finetune.ts': ['config/recipe.ts', 'models/unet.ts'],
        'models/unet.ts': [],
        'index.ts': ['train/finetune.ts'],
      }),
    ),
  ).toEqual([]);

  // The deliberately wrong import: config/ (layer 1) reaching up into train/ (layer 4).
  expect(checkLayers(graphOf({ 'config/recipe.ts': ['train/trainer.ts'], 'train/trainer.ts': [] }))).toEqual([
    'config/recipe.ts imports train/trainer.ts: layer 1 (config, errors, util) may not import layer 4 (train, sample, distributed, report)',
  ]);
  // Same folder, so no layer is crossed, yet the two files import each other (models/unet.ts ↔ native-model.ts was one).
  expect(checkLayers(graphOf({ 'models/unet.ts': ['models/native-model.ts'], 'models/native-model.ts': ['models/unet.ts'] }))).toEqual([
    'files import each other (a cycle): models/native-model.ts, models/unet.ts',
  ]);
  // Same layer, no file cycle, but the folders depend on each other (train/ ↔ dist/ was one).
  expect(
    checkLayers(
      graphOf({ 'train/finetune.ts': ['distributed/data-parallel.ts'], 'distributed/data-parallel.ts': ['train/trainer.ts'], 'train/trainer.ts': [] }),
    ),
  ).toEqual(['folders import each other (a cycle): distributed, train']);
  expect(checkLayers(graphOf({ 'plugins/x.ts': [], 'models/a.ts': ['models/gone'] }))).toEqual([
    "plugins/x.ts is in no layer: add the folder plugins to LAYERS in test/unit/layers.test.ts (and to README's Architecture)",
    'models/a.ts imports models/gone, which is no file of lib/',
  ]);
});

test('a type-only upward import added to a real lib/ file is caught', () => {
  const sources = readLib();
  sources.set('config/json.ts', `${sources.get('config/json.ts')!}\nimport type { Trainer } from '../train/trainer';\n`);
  const problems = checkLayers(importGraph(sources));
  expect(problems).toContain(
    'config/json.ts imports train/trainer.ts: layer 1 (config, errors, util) may not import layer 4 (train, sample, distributed, report)',
  );
  // train/ imports config/, so this also closes a folder cycle.
  expect(problems.some((p) => p.startsWith('folders import each other (a cycle):') && p.includes('config') && p.includes('train'))).toBe(true);
});

test("lib/'s imports follow the layer order and form no cycle", () => {
  const graph = importGraph(readLib());
  // The parse found the real edges (an empty graph would pass vacuously).
  expect(graph.get('index.ts')).toEqual(expect.arrayContaining(['train/finetune.ts', 'sample/txt2img.ts', 'config/unet.ts'])); // config/unet.ts: `export type … from`
  expect(graph.get('models/unet.ts')).toContain('native/dtype.ts'); // a type-only import
  expect(graph.size).toBeGreaterThan(100);
  expect(checkLayers(graph)).toEqual([]);
});
