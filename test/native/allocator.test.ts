// The addon fixes glibc malloc's mmap threshold at load (native/binding/addon.cc), so blocks of a
// megabyte and more go back to the OS when freed instead of staying in malloc's heaps; the user's own
// MALLOC_* settings win. libtorch's large CPU blocks come from difftune's cache in front of the OS
// (native/tensor/cpu_allocator.cc): reused without page faults, bounded by the live high-water mark.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { releaseCpuCache, runtimeInfo } from '../../lib/native/runtime';
import { Tensor } from '../../lib/native/tensor';

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

/** runtimeInfo()[field] in a fresh process with `env` added. */
function mallocIn(env: Record<string, string>, field: 'malloc' | 'cpuCache' = 'malloc'): unknown {
  const script = `console.log(JSON.stringify(require(${JSON.stringify(ADDON)}).runtimeInfo().${field}))`;
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

const MiB = 2 ** 20;
const cacheOn = process.env.DIFFTUNE_CPU_CACHE !== '0';

async function cache() {
  return (await runtimeInfo()).cpuCache;
}

function filled(floats: number, value: number): Tensor {
  return Tensor.from(new Float32Array(floats).fill(value), [floats]);
}

(cacheOn ? test : test.skip)('a freed large block is handed out again, holding the new values', async () => {
  const floats = (3 * MiB) / 4 + 123; // a size no other test here uses
  filled(floats, 1).dispose();
  const before = await cache();
  expect(before.source).toBe('difftune');
  const data = Float32Array.from({ length: floats }, (_, i) => (i % 977) - 488.5);
  const t = Tensor.from(data, [floats]);
  const after = await cache();
  expect(after.hits - before.hits).toBe(1);
  expect(after.misses).toBe(before.misses);
  expect(Buffer.compare(Buffer.from((t.toArray() as Float32Array).buffer), Buffer.from(data.buffer))).toBe(0);
  t.dispose();
  // Small requests are not the cache's: libtorch's own allocator serves them.
  filled(1024, 2).dispose();
  expect((await cache()).hits).toBe(after.hits);
});

(cacheOn ? test : test.skip)('what the cache keeps stays within the live high-water mark plus its slack, and goes back to the OS on release', async () => {
  releaseCpuCache();
  expect((await cache()).cachedBytes).toBe(0);
  // Sizes growing by 1.3× (no block serves the next request), each freed before the next: together they
  // pass the largest one plus the slack, so the cache must give the oldest back rather than keep them all.
  let mib = 4;
  for (let k = 0; k < 12; k++, mib *= 1.3) {
    const t = filled(Math.round((mib * MiB) / 4), k);
    const s = await cache();
    expect(s.liveBytes + s.cachedBytes).toBeLessThanOrEqual(s.peakLiveBytes + s.slackBytes);
    t.dispose();
  }
  const s = await cache();
  expect(s.evictions).toBeGreaterThan(0);
  expect(s.cachedBytes).toBeLessThanOrEqual(s.peakLiveBytes + s.slackBytes);
  expect(s.slackBytes).toBeGreaterThanOrEqual(128 * MiB);
  releaseCpuCache();
  const released = await cache();
  expect(released.cachedBytes).toBe(0);
  expect(released.peakLiveBytes).toBe(released.liveBytes);
});

test('DIFFTUNE_CPU_CACHE=0 leaves libtorch its own allocator', () => {
  expect(mallocIn({ DIFFTUNE_CPU_CACHE: '0' }, 'cpuCache')).toMatchObject({ source: 'environment', hits: 0, misses: 0 });
  expect(mallocIn({ DIFFTUNE_CPU_CACHE: '' }, 'cpuCache')).toMatchObject({ source: 'difftune' });
});
