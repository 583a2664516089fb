/**
 * LoRA: which layers get adapters, and the files users meet. Reads every layout diffusers v0.31 reads
 * for SD 1.x/2.x (PEFT, diffusers' training scripts, attention processors, kohya/A1111/LoCon; see
 * lora-layouts.ts), U-Net and text-encoder parts; writes PEFT/diffusers (`unet.<module>.lora_A.weight` /
 * `lora_B.weight`, `text_encoder.…`, the adapter config in the `lora_adapter_metadata` metadata entry,
 * diffusers' `pytorch_lora_weights.safetensors`) and kohya's (`lora_unet_<module with _>.lora_down.weight`
 * / `.lora_up.weight` / `.alpha`, `lora_te_…`).
 */
import { z } from 'zod';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../checkpoint/safetensors';
import { ConfigError } from '../errors';
import { compilePattern } from '../config/patterns';
import type { LoraOptions } from '../config/lora';
import { fromSafetensorsDtype, toSafetensorsDtype } from '../native/dtype';
import { scale } from '../native/ops';
import { Tensor } from '../native/tensor';
import { groupLoraKeys, kohyaLayerName, type LoraComponent, type LoraLayout, type LoraTargets } from './lora-layouts';

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

/** A model that takes adapters (UNet, CLIPTextModel). */
export interface LoraModel {
  parameters(): Promise<ReadonlyArray<{ name: string }>>;
  setLora(entries: readonly LoraEntry[]): Promise<void>;
  removeLora(): Promise<void>;
}

/** A LoRA file's adapters by component; the text encoder's only where the file has some. */
export interface LoraState {
  unet: readonly LoraEntry[];
  textEncoder?: readonly LoraEntry[];
}

/** Layer names a model's adapters may target: every `.weight` parameter's prefix. */
async function weightLayers(model: LoraModel): Promise<string[]> {
  return (await model.parameters()).filter((p) => p.name.endsWith('.weight')).map((p) => p.name.slice(0, -'.weight'.length));
}

/**
 * Reads a LoRA file (any layout readLoraFile reads) into a U-Net, or into a pipeline's U-Net and text
 * encoder (`{ unet, textEncoder }`, e.g. a loaded StableDiffusion); the read tensors are disposed
 * afterwards. Text-encoder weights with only a U-Net to load them into are an error. Nothing is
 * installed unless the whole file fits. Returns how many layers of each got adapters.
 */
export async function applyLoraFile(target: LoraModel | { unet: LoraModel; textEncoder: LoraModel }, file: string): Promise<{ unet: number; textEncoder: number }> {
  const unet = 'unet' in target ? target.unet : target;
  const textEncoder = 'unet' in target ? target.textEncoder : undefined;
  const read = await readLoraFile(file, await weightLayers(unet), textEncoder === undefined ? undefined : await weightLayers(textEncoder));
  try {
    // Each setLora is all or nothing; should the U-Net refuse its part (a shape that does not fit), the
    // text encoder's adapters go again, so a refused file leaves neither model half-adapted.
    if (textEncoder !== undefined && read.textEncoder.length > 0) await textEncoder.setLora(read.textEncoder);
    try {
      await unet.setLora(read.entries);
    } catch (error) {
      if (textEncoder !== undefined && read.textEncoder.length > 0) await textEncoder.removeLora();
      throw error;
    }
    return { unet: read.entries.length, textEncoder: read.textEncoder.length };
  } finally {
    disposeLoraEntries(read.entries);
    disposeLoraEntries(read.textEncoder);
  }
}

const ATTENTION = /(^|\.)(to_q|to_k|to_v|to_out\.0)$/;
const FEED_FORWARD = /(^|\.)ff\.net\.(0\.proj|2)$/;
const CONVOLUTIONS = /\.resnets\.\d+\.(conv1|conv2|conv_shortcut)$/;
const RESAMPLERS = /\.(downsamplers|upsamplers)\.\d+\.conv$/;

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
      (options.resamplers && RESAMPLERS.test(m)) ||
      extra.some((p) => p.test(m)),
  );
  if (chosen.length === 0) throw new ConfigError(`${where}: no layer selected (attention ${options.attention}, feedForward ${options.feedForward}, convolutions ${options.convolutions}, resamplers ${options.resamplers}, ${options.targets.length} patterns)`);
  return chosen;
}

/** Parameter names of the adapters, as the trainer and checkpoints know them. */
export function loraParameterNames(modules: readonly string[]): string[] {
  return modules.flatMap((m) => [`${m}.lora_A.weight`, `${m}.lora_B.weight`]);
}

async function tensorData(t: Tensor): Promise<TensorToWrite> {
  return { dtype: toSafetensorsDtype(t.dtype) as TensorToWrite['dtype'], shape: t.shape, data: await t.data({ raw: true }) };
}

/**
 * difftune's own record of a PEFT-layout file's adapters (metadata entry `difftune_lora`): the trained
 * rank and alpha, the layers whose alpha differs (text-encoder layers as `text_encoder.<module>`), and
 * whether each lora_B in the file holds B·(alpha/rank).
 */
const DIFFTUNE_LORA_KEY = 'difftune_lora';
const difftuneMetadata = z.object({ folded: z.boolean(), r: z.number(), lora_alpha: z.number(), alpha_pattern: z.record(z.number()).default({}) });

/** The factor folded into a PEFT file's lora_B: alpha/rank, so that any reader scaling by 1 gets the trained strength. */
function foldFactor(e: LoraEntry): number {
  return e.alpha / e.A.shape[0]!;
}

/** A layer's key in difftune's alpha_pattern: U-Net layers bare (as files before text-encoder parts), the encoder's prefixed. */
function patternKey(component: LoraComponent, module: string): string {
  return component === 'unet' ? module : `${component}.${module}`;
}

/** One component's PEFT LoraConfig: rank and alpha, with patterns for the layers that differ. */
function peftConfigOf(entries: readonly LoraEntry[], config: { rank: number; alpha: number; dropout: number; init: string }, fold: boolean): Record<string, unknown> {
  const r = entries.some((e) => e.A.shape[0] === config.rank) || entries.length === 0 ? config.rank : entries[0]!.A.shape[0]!;
  const rankPattern = Object.fromEntries(entries.filter((e) => e.A.shape[0] !== r).map((e) => [e.module, e.A.shape[0]!]));
  const alphaPattern = Object.fromEntries(entries.filter((e) => e.alpha !== config.alpha).map((e) => [e.module, e.alpha]));
  return {
    r,
    // Folded, every layer's alpha is its rank.
    lora_alpha: fold ? r : config.alpha,
    lora_dropout: config.dropout,
    init_lora_weights: config.init === 'gaussian' ? 'gaussian' : true,
    target_modules: entries.map((e) => e.module),
    alpha_pattern: fold ? rankPattern : alphaPattern,
    rank_pattern: rankPattern,
    use_dora: false,
    bias: 'none',
  };
}

/**
 * Writes the adapters in PEFT/diffusers or kohya layout, atomically: a U-Net's (`entries` as a list),
 * or a pipeline's (`{ unet, textEncoder }`: the encoder's as `text_encoder.<module>…` / `lora_te_…`).
 * The PEFT layout folds alpha/rank into lora_B and states alpha = rank wherever a reader looks
 * (diffusers ≤ 0.34 ignores `lora_adapter_metadata` and uses alpha = rank; later versions read it,
 * per component: "unet.r", "text_encoder.r", ...), so every version loads it at the trained strength;
 * the trained rank and alpha stay in `difftune_lora`, from which readLoraFile unfolds B (exactly when
 * alpha/rank is a power of two, else within an ulp or two). `fold: false` (a checkpoint's adapters,
 * which must resume bit for bit) writes B as trained and the real alphas.
 */
export async function saveLoraFile(
  file: string,
  entries: readonly LoraEntry[] | LoraState,
  format: 'peft' | 'kohya',
  config: { rank: number; alpha: number; dropout: number; init: string },
  { fold = true }: { fold?: boolean } = {},
): Promise<void> {
  const state: LoraState = isEntryList(entries) ? { unet: entries } : entries;
  const parts: Array<[LoraComponent, readonly LoraEntry[]]> = [['unet', state.unet]];
  if (state.textEncoder !== undefined && state.textEncoder.length > 0) parts.push(['text_encoder', state.textEncoder]);
  const tensors: Array<[string, TensorToWrite]> = [];
  for (const [component, list] of parts) {
    for (const e of list) {
      if (format === 'peft') {
        tensors.push([`${component}.${e.module}.lora_A.weight`, await tensorData(e.A)]);
        using folded = fold ? await scale(e.B, foldFactor(e)) : undefined;
        tensors.push([`${component}.${e.module}.lora_B.weight`, await tensorData(folded ?? e.B)]);
      } else {
        const base = kohyaLayerName(component, e.module);
        tensors.push([`${base}.lora_down.weight`, await tensorData(e.A)]);
        tensors.push([`${base}.lora_up.weight`, await tensorData(e.B)]);
        tensors.push([`${base}.alpha`, { dtype: 'F32', shape: [], data: new Float32Array([e.alpha]) }]);
      }
    }
  }
  const alphaPattern = Object.fromEntries(parts.flatMap(([component, list]) => list.filter((e) => e.alpha !== config.alpha).map((e) => [patternKey(component, e.module), e.alpha])));
  // diffusers writes a pipeline's adapter config with each component's prefix ("unet.r", "text_encoder.r", ...).
  const peftConfig = Object.fromEntries(parts.flatMap(([component, list]) => Object.entries(peftConfigOf(list, config, fold)).map(([k, v]) => [`${component}.${k}`, v])));
  const metadata: Record<string, string> =
    format === 'peft'
      ? {
          format: 'pt',
          lora_adapter_metadata: JSON.stringify(peftConfig),
          [DIFFTUNE_LORA_KEY]: JSON.stringify({ folded: fold, r: config.rank, lora_alpha: config.alpha, alpha_pattern: alphaPattern }),
        }
      : { format: 'pt', ss_network_module: 'networks.lora', ss_network_dim: String(config.rank), ss_network_alpha: String(config.alpha) };
  await writeSafetensors(file, tensors, metadata);
}

function isEntryList(entries: readonly LoraEntry[] | LoraState): entries is readonly LoraEntry[] {
  return Array.isArray(entries);
}

const peftMetadata = z.object({ r: z.number().optional(), lora_alpha: z.number().optional(), alpha_pattern: z.record(z.number()).optional() }).passthrough();

/**
 * A PEFT file's adapter config for one component: its keys with that component's prefix ("unet.",
 * "text_encoder."), or an unprefixed config (a single model's); undefined where absent or unreadable.
 */
function parsePeftMetadata(raw: string | undefined, component: LoraComponent): z.infer<typeof peftMetadata> | undefined {
  if (raw === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null) return undefined;
  const entries = Object.entries(json);
  const anyPrefix = entries.some(([k]) => /^(unet|text_encoder(_2)?)\./.test(k));
  const mine = anyPrefix ? entries.filter(([k]) => k.startsWith(`${component}.`)).map(([k, v]) => [k.slice(component.length + 1), v] as const) : entries;
  if (mine.length === 0) return undefined;
  const config = peftMetadata.safeParse(Object.fromEntries(mine));
  return config.success ? config.data : undefined;
}

function parseDifftuneMetadata(file: string, raw: string | undefined): z.infer<typeof difftuneMetadata> | undefined {
  if (raw === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    json = undefined;
  }
  const parsed = difftuneMetadata.safeParse(json);
  if (!parsed.success) throw new ConfigError(`${file}: metadata "${DIFFTUNE_LORA_KEY}" is not difftune's adapter record ({folded, r, lora_alpha, alpha_pattern}): ${raw.slice(0, 200)}`);
  return parsed.data;
}

// The layout a file is reported as: kohya's, else the oldest diffusers spelling it uses.
const LAYOUT_ORDER: readonly LoraLayout[] = ['kohya', 'attn-procs', 'diffusers', 'peft'];

/**
 * Reads a LoRA file in any layout diffusers reads for SD 1.x/2.x (lora-layouts.ts): the U-Net's
 * adapters (`entries`) and the text encoder's (`textEncoder`; only when `textEncoderModules` is given,
 * else text-encoder weights in the file are an error). `modules` / `textEncoderModules` (the models'
 * layer names) resolve kohya's underscore names and check every layer exists. Alpha: kohya's `.alpha`
 * tensors (absent or 0: alpha = rank, as kohya and A1111); PEFT/diffusers files: difftune's record,
 * else the file's PEFT config (`lora_adapter_metadata`), else alpha = rank (scale 1, as diffusers v0.31).
 * Every tensor of the file is used or the file is refused, naming the ones it could not place.
 */
export async function readLoraFile(
  file: string,
  modules: readonly string[],
  textEncoderModules?: readonly string[],
): Promise<{ format: LoraLayout; entries: LoraEntry[]; textEncoder: LoraEntry[] }> {
  const st = await SafetensorsFile.open(file);
  const read: Record<LoraComponent, LoraEntry[]> = { unet: [], text_encoder: [] };
  try {
    const targets: LoraTargets = textEncoderModules === undefined ? { unet: modules } : { unet: modules, textEncoder: textEncoderModules };
    const groups = groupLoraKeys(st.names(), targets, file);
    if (groups.length === 0) throw new ConfigError(`${file}: no LoRA weights found (expected *.lora_A.weight / *.lora_B.weight, *.lora.down/up.weight or kohya's lora_unet_*.lora_down.weight)`);
    const load = async (name: string): Promise<Tensor> => {
      const info = st.info(name);
      const dtype = fromSafetensorsDtype(info.dtype);
      if (dtype === undefined || dtype === 'bool' || (!dtype.startsWith('float') && dtype !== 'bfloat16')) throw new ConfigError(`${file}: tensor "${name}" has dtype ${info.dtype}; LoRA weights are floating point`);
      return await Tensor.fromAsync(await st.readBytes(name), info.shape, { dtype });
    };
    const difftune = parseDifftuneMetadata(file, st.metadata?.[DIFFTUNE_LORA_KEY]);
    const peft = { unet: parsePeftMetadata(st.metadata?.lora_adapter_metadata, 'unet'), text_encoder: parsePeftMetadata(st.metadata?.lora_adapter_metadata, 'text_encoder') };
    for (const g of groups) {
      const A = await load(g.down);
      let B: Tensor;
      try {
        B = await load(g.up);
      } catch (error) {
        A.dispose();
        throw error;
      }
      const rank = A.shape[0]!;
      let alpha = rank;
      if (g.layout === 'kohya') {
        if (g.alpha !== undefined) {
          using a = await load(g.alpha);
          using f = await a.to('cpu', 'float32');
          const value = Number(f.toArray()[0]);
          if (value !== 0) alpha = value;
        }
      } else if (difftune !== undefined) {
        alpha = difftune.alpha_pattern[patternKey(g.component, g.module)] ?? difftune.lora_alpha;
      } else {
        const config = peft[g.component];
        alpha = config?.alpha_pattern?.[g.module] ?? config?.lora_alpha ?? rank;
      }
      if (g.layout !== 'kohya' && difftune?.folded === true) {
        using folded = B;
        // Exact where alpha/rank is a power of two; otherwise within an ulp or two of the trained B.
        B = await scale(folded, rank / alpha);
      }
      read[g.component].push({ module: g.module, A, B, alpha });
    }
    const layouts = new Set(groups.map((g) => g.layout));
    return { format: LAYOUT_ORDER.find((l) => layouts.has(l))!, entries: read.unet, textEncoder: read.text_encoder };
  } catch (error) {
    disposeLoraEntries(read.unet);
    disposeLoraEntries(read.text_encoder);
    throw error;
  } finally {
    await st.close();
  }
}
