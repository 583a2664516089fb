/**
 * The launcher behind `npm run finetune -- --recipe r.json --nproc-per-node N [--nnodes M --node-rank R
 * --master-addr A --master-port P] [--dist-timeout S] [--dist-backend gloo|nccl]`: starts N worker
 * processes on this node with torchrun's environment (lib/distributed/env.ts), passes rank 0's output
 * through, prefixes the others' lines with their rank, forwards Ctrl-C / SIGTERM once, and when a
 * worker fails gives the rest a moment to report, then stops them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Writable } from 'node:stream';
import { z } from 'zod';
import { ProcessError } from '../errors';
import { CliUsageError, extractFlags, integerValue, numberValue, oneOfValue, type CliSpec, type FlagValues } from '../util/cli-args';
import { packageRoot } from '../native/load';
import { workerEnv } from './env';
import { isStopExitCode, STOP_EXIT_CODES } from '../util/exit-codes';

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  /** 0: a free port on this machine (one node only). */
  masterPort: number;
  timeoutSeconds?: number;
  backend?: 'auto' | 'gloo' | 'nccl';
  /** The worker script (default: dist/scripts/finetune.js of this package). */
  script?: string;
  /** After the first failure, how long the other workers get to exit on their own before SIGTERM. */
  graceMs?: number;
  /** Extra environment for the workers. */
  env?: NodeJS.ProcessEnv;
}

/** The launcher's flags, part of npm run finetune's (lib/train/cli.ts). */
export const LAUNCH_FLAGS = {
  'nproc-per-node': {
    type: 'string',
    value: '<N>',
    ...integerValue(1, 1024),
    description: 'data-parallel: start N worker processes on this machine (this process launches them)',
  },
  nnodes: { type: 'string', value: '<M>', ...integerValue(1, 1 << 16), description: 'with --nproc-per-node: machines in the run (default 1)' },
  'node-rank': { type: 'string', value: '<R>', ...integerValue(0), description: "with --nproc-per-node: this machine's rank, 0 to M-1 (default 0)" },
  'master-addr': {
    type: 'string',
    value: '<host>',
    schema: z.string().min(1),
    expected: 'a host name or address',
    description: "with --nproc-per-node: rank 0's machine (default 127.0.0.1)",
  },
  'master-port': {
    type: 'string',
    value: '<port>',
    ...integerValue(0, 65535),
    description: "with --nproc-per-node: rank 0's port; every node passes the same (default: a free port on one node, 29500 on several)",
  },
  'dist-timeout': {
    type: 'string',
    value: '<seconds>',
    ...numberValue(true),
    description: 'with --nproc-per-node: how long a collective may wait for the other ranks',
  },
  'dist-backend': {
    type: 'string',
    value: '<auto|gloo|nccl>',
    ...oneOfValue(['auto', 'gloo', 'nccl']),
    description: 'with --nproc-per-node: the process-group backend (default auto)',
  },
} as const satisfies CliSpec['flags'];

/** LaunchOptions from the launcher's flags; null when --nproc-per-node is absent. */
export function launchOptions(values: FlagValues<typeof LAUNCH_FLAGS>): LaunchOptions | null {
  const nprocPerNode = values['nproc-per-node'];
  if (nprocPerNode === undefined) {
    const given = Object.entries(values)
      .filter(([, v]) => v !== undefined)
      .map(([k]) => `--${k}`);
    if (given.length > 0)
      throw new CliUsageError(`${given.join(', ')} given without --nproc-per-node <N>: expected --nproc-per-node with the other launcher flags`);
    return null;
  }
  const nnodes = values.nnodes ?? 1;
  const nodeRank = values['node-rank'] ?? 0;
  if (nodeRank > nnodes - 1) throw new CliUsageError(`--node-rank: expected an integer in [0, ${nnodes - 1}] but received "${nodeRank}"`);
  const launch: LaunchOptions = {
    nprocPerNode,
    nnodes,
    nodeRank,
    masterAddr: values['master-addr'] ?? '127.0.0.1',
    masterPort: values['master-port'] ?? (nnodes > 1 ? 29500 : 0),
  };
  if (nnodes > 1 && launch.masterPort === 0)
    throw new CliUsageError(`--master-port: expected a fixed port (1-65535) that every node passes for a multi-node run (--nnodes ${nnodes}) but found 0`);
  if (values['dist-timeout'] !== undefined) launch.timeoutSeconds = values['dist-timeout'];
  if (values['dist-backend'] !== undefined) launch.backend = values['dist-backend'];
  return launch;
}

/** Splits the launcher's flags from the worker's; `launch` is null when --nproc-per-node is absent. */
export function parseLaunchArgs(argv: readonly string[]): { launch: LaunchOptions | null; rest: string[] } {
  const { values, rest } = extractFlags(LAUNCH_FLAGS, argv);
  return { launch: launchOptions(values), rest };
}

/** A TCP port free on this machine now (the OS picks it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

function workerScript(options: LaunchOptions): string {
  const script = options.script ?? path.join(packageRoot(), 'dist', 'scripts', 'finetune.js');
  if (!fs.existsSync(script))
    throw new ProcessError(`cannot start the workers: expected the worker script ${script} but it does not exist (run npm run build:ts)`);
  return script;
}

/** Copies a stream to `out` line by line with a prefix (whole lines, so ranks do not interleave mid-line). */
function pipeLines(from: NodeJS.ReadableStream, out: Writable, prefix: string): void {
  let pending = '';
  from.setEncoding('utf8');
  from.on('data', (chunk: string) => {
    const text = pending + chunk;
    const lines = text.split('\n');
    pending = lines.pop()!;
    if (lines.length > 0) out.write(lines.map((l) => `${prefix}${l}\n`).join(''));
  });
  from.on('end', () => {
    if (pending) out.write(`${prefix}${pending}\n`);
  });
}

export interface WorkerExit {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Runs this node's workers to the end. Resolves to the launcher's exit code: 0 when every worker
 * succeeded, 130 (SIGINT) or 143 (SIGTERM) when they stopped on a signal with a checkpoint, otherwise
 * the first failure's code.
 */
export async function launchWorkers(options: LaunchOptions, workerArgs: readonly string[], out: Writable, err: Writable): Promise<number> {
  const script = workerScript(options);
  const port = options.masterPort === 0 ? await freePort(options.masterAddr) : options.masterPort;
  const worldSize = options.nprocPerNode * options.nnodes;
  const children: Array<{ rank: number; child: ChildProcess; exited: Promise<WorkerExit> }> = [];
  for (let local = 0; local < options.nprocPerNode; local++) {
    const rank = options.nodeRank * options.nprocPerNode + local;
    const env = workerEnv(
      {
        rank,
        worldSize,
        localRank: local,
        localWorldSize: options.nprocPerNode,
        masterAddr: options.masterAddr,
        masterPort: port,
        timeoutSeconds: options.timeoutSeconds,
        backend: options.backend,
      },
      { ...process.env, ...options.env },
    );
    // Own process group: Ctrl-C reaches the launcher only, which forwards it once to each worker.
    const child = spawn(process.execPath, [script, ...workerArgs], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    pipeLines(child.stdout, out, rank === 0 ? '' : `[rank ${rank}] `);
    pipeLines(child.stderr, err, rank === 0 ? '' : `[rank ${rank}] `);
    const exited = new Promise<WorkerExit>((resolve) => child.once('exit', (code, signal) => resolve({ rank, code, signal })));
    child.once('error', (e) => err.write(`finetune: rank ${rank} could not start: ${e.message}\n`));
    children.push({ rank, child, exited });
  }
  const alive = () => children.filter((c) => c.child.exitCode === null && c.child.signalCode === null);
  const forward = (signal: NodeJS.Signals) => () => {
    for (const c of alive()) c.child.kill(signal);
  };
  const onSigint = forward('SIGINT');
  const onSigterm = forward('SIGTERM');
  const onExit = () => {
    for (const c of alive()) c.child.kill('SIGKILL');
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  process.on('exit', onExit);
  try {
    let failure: WorkerExit | undefined;
    let stopTimer: NodeJS.Timeout | undefined;
    const exits = await Promise.all(
      children.map(async (c) => {
        const e = await c.exited;
        const failed = e.code !== 0 && !isStopExitCode(e.code);
        if (failed && failure === undefined) {
          failure = e;
          err.write(
            `finetune: rank ${e.rank} ${e.code === null ? `was killed (${e.signal})` : `exited with code ${e.code}`}; stopping the other ${children.length - 1} worker(s)\n`,
          );
          // The others notice the lost peer at their next collective; give them a moment to say so.
          stopTimer = setTimeout(() => {
            for (const a of alive()) a.child.kill('SIGTERM');
            setTimeout(onExit, 5000).unref();
          }, options.graceMs ?? 10_000);
          stopTimer.unref();
        }
        return e;
      }),
    );
    if (stopTimer) clearTimeout(stopTimer);
    if (failure) return failure.code ?? 1;
    // Stopped on a signal: SIGTERM's code when any worker had SIGTERM, else SIGINT's.
    if (exits.some((e) => e.code === STOP_EXIT_CODES.SIGTERM)) return STOP_EXIT_CODES.SIGTERM;
    return exits.some((e) => e.code === STOP_EXIT_CODES.SIGINT) ? STOP_EXIT_CODES.SIGINT : 0;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
    process.off('exit', onExit);
  }
}
