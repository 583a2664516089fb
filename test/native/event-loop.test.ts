import * as os from 'os';
import { gemmBenchmark, runtimeInfo, setThreads } from '../../lib/native/runtime';
import { loadNative } from '../../lib/native/load';

test('the event loop keeps turning while a long native call runs', async () => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const started = Date.now();
  // Large enough to take well over 100 ms on any CPU this runs on.
  const result = await gemmBenchmark({ n: 1536, reps: 4 });
  const elapsed = Date.now() - started;
  clearInterval(timer);
  expect(result.gflops).toBeGreaterThan(0);
  expect(elapsed).toBeGreaterThan(100);
  // A blocked loop would tick ~once; a free one ticks about every 5 ms.
  expect(ticks).toBeGreaterThan(elapsed / 5 / 4);
});

test('jobs run in submission order on one compute thread', async () => {
  const order: number[] = [];
  await Promise.all([
    gemmBenchmark({ n: 256, reps: 2 }).then(() => order.push(1)),
    setThreads(1).then(() => order.push(2)),
    gemmBenchmark({ n: 64, reps: 1 }).then(() => order.push(3)),
  ]);
  expect(order).toEqual([1, 2, 3]);
  expect(loadNative().pendingJobs()).toBe(0);
});

test('intra-op threads are set on the compute thread and reported', async () => {
  expect(await setThreads(2)).toBe(2);
  expect((await runtimeInfo()).threads).toBe(2);
  expect(await setThreads(1)).toBe(1);
  expect((await runtimeInfo()).threads).toBe(1);
  const info = await runtimeInfo();
  expect(info.torchVersion).toMatch(/^\d+\.\d+/);
  expect(['cpu', 'cuda']).toContain(info.backend);
  await setThreads(Math.max(1, os.availableParallelism()));
});
