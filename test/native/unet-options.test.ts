// Gradient checkpointing, channels-last and bf16 autocast change how the U-Net computes, not what.
import * as path from 'path';
import { relError as relArrays } from '../../lib/conformance/compare';
import { loadUNet, type UNet } from '../../lib/models/unet';
import { Tensor } from '../../lib/native/tensor';
import { runtimeInfo } from '../../lib/native/runtime';
import { disposeStateDict } from '../../lib/checkpoint/state-dict';
import { bf16UsesOnednn, readCpuinfo } from '../../lib/util/cpu';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');

function relError(got: Tensor, expected: Tensor, _what: string): number {
  return relArrays(got.toArray(), expected.toArray());
}

/** ‖got − expected‖ / ‖expected‖ (float64 sums). */
function rmsRelError(got: Tensor, expected: Tensor): number {
  const a = got.toArray() as Float32Array;
  const b = expected.toArray() as Float32Array;
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < b.length; i++) {
    diff += (a[i]! - b[i]!) ** 2;
    norm += b[i]! ** 2;
  }
  return Math.sqrt(diff / norm);
}

/**
 * How far a bfloat16 forward may drift from float32, from bf16's arithmetic. bf16 keeps 8 significant
 * bits: each rounding moves a value by up to u = 2^-8 relative. Independent roundings add in
 * quadrature and normalisation layers keep each layer's gain near 1, so the RMS error (not the worst
 * element's) is what the arithmetic bounds:
 * - libtorch's own CPU bf16 kernels (used where oneDNN's need AVX-512 the CPU lacks, or a cap forbids)
 *   round partial sums to bf16, one rounding per product term: a weight layer of fan-in K adds up to
 *   ~u·√K, the network u·√(Σ K) (0.46 and 0.52 for the two fixtures; measured 5.3e-2 and 7.3e-2).
 * - oneDNN's accumulate in float32 and round once per output, as the weights and inputs are rounded
 *   once: the error is then a small multiple of what rounding just the weights and the inputs does to
 *   a float32 forward (measured in the test; four roundings per layer — weight, input, output, and the
 *   norm or activation after it — give ~√4 = 2×; measured 1.7× and 2.0×). The bound is 4×.
 * Only the tight one tells a real mistake (the batch's samples mixed up gives 0.11-0.15) from rounding.
 */
interface Bf16Bound {
  bound: number;
  kernels: 'oneDNN' | 'libtorch';
}

async function bf16Bound(dir: string, unet: UNet, output: (u: UNet, rounded: boolean) => Promise<Tensor>, reference: Tensor): Promise<Bf16Bound> {
  if (!bf16UsesOnednn(readCpuinfo(), (await runtimeInfo()).onednn)) {
    let fanIns = 0;
    for (const p of await unet.parameters()) {
      if (p.name.endsWith('.weight') && p.shape.length >= 2) fanIns += p.shape.slice(1).reduce((a, b) => a * b, 1);
    }
    return { bound: 2 ** -8 * Math.sqrt(fanIns), kernels: 'libtorch' };
  }
  const weights = await unet.stateDict();
  const rounded = new Map([...weights].map(([name, t]) => [name, Tensor.from(bf16Rounded(t.toArray() as Float32Array), t.shape)]));
  const copy = await loadUNet(dir);
  await copy.loadStateDict(rounded);
  using out = await output(copy, true);
  const bound = 4 * rmsRelError(out, reference);
  copy.dispose();
  disposeStateDict(weights);
  disposeStateDict(rounded);
  return { bound, kernels: 'oneDNN' };
}

/** Round-to-nearest-even to bfloat16, kept in float32. */
function bf16Rounded(values: Float32Array): Float32Array {
  const bits = new Uint32Array(Float32Array.from(values).buffer);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i]!;
    bits[i] = (((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) << 16) >>> 0;
  }
  return new Float32Array(bits.buffer);
}

/** The same batch with its two samples swapped: what a batch mix-up in the bf16 path would give. */
function swapped(t: Tensor): Tensor {
  const data = t.toArray() as Float32Array;
  const half = data.length / 2;
  const out = new Float32Array(data.length);
  out.set(data.subarray(half), 0);
  out.set(data.subarray(0, half), half);
  return Tensor.from(out, t.shape);
}

function noise(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sin(i * 12.9898 + seed * 78.233) * 1.3;
  return out;
}

/** The float32 forward output of run()'s inputs, optionally rounded to bf16 first. */
async function forwardOutput(unet: UNet, rounded: boolean, cond = true): Promise<Tensor> {
  const r = (v: Float32Array) => (rounded ? bf16Rounded(v) : v);
  using x = Tensor.from(r(noise(2 * 4 * 16 * 16, 1)), [2, 4, 16, 16]);
  using t = Tensor.from(new BigInt64Array([3n, 700n]), [2]);
  using ctx = Tensor.from(r(noise(2 * 7 * 32, 3)), [2, 7, 32]);
  const out = await unet.forward(x, t, cond ? { encoderHiddenStates: ctx } : {});
  return out.dtype === 'float32' ? out : await out.to('cpu', 'float32');
}

async function run(unet: UNet, cond: boolean) {
  using x = Tensor.from(noise(2 * 4 * 16 * 16, 1), [2, 4, 16, 16]);
  using t = Tensor.from(new BigInt64Array([3n, 700n]), [2]);
  using target = Tensor.from(noise(2 * 4 * 16 * 16, 2), [2, 4, 16, 16]);
  using ctx = Tensor.from(noise(2 * 7 * 32, 3), [2, 7, 32]);
  return await unet.forwardBackwardMse(x, t, target, cond ? { encoderHiddenStates: ctx } : {});
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
    const { bound, kernels } = await bf16Bound(path.join(FIXTURES, set), unet, forwardOutput, plain.output);
    expect(rmsRelError(out32, plain.output)).toBeLessThan(bound);
    // With oneDNN's kernels the bound is tight enough that a mistake (the batch's samples mixed up) fails it.
    using mixed = swapped(out32);
    if (kernels === 'oneDNN') expect(rmsRelError(mixed, plain.output)).toBeGreaterThan(2 * bound);
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
  // bf16 weights are rounded once each, as bf16Bound's reference rounds them: within the same bound.
  const rounded = async (u: UNet, r: boolean) => {
    using xr = Tensor.from(r ? bf16Rounded(noise(4 * 16 * 16, 1)) : noise(4 * 16 * 16, 1), [1, 4, 16, 16]);
    using cr = Tensor.from(r ? bf16Rounded(noise(5 * 32, 2)) : noise(5 * 32, 2), [1, 5, 32]);
    return await u.forward(xr, t, { encoderHiddenStates: cr });
  };
  const { bound } = await bf16Bound(path.join(FIXTURES, 'unet2dcond-tiny'), full, rounded, a);
  expect(rmsRelError(b32, a)).toBeLessThan(bound);
});
