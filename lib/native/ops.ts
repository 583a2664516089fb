/** Tensor operations that pipeline code needs between model calls, computed natively. */
import { expected } from '../errors';
import { callAsync, loadNative } from './load';
import type { Generator } from './generator';
import { Tensor } from './tensor';

/** torch.cat(tensors, dim). */
export async function concat(tensors: readonly Tensor[], dim = 0): Promise<Tensor> {
  if (!Array.isArray(tensors) || tensors.length === 0) throw expected('a non-empty array of Tensors', 'tensors', tensors);
  const native = loadNative();
  const handles = tensors.map((t: Tensor) => t.native);
  return new Tensor(await callAsync(() => native.concat(handles, dim)));
}

/** Classifier-free guidance on a batch [unconditional; conditional]: u + scale·(c − u). */
export async function classifierFreeGuidance(output: Tensor, guidanceScale: number): Promise<Tensor> {
  if (typeof guidanceScale !== 'number' || !Number.isFinite(guidanceScale)) throw expected('a finite number', 'guidanceScale', guidanceScale);
  const native = loadNative();
  const handle = output.native;
  return new Tensor(await callAsync(() => native.classifierFreeGuidance(handle, guidanceScale)));
}

/** Standard-normal float32 noise; with a generator, drawn on the CPU and reproducible on every device. */
export async function randn(shape: readonly number[], options: { device?: string; generator?: Generator } = {}): Promise<Tensor> {
  const native = loadNative();
  const generator = options.generator?.native;
  return new Tensor(await callAsync(() => native.randn([...shape], options.device ?? 'cpu', generator), `randn of shape [${[...shape].join(', ')}]`));
}

/** tensor · factor (e.g. latents into and out of the VAE's scaled space). */
export async function scale(tensor: Tensor, factor: number): Promise<Tensor> {
  if (typeof factor !== 'number' || !Number.isFinite(factor)) throw expected('a finite number', 'factor', factor);
  const native = loadNative();
  const handle = tensor.native;
  return new Tensor(await callAsync(() => native.scale(handle, factor)));
}

/** A draw from a diagonal Gaussian (the VAE's latent distribution), times `factor`: (mean + σ·noise)·factor. */
export async function gaussianSample(mean: Tensor, logvar: Tensor, noise: Tensor, factor = 1): Promise<Tensor> {
  if (typeof factor !== 'number' || !Number.isFinite(factor)) throw expected('a finite number', 'factor', factor);
  const native = loadNative();
  const [m, l, n] = [mean.native, logvar.native, noise.native];
  return new Tensor(await callAsync(() => native.gaussianSample(m, l, n, factor)));
}
