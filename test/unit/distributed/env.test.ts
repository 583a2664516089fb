// The launcher ↔ worker contract: torchrun's variables in, errors naming the variable; launcher flags.
import { readDistEnv, threadsPerRank, workerEnv } from '../../../lib/distributed/env';
import { parseLaunchArgs } from '../../../lib/distributed/launch';

const torchrun = { RANK: '3', WORLD_SIZE: '4', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29500' };

test('no WORLD_SIZE, or 1: training alone', () => {
  expect(readDistEnv({})).toBeNull();
  expect(readDistEnv({ WORLD_SIZE: '1', RANK: '0' })).toBeNull();
});

test("torchrun's variables", () => {
  expect(readDistEnv({ ...torchrun, DIFFTUNE_DIST_TIMEOUT: '2.5' })).toEqual({
    rank: 3,
    worldSize: 4,
    localRank: 1,
    localWorldSize: 2,
    masterAddr: '10.0.0.1',
    masterPort: 29500,
    timeoutMs: 2500,
    backend: 'auto',
  });
  expect(readDistEnv({ ...torchrun, LOCAL_RANK: undefined, LOCAL_WORLD_SIZE: undefined })).toMatchObject({
    localRank: 3,
    localWorldSize: 4,
    timeoutMs: 600_000,
  });
});

test.each([
  [{ ...torchrun, RANK: 'x' }, /environment variable RANK: expected a non-negative integer \(found "x"\)/],
  [{ ...torchrun, RANK: '4' }, /RANK: expected a rank in \[0, 4\) for WORLD_SIZE 4 but found 4/],
  [{ ...torchrun, MASTER_PORT: undefined }, /environment variable MASTER_PORT: Required \(found null\)/],
  [{ ...torchrun, MASTER_PORT: '70000' }, /MASTER_PORT: Number must be less than or equal to 65535/],
  [{ ...torchrun, DIFFTUNE_DIST_BACKEND: 'mpi' }, /DIFFTUNE_DIST_BACKEND/],
])('bad environment %#', (env, message) => {
  expect(() => readDistEnv(env)).toThrow(message);
});

test('workerEnv round-trips through readDistEnv; threads are cores ÷ ranks on the node', () => {
  const env = workerEnv(
    { rank: 1, worldSize: 2, localRank: 1, localWorldSize: 2, masterAddr: '127.0.0.1', masterPort: 1234, timeoutSeconds: 7, threads: 3 },
    { PATH: '/bin' },
  );
  expect(env).toMatchObject({ PATH: '/bin', OMP_NUM_THREADS: '3' });
  expect(readDistEnv(env)).toEqual({
    rank: 1,
    worldSize: 2,
    localRank: 1,
    localWorldSize: 2,
    masterAddr: '127.0.0.1',
    masterPort: 1234,
    timeoutMs: 7000,
    backend: 'auto',
  });
  expect([threadsPerRank(16, 4), threadsPerRank(2, 2), threadsPerRank(2, 4)]).toEqual([4, 1, 1]);
});

test('launcher flags are split from the worker arguments', () => {
  expect(parseLaunchArgs(['--recipe', 'r.json', '--set', 'train.steps=3'])).toEqual({ launch: null, rest: ['--recipe', 'r.json', '--set', 'train.steps=3'] });
  const { launch, rest } = parseLaunchArgs([
    '--recipe',
    'r.json',
    '--nproc-per-node',
    '4',
    '--nnodes=2',
    '--node-rank',
    '1',
    '--master-addr',
    'h',
    '--master-port',
    '29501',
    '--dist-timeout',
    '30',
  ]);
  expect(rest).toEqual(['--recipe', 'r.json']);
  expect(launch).toEqual({ nprocPerNode: 4, nnodes: 2, nodeRank: 1, masterAddr: 'h', masterPort: 29501, timeoutSeconds: 30 });
  expect(parseLaunchArgs(['--nproc-per-node', '2']).launch).toMatchObject({ nnodes: 1, masterAddr: '127.0.0.1', masterPort: 0 });
  expect(() => parseLaunchArgs(['--nnodes', '2'])).toThrow(/--nnodes given without --nproc-per-node/);
  expect(() => parseLaunchArgs(['--nproc-per-node', '0'])).toThrow(/--nproc-per-node: expected an integer in \[1, 1024\] but received "0"/);
  expect(() => parseLaunchArgs(['--nproc-per-node', '2', '--nnodes', '2', '--node-rank', '2'])).toThrow(/--node-rank: expected an integer in \[0, 1\]/);
});
