// process.exit() runs no environment cleanup hooks, only atexit handlers and static destructors. If the
// compute thread is busy then (setting torch's thread count as the addon starts, or running a job),
// libtorch's and OpenMP's pools are destroyed under it: SIGSEGV, SIGILL or a hang in pthreadpool_destroy,
// a few runs in twenty before the compute thread was parked at exit. Each variant runs 50 times (the
// rate seen before the fix makes 50 clean runs by chance about 1 in 10^5); DIFFTUNE_EXIT_RUNS overrides.
import { spawn } from 'child_process';
import * as path from 'path';

const ROOT = path.join(__dirname, '..', '..');
const INDEX = JSON.stringify(path.join(ROOT, 'dist', 'lib', 'index.js'));
const WEIGHTS = JSON.stringify(path.join(ROOT, 'test', 'fixtures', 'diffusers', 'unet2d-tiny', 'diffusion_pytorch_model.safetensors'));
const UNET = JSON.stringify(path.join(ROOT, 'test', 'fixtures', 'diffusers', 'unet2d-tiny'));
const RUNS = Number(process.env.DIFFTUNE_EXIT_RUNS ?? 50);
const PARALLEL = 4;

const SCRIPTS = {
  'exit right after loadStateDict': `require(${INDEX}).loadStateDict(${WEIGHTS}).then(() => process.exit(0));`,
  'exit right after a forward': `
    const d = require(${INDEX});
    d.loadUNet(${UNET}).then(async (unet) => {
      const x = d.Tensor.from(new Float32Array(3 * 16 * 16), [1, 3, 16, 16]);
      const t = d.Tensor.from(new BigInt64Array([10n]), [1]);
      await unet.forward(x, t);
      process.exit(0);
    });`,
  'exit with a job still running': `
    const d = require(${INDEX});
    d.loadUNet(${UNET}).then((unet) => {
      const x = d.Tensor.from(new Float32Array(4 * 3 * 16 * 16), [4, 3, 16, 16]);
      const t = d.Tensor.from(new BigInt64Array([1n, 2n, 3n, 4n]), [4]);
      unet.forward(x, t);
      setImmediate(() => process.exit(0));
    });`,
};

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function runOnce(script: string, env: NodeJS.ProcessEnv): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', script], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // A hang is a failure. The longest variant takes under 2 s on an idle 2-core machine; under a load
    // of 10 (CI, other jobs) starting Node and libtorch alone can take tens of seconds, so only a run
    // still alive after 2 minutes counts as hung.
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
}

async function runMany(script: string, env: NodeJS.ProcessEnv): Promise<Outcome[]> {
  const failures: Outcome[] = [];
  let next = 0;
  const worker = async () => {
    while (next < RUNS) {
      next++;
      const r = await runOnce(script, env);
      if (r.code !== 0 || r.signal !== null) failures.push(r);
      else if (r.stderr.trim() !== '') failures.push(r); // an error printed on the way out is a failure too
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  return failures;
}

describe.each([
  ['without OMP_NUM_THREADS', { OMP_NUM_THREADS: undefined }],
  ['with OMP_NUM_THREADS=1', { OMP_NUM_THREADS: '1' }],
])('%s', (label, extra) => {
  // The running-job variant does not depend on the thread count's origin: once is enough.
  const scripts = Object.entries(SCRIPTS).filter(([name]) => label.startsWith('without') || !name.includes('still running'));
  test.each(scripts)(
    `%s: ${RUNS} runs, no crash or hang`,
    async (_name, script) => {
      const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
      if (extra.OMP_NUM_THREADS === undefined) delete env.OMP_NUM_THREADS;
      const failures = await runMany(script, env);
      expect(failures.map((f) => `${f.signal ?? `exit ${f.code}`}: ${f.stderr.trim().split('\n').slice(-3).join(' | ')}`)).toEqual([]);
    },
    600_000,
  );
});
