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
import { scale } from '../native/ops';
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

/**
 * difftune's own record of a PEFT-layout file's adapters (metadata entry `difftune_lora`): the trained
 * rank and alpha, and whether each lora_B in the file holds B·(alpha/rank).
 */
const DIFFTUNE_LORA_KEY = 'difftune_lora';
const difftuneMetadata = z.object({ folded: z.boolean(), r: z.number(), lora_alpha: z.number(), alpha_pattern: z.record(z.number()).default({}) });

/** The factor folded into a PEFT file's lora_B: alpha/rank, so that any reader scaling by 1 gets the trained strength. */
function foldFactor(e: LoraEntry): number {
  return e.alpha / e.A.shape[0]!;
}

/**
 * Writes the adapters in PEFT/diffusers or kohya layout, atomically. The PEFT layout folds alpha/rank
 * into lora_B and states alpha = rank wherever a reader looks (diffusers ≤ 0.34 ignores
 * `lora_adapter_metadata` and uses alpha = rank; later versions read it), so every version loads it at
 * the trained strength; the trained rank and alpha stay in `difftune_lora`, from which readLoraFile
 * unfolds B (exactly when alpha/rank is a power of two, else within an ulp or two). `fold: false` (a
 * checkpoint's adapters, which must resume bit for bit) writes B as trained and the real alphas.
 */
export async function saveLoraFile(file: string, entries: readonly LoraEntry[], format: 'peft' | 'kohya', config: { rank: number; alpha: number; dropout: number; init: string },
  { fold = true }: { fold?: boolean } = {},
): Promise<void> {
  const tensors: Array<[string, TensorToWrite]> = [];
  for (const e of entries) {
    if (format === 'peft') {
      tensors.push([`unet.${e.module}.lora_A.weight`, await tensorData(e.A)]);
      using folded = fold ? await scale(e.B, foldFactor(e)) : undefined;
      tensors.push([`unet.${e.module}.lora_B.weight`, await tensorData(folded ?? e.B)]);
    } else {
      const base = kohyaName(e.module);
      tensors.push([`${base}.lora_down.weight`, await tensorData(e.A)]);
      tensors.push([`${base}.lora_up.weight`, await tensorData(e.B)]);
      tensors.push([`${base}.alpha`, { dtype: 'F32', shape: [], data: new Float32Array([e.alpha]) }]);
    }
  }
  const alphas = new Set(entries.map((e) => e.alpha));
  const ranks = new Set(entries.map((e) => e.A.shape[0]));
  const rankPattern = ranks.size > 1 ? Object.fromEntries(entries.map((e) => [e.module, e.A.shape[0]!])) : {};
  // Per-layer values where they differ from the defaults (PEFT's patterns).
  const alphaPattern = alphas.size > 1 ? Object.fromEntries(entries.map((e) => [e.module, e.alpha])) : {};
  // diffusers writes a pipeline's adapter config with the component's prefix ("unet.r", ...).
  const peftConfig = {
    r: config.rank,
    lora_alpha: fold ? config.rank : config.alpha,
    lora_dropout: config.dropout,
    init_lora_weights: config.init === 'gaussian' ? 'gaussian' : true,
    target_modules: entries.map((e) => e.module),
    // Folded, every layer's alpha is its rank.
    alpha_pattern: fold ? rankPattern : alphaPattern,
    rank_pattern: rankPattern,
    use_dora: false,
    bias: 'none',
  };
  const metadata: Record<string, string> =
    format === 'peft'
      ? {
          format: 'pt',
          lora_adapter_metadata: JSON.stringify(Object.fromEntries(Object.entries(peftConfig).map(([k, v]) => [`unet.${k}`, v]))),
          [DIFFTUNE_LORA_KEY]: JSON.stringify({
            folded: fold,
            r: config.rank,
            lora_alpha: config.alpha,
            alpha_pattern: alphaPattern,
          }),
        }
      : { format: 'pt', ss_network_module: 'networks.lora', ss_network_dim: String(config.rank), ss_network_alpha: String(config.alpha) };
  await writeSafetensors(file, tensors, metadata);
}

const peftMetadata = z.object({ r: z.number().optional(), lora_alpha: z.number().optional(), alpha_pattern: z.record(z.number()).optional() }).passthrough();

/** A PEFT file's adapter config, its keys with or without diffusers' "unet." prefix; undefined where absent or unreadable. */
function parsePeftMetadata(raw: string | undefined): z.infer<typeof peftMetadata> | undefined {
  if (raw === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null) return undefined;
  const entries = Object.entries(json);
  const prefixed = entries.filter(([k]) => k.startsWith('unet.'));
  const config = peftMetadata.safeParse(Object.fromEntries(prefixed.length > 0 ? prefixed.map(([k, v]) => [k.slice('unet.'.length), v]) : entries));
  return config.success ? config.data : undefined;
}

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
      const ours = st.metadata?.[DIFFTUNE_LORA_KEY];
      let difftune: z.infer<typeof difftuneMetadata> | undefined;
      if (ours !== undefined) {
        let json: unknown;
        try {
          json = JSON.parse(ours);
        } catch {
          json = undefined;
        }
        const parsed = difftuneMetadata.safeParse(json);
        if (!parsed.success) throw new ConfigError(`${file}: metadata "${DIFFTUNE_LORA_KEY}" is not difftune's adapter record ({folded, r, lora_alpha, alpha_pattern}): ${ours.slice(0, 200)}`);
        difftune = parsed.data;
      }
      // Without difftune's record: the file's PEFT config, else alpha = rank (scale 1), as diffusers reads it.
      const defaults = difftune ?? parsePeftMetadata(st.metadata?.lora_adapter_metadata) ?? {};
      for (const name of names.filter((n) => n.endsWith('.lora_A.weight'))) {
        const module = name.slice(0, -'.lora_A.weight'.length).replace(/^unet\./, '');
        if (name.startsWith('text_encoder')) continue;
        const bName = name.replace(/\.lora_A\.weight$/, '.lora_B.weight');
        if (!st.has(bName)) throw new ConfigError(`${file}: "${name}" has no matching "${bName}"`);
        const A = await load(name);
        const alpha = defaults.alpha_pattern?.[module] ?? defaults.lora_alpha ?? A.shape[0]!;
        let B = await load(bName);
        if (difftune?.folded === true) {
          using folded = B;
          // Exact where alpha/rank is a power of two; otherwise within an ulp or two of the trained B.
          B = await scale(folded, A.shape[0]! / alpha);
        }
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
