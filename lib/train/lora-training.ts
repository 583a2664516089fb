/**
 * LoRA runs: adapters on the recipe's target layers train while the whole base stays frozen. A fresh
 * run adds them (seeded), a resumed one reads them back from its checkpoint (which holds only them); the
 * output is the adapters file (PEFT layout, and kohya's when asked) and, with lora.saveMerged, a U-Net
 * with them merged in. With lora.textEncoder the text encoder gets adapters too: they train in the same
 * step (lib/train/trainer.ts, as `text_encoder.<name>`), at train.textEncoderLr, and are saved in the same
 * files (`text_encoder.` / `lora_te_` keys), merged into text_encoder/ with saveMerged.
 */
import * as path from 'path';
import type { StateDict } from '../checkpoint/state-dict';
import { TEXT_ENCODER_DIR, UNET_DIR } from '../checkpoint/train-state';
import type { LoraOptions, TextEncoderLoraOptions } from '../config/lora';
import { hashInts } from '../data/random';
import { ConfigError } from '../errors';
import { planLoraBase, type FreezePlan, type ParameterInfo } from '../freeze/plan';
import type { CLIPTextModel } from '../models/clip-text';
import { disposeLoraEntries, LORA_WEIGHTS, loraParameterNames, loraTargetModules, readLoraFile, saveLoraFile, type LoraEntry } from '../models/lora';
import type { UNet } from '../models/unet';
import { takeAverages, useEmaAdapters } from './ema';
import { TEXT_ENCODER_PREFIX } from './trainer';
import type { TrainedWeights } from './weights';

/** Seeds the text encoder adapters' initialisation apart from the U-Net's. */
const TEXT_ENCODER_SEED_STREAM = 0x7465;

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

/** The text encoder's layers `options.targets` names (q_proj, …, fc2) in every encoder layer, from its parameter names. */
export function textEncoderLoraModules(parameterNames: readonly string[], options: Pick<TextEncoderLoraOptions, 'targets'>): string[] {
  const wanted = new Set<string>(options.targets);
  const modules = parameterNames
    .filter((n) => n.endsWith('.weight'))
    .map((n) => n.slice(0, -'.weight'.length))
    .filter((m) => /^text_model\.encoder\.layers\.\d+\.(self_attn|mlp)\.[a-z_0-9]+$/.test(m) && wanted.has(m.slice(m.lastIndexOf('.') + 1)));
  if (modules.length === 0) throw new ConfigError(`lora.textEncoder.targets: ${options.targets.join(', ')} name no layer of this text encoder`);
  return modules;
}

/** A LoRA run's text encoder: the model its adapters go on, their options, and their learning-rate multiplier. */
export interface LoraTextEncoder {
  readonly model: CLIPTextModel;
  readonly options: TextEncoderLoraOptions;
  /** train.textEncoderLr ÷ train.lr (1 without an encoder learning rate of its own). */
  readonly lrMultiplier: number;
}

/** Adds the adapters to `unet` (and the text encoder; or reads a resumed run's back) and says how they are saved. */
export async function trainLora(
  unet: UNet,
  lora: LoraOptions,
  at: { resumedDir: string | undefined; seed: number; textEncoder?: LoraTextEncoder },
  log: (line: string) => void,
): Promise<TrainedWeights> {
  const parameters = await unet.parameters();
  const plan = planLoraBase(parameters);
  const modules = loraTargetModules(
    parameters.map((p) => p.name),
    lora,
  );
  const te = at.textEncoder;
  const teModules =
    te === undefined
      ? []
      : textEncoderLoraModules(
          (await te.model.parameters()).map((p) => p.name),
          te.options,
        );
  const teAlpha = te === undefined ? 0 : (te.options.alpha ?? te.options.rank);
  if (at.resumedDir === undefined) {
    await unet.addLora({ targets: modules, rank: lora.rank, alpha: lora.alpha ?? lora.rank, dropout: lora.dropout, init: lora.init, seed: at.seed });
    if (te !== undefined)
      await te.model.addLora({
        targets: teModules,
        rank: te.options.rank,
        alpha: teAlpha,
        dropout: lora.dropout,
        init: lora.init,
        seed: hashInts(at.seed, TEXT_ENCODER_SEED_STREAM),
      });
  } else {
    const read = await readLoraFile(path.join(at.resumedDir, LORA_WEIGHTS), modules, te === undefined ? undefined : teModules);
    try {
      await unet.setLora(read.entries, lora.dropout);
      if (te !== undefined) await te.model.setLora(read.textEncoder, lora.dropout);
    } finally {
      disposeLoraEntries(read.entries);
      disposeLoraEntries(read.textEncoder);
    }
  }
  log(
    `LoRA rank ${lora.rank} on ${modules.length} layers` +
      (te === undefined ? '' : `, the text encoder's rank ${te.options.rank} on ${teModules.length} layers (${te.options.targets.join(', ')})`) +
      `; the base model (${plan.totals.numel} parameters) stays frozen`,
  );
  const unetTrainable = loraParameterNames(modules).map((name) => ({ name, lrMultiplier: 1, weightDecay: true }));
  const teTrainable = loraParameterNames(teModules).map((name) => ({
    name: TEXT_ENCODER_PREFIX + name,
    lrMultiplier: te?.lrMultiplier ?? 1,
    weightDecay: true,
  }));
  const save = (file: string, format: 'peft' | 'kohya', fold = true) => saveAdapters(unet, te?.model, file, format, lora, fold);
  return {
    plan: te === undefined ? plan : { ...plan, notes: [...plan.notes, textEncoderNote(te, teModules.length)] },
    trainable: [...unetTrainable, ...teTrainable],
    savesUNet: lora.saveMerged,
    loraFiles: (output) => [path.join(output, LORA_WEIGHTS), ...(lora.format === 'kohya' ? [path.join(output, KOHYA_WEIGHTS)] : [])],
    // Unfolded: a resume must get the trained B back bit for bit, whatever alpha/rank is.
    saveCheckpoint: (dir) => save(path.join(dir, LORA_WEIGHTS), 'peft', false),
    useEma: async (averages) => {
      const teAverages = withoutPrefix(takeAverages(averages, teTrainable));
      await useEmaAdapters(unet, averages, lora.dropout);
      if (te !== undefined) await useEmaAdapters(te.model, teAverages, lora.dropout);
    },
    export: async (output) => {
      await save(path.join(output, LORA_WEIGHTS), 'peft');
      if (lora.format === 'kohya') await save(path.join(output, KOHYA_WEIGHTS), 'kohya');
      if (!lora.saveMerged) return [];
      await unet.mergeLora();
      await unet.save(path.join(output, UNET_DIR));
      if (te === undefined) return [UNET_DIR];
      await te.model.mergeLora();
      await te.model.save(path.join(output, TEXT_ENCODER_DIR));
      return [UNET_DIR, TEXT_ENCODER_DIR];
    },
  };
}

function textEncoderNote(te: LoraTextEncoder, layers: number): string {
  const lr = te.lrMultiplier === 1 ? '' : `, learning rate × ${te.lrMultiplier}`;
  return `text encoder: LoRA rank ${te.options.rank} (alpha ${te.options.alpha ?? te.options.rank}) on ${layers} layers (${te.options.targets.join(', ')})${lr}; saved with the U-Net's adapters`;
}

/** The averages with the trainer's text_encoder. prefix taken off (the encoder's own names). */
function withoutPrefix(averages: StateDict): StateDict {
  return new Map([...averages].map(([name, t]) => [name.startsWith(TEXT_ENCODER_PREFIX) ? name.slice(TEXT_ENCODER_PREFIX.length) : name, t]));
}

/** The U-Net's adapters (and the text encoder's) in one file. */
async function saveAdapters(
  unet: UNet,
  textEncoder: CLIPTextModel | undefined,
  file: string,
  format: 'peft' | 'kohya',
  lora: LoraOptions,
  fold = true,
): Promise<void> {
  const entries = await unet.loraEntries();
  let teEntries: LoraEntry[] = [];
  try {
    if (textEncoder !== undefined) teEntries = await textEncoder.loraEntries();
    await saveLoraFile(
      file,
      { unet: entries, textEncoder: teEntries },
      format,
      { rank: lora.rank, alpha: lora.alpha ?? lora.rank, dropout: lora.dropout, init: lora.init },
      { fold },
    );
  } finally {
    disposeLoraEntries(entries);
    disposeLoraEntries(teEntries);
  }
}
