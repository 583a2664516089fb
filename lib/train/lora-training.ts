/**
 * LoRA runs: adapters on the recipe's target layers train while the whole base stays frozen. A fresh
 * run adds them (seeded), a resumed one reads them back from its checkpoint (which holds only them); the
 * output is the adapters file (PEFT layout, and kohya's when asked) and, with lora.saveMerged, a U-Net
 * with them merged in.
 */
import * as path from 'path';
import { UNET_DIR } from '../checkpoint/train-state';
import type { LoraOptions } from '../config/lora';
import { planLoraBase, type FreezePlan, type ParameterInfo } from '../freeze/plan';
import { disposeLoraEntries, LORA_WEIGHTS, loraParameterNames, loraTargetModules, readLoraFile, saveLoraFile } from '../models/lora';
import type { UNet } from '../models/unet';
import { useEmaAdapters } from './ema';
import type { TrainedWeights } from './weights';

const KOHYA_WEIGHTS = 'lora.kohya.safetensors';

/** The base's plan (all frozen) with a note sizing the adapters and their optimizer state (`--dry-run`). */
export function planLoraRun(parameters: readonly ParameterInfo[], lora: LoraOptions, ema: boolean): FreezePlan {
  const plan = planLoraBase(parameters);
  const modules = new Set(
    loraTargetModules(
      parameters.map((p) => p.name),
      lora,
    ),
  );
  const numel = adapterParameterCount(parameters, modules, lora.rank);
  const states = ema ? 3 : 2; // AdamW's two moments, and the EMA's average
  const note = `LoRA rank ${lora.rank} (alpha ${lora.alpha ?? lora.rank}) on ${modules.size} layers: ${numel.toLocaleString('en-US')} adapter parameters, optimizer state ${((numel * 4 * states) / 2 ** 20).toFixed(2)} MiB`;
  return { ...plan, notes: [...plan.notes, note] };
}

/** A [out, in, (kh, kw)] weight's adapters: A is [rank, in, (kh, kw)], B is [out, rank]. */
function adapterParameterCount(parameters: readonly ParameterInfo[], modules: ReadonlySet<string>, rank: number): number {
  return adapterParameters(parameters, modules, rank).reduce((a, p) => a + p.numel, 0);
}

function adapterParameters(parameters: readonly ParameterInfo[], modules: ReadonlySet<string>, rank: number): Array<{ name: string; numel: number }> {
  const out: Array<{ name: string; numel: number }> = [];
  for (const p of parameters) {
    if (!p.name.endsWith('.weight') || !modules.has(p.name.slice(0, -'.weight'.length))) continue;
    const module = p.name.slice(0, -'.weight'.length);
    const [rows = 0, inp = 0, ...kernel] = p.shape;
    out.push(
      { name: `${module}.lora_A.weight`, numel: rank * inp * kernel.reduce((a, b) => a * b, 1) },
      { name: `${module}.lora_B.weight`, numel: rows * rank },
    );
  }
  return out;
}

/** The adapters `lora` would add to a model with `parameters`, named as the model names them once added. */
export function loraAdapterParameters(parameters: readonly ParameterInfo[], lora: LoraOptions): Array<{ name: string; numel: number }> {
  const modules = new Set(
    loraTargetModules(
      parameters.map((p) => p.name),
      lora,
    ),
  );
  return adapterParameters(parameters, modules, lora.rank);
}

/** Adds the adapters to `unet` (or reads a resumed run's back) and says how they are saved. */
export async function trainLora(
  unet: UNet,
  lora: LoraOptions,
  at: { resumedDir: string | undefined; seed: number },
  log: (line: string) => void,
): Promise<TrainedWeights> {
  const parameters = await unet.parameters();
  const plan = planLoraBase(parameters);
  const modules = loraTargetModules(
    parameters.map((p) => p.name),
    lora,
  );
  if (at.resumedDir === undefined) {
    await unet.addLora({ targets: modules, rank: lora.rank, alpha: lora.alpha ?? lora.rank, dropout: lora.dropout, init: lora.init, seed: at.seed });
  } else {
    const read = await readLoraFile(path.join(at.resumedDir, LORA_WEIGHTS), modules);
    try {
      await unet.setLora(read.entries, lora.dropout);
    } finally {
      disposeLoraEntries(read.entries);
    }
  }
  log(`LoRA rank ${lora.rank} on ${modules.length} layers; the base model (${plan.totals.numel} parameters) stays frozen`);
  return {
    plan,
    trainable: loraParameterNames(modules).map((name) => ({ name, lrMultiplier: 1, weightDecay: true })),
    savesUNet: lora.saveMerged,
    loraFiles: (output) => [path.join(output, LORA_WEIGHTS), ...(lora.format === 'kohya' ? [path.join(output, KOHYA_WEIGHTS)] : [])],
    // Unfolded: a resume must get the trained B back bit for bit, whatever alpha/rank is.
    saveCheckpoint: (dir) => saveAdapters(unet, path.join(dir, LORA_WEIGHTS), 'peft', lora, false),
    useEma: (averages) => useEmaAdapters(unet, averages, lora.dropout),
    export: async (output) => {
      await saveAdapters(unet, path.join(output, LORA_WEIGHTS), 'peft', lora);
      if (lora.format === 'kohya') await saveAdapters(unet, path.join(output, KOHYA_WEIGHTS), 'kohya', lora);
      if (!lora.saveMerged) return;
      await unet.mergeLora();
      await unet.save(path.join(output, UNET_DIR));
    },
  };
}

async function saveAdapters(unet: UNet, file: string, format: 'peft' | 'kohya', lora: LoraOptions, fold = true): Promise<void> {
  const entries = await unet.loraEntries();
  try {
    await saveLoraFile(file, entries, format, { rank: lora.rank, alpha: lora.alpha ?? lora.rank, dropout: lora.dropout, init: lora.init }, { fold });
  } finally {
    disposeLoraEntries(entries);
  }
}
