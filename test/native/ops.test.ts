// The pipeline-side tensor ops: values against plain arithmetic, and clear errors for bad input.
import { classifierFreeGuidance, gaussianSample, scale } from '../../lib/native/ops';
import { Tensor } from '../../lib/native/tensor';

const f32 = (values: number[], shape: number[]) => Tensor.from(Float32Array.from(values), shape);

test('scale multiplies every element', async () => {
  using x = f32([1, -2, 0.5, 4], [2, 2]);
  using y = await scale(x, 1 / 0.18215);
  const got = Array.from((await y.data()) as Float32Array);
  [1, -2, 0.5, 4].forEach((v, i) => expect(got[i]).toBeCloseTo(v / 0.18215, 4));
  await expect(scale(x, Number.NaN)).rejects.toThrow(/finite number/);
});

test('gaussianSample draws mean + exp(logvar / 2)·noise with logvar clamped to [-30, 20], times the factor', async () => {
  using mean = f32([0, 1, -1, 2], [1, 4]);
  using logvar = f32([0, Math.log(4), 100, -100], [1, 4]);
  using noise = f32([1, 1, 1, 1], [1, 4]);
  using z = await gaussianSample(mean, logvar, noise, 0.5);
  const got = Array.from((await z.data()) as Float32Array);
  const expected = [0 + 1, 1 + 2, -1 + Math.exp(10), 2 + Math.exp(-15)].map((v) => v * 0.5);
  got.forEach((v, i) => expect(v / expected[i]!).toBeCloseTo(1, 5));
  using wrong = f32([1, 2], [1, 2]);
  await expect(gaussianSample(mean, logvar, wrong)).rejects.toThrow(/one shape/);
});

test('classifier-free guidance combines the unconditional and conditional halves', async () => {
  using out = f32([1, 2, 3, 5], [2, 2]);
  using g = await classifierFreeGuidance(out, 7.5);
  expect(Array.from((await g.data()) as Float32Array)).toEqual([1 + 7.5 * 2, 2 + 7.5 * 3]);
});
