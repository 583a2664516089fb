/** Image batches into the model's tensors, natively: one call per batch. */
import { expected } from '../errors';
import { callAsync, loadNative } from './load';
import { Tensor } from './tensor';

/** Decoded pixels uint8 [N, H, W, C] (copied at the call) → float32 [N, C, H, W] in [-1, 1]. */
export async function imagesToTensor(pixels: Uint8Array, shape: readonly [number, number, number, number]): Promise<Tensor> {
  if (!(pixels instanceof Uint8Array)) throw expected('a Uint8Array', 'pixels', pixels);
  const native = loadNative();
  return new Tensor(await callAsync(() => native.imagesToTensor(pixels, [...shape])));
}
