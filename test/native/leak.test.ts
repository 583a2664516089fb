// Native memory must not grow with use: tensors, and forward+backward of the tiny SD-shaped U-Net,
// repeated with dispose() must keep the process's RSS steady. The bounds leave room for the
// allocator's own retention (glibc arenas hold freed blocks; RSS wanders by ~100 MB here) while a
// real leak is far larger: 1 GB per 1,000 reads of the 1 MB tensor, and ~3 GB per 1,000 steps for a
// leaked gradient set of the 0.8 M-parameter U-Net alone.
import * as os from 'os';
import * as path from 'path';
import { loadUNet } from '../../lib/models/unet';
import { Tensor } from '../../lib/native/tensor';
import { setThreads } from '../../lib/native/runtime';

const ITERATIONS = Number(process.env.DIFFTUNE_LEAK_ITERATIONS ?? 1000);
const rssMB = () => process.memoryUsage().rss / 1e6;

test('tensor create/read/dispose keeps RSS steady', async () => {
  const data = new Float32Array(256 * 1024); // 1 MB
  const cycle = async () => {
    const t = Tensor.from(data, [256, 1024]);
    await t.data();
    t.dispose();
  };
  for (let i = 0; i < 50; i++) await cycle();
  global.gc?.();
  const before = rssMB();
  for (let i = 0; i < ITERATIONS; i++) await cycle();
  global.gc?.();
  expect(rssMB() - before).toBeLessThan(256);
});

test(`forward+backward of the tiny SD U-Net ×${ITERATIONS} with dispose keeps RSS steady`, async () => {
  // One intra-op thread: this tiny model runs 4× faster so (jest's own threads compete for the
  // second core), and the test is about memory, not speed.
  await setThreads(1);
  using unet = await loadUNet(path.join(__dirname, '..', 'fixtures', 'diffusers', 'unet2dcond-tiny'));
  using x = Tensor.from(new Float32Array(4 * 8 * 8).fill(0.5), [1, 4, 8, 8]);
  using t = Tensor.from(new BigInt64Array([500n]), [1]);
  using ctx = Tensor.from(new Float32Array(4 * 32).fill(0.1), [1, 4, 32]);
  using target = Tensor.from(new Float32Array(4 * 8 * 8), [1, 4, 8, 8]);
  const step = async () => {
    const r = await unet.forwardBackwardMse(x, t, target, { encoderHiddenStates: ctx, gradNames: ['conv_in.weight'] });
    for (const g of [r.output, r.loss, r.gradSample, r.gradEncoderHiddenStates, ...r.gradParams.values()]) g?.dispose();
  };
  for (let i = 0; i < 50; i++) await step();
  const before = rssMB();
  for (let i = 0; i < ITERATIONS; i++) await step();
  const growth = rssMB() - before;
  await setThreads(os.availableParallelism());
  expect(growth).toBeLessThan(256);
}, 600_000);
