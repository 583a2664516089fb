// Device requests on a machine without the device: every entry point refuses before any work, naming the
// field and what runtimeInfo() reports (on a CUDA machine test/gpu covers the same paths on the GPU).
import * as path from 'path';
import { ConfigError, InvalidArgumentError } from '../../lib/errors';
import { loadUNet } from '../../lib/models/unet';
import { loadVae } from '../../lib/models/vae';
import { runtimeInfo } from '../../lib/native/runtime';
import { Tensor } from '../../lib/native/tensor';
import { planRecipe } from '../../lib/train/finetune';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');

let missing = 'cuda:0';
beforeAll(async () => {
  const info = await runtimeInfo();
  // The first index this machine lacks: cuda:0 without CUDA, one past the last GPU with it.
  missing = `cuda:${info.backend === 'cuda' ? info.cudaDeviceCount : 0}`;
});

test('a recipe whose model.device is missing is refused naming model.device', async () => {
  const recipe = {
    model: { pretrained: path.join(FIXTURES, 'unet2d-tiny'), device: missing },
    data: { source: 'mnist', resolution: 16, channels: 1 },
    train: { steps: 1, lr: 1e-4 },
    output: '/tmp/none',
  };
  const plan = planRecipe(recipe);
  await expect(plan).rejects.toThrow(ConfigError);
  await expect(planRecipe(recipe)).rejects.toThrow(new RegExp(`model\\.device: "${missing}" is not available: runtimeInfo\\(\\) reports backend`));
});

test('model loads refuse a missing device naming options.device', async () => {
  await expect(loadUNet(path.join(FIXTURES, 'unet2d-tiny'), { device: missing })).rejects.toThrow(/options\.device: .* is not available/);
  await expect(loadVae(path.join(FIXTURES, 'vae-tiny'), { device: missing })).rejects.toThrow(InvalidArgumentError);
  await expect(loadUNet(path.join(FIXTURES, 'unet2d-tiny'), { device: 'gpu' })).rejects.toThrow(
    /options\.device: expected "cpu", "cuda" or "cuda:N" but received "gpu"/,
  );
});

test('toArray() still reads CPU half tensors synchronously', () => {
  using t = Tensor.from(Uint16Array.from([0x3f80, 0xc000]), [2], { dtype: 'bfloat16' });
  expect(Array.from(t.toArray() as Float32Array)).toEqual([1, -2]);
});
