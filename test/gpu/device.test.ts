// Device round trips on a CUDA device: every dtype there and back bit for bit, device reads through the
// compute thread (toArray() refuses them), seeded noise identical on both devices, and the errors that
// name the field when a device index is past the last GPU.
import { InvalidArgumentError } from '../../lib/errors';
import { Generator } from '../../lib/native/generator';
import { randn } from '../../lib/native/ops';
import { deviceProblem } from '../../lib/native/runtime';
import { Tensor } from '../../lib/native/tensor';
import type { DType } from '../../lib/native/dtype';
import { DEVICE, DEVICE_COUNT, describeGpu } from './gpu';

const ARRAYS: [DType, ArrayBufferView][] = [
  ['float32', Float32Array.from([1.5, -2.25, 3e-8, 65504, -0])],
  ['float64', Float64Array.from([1e-300, -2, Math.PI])],
  ['float16', Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0x0001])],
  ['bfloat16', Uint16Array.from([0x3f80, 0xc040, 0x7f7f, 0x0001])],
  ['int64', BigInt64Array.from([1n, -(2n ** 62n), 3n])],
  ['int32', Int32Array.from([1, -2, 2 ** 31 - 1])],
  ['uint8', Uint8Array.from([0, 127, 255])],
  ['bool', Uint8Array.from([0, 1, 1])],
];

describeGpu('CUDA round trips', () => {
  test.each(ARRAYS)('%s: cpu → cuda → cpu is bit-exact', async (dtype, data) => {
    using host = Tensor.from(data, [(data as unknown as ArrayLike<unknown>).length], { dtype });
    using dev = await host.to(DEVICE);
    expect(dev.device).toBe(DEVICE);
    expect(dev.dtype).toBe(dtype);
    using back = await dev.to('cpu');
    expect(Buffer.from((await back.data({ raw: true })).buffer)).toEqual(Buffer.from((await host.data({ raw: true })).buffer));
    // Reading the device tensor directly goes through the compute thread too.
    expect(Buffer.from((await dev.data({ raw: true })).buffer)).toEqual(Buffer.from((await host.data({ raw: true })).buffer));
  });

  test('half types read back as float32 from the device, on the compute thread', async () => {
    using host = Tensor.from(Uint16Array.from([0x3c00, 0xc000]), [2], { dtype: 'bfloat16' });
    using dev = await host.to(DEVICE);
    expect(Array.from((await dev.data()) as Float32Array)).toEqual([1, -2]);
  });

  test('toArray() refuses a device tensor and says to use data()', async () => {
    using host = Tensor.from(Float32Array.from([1, 2]), [2]);
    for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
      using dev = await host.to(DEVICE, dtype);
      expect(() => dev.toArray()).toThrow(/CPU tensors only.*cuda:0.*data\(\)/);
    }
  });

  test('a seeded generator gives the same noise on the CPU and on the GPU', async () => {
    using g1 = new Generator(1234);
    using g2 = new Generator(1234);
    using a = await randn([2, 3, 4, 4], { generator: g1 });
    using b = await randn([2, 3, 4, 4], { device: DEVICE, generator: g2 });
    expect(b.device).toBe(DEVICE);
    expect(await b.data()).toEqual(await a.data());
  });

  test('a device index past the last GPU is refused before any work, naming the count', async () => {
    const missing = `cuda:${DEVICE_COUNT}`;
    expect(deviceProblem(missing)).toMatch(new RegExp(`"${missing}" is not available: .*${DEVICE_COUNT} CUDA device`));
    using t = Tensor.from(new Float32Array(1), [1]);
    await expect(t.to(missing)).rejects.toThrow(InvalidArgumentError);
  });
});
