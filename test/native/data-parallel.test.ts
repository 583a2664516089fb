// Data-parallel training on torch.distributed (Gloo, CPU, loopback): two ranks end bit-identical to
// each other and equal to one process with the doubled batch; only trainable gradients travel; a
// lost peer is a clear error within the timeout; the launcher runs finetune() end to end, and a run
// resumes with another world size. Workers run the compiled library (dist/), as npm test builds it.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PassThrough } from 'stream';
import { SafetensorsFile } from '../../lib/checkpoint/safetensors';
import { freePort } from '../../lib/distributed/launch';
import { finetune } from '../../lib/train/finetune';
import { runFinetuneCli } from '../../lib/train/cli';
import { float32SumBound, relativeDistance } from '../helpers/run-distance';

const WORKER = path.join(__dirname, '..', 'helpers', 'dp-worker.js');
const BASE = path.join(__dirname, '..', 'fixtures', 'diffusers', 'unet2d-classcond');

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-dp-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  ms: number;
}

function runWorker(config: object, env: NodeJS.ProcessEnv): { exited: Promise<Exit>; pid: number } {
  const started = Date.now();
  const child = spawn(process.execPath, [WORKER, JSON.stringify(config)], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += String(c)));
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, stderr, ms: Date.now() - started })));
  return { exited, pid: child.pid! };
}

async function twoRanks(config: object, timeoutSeconds: number): Promise<[{ exited: Promise<Exit>; pid: number }, { exited: Promise<Exit>; pid: number }]> {
  const port = await freePort();
  const env = (rank: number) => ({
    RANK: String(rank),
    WORLD_SIZE: '2',
    MASTER_ADDR: '127.0.0.1',
    MASTER_PORT: String(port),
    DIFFTUNE_DIST_TIMEOUT: String(timeoutSeconds),
    OMP_NUM_THREADS: '1',
  });
  return [runWorker(config, env(0)), runWorker(config, env(1))];
}

async function floats(file: string): Promise<Map<string, Float32Array>> {
  const f = await SafetensorsFile.open(file);
  try {
    const out = new Map<string, Float32Array>();
    for (const name of f.names()) {
      const bytes = await f.readBytes(name);
      out.set(name, new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
    }
    return out;
  } finally {
    await f.close();
  }
}

/** Per tensor max|a − b| / max|a|. */
function worstRelative(a: Map<string, Float32Array>, b: Map<string, Float32Array>): { name: string; error: number } {
  let worst = { name: '', error: 0 };
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
  for (const [name, x] of a) {
    const y = b.get(name)!;
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < x.length; i++) {
      diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
      scale = Math.max(scale, Math.abs(x[i]!));
    }
    const error = diff / Math.max(scale, 1e-30);
    if (error > worst.error) worst = { name, error };
  }
  return worst;
}

// Runs that split the same samples over ranks (or micro-batches) sum the same products in another
// grouping, so their gradients agree to float32 summation error: the deepest sum is a convolution
// weight gradient over batch × H × W = 8 × 16 × 16 products (plus one all-reduce addition). They are
// compared in Adam's first moments (a linear map of the gradients), over all weights at once: the
// weights themselves are not, since Adam turns a last-bit difference in a near-zero gradient into an
// update of ±lr, and which elements sit that close to zero depends on the CPU's kernels (see trainer.test.ts,
// where wrong splits are shown to fail this bound).
const GRADIENT_BOUND = float32SumBound(8 * 16 * 16 + 1);

async function moments(file: string): Promise<Map<string, Float32Array>> {
  return new Map([...(await floats(file))].filter(([n]) => n.startsWith('exp_avg.')));
}

const STEPS = 3;

test('2 ranks × batch 4: bit-identical ranks, equal to 1 process × batch 8, only trainable gradients all-reduced', async () => {
  const ranks = await twoRanks({ out: tmp, steps: STEPS, batchSize: 4 }, 60);
  const exits = await Promise.all(ranks.map((r) => r.exited));
  for (const e of exits) expect([e.code, e.stderr]).toEqual([0, '']);
  fs.mkdirSync(path.join(tmp, 'single'));
  const single = await runWorker({ out: path.join(tmp, 'single'), steps: STEPS, batchSize: 8 }, { OMP_NUM_THREADS: '1' }).exited;
  expect([single.code, single.stderr]).toEqual([0, '']);

  const bytes0 = fs.readFileSync(path.join(tmp, 'rank-0.safetensors'));
  const bytes1 = fs.readFileSync(path.join(tmp, 'rank-1.safetensors'));
  expect(bytes0.equals(bytes1)).toBe(true);

  const reference = await floats(path.join(tmp, 'single', 'rank-0.safetensors'));
  expect(
    relativeDistance(await moments(path.join(tmp, 'single', 'rank-0.moments.safetensors')), await moments(path.join(tmp, 'rank-0.moments.safetensors'))),
  ).toBeLessThan(GRADIENT_BOUND);
  // The weights did move: the comparison is not between two copies of the base.
  const base = await floats(path.join(BASE, 'diffusion_pytorch_model.safetensors'));
  const moved = worstRelative(new Map([...base].filter(([n]) => reference.has(n))), reference);
  expect(moved.error).toBeGreaterThan(1e-5);
  // Clipping and Adam would hide a wrongly scaled gradient; the gradient norms (before clipping) do not.
  const normsOf = (file: string) => (JSON.parse(fs.readFileSync(file, 'utf8')) as { gradNorms: number[] }).gradNorms;
  const singleNorms = normsOf(path.join(tmp, 'single', 'rank-0.json'));
  normsOf(path.join(tmp, 'rank-0.json')).forEach((n, i) => expect(Math.abs(n - singleNorms[i]!) / singleNorms[i]!).toBeLessThan(GRADIENT_BOUND));

  // Only trainable parameters travel: K steps × the trainable element count, frozen weights never.
  for (const rank of [0, 1]) {
    const info = JSON.parse(fs.readFileSync(path.join(tmp, `rank-${rank}.json`), 'utf8')) as {
      counters: { gradientElements: number; broadcastElements: number; gradientAllreduces: number };
      trainableNumel: number;
      totalNumel: number;
    };
    expect(info.trainableNumel).toBeLessThan(info.totalNumel);
    expect(info.counters.gradientElements).toBe(STEPS * info.trainableNumel);
    expect(info.counters.broadcastElements).toBe(info.trainableNumel);
    expect(info.counters.gradientAllreduces).toBeGreaterThanOrEqual(STEPS);
  }
});

test.each([
  ['killed', { dieAt: 1 }],
  ['hung (SIGSTOP)', { hangAt: 1 }],
])('a peer %s: the other rank exits with a clear error within the timeout', async (_what, fault) => {
  const timeout = 4;
  const [rank0, rank1] = await twoRanks({ out: tmp, steps: 50, batchSize: 4, ...fault }, timeout);
  try {
    const e = await rank0.exited;
    expect(e.code).toBe(1);
    expect(e.stderr).toMatch(/distributed training stopped: .* failed on rank 0 of 2 \(gloo, timeout 4 s\)/);
    // Start-up (loading torch, the model, the data) plus at most the timeout, with slack for a busy machine.
    expect(e.ms).toBeLessThan(30_000);
  } finally {
    try {
      process.kill(rank1.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await rank1.exited;
  }
});

function recipe(output: string, train: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return {
    model: { pretrained: BASE },
    data: { source: 'mnist', resolution: 16, channels: 1, limit: 64, randomFlip: true },
    freeze: { preset: 'decoder-only' },
    train: { steps: 4, batchSize: 4, lr: 1e-5, seed: 7, ...train },
    validation: { every: 0 },
    output,
    checkpoint: { every: 2, keep: 2 },
    ...extra,
  };
}

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: '', err: '' };
  out.on('data', (c) => (chunks.out += String(c)));
  err.on('data', (c) => (chunks.err += String(c)));
  const code = await runFinetuneCli(args, out, err, false);
  return { code, ...chunks };
}

test('npm run finetune -- --nproc-per-node 2 matches one process, and resumes with 1 rank', async () => {
  const file = path.join(tmp, 'r.json');
  const distOut = path.join(tmp, 'dist');
  fs.writeFileSync(file, JSON.stringify(recipe(distOut, {})));
  const r = await cli(['--recipe', file, '--nproc-per-node', '2', '--dist-timeout', '60']);
  expect([r.code, r.err]).toEqual([0, '']);
  expect(r.out).toMatch(/done: 4 steps/);
  expect(r.out).not.toMatch(/\[rank 1\]/); // rank 0 alone logs
  const metrics = fs
    .readFileSync(path.join(distOut, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { step: number; loss?: number });
  expect(metrics.filter((m) => m.loss !== undefined).map((m) => m.step)).toEqual([1, 2, 3, 4]);

  // One process, the doubled batch: the same samples, noise and flips per step.
  const single = await finetune(recipe(path.join(tmp, 'single'), { batchSize: 8 }));
  const optimizer = 'checkpoint-4/optimizer.safetensors';
  const singleMoments = await moments(path.join(tmp, 'single', optimizer));
  expect(relativeDistance(singleMoments, await moments(path.join(distOut, optimizer)))).toBeLessThan(GRADIENT_BOUND);

  // Resume the 2-rank checkpoint of step 2 in one process (batch 4 × accumulation 2: the same global batch).
  const resumedOut = path.join(tmp, 'resumed');
  fs.cpSync(path.join(distOut, 'checkpoint-2'), path.join(resumedOut, 'checkpoint-2'), { recursive: true });
  const resumed = await finetune(recipe(resumedOut, { gradientAccumulation: 2 }, { resume: 'latest' }));
  expect(resumed.steps).toBe(4);
  expect(relativeDistance(singleMoments, await moments(path.join(resumedOut, optimizer)))).toBeLessThan(GRADIENT_BOUND);
  expect(single.finalLoss).toBeCloseTo(resumed.finalLoss, 4);
});

test('ranks holding different sample counts (an epoch’s short last batch) still train the mean over the step’s samples', async () => {
  // 10 samples, batch 4 per rank: step 2 gives rank 0 the epoch's last 2 samples and rank 1 the next
  // epoch's first 4. One process with batch 4 × accumulation 2 groups the same samples per step and
  // divides by the step's 6; averaging the ranks' gradients must give the same update.
  const data = { source: 'mnist', resolution: 16, channels: 1, limit: 10, randomFlip: true };
  const file = path.join(tmp, 'uneven.json');
  const distOut = path.join(tmp, 'uneven-dist');
  fs.writeFileSync(file, JSON.stringify({ ...recipe(distOut, { steps: 2 }), data, checkpoint: { every: 2 } }));
  const r = await cli(['--recipe', file, '--nproc-per-node', '2', '--dist-timeout', '60']);
  expect([r.code, r.err]).toEqual([0, '']);
  await finetune({ ...recipe(path.join(tmp, 'uneven-single'), { steps: 2, gradientAccumulation: 2 }), data, checkpoint: { every: 2 } });
  const optimizer = 'checkpoint-2/optimizer.safetensors';
  expect(relativeDistance(await moments(path.join(tmp, 'uneven-single', optimizer)), await moments(path.join(distOut, optimizer)))).toBeLessThan(
    GRADIENT_BOUND,
  );
}, 120_000);
