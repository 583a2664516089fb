// A U-Net forward must not read memory it never wrote. libtorch 1.13's baddbmm with beta = 0 reads its
// fresh output buffer for small products (self-attention over a 2×2 or 1×1 latent), so attention scores
// once started in at::empty and came out NaN whenever the allocator handed back a chunk holding NaN
// bytes: a seeded sampling run returned NaN now and then. Here the compute thread's heap is first filled
// with freed NaN chunks of many sizes, so such a read finds NaN in nearly every forward.
import * as path from 'path';
import { loadUNet } from '../../lib/models/unet';
import { concat, randn } from '../../lib/native/ops';
import { Generator } from '../../lib/native/generator';
import { Tensor } from '../../lib/native/tensor';

const COND = path.join(__dirname, '..', 'fixtures', 'diffusers', 'unet2dcond-tiny');

// Allocated and freed on the compute thread (concat copies there), so its allocator reuses the chunks.
async function poisonComputeHeap(): Promise<void> {
  const chunks: Tensor[] = [];
  try {
    for (let n = 1; n <= 64; n++) {
      using nan = Tensor.from(new Float32Array(n * 16).fill(Number.NaN), [n * 16]);
      chunks.push(await concat([nan]));
    }
  } finally {
    for (const c of chunks) c.dispose();
  }
}

function countNonFinite(values: Float32Array): number {
  let n = 0;
  for (const v of values) if (!Number.isFinite(v)) n++;
  return n;
}

// Self-attention under baddbmm's small-product path: the first block's and the mid block's on a 2×2 latent,
// the mid block's on a 4×4 one.
test.each([2, 4])(
  'forward on a latent of side %i is finite and the same every time on a heap full of NaN',
  async (side) => {
    using unet = await loadUNet(COND);
    using generator = new Generator(0);
    using sample = await randn([2, 4, side, side], { generator });
    using context = await randn([2, 77, 32], { generator });
    using timestep = Tensor.from(new BigInt64Array([501n]), [1]);
    const runs = 30;
    const outputs: Float32Array[] = [];
    for (let i = 0; i < runs; i++) {
      await poisonComputeHeap();
      using out = await unet.forward(sample, timestep, { encoderHiddenStates: context });
      outputs.push((await out.data()) as Float32Array);
    }
    // Per run: how many outputs are not finite, and whether the run differs from the first.
    expect(outputs.map(countNonFinite)).toEqual(new Array<number>(runs).fill(0));
    expect(outputs.map((o) => o.every((v, j) => v === outputs[0]![j]))).toEqual(new Array<boolean>(runs).fill(true));
  },
  60_000,
);
