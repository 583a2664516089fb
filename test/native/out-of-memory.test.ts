// Out of memory reaches the user as OutOfMemoryError: an allocation libtorch refuses says how many
// bytes, without the allocator's source location; a model config or a step too large for this machine
// is refused before anything is allocated, naming the config key or the argument.
import * as path from 'path';
import { OutOfMemoryError } from '../../lib/errors';
import { loadUNet, UNet } from '../../lib/models/unet';
import { loadNative } from '../../lib/native/load';
import { randn } from '../../lib/native/ops';
import { Tensor } from '../../lib/native/tensor';
import { loadScheduler } from '../../lib/schedulers/scheduler';
import { Trainer } from '../../lib/train/trainer';

const DIR = path.join(__dirname, '..', 'fixtures', 'diffusers', 'unet2d-tiny');
// The real module object, which lib/models/memory-check.ts reads os.totalmem() from.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const os = require('os') as typeof import('os');

afterEach(() => jest.restoreAllMocks());

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

test('an allocation no machine can make is an OutOfMemoryError with the byte count, not a TorchError', async () => {
  // 2^50 float32 elements: 4 PiB, which the CPU allocator refuses at once (no memory is touched).
  const error = await rejection(randn([2 ** 20, 2 ** 20, 2 ** 10]));
  expect(error).toBeInstanceOf(OutOfMemoryError);
  expect((error as OutOfMemoryError).code).toBe('ERR_OUT_OF_MEMORY');
  expect(error.message).toBe('out of memory: could not allocate 4.5 PB (4503599627370496 bytes) on the CPU, in randn of shape [1048576, 1048576, 1024]');
  expect(error.message).not.toMatch(/enforce fail|alloc_cpu|Error code/);
  // The addon is still usable afterwards.
  using ok = await randn([2, 2]);
  expect(ok.shape).toEqual([2, 2]);
});

test('a U-Net config with an absurd block_out_channels is refused before the native model is created', async () => {
  const config = {
    _class_name: 'UNet2DModel',
    block_out_channels: [64, 4_194_304],
    down_block_types: ['DownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'UpBlock2D'],
  };
  const error = await rejection(UNet.fromConfig(config, { source: 'huge/config.json' }));
  expect(error).toBeInstanceOf(OutOfMemoryError);
  expect(error.message).toMatch(
    /^huge\/config\.json: a UNet2DModel with this config has at least [\d,]+ parameters, [\d.]+ [TP]B \([\d,]+ bytes\) as float32, more than the [\d.]+ GB/,
  );
  expect(error.message).toContain('"block_out_channels" [64,4194304] makes it this large');
  // The refusal, not the allocator's failure: nothing reached the addon.
  expect(error.message).toMatch(/Nothing was allocated\.$/);
  expect(loadNative().pendingJobs()).toBe(0);
});

describe('on a machine with 50 MB of memory', () => {
  beforeEach(() => jest.spyOn(os, 'totalmem').mockReturnValue(50e6));

  test('a forward whose activations cannot fit is refused, naming the argument', async () => {
    using unet = await loadUNet(DIR); // 0.7 M parameters: 2.8 MB of weights fit
    using sample = Tensor.from(new Float32Array(8 * 3 * 256 * 256), [8, 3, 256, 256]);
    using t = Tensor.from(new BigInt64Array(8).fill(10n), [8]);
    const error = await rejection(unet.forward(sample, t));
    expect(error).toBeInstanceOf(OutOfMemoryError);
    expect(error.message).toMatch(
      /^sample \[8, 3, 256, 256\]: a forward of the U-Net over it keeps at least 134\.2 MB \(134,217,728 bytes\) of activations .* more than the 50\.0 MB \(50,000,000 bytes\) of memory/,
    );
    using small = Tensor.from(new Float32Array(1 * 3 * 16 * 16), [1, 3, 16, 16]);
    using t1 = Tensor.from(new BigInt64Array([10n]), [1]);
    using out = await unet.forward(small, t1);
    expect(out.shape).toEqual([1, 3, 16, 16]);
  });

  test('a training step whose activations cannot fit is refused, naming batch.pixels', async () => {
    using unet = await loadUNet(DIR);
    const scheduler = await loadScheduler(path.join(DIR, 'scheduler'));
    using alphasCumprod = await scheduler.alphasCumprod();
    scheduler.dispose();
    using trainer = await Trainer.create(unet, {
      trainable: [{ name: 'conv_in.weight', lrMultiplier: 1, weightDecay: true }],
      alphasCumprod,
      predictionType: 'epsilon',
      seed: 0,
      ema: false,
      mixedPrecision: 'no',
    });
    using pixels = Tensor.from(new Float32Array(8 * 3 * 256 * 256), [8, 3, 256, 256]);
    const error = await rejection(trainer.accumulate({ pixels, sampleIndices: [0, 1, 2, 3, 4, 5, 6, 7], step: 0, totalSamples: 8 }));
    expect(error).toBeInstanceOf(OutOfMemoryError);
    expect(error.message).toMatch(/^batch\.pixels \[8, 3, 256, 256\]: a training step of the U-Net over it keeps at least/);
  });
});
