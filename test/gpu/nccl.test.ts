// Data-parallel over NCCL with one process (one GPU): the build has NCCL (a CUDA libtorch with nccl.h),
// a group of one connects with the NCCL backend on the device and its collectives return their input.
import * as net from 'net';
import { distCapabilities, ProcessGroup } from '../../lib/distributed/process-group';
import { DEVICE, describeGpu } from './gpu';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

describeGpu('NCCL', () => {
  test('this CUDA build has NCCL', () => {
    expect(distCapabilities().nccl).toBe(true);
  });

  test('a group of one on the GPU: backend nccl, sums and barrier', async () => {
    const group = await ProcessGroup.connect({
      rank: 0,
      worldSize: 1,
      masterAddr: '127.0.0.1',
      masterPort: await freePort(),
      timeoutMs: 60_000,
      backend: 'nccl',
      device: DEVICE,
    });
    try {
      expect(group.backend).toBe('nccl');
      expect(await group.sum([1.5, -2])).toEqual([1.5, -2]);
      await group.barrier();
    } finally {
      await group.shutdown();
    }
  });
});
