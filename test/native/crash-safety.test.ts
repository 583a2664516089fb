// A run killed (SIGKILL) while it writes a checkpoint leaves the previous checkpoint complete and
// loadable, and resuming from "latest" works. The child runs the compiled package (npm test compiles
// it first), and is killed the moment a temporary checkpoint folder appears: mid-save.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { listCheckpoints, readCheckpointState } from '../../lib/checkpoint/train-state';
import { loadUNet } from '../../lib/models/unet';
import { finetune } from '../../lib/train/finetune';

const ROOT = path.join(__dirname, '..', '..');
const BASE = path.join(ROOT, 'test', 'fixtures', 'diffusers', 'unet2d-classcond');

test('SIGKILL mid-checkpoint leaves the previous checkpoint intact and resumable', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-crash-'));
  try {
    const output = path.join(tmp, 'run');
    const recipe = {
      model: { pretrained: BASE },
      data: { source: 'mnist', resolution: 16, channels: 1, limit: 32 },
      train: { steps: 50, batchSize: 2, lr: 1e-3 },
      output,
      checkpoint: { every: 1, keep: 2 },
    };
    const script = `require(${JSON.stringify(path.join(ROOT, 'dist', 'lib', 'train', 'finetune.js'))}).finetune(${JSON.stringify(recipe)}).catch(() => process.exit(3));`;
    const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    let killedMidSave = false;
    await new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + 60_000;
      const poll = () => {
        let names: string[] = [];
        try {
          names = fs.readdirSync(output);
        } catch {
          // not created yet
        }
        const complete = names.filter((n) => /^checkpoint-\d+$/.test(n)).length;
        if (complete >= 1 && names.some((n) => n.startsWith('.checkpoint-'))) {
          killedMidSave = true;
          child.kill('SIGKILL');
          resolve();
          return;
        }
        if (child.exitCode !== null) {
          reject(new Error(`the training child exited (${child.exitCode}) before a checkpoint was caught mid-save`));
          return;
        }
        if (Date.now() > deadline) {
          child.kill('SIGKILL');
          reject(new Error('timed out waiting for a checkpoint write'));
          return;
        }
        setImmediate(poll);
      };
      poll();
    });
    await new Promise((r) => child.once('exit', r));
    expect(killedMidSave).toBe(true);
    const checkpoints = await listCheckpoints(output);
    expect(checkpoints.length).toBeGreaterThanOrEqual(1);
    const latest = checkpoints[checkpoints.length - 1]!;
    const state = await readCheckpointState(latest.dir);
    expect(state.step).toBe(latest.step);
    using unet = await loadUNet(path.join(latest.dir, 'unet'));
    expect(unet.config._class_name).toBe('UNet2DModel');
    const resumed = await finetune({ ...recipe, train: { ...recipe.train, steps: latest.step + 2 }, resume: 'latest', checkpoint: { every: 0, keep: 2 } });
    expect(resumed.status).toBe('completed');
    expect(resumed.steps).toBe(latest.step + 2);
    expect(fs.readdirSync(output).filter((n) => n.startsWith('.checkpoint-'))).toEqual([]);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

// SIGTERM (what kill, Docker and Slurm send) stops like Ctrl-C but exits 143; it exited 130.
test.each([
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const)('%s during npm run finetune stops at the next step with a checkpoint and exit code %i', async (signal, exitCode) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-sigint-'));
  try {
    const output = path.join(tmp, 'run');
    const recipeFile = path.join(tmp, 'r.json');
    fs.writeFileSync(
      recipeFile,
      JSON.stringify({
        model: { pretrained: BASE },
        data: { source: 'mnist', resolution: 16, channels: 1, limit: 32 },
        train: { steps: 500, batchSize: 2, lr: 1e-3 },
        output,
      }),
    );
    const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'scripts', 'finetune.js'), '--recipe', recipeFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let interrupted = false;
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (!interrupted && /step 3\/500/.test(stdout)) {
        interrupted = true;
        child.kill(signal);
      }
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(interrupted).toBe(true);
    expect(code).toBe(exitCode);
    expect(stdout).toMatch(/stopped: \d+ steps/);
    const checkpoints = await listCheckpoints(output);
    expect(checkpoints).toHaveLength(1);
    expect(checkpoints[0]!.step).toBeGreaterThanOrEqual(3);
    expect(checkpoints[0]!.step).toBeLessThan(500);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test.each([
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const)(
  '%s to the data-parallel launcher stops every rank at the same step: one checkpoint, exit %i, no worker left',
  async (signal, exitCode) => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-sigint-dp-'));
    try {
      const output = path.join(tmp, 'run');
      const recipeFile = path.join(tmp, 'r.json');
      fs.writeFileSync(
        recipeFile,
        JSON.stringify({
          model: { pretrained: BASE },
          data: { source: 'mnist', resolution: 16, channels: 1, limit: 64 },
          train: { steps: 500, batchSize: 2, lr: 1e-3 },
          output,
        }),
      );
      const child = spawn(
        process.execPath,
        [path.join(ROOT, 'dist', 'scripts', 'finetune.js'), '--recipe', recipeFile, '--nproc-per-node', '2', '--dist-timeout', '30'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      let interrupted = false;
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        if (!interrupted && /step 3\/500/.test(stdout)) {
          interrupted = true;
          child.kill(signal); // SIGINT: what a terminal's Ctrl-C sends the launcher (its workers run in their own group)
        }
      });
      const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
      expect({ interrupted, code, stderr: code === exitCode ? '' : stderr }).toEqual({ interrupted: true, code: exitCode, stderr: '' });
      expect(stdout).toMatch(/stopped: \d+ steps/);
      const checkpoints = await listCheckpoints(output);
      expect(checkpoints).toHaveLength(1);
      expect(checkpoints[0]!.step).toBeGreaterThanOrEqual(3);
      // No worker outlives the launcher.
      const leftovers = fs
        .readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(recipeFile);
          } catch {
            return false;
          }
        });
      expect(leftovers).toEqual([]);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  },
  120_000,
);
