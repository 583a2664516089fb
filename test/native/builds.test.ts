// Both build systems must produce a loadable addon: each binary that exists is loaded in a child
// process (a process can hold only one copy of the same-named addon cleanly) and asked a question.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.resolve(__dirname, '..', '..');
const binaries = ['build-cmake/Release/difftune.node', 'build/Release/difftune.node'].filter((rel) => fs.existsSync(path.join(root, rel)));

test('at least one addon binary is built', () => {
  expect(binaries.length).toBeGreaterThan(0);
});

test.each(binaries)('%s loads with no LD_LIBRARY_PATH and reports its libtorch', (rel) => {
  const env = { ...process.env };
  delete env.LD_LIBRARY_PATH;
  const out = execFileSync(
    process.execPath,
    ['-e', `const a = require(${JSON.stringify(path.join(root, rel))}); console.log(JSON.stringify({ v: a.runtimeInfo().torchVersion }))`],
    { env, encoding: 'utf8' },
  );
  expect(JSON.parse(out).v).toMatch(/^\d+\.\d+/);
});

test('require("difftune") resolves to the compiled package entry', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { main: string; exports: Record<string, { default: string }> };
  expect(pkg.main).toBe('dist/lib/index.js');
  expect(pkg.exports['.']!.default).toBe('./dist/lib/index.js');
});

test('a project that depends on difftune can require() and import() it with no environment variables', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-dep-'));
  try {
    fs.mkdirSync(path.join(dir, 'node_modules'));
    fs.symlinkSync(root, path.join(dir, 'node_modules', 'difftune'), 'dir');
    const env = { ...process.env };
    delete env.LD_LIBRARY_PATH;
    delete env.DIFFTUNE_ADDON;
    const cjs = execFileSync(
      process.execPath,
      ['-e', "require('difftune').runtimeInfo().then(i => console.log(i.backend, typeof require('difftune').Tensor))"],
      { cwd: dir, env, encoding: 'utf8' },
    );
    expect(cjs.trim()).toMatch(/^(cpu|cuda) function$/);
    const esm = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', "const d = await import('difftune'); const t = d.Tensor.from(new Float32Array([2]), [1]); console.log(t.toArray()[0]);"],
      { cwd: dir, env, encoding: 'utf8' },
    );
    expect(esm.trim()).toBe('2');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
