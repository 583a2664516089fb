/**
 * What trains of a text-to-image run's text encoder, besides LoRA adapters (lib/train/lora-training.ts
 * keeps those with the U-Net's, in the same files): its own weights (freeze.textEncoder "full" or
 * patterns, diffusers' --train_text_encoder) or textual inversion's new tokens (textual-inversion.ts).
 * Either way the encoder runs inside the trainer's step as its conditioning model on the captions' token
 * ids, its parameters in the same optimizer as `text_encoder.<name>` at their own learning rate, and the
 * text-embedding cache is off. Its weights go into each checkpoint (text_encoder/) and the output pipeline.
 */
import * as path from 'path';
import { disposeStateDict, loadStateDict } from '../checkpoint/state-dict';
import { TEXT_ENCODER_DIR } from '../checkpoint/train-state';
import { parseFreezeOptions } from '../config/freeze';
import { compilePattern } from '../config/patterns';
import type { Recipe } from '../config/recipe';
import { ConfigError } from '../errors';
import { defaultWeightDecay } from '../freeze/param-kinds';
import { TEXT_ENCODER_WEIGHTS, type CLIPTextModel } from '../models/clip-text';
import { useEmaEncoderWeights } from './ema';
import type { TextToImage } from './text-to-image';
import { openTextualInversion } from './textual-inversion';
import { TEXT_ENCODER_PREFIX, type TrainableParameter } from './trainer';
import type { LoraTextEncoder } from './lora-training';
import type { TextEncoderPart } from './weights';

/** train.textEncoderLr as a multiplier of train.lr (the LR schedule scales both). */
export function textEncoderLrMultiplier(recipe: Recipe, lr: number | null = recipe.train.textEncoderLr): number {
  return lr === null ? 1 : lr / recipe.train.lr;
}

function pipelineTextEncoder(text: TextToImage | undefined, what: string): TextToImage {
  if (text === undefined)
    throw new ConfigError(
      `${what}: trains a text-to-image pipeline's text encoder; model.pretrained must be a Stable Diffusion pipeline folder (text_encoder/, tokenizer/)`,
    );
  return text;
}

/** lora.textEncoder's adapters for trainLora, the captions switched to token ids; undefined without it. */
export function loraTextEncoder(text: TextToImage | undefined, recipe: Recipe): LoraTextEncoder | undefined {
  const options = recipe.lora?.textEncoder ?? null;
  if (options === null) return undefined;
  const t = pipelineTextEncoder(text, 'lora.textEncoder');
  t.trainTextEncoder();
  return { model: t.pipelineParts.textEncoder, options, lrMultiplier: textEncoderLrMultiplier(recipe) };
}

/**
 * The encoder's own weights (freeze.textEncoder) or textual inversion's tokens, ready to train (a resumed
 * run's weights read back from its checkpoint); undefined when neither is asked for.
 */
export async function openTextEncoderTraining(
  text: TextToImage | undefined,
  recipe: Recipe,
  at: { resumedDir: string | undefined; seed: number },
  log: (line: string) => void,
): Promise<TextEncoderPart | undefined> {
  const spec = parseFreezeOptions(recipe.freeze).textEncoder;
  if (recipe.textualInversion !== null) {
    const t = pipelineTextEncoder(text, 'textualInversion');
    const part = await openTextualInversion(t.pipelineParts, recipe, at);
    t.trainTextEncoder();
    log(part.note);
    return part;
  }
  if (spec === 'frozen') return undefined;
  const t = pipelineTextEncoder(text, 'freeze.textEncoder');
  const part = await trainTextEncoderWeights(t.pipelineParts.textEncoder, recipe, spec, at.resumedDir);
  t.trainTextEncoder();
  log(part.note);
  return part;
}

/** The trainable parameters `spec` selects ("full": all), each pattern required to match something. */
export function selectTextEncoderParameters(
  parameters: ReadonlyArray<{ name: string; shape: readonly number[] }>,
  spec: 'full' | readonly string[],
): Array<{ name: string; shape: readonly number[] }> {
  if (spec === 'full') return [...parameters];
  const patterns = spec.map((p, i) => compilePattern(p, `freeze.textEncoder[${i}]`));
  for (const p of patterns) {
    if (!parameters.some((q) => p.test(q.name)))
      throw new ConfigError(
        `${p.where}: ${JSON.stringify(p.source)} matches none of the text encoder's ${parameters.length} parameters (they look like ${parameters
          .slice(0, 3)
          .map((q) => JSON.stringify(q.name))
          .join(', ')})`,
      );
  }
  return parameters.filter((q) => patterns.some((p) => p.test(q.name)));
}

/** freeze.textEncoder "full" or patterns: the encoder's selected weights train with the U-Net. */
async function trainTextEncoderWeights(
  textEncoder: CLIPTextModel,
  recipe: Recipe,
  spec: 'full' | readonly string[],
  resumedDir: string | undefined,
): Promise<TextEncoderPart> {
  if (resumedDir !== undefined) {
    const file = path.join(resumedDir, TEXT_ENCODER_DIR, TEXT_ENCODER_WEIGHTS);
    const weights = await loadStateDict(file);
    try {
      await textEncoder.loadStateDict(weights, file);
    } finally {
      disposeStateDict(weights);
    }
  }
  const parameters = await textEncoder.parameters();
  const selected = selectTextEncoderParameters(parameters, spec);
  const decayAll = parseFreezeOptions(recipe.freeze).decayAll;
  const lrMultiplier = textEncoderLrMultiplier(recipe);
  const trainable: TrainableParameter[] = selected.map((p) => ({
    name: TEXT_ENCODER_PREFIX + p.name,
    lrMultiplier,
    weightDecay: decayAll || defaultWeightDecay(p.name, p.shape),
  }));
  const numel = (list: ReadonlyArray<{ shape: readonly number[] }>) => list.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
  const lr = lrMultiplier === 1 ? '' : `, learning rate × ${lrMultiplier}`;
  const note = `text encoder: ${selected.length} of ${parameters.length} tensors train (${numel(selected).toLocaleString('en-US')} of ${numel(parameters).toLocaleString('en-US')} parameters${lr}); saved as text_encoder/`;
  return {
    trainable,
    note,
    outputFiles: () => [],
    saveCheckpoint: (dir) => textEncoder.save(path.join(dir, TEXT_ENCODER_DIR)),
    useEma: (averages) => useEmaEncoderWeights(textEncoder, averages),
    export: async (output) => {
      await textEncoder.save(path.join(output, TEXT_ENCODER_DIR));
      return [TEXT_ENCODER_DIR];
    },
  };
}

/** The text encoder's line of a dry run's plan, from the recipe alone (nothing loads). */
export function textEncoderPlanNote(recipe: Recipe): string | undefined {
  const ti = recipe.textualInversion;
  if (ti !== null) {
    return `textual inversion: ${ti.numVectors} new vector${ti.numVectors === 1 ? '' : 's'} for "${ti.placeholderToken}" from "${ti.initializerToken}" train (learning rate ${ti.lr ?? recipe.train.lr}); the U-Net and the rest of the text encoder stay frozen`;
  }
  const lr = recipe.train.textEncoderLr === null ? '' : ` at learning rate ${recipe.train.textEncoderLr}`;
  const lora = recipe.lora?.textEncoder ?? null;
  if (lora !== null) return `text encoder: LoRA rank ${lora.rank} (alpha ${lora.alpha ?? lora.rank}) on ${lora.targets.join(', ')} of every encoder layer${lr}`;
  const spec = parseFreezeOptions(recipe.freeze).textEncoder;
  if (spec === 'frozen') return undefined;
  return `text encoder: ${spec === 'full' ? 'every weight trains' : `the weights matching ${spec.join(', ')} train`}${lr} (freeze.textEncoder)`;
}
