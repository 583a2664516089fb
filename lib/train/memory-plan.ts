/**
 * The memory a fine-tuning run expects, before it runs (what `--dry-run` prints): the process itself,
 * the weights (U-Net, LoRA adapters, a pipeline's frozen VAE and text encoder), gradients, optimizer
 * state and the training step's activations, modelled from the architecture (lib/config/unet-activations.ts)
 * — and the peak resident memory a run reaches, to compare with it. Pure, except peakRssBytes.
 */
import { elementsBelow, unetActivations, type BlockActivations, type TensorCount, type UNetActivations } from '../config/unet-activations';
import { vaeDecodeElements } from '../config/model-size';
import type { UNetConfig } from '../config/unet';
import type { AutoencoderKLConfig } from '../config/vae';

/**
 * Node.js, the addon and libtorch loaded, OpenBLAS's per-thread buffers touched: the resident size of a
 * training process before its models and activations (measured: 210–220 MB on the 2-core machine).
 */
export const RUNTIME_BYTES = 220e6;

/**
 * libtorch's CPU blocks of LARGE_TENSOR_BYTES or more come from the addon's cache (native/tensor/cpu_allocator.cc),
 * which keeps freed blocks for reuse within the live high-water mark plus CACHE_SLACK (at least
 * CACHE_SLACK_MIN_BYTES); smaller ones come from glibc's heaps (mmap threshold fixed at 1 MiB), where
 * they stay, and the resident size of a step runs ahead of the live tensors by about ALLOCATOR_SLACK ×
 * the activations held in those small tensors. Fitted on the step measurements in the README's
 * memory-plan section (sd15-unet-small at 32²–64², batch 1–2, ddpm-cifar10 at batch 8, the SD 1.5 U-Net
 * at 64²). A user's own MALLOC_* settings (glibc's default: a threshold that rises to 32 MiB) or
 * DIFFTUNE_CPU_CACHE=0 can make a run's peak 30% higher than planned.
 */
export const LARGE_TENSOR_BYTES = 2 ** 18;
export const CACHE_SLACK = 1 / 16;
export const CACHE_SLACK_MIN_BYTES = 2 ** 27;
export const ALLOCATOR_SLACK = { plain: 0.5, checkpointed: 0.25 } as const;

export interface TrainingMemoryInput {
  unetConfig: UNetConfig;
  /** Every U-Net parameter (name, element count), LoRA adapters included when the run adds them. */
  parameters: ReadonlyArray<{ name: string; numel: number }>;
  /** Names of the parameters that train. */
  trainable: ReadonlySet<string>;
  /** Elements of the adapters' parameters among `parameters` (0 without LoRA). */
  loraNumel: number;
  /** A text-to-image run's frozen models (element counts), and the VAE that encodes images when latents are not cached. */
  frozen?: { vaeNumel: number; textEncoderNumel: number; vaeConfig: AutoencoderKLConfig; encodesImages: boolean };
  batch: number;
  /** The U-Net's input height and width (latents for a text-to-image run) and the image's (pixels). */
  height: number;
  width: number;
  imageHeight: number;
  imageWidth: number;
  textTokens: number;
  gradientCheckpointing: boolean;
  /** bf16 autocast keeps most activations in 2 bytes. */
  mixedPrecision: 'no' | 'bf16' | 'fp16';
  ema: boolean;
  gradientAccumulation: number;
}

export interface MemoryLine {
  label: string;
  bytes: number;
  detail: string;
}

export interface TrainingMemoryPlan {
  /** Runtime, weights, gradients, optimizer state, activations: what `total` adds up. */
  lines: MemoryLine[];
  /** The step's peak (activations, allocator slack, gradients) without and with gradient checkpointing, bytes. */
  activations: { plain: number; checkpointed: number; used: 'plain' | 'checkpointed' };
  /** Expected peak resident memory of the process. */
  total: number;
}

/** Which block of the U-Net a parameter belongs to, in forward order (stem first, conv_out last). */
function blockOf(name: string): string {
  const m = /^(down_blocks\.\d+|up_blocks\.\d+|mid_block)\./.exec(name);
  if (m) return m[1]!;
  return /^(conv_norm_out|conv_out)\./.test(name) ? 'conv_out' : 'stem';
}

/**
 * The step's peak: backward runs the blocks in reverse, freeing each block's activations and
 * allocating its parameters' gradients; so when block k's backward runs, the activations of k and the
 * blocks before it are alive (with checkpointing: every layer's inputs and k's largest recomputed layer)
 * together with the gradients of k and the blocks after it. One op's backward adds about twice its largest tensor.
 */
export function stepPeak(
  acts: UNetActivations,
  gradients: ReadonlyMap<string, number>,
  heldGradients: number,
  checkpointing: boolean,
  batch: number,
  bytesPerElement: number,
): number {
  const order: BlockActivations[] = [{ name: 'stem', tensors: [], elements: 0, largest: 0, recomputed: [] }, ...acts.blocks];
  const scale = batch * bytesPerElement;
  const largeTensor = LARGE_TENSOR_BYTES / scale;
  let peak = 0;
  for (let k = 0; k < order.length; k++) {
    const alive: TensorCount[] = checkpointing ? [...acts.boundaryTensors, ...order[k]!.recomputed] : order.slice(0, k + 1).flatMap((b) => b.tensors);
    const held = alive.reduce((a, [size, count]) => a + size * count, 0);
    const slack = ALLOCATOR_SLACK[checkpointing ? 'checkpointed' : 'plain'] * elementsBelow(alive, largeTensor);
    const grads = order.slice(k).reduce((a, b) => a + (gradients.get(b.name) ?? 0), 0);
    peak = Math.max(peak, (held + slack + 2 * order[k]!.largest) * scale + grads + heldGradients);
  }
  return peak;
}

export function planTrainingMemory(input: TrainingMemoryInput): TrainingMemoryPlan {
  const f32 = 4;
  const activationBytes = input.mixedPrecision === 'no' ? 4 : 2;
  const unetNumel = input.parameters.reduce((a, p) => a + p.numel, 0) - input.loraNumel;
  const trainableNumel = input.parameters.filter((p) => input.trainable.has(p.name)).reduce((a, p) => a + p.numel, 0);
  const gradients = new Map<string, number>();
  for (const p of input.parameters) if (input.trainable.has(p.name)) gradients.set(blockOf(p.name), (gradients.get(blockOf(p.name)) ?? 0) + f32 * p.numel);

  const acts = unetActivations(input.unetConfig, { height: input.height, width: input.width, textTokens: input.textTokens });
  // Gradients of earlier micro-batches stay while the next one runs: the step peak counts them whole.
  const accumulating = input.gradientAccumulation > 1;
  const peakOf = (checkpointing: boolean): number =>
    stepPeak(acts, accumulating ? new Map() : gradients, accumulating ? f32 * trainableNumel : 0, checkpointing, input.batch, activationBytes);
  const plain = peakOf(false);
  const checkpointed = peakOf(true);
  const step = input.gradientCheckpointing ? checkpointed : plain;

  const lines: MemoryLine[] = [{ label: 'runtime', bytes: RUNTIME_BYTES, detail: 'Node.js, libtorch, BLAS buffers' }];
  lines.push({ label: 'U-Net weights', bytes: f32 * unetNumel, detail: `${count(unetNumel)} parameters, fp32` });
  if (input.loraNumel > 0) lines.push({ label: 'LoRA weights', bytes: f32 * input.loraNumel, detail: `${count(input.loraNumel)} parameters, fp32` });
  let encode = 0;
  if (input.frozen) {
    const fz = input.frozen;
    lines.push({
      label: 'frozen VAE + text encoder',
      bytes: f32 * (fz.vaeNumel + fz.textEncoderNumel),
      detail: `${count(fz.vaeNumel)} + ${count(fz.textEncoderNumel)} parameters, fp32`,
    });
    // Encoding a batch (no autograd) before the step: about a decode's activations at the same size.
    if (fz.encodesImages) {
      const f = 2 ** (fz.vaeConfig.block_out_channels.length - 1);
      encode = f32 * vaeDecodeElements(fz.vaeConfig, [Math.ceil(input.imageHeight / f), Math.ceil(input.imageWidth / f)], input.batch);
    }
  }
  const moments = 2 * f32 * trainableNumel;
  const ema = input.ema ? f32 * trainableNumel : 0;
  lines.push({
    label: 'optimizer state',
    bytes: moments + ema,
    detail: `AdamW's 2 moments${input.ema ? ' + an EMA copy' : ''} of ${count(trainableNumel)} trainable parameters, fp32`,
  });
  const gradientBytes = f32 * trainableNumel;
  lines.push({
    label: 'step: activations + gradients',
    bytes: Math.max(step, encode),
    detail:
      `batch ${input.batch} at ${input.height}×${input.width}${input.frozen ? ' latents' : ''}, ${activationBytes === 2 ? 'bf16' : 'fp32'} activations and gradients: ` +
      `${formatBytes(plain)} without gradient checkpointing, ${formatBytes(checkpointed)} with it (${input.gradientCheckpointing ? 'on' : 'off'}); ` +
      `the gradients (${formatBytes(gradientBytes)}) arrive as backward frees activations` +
      (encode > step ? `; the VAE's encoding of a batch (${formatBytes(encode)}) is the larger` : ''),
  });
  const live = lines.reduce((a, l) => a + l.bytes, 0) - RUNTIME_BYTES;
  lines.push({
    label: 'allocator cache',
    // A small run's cache cannot keep more than it ever freed, about its live size.
    bytes: Math.min(live, Math.max(CACHE_SLACK_MIN_BYTES, CACHE_SLACK * live)),
    detail: `freed blocks kept for reuse beyond the live ones: 1/16 of them, ${formatBytes(CACHE_SLACK_MIN_BYTES)} at least`,
  });
  const total = lines.reduce((a, l) => a + l.bytes, 0);
  return { lines, activations: { plain, checkpointed, used: input.gradientCheckpointing ? 'checkpointed' : 'plain' }, total };
}

/** The plan as `--dry-run` prints it. */
export function formatMemoryPlan(plan: TrainingMemoryPlan): string {
  const width = Math.max(...plan.lines.map((l) => l.label.length));
  return [
    `Memory plan: about ${formatBytes(plan.total)} at the peak (the run reports its peak RSS in metrics.jsonl and at the end)`,
    ...plan.lines.map((l) => `  ${l.label.padEnd(width)}  ${formatBytes(l.bytes).padStart(9)}  ${l.detail}`),
  ].join('\n');
}

/** The process's peak resident memory so far (getrusage's ru_maxrss; Linux's VmHWM). */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

export function formatBytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(0)} MB`;
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}
