/**
 * LoRA: which layers get adapters, and the two file formats users meet — PEFT/diffusers
 * (`unet.<module>.lora_A.weight` / `lora_B.weight`, the adapter config in the `lora_adapter_metadata`
 * metadata entry, diffusers' `pytorch_lora_weights.safetensors`) and kohya's
 * (`lora_unet_<module with _>.lora_down.weight` / `.lora_up.weight` / `.alpha`).
 */
import { z } from 'zod';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../checkpoint/safetensors';
import { ConfigError } from '../errors';
import { compilePattern } from '../config/patterns';
import type { LoraOptions } from '../config/lora';
import { fromSafetensorsDtype, toSafetensorsDtype } from '../native/dtype';
import { Tensor } from '../native/tensor';

export const LORA_WEIGHTS = 'pytorch_lora_weights.safetensors';

export { loraOptionsSchema, type LoraOptions } from '../config/lora';

export interface LoraEntry {
  module: string;
  A: Tensor;
  B: Tensor;
  alpha: number;
}

/** Disposes the adapters' A and B tensors. */
export function disposeLoraEntries(entries: readonly LoraEntry[]): void {
  for (const e of entries) {
    e.A.dispose();
    e.B.dispose();
  }
}

/**
 * Reads a LoRA file (either layout) into `unet`, every `.weight` parameter's layer a candidate; the read
 * tensors are disposed afterwards.
 */
export async function applyLoraFile(
  unet: { parameters(): Promise<ReadonlyArray<{ name: string }>>; setLora(entries: readonly LoraEntry[]): Promise<void> },
  file: string,
): Promise<void> {
  const modules = (await unet.parameters()).filter((p) => p.name.endsWith('.weight')).map((p) => p.name.slice(0, -'.weight'.length));
  const { entries } = await readLoraFile(file, modules);
  try {
    await unet.setLora(entries);
  } finally {
    disposeLoraEntries(entries);
  }
}

const ATTENTION = /(^|\.)(to_q|to_k|to_v|to_out\.0)$/;
const FEED_FORWARD = /(^|\.)ff\.net\.(0\.proj|2)$/;
const CONVOLUTIONS = /\.resnets\.\d+\.(conv1|conv2|conv_shortcut)$/;

/** The layers that get adapters, from the model's parameter names. An empty selection is an error. */
export function loraTargetModules(parameterNames: readonly string[], options: LoraOptions, where = 'lora'): string[] {
  const modules = [...new Set(parameterNames.filter((n) => n.endsWith('.weight')).map((n) => n.slice(0, -'.weight'.length)))];
  const extra = options.targets.map((p, i) => compilePattern(p, `${where}.targets[${i}]`));
  for (const pattern of extra) {
    if (!modules.some((m) => pattern.test(m))) throw new ConfigError(`${pattern.where}: "${pattern.source}" matches no layer of this model`);
  }
  const chosen = modules.filter(
    (m) =>
      (options.attention && ATTENTION.test(m)) ||
      (options.feedForward && FEED_FORWARD.test(m)) ||
      (options.convolutions && CONVOLUTIONS.test(m)) ||
      extra.some((p) => p.test(m)),
  );
  if (chosen.length === 0) throw new ConfigError(`${where}: no layer selected (attention ${options.attention}, feedForward ${options.feedForward}, convolutions ${options.convolutions}, ${options.targets.length} patterns)`);
  return chosen;
}

/** Parameter names of the adapters, as the trainer and checkpoints know them. */
export function loraParameterNames(modules: readonly string[]): string[] {
  return modules.flatMap((m) => [`${m}.lora_A.weight`, `${m}.lora_B.weight`]);
}

async function tensorData(t: Tensor): Promise<TensorToWrite> {
  return { dtype: toSafetensorsDtype(t.dtype) as TensorToWrite['dtype'], shape: t.shape, data: await t.data({ raw: true }) };
}

function kohyaName(module: string): string {
  return `lora_unet_${module.replace(/\./g, '_')}`;
}

/** Writes the adapters in PEFT/diffusers or kohya layout, atomically. */
export async function saveLoraFile(file: string, entries: readonly LoraEntry[], format: 'peft' | 'kohya', config: { rank: number; alpha: number; dropout: number; init: string }): Promise<void> {
  const tensors: Array<[string, TensorToWrite]> = [];
  for (const e of entries) {
    if (format === 'peft') {
      tensors.push([`unet.${e.module}.lora_A.weight`, await tensorData(e.A)]);
      tensors.push([`unet.${e.module}.lora_B.weight`, await tensorData(e.B)]);
    } else {
      const base = kohyaName(e.module);
      tensors.push([`${base}.lora_down.weight`, await tensorData(e.A)]);
      tensors.push([`${base}.lora_up.weight`, await tensorData(e.B)]);
      tensors.push([`${base}.alpha`, { dtype: 'F32', shape: [], data: new Float32Array([e.alpha]) }]);
    }
  }
  const alphas = new Set(entries.map((e) => e.alpha));
  const ranks = new Set(entries.map((e) => e.A.shape[0]));
  const metadata: Record<string, string> =
    format === 'peft'
      ? {
          format: 'pt',
          lora_adapter_metadata: JSON.stringify({
            r: config.rank,
            lora_alpha: config.alpha,
            lora_dropout: config.dropout,
            init_lora_weights: config.init === 'gaussian' ? 'gaussian' : true,
            target_modules: entries.map((e) => e.module),
            // Per-layer values where they differ from the defaults (PEFT's patterns).
            alpha_pattern: alphas.size > 1 ? Object.fromEntries(entries.map((e) => [e.module, e.alpha])) : {},
            rank_pattern: ranks.size > 1 ? Object.fromEntries(entries.map((e) => [e.module, e.A.shape[0]])) : {},
            use_dora: false,
            bias: 'none',
          }),
        }
      : { format: 'pt', ss_network_module: 'networks.lora', ss_network_dim: String(config.rank), ss_network_alpha: String(config.alpha) };
  await writeSafetensors(file, tensors, metadata);
}

const peftMetadata = z.object({ r: z.number().optional(), lora_alpha: z.number().optional(), alpha_pattern: z.record(z.number()).optional() }).passthrough();

/**
 * Reads a LoRA file in either layout. `modules` (the model's layer names) resolves kohya's
 * underscore names back to dotted ones.
 */
export async function readLoraFile(file: string, modules: readonly string[]): Promise<{ format: 'peft' | 'kohya'; entries: LoraEntry[] }> {
  const st = await SafetensorsFile.open(file);
  const entries: LoraEntry[] = [];
  try {
    const names = st.names();
    const kohya = names.some((n) => n.endsWith('.lora_down.weight'));
    const load = async (name: string): Promise<Tensor> => {
      const info = st.info(name);
      const dtype = fromSafetensorsDtype(info.dtype);
      if (dtype === undefined || dtype === 'bool' || !dtype.startsWith('float') && dtype !== 'bfloat16') throw new ConfigError(`${file}: tensor "${name}" has dtype ${info.dtype}; LoRA weights are floating point`);
      return (await Tensor.fromAsync(await st.readBytes(name), info.shape, { dtype }));
    };
    if (kohya) {
      const byUnderscore = new Map(modules.map((m) => [kohyaName(m), m]));
      for (const name of names.filter((n) => n.endsWith('.lora_down.weight'))) {
        const base = name.slice(0, -'.lora_down.weight'.length);
        if (!base.startsWith('lora_unet_')) continue; // text-encoder adapters (lora_te_...) belong to another model
        const module = byUnderscore.get(base);
        if (module === undefined) throw new ConfigError(`${file}: "${base}" names no layer of this U-Net`);
        const up = `${base}.lora_up.weight`;
        if (!st.has(up)) throw new ConfigError(`${file}: "${name}" has no matching "${up}"`);
        const A = await load(name);
        const B = await load(up);
        let alpha = A.shape[0]!;
        if (st.has(`${base}.alpha`)) {
          using a = await load(`${base}.alpha`);
          alpha = Number((await a.to('cpu', 'float32')).toArray()[0]);
        }
        entries.push({ module, A, B, alpha });
      }
    } else {
      const meta = st.metadata?.lora_adapter_metadata;
      const config = meta ? peftMetadata.safeParse(JSON.parse(meta) as unknown) : undefined;
      const defaults = config?.success ? config.data : {};
      for (const name of names.filter((n) => n.endsWith('.lora_A.weight'))) {
        const module = name.slice(0, -'.lora_A.weight'.length).replace(/^unet\./, '');
        if (name.startsWith('text_encoder')) continue;
        const bName = name.replace(/\.lora_A\.weight$/, '.lora_B.weight');
        if (!st.has(bName)) throw new ConfigError(`${file}: "${name}" has no matching "${bName}"`);
        const A = await load(name);
        const B = await load(bName);
        const alpha = defaults.alpha_pattern?.[module] ?? defaults.lora_alpha ?? A.shape[0]!;
        entries.push({ module, A, B, alpha });
      }
    }
    if (entries.length === 0) throw new ConfigError(`${file}: no U-Net LoRA weights found (expected *.lora_A.weight / *.lora_B.weight or kohya's lora_unet_*.lora_down.weight)`);
    return { format: kohya ? 'kohya' : 'peft', entries };
  } catch (error) {
    disposeLoraEntries(entries);
    throw error;
  } finally {
    await st.close();
  }
}
