/**
 * Training checkpoints: `checkpoint-<step>/` folders holding the U-Net (diffusers layout), the
 * optimizer moments, the EMA weights and `state.json` (step, data-loader position, recipe, base model
 * hash). Each is written into a temporary folder and renamed into place, so a crash or kill at any
 * moment leaves the previous checkpoint loadable; older ones are deleted only after a new one is complete.
 * A resumed run reads the optimizer moments and EMA weights back into its trainer.
 */
import { createHash } from 'crypto';
import { createReadStream, promises as fs } from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { ConfigError, FileSystemError } from '../errors';
import type { Tensor } from '../native/tensor';
import { writeAll, writeFileAtomically } from '../util/atomic-write';
import { fileSystemError, withFileErrors } from '../util/fs-errors';
import { createFolder } from '../util/output-folder';
import { disposeStateDict, loadStateDict, saveStateDict, type StateDict } from './state-dict';

export const CHECKPOINT_FORMAT = 'difftune-checkpoint/1';
export const STATE_FILE = 'state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const EMA_FILE = 'ema.safetensors';
export const UNET_DIR = 'unet';
/** A trained text encoder's folder, in a checkpoint and in the output pipeline. */
export const TEXT_ENCODER_DIR = 'text_encoder';

const CHECKPOINT_NAME = /^checkpoint-(\d+)$/;

export const checkpointStateSchema = z.object({
  format: z.literal(CHECKPOINT_FORMAT),
  /** Training steps done (the checkpoint's name); a skipped (non-finite) step counts. */
  step: z.number().int().nonnegative(),
  /** Updates the optimizer applied (AdamW's bias correction counts these). */
  optimizerSteps: z.number().int().nonnegative(),
  emaUpdates: z.number().int().nonnegative(),
  lossScale: z.number().positive(),
  skippedSteps: z.number().int().nonnegative(),
  /** The data loader's position (lib/data/loader.ts LoaderState). */
  loader: z.record(z.unknown()),
  /** The recipe that produced it, as validated. */
  recipe: z.record(z.unknown()),
  base: z.object({ path: z.string(), sha256: z.string() }),
  createdAt: z.string(),
});

export type CheckpointState = z.infer<typeof checkpointStateSchema>;

/** sha256 of the files' contents, in order (the base model's weights): resume refuses another model. */
export async function hashFiles(files: readonly string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const file of files) {
    await new Promise<void>((resolve, reject) => {
      createReadStream(file)
        .on('data', (chunk) => hash.update(chunk))
        .on('end', () => resolve())
        .on('error', reject);
    });
  }
  return hash.digest('hex');
}

/** Completed checkpoints in `output`, oldest first. */
export async function listCheckpoints(output: string): Promise<Array<{ step: number; dir: string }>> {
  let names: string[];
  try {
    names = await fs.readdir(output);
  } catch {
    return [];
  }
  const found: Array<{ step: number; dir: string }> = [];
  for (const name of names) {
    const m = CHECKPOINT_NAME.exec(name);
    if (!m) continue;
    const dir = path.join(output, name);
    try {
      await fs.access(path.join(dir, STATE_FILE));
      found.push({ step: Number(m[1]), dir });
    } catch {
      // a folder without state.json never completed: not a checkpoint
    }
  }
  return found.sort((a, b) => a.step - b.step);
}

/** The folder `resume` names: "latest" in `output`, or a checkpoint path. */
export async function resolveResume(resume: string, output: string): Promise<string> {
  if (resume === 'latest') {
    const all = await listCheckpoints(output);
    if (all.length === 0) throw new ConfigError(`resume: "latest" but ${output} has no completed checkpoint-<step> folder`);
    return all[all.length - 1]!.dir;
  }
  try {
    await fs.access(path.join(resume, STATE_FILE));
  } catch {
    throw new ConfigError(`resume: ${resume} is not a completed checkpoint (no ${STATE_FILE} in it)`);
  }
  return resume;
}

export async function readCheckpointState(dir: string): Promise<CheckpointState> {
  const file = path.join(dir, STATE_FILE);
  const text = await fs.readFile(file, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${file}: invalid JSON: ${(error as Error).message}`);
  }
  const parsed = checkpointStateSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`${file}: "${issue.path.join('.')}": ${issue.message}`);
  }
  return parsed.data;
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes a checkpoint: `fill(tmpDir)` writes the tensors, then state.json goes in last and the folder
 * is renamed to checkpoint-<step>. Then all but the newest `keep` checkpoints are deleted (0: keep all).
 */
export async function writeCheckpoint(output: string, state: CheckpointState, fill: (dir: string) => Promise<void>, keep: number): Promise<string> {
  await createFolder(output);
  const final = path.join(output, `checkpoint-${state.step}`);
  const tmp = path.join(output, `.checkpoint-${state.step}.tmp-${process.pid}-${Date.now()}`);
  await withFileErrors(final, 'write the checkpoint', async () => {
    await fs.rm(tmp, { recursive: true, force: true });
    await fs.mkdir(tmp);
  });
  try {
    await fill(tmp);
    const text = Buffer.from(`${JSON.stringify(state, null, 2)}\n`, 'utf8');
    await writeFileAtomically(path.join(tmp, STATE_FILE), (handle) => writeAll(handle, text));
    await fsyncDir(tmp);
    // A checkpoint of the same step from an earlier, interrupted run: move it aside, then replace it.
    const old = `${final}.old-${process.pid}-${Date.now()}`;
    let moved = false;
    try {
      await fs.rename(final, old);
      moved = true;
    } catch {
      // none there
    }
    await fs.rename(tmp, final);
    await fsyncDir(output);
    if (moved) await fs.rm(old, { recursive: true, force: true });
  } catch (error) {
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    // The temporary folder is an implementation detail: errors name the checkpoint being written.
    if (error instanceof FileSystemError && error.message.includes(tmp)) {
      throw new FileSystemError(error.path.split(tmp).join(final), error.errno, error.message.split(tmp).join(final), { cause: error });
    }
    throw fileSystemError(error, final, 'write the checkpoint');
  }
  await withFileErrors(output, 'remove old checkpoints from', async () => {
    if (keep > 0) {
      const all = await listCheckpoints(output);
      for (const c of all.slice(0, Math.max(0, all.length - keep))) await fs.rm(c.dir, { recursive: true, force: true });
    }
    // Leftovers of runs killed mid-write.
    for (const name of await fs.readdir(output)) {
      if (/^\.checkpoint-\d+\.tmp-/.test(name) && !name.includes(`-${process.pid}-`))
        await fs.rm(path.join(output, name), { recursive: true, force: true }).catch(() => undefined);
    }
  });
  return final;
}

/**
 * The trainer's side of a checkpoint: its counters, AdamW moments and EMA weights (lib/train/trainer.ts's
 * Trainer; named by its methods here because this layer may not import lib/train/).
 */
export interface CheckpointedTrainer {
  counters(): Promise<{ optimizerSteps: number; emaUpdates: number; lossScale: number }>;
  optimizerState(): Promise<StateDict>;
  loadOptimizerState(state: ReadonlyMap<string, Tensor>, optimizerSteps: number): Promise<void>;
  emaWeights(): Promise<StateDict>;
  loadEmaWeights(weights: ReadonlyMap<string, Tensor>, updates: number): Promise<void>;
  setLossScale(scale: number): Promise<void>;
}

/** What state.json records of a run besides the trainer's counters. */
export interface RunState {
  /** Steps done; a skipped (non-finite) step counts. */
  step: number;
  skippedSteps: number;
  /** The data loader's position (lib/data/loader.ts LoaderState), as JSON. */
  loader: Record<string, unknown>;
  /** The validated recipe, as JSON. */
  recipe: Record<string, unknown>;
  base: { path: string; sha256: string };
}

/**
 * Writes checkpoint-<step> into `output`: `writeWeights(dir)` writes what trains (the U-Net or its
 * adapters), then come the optimizer's moments, the EMA weights when the run keeps an EMA, and state.json.
 */
export async function saveTrainingCheckpoint(
  output: string,
  run: RunState,
  trainer: CheckpointedTrainer,
  options: { ema: boolean; keep: number; writeWeights: (dir: string) => Promise<void> },
): Promise<string> {
  const counters = await trainer.counters();
  const state: CheckpointState = {
    format: CHECKPOINT_FORMAT,
    step: run.step,
    optimizerSteps: counters.optimizerSteps,
    emaUpdates: counters.emaUpdates,
    lossScale: counters.lossScale,
    skippedSteps: run.skippedSteps,
    loader: run.loader,
    recipe: run.recipe,
    base: run.base,
    createdAt: new Date().toISOString(),
  };
  const fill = async (dir: string): Promise<void> => {
    await options.writeWeights(dir);
    await saveAndDispose(path.join(dir, OPTIMIZER_FILE), await trainer.optimizerState(), 'difftune-optimizer');
    if (options.ema) await saveAndDispose(path.join(dir, EMA_FILE), await trainer.emaWeights(), 'pt');
  };
  return writeCheckpoint(output, state, fill, options.keep);
}

/** The checkpoint's optimizer moments, fp16 loss scale (`lossScale`: fp16 runs) and EMA weights (`ema`) into `trainer`. */
export async function restoreTrainerState(
  dir: string,
  state: CheckpointState,
  trainer: CheckpointedTrainer,
  options: { ema: boolean; lossScale: boolean },
): Promise<void> {
  const optimizer = await loadStateDict(path.join(dir, OPTIMIZER_FILE));
  try {
    await trainer.loadOptimizerState(optimizer, state.optimizerSteps);
  } finally {
    disposeStateDict(optimizer);
  }
  // fp16 runs continue with the loss scale they had reached (the others keep 1).
  if (options.lossScale) await trainer.setLossScale(state.lossScale);
  if (!options.ema) return;
  const weights = await loadStateDict(path.join(dir, EMA_FILE));
  try {
    await trainer.loadEmaWeights(weights, state.emaUpdates);
  } finally {
    disposeStateDict(weights);
  }
}

async function saveAndDispose(file: string, tensors: StateDict, format: string): Promise<void> {
  try {
    await saveStateDict(file, tensors, { format });
  } finally {
    disposeStateDict(tensors);
  }
}
