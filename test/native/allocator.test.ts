// The addon fixes glibc malloc's mmap threshold at load (native/binding/addon.cc), so blocks of a
// megabyte and more go back to the OS when freed instead of staying in malloc's heaps; the user's own
// MALLOC_* settings win.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { runtimeInfo } from '../../lib/native/runtime';

const ROOT = path.join(__dirname, '..', '..');
// The binary the loader picks (lib/native/load.ts): DIFFTUNE_ADDON, else the newest build.
const ADDON =
  process.env.DIFFTUNE_ADDON ??
  ['build-cmake/Release/difftune.node', 'build/Release/difftune.node']
    .map((rel) => path.join(ROOT, rel))
    .filter((p) => fs.existsSync(p))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0]!;
const glibc =
  process.platform === 'linux' && (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime !== undefined;

/** runtimeInfo().malloc in a fresh process with `env` added. */
function mallocIn(env: Record<string, string>): unknown {
  const script = `console.log(JSON.stringify(require(${JSON.stringify(ADDON)}).runtimeInfo().malloc))`;
  const r = spawnSync(process.execPath, ['-e', script], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

(glibc ? test : test.skip)('the addon sets a fixed 1 MiB mmap threshold', async () => {
  if (process.env.MALLOC_MMAP_THRESHOLD_ || process.env.MALLOC_TRIM_THRESHOLD_ || process.env.DIFFTUNE_MALLOC_TUNING) return;
  expect((await runtimeInfo()).malloc).toEqual({ source: 'difftune', mmapThreshold: 1048576, trimThreshold: 2097152 });
});

(glibc ? test : test.skip)("the user's malloc settings and DIFFTUNE_MALLOC_TUNING=0 leave malloc alone", () => {
  const untouched = { source: 'environment', mmapThreshold: null, trimThreshold: null };
  expect(mallocIn({ MALLOC_MMAP_THRESHOLD_: '4194304' })).toEqual(untouched);
  expect(mallocIn({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=1000000' })).toEqual(untouched);
  expect(mallocIn({ DIFFTUNE_MALLOC_TUNING: '0' })).toEqual(untouched);
});
