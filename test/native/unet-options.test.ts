// Gradient checkpointing, channels-last and bf16 autocast change how the U-Net computes, not what.
import * as path from 'path';
import { relError as relArrays } from '../../lib/conformance/compare';
import { loadUNet, type UNet } from '../../lib/models/unet';
import { Tensor } from '../../lib/native/tensor';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');

function relError(got: Tensor, expected: Tensor, _what: string): number {
  return relArrays(got.toArray(), expected.toArray());
}

function noise(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sin(i * 12.9898 + seed * 78.233) * 1.3;
  return out;
}

async function run(unet: UNet, cond: boolean) {
  using x = Tensor.from(noise(2 * 4 * 16 * 16, 1), [2, 4, 16, 16]);
  using t = Tensor.from(new BigInt64Array([3n, 700n]), [2]);
  using target = Tensor.from(noise(2 * 4 * 16 * 16, 2), [2, 4, 16, 16]);
  using ctx = Tensor.from(noise(2 * 7 * 32, 3), [2, 7, 32]);
  return unet.forwardBackwardMse(x, t, target, cond ? { encoderHiddenStates: ctx } : {});
}

describe.each([
  ['unet2dcond-tiny', true],
  ['unet2dcond-sd2ish', true],
])('%s', (set, cond) => {
  test('gradient checkpointing gives the same loss and gradients', async () => {
    using unet = await loadUNet(path.join(FIXTURES, set));
    const plain = await run(unet, cond);
    await unet.setOptions({ gradientCheckpointing: true });
    const ckpt = await run(unet, cond);
    expect(relError(ckpt.loss, plain.loss, 'loss')).toBeLessThan(1e-6);
    expect(relError(ckpt.gradSample, plain.gradSample, 'grad_sample')).toBeLessThan(1e-5);
    expect(ckpt.gradParams.size).toBe(plain.gradParams.size);
    let worst = 0;
    for (const [name, g] of plain.gradParams) worst = Math.max(worst, relError(ckpt.gradParams.get(name)!, g, name));
    expect(worst).toBeLessThan(1e-5);
  });

  test('channels-last gives the same outputs', async () => {
    using unet = await loadUNet(path.join(FIXTURES, set));
    const plain = await run(unet, cond);
    await unet.setOptions({ channelsLast: true });
    const nhwc = await run(unet, cond);
    expect(relError(nhwc.output, plain.output, 'output')).toBeLessThan(1e-5);
    expect(relError(nhwc.gradParams.get('conv_in.weight')!, plain.gradParams.get('conv_in.weight')!, 'grad')).toBeLessThan(5e-5);
  });

  test('bf16 autocast computes in bfloat16 and stays close to float32', async () => {
    using unet = await loadUNet(path.join(FIXTURES, set));
    const plain = await run(unet, cond);
    await unet.setOptions({ autocast: 'bfloat16' });
    const bf16 = await run(unet, cond);
    expect(bf16.output.dtype).toBe('bfloat16');
    expect(bf16.loss.dtype).toBe('float32');
    using out32 = await bf16.output.to('cpu', 'float32');
    expect(relError(out32, plain.output, 'output')).toBeLessThan(5e-2);
    const params = await unet.parameters();
    expect(params.every((p) => p.dtype === 'float32')).toBe(true);
    await unet.setOptions({ autocast: null });
    const again = await run(unet, cond);
    expect(again.output.dtype).toBe('float32');
  });
});

test('float16 autocast on the CPU is refused clearly', async () => {
  using unet = await loadUNet(path.join(FIXTURES, 'unet2d-tiny'));
  await expect(unet.setOptions({ autocast: 'float16' })).rejects.toThrow(/float16 autocast needs CUDA/);
});

test('bfloat16 weights take float32 inputs and stay close to the float32 model', async () => {
  using full = await loadUNet(path.join(FIXTURES, 'unet2dcond-tiny'));
  using half = await loadUNet(path.join(FIXTURES, 'unet2dcond-tiny'), { dtype: 'bfloat16' });
  expect((await half.parameters()).every((p) => p.dtype === 'bfloat16')).toBe(true);
  using x = Tensor.from(noise(4 * 16 * 16, 1), [1, 4, 16, 16]);
  using t = Tensor.from(new BigInt64Array([42n]), [1]);
  using ctx = Tensor.from(noise(5 * 32, 2), [1, 5, 32]);
  using a = await full.forward(x, t, { encoderHiddenStates: ctx });
  using b = await half.forward(x, t, { encoderHiddenStates: ctx });
  expect(b.dtype).toBe('bfloat16');
  using b32 = await b.to('cpu', 'float32');
  expect(relError(b32, a, 'bf16 vs fp32')).toBeLessThan(5e-2);
});
