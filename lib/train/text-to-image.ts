/**
 * Text-to-image runs: a text-conditioned UNet2DConditionModel trains from a whole Stable Diffusion
 * pipeline folder, whose frozen VAE turns each batch's images into latents and whose frozen text encoder
 * turns its captions into embeddings (lib/train/text-conditioning.ts). Both stay bit-identical; with
 * verifyFrozen the run shows it by hashing their weights before and after training. When the text encoder
 * trains (lib/train/text-encoder-training.ts, textual-inversion.ts, LoRA), the captions go to the trainer
 * as token ids instead (trainTextEncoder) and only the VAE is checked.
 */
import type { Recipe } from '../config/recipe';
import { ConfigError, InternalError } from '../errors';
import { isTextToImageFolder, type BaseModel } from '../models/model-folder';
import type { CLIPTextModel } from '../models/clip-text';
import type { UNet } from '../models/unet';
import type { AutoencoderKL } from '../models/vae';
import type { CLIPTokenizer } from '../text/clip-tokenizer';
import type { ModelInputs, SampleBatch, TensorScope, TrainingHooks } from './hooks';
import { textToImageCacheDir } from './export';
import type { CacheStats, OpenedTextConditioning } from './text-conditioning';

/** sha256 of each frozen model's weights. */
export interface FrozenDigests {
  textEncoder: string;
  vae: string;
}

export interface TextToImageSummary {
  cache: CacheStats;
  frozenBefore?: FrozenDigests;
  frozenAfter?: FrozenDigests;
}

/** The pipeline's frozen half when `unet` is text-conditioned; undefined for other U-Nets. */
export async function openTextToImage(
  unet: UNet,
  folder: BaseModel,
  recipe: Recipe,
  options: { verifyFrozen: boolean; log: (line: string) => void },
): Promise<TextToImage | undefined> {
  if (!unet.isConditional || unet.isClassConditional) return undefined;
  if (folder.pipelineDir === undefined || !isTextToImageFolder(folder.pipelineDir)) {
    throw new ConfigError(
      'model.pretrained: a text-conditioned UNet2DConditionModel trains from a whole Stable Diffusion pipeline folder (model_index.json with text_encoder/, tokenizer/ and vae/), which encodes the captions and images',
    );
  }
  const tti = recipe.textToImage;
  // Loaded on demand: U-Net-only runs never load the text models' code.
  const { openTextConditioning } = await import('./text-conditioning');
  const opened = await openTextConditioning(folder.pipelineDir, {
    device: recipe.model.device,
    clipSkip: tti.clipSkip,
    cacheLatents: tti.cacheLatents,
    cacheTextEmbeddings: tti.cacheTextEmbeddings,
    cacheDir: tti.cacheDir ?? textToImageCacheDir(recipe.output),
    seed: recipe.train.seed,
  });
  const caches = [tti.cacheLatents && 'latents', tti.cacheTextEmbeddings && 'text embeddings'].filter(Boolean).join(' + ') || 'off';
  options.log(
    `text-to-image: captions through the frozen text encoder${tti.clipSkip ? ` (clip skip ${tti.clipSkip})` : ''}, images through the frozen VAE to latents (cache: ${caches})`,
  );
  try {
    return new TextToImage(opened, options.verifyFrozen ? await opened.fingerprint() : undefined, options.log);
  } catch (error) {
    opened[Symbol.dispose]();
    throw error;
  }
}

export class TextToImage implements TrainingHooks, Disposable {
  constructor(
    private readonly text: OpenedTextConditioning,
    private readonly frozenBefore: FrozenDigests | undefined,
    private readonly log: (line: string) => void,
  ) {}

  /** Image pixels per latent pixel (the VAE's scale factor). */
  get latentScale(): number {
    return this.text.vae.vaeScaleFactor;
  }

  /** The pipeline's frozen parts, for sampling validation images with the U-Net being trained. */
  get pipelineParts(): {
    readonly vae: AutoencoderKL;
    readonly textEncoder: CLIPTextModel;
    readonly tokenizer: CLIPTokenizer;
    readonly clipSkip: number | null;
  } {
    return {
      vae: this.text.vae,
      textEncoder: this.text.textEncoder,
      tokenizer: this.text.conditioning.tokenizer,
      clipSkip: this.text.conditioning.options.clipSkip,
    };
  }

  /** Whether the text encoder trains (trainTextEncoder was called): batches then carry token ids. */
  get textEncoderTrains(): boolean {
    return this.text.conditioning.encoderTrainsInStep;
  }

  /**
   * The text encoder trains in the trainer's step from now on: batches carry the captions' token ids, and
   * caption embeddings are neither computed nor cached here (the cache would hold stale embeddings).
   */
  trainTextEncoder(): void {
    this.text.conditioning.trainEncoderInStep();
    this.log("text-to-image: the text encoder trains inside each step on the captions' token ids; the text-embedding cache is off");
  }

  /** Latents drawn for `step` from the images' latent distributions, and the captions' embeddings (or token ids). */
  async prepareBatch(batch: SampleBatch, inputs: ModelInputs, step: number, scope: TensorScope): Promise<ModelInputs> {
    const { latents, context, inputIds } = await this.text.conditioning.prepare(batch.pixels, batch.rawPixels, batch.captions, batch.indices, step);
    return { ...inputs, pixels: scope.own(latents), encoderHiddenStates: scope.own(context), inputIds: scope.own(inputIds) };
  }

  /** Validation sees the latent means (no draw) and the held-out captions, fixed for the run. */
  async prepareValidation(batch: SampleBatch, inputs: ModelInputs, scope: TensorScope): Promise<ModelInputs> {
    const { latents, context, inputIds } = await this.text.conditioning.prepareFixed(batch.pixels, batch.rawPixels, batch.captions);
    return { ...inputs, pixels: scope.own(latents), encoderHiddenStates: scope.own(context), inputIds: scope.own(inputIds) };
  }

  async afterTraining(): Promise<void> {
    const s = this.text.conditioning.stats;
    this.log(`text-to-image cache: latents ${s.latentHits} hits / ${s.latentMisses} misses, text ${s.textHits} hits / ${s.textMisses} misses`);
  }

  /** The cache's counts and, with verifyFrozen, the frozen models' digests, checked to be unchanged. */
  async summary(): Promise<TextToImageSummary> {
    const cache = { ...this.text.conditioning.stats };
    const before = this.frozenBefore;
    if (before === undefined) return { cache, frozenBefore: undefined, frozenAfter: undefined };
    const after = await this.text.fingerprint();
    // A text encoder that trained changed, as it should: only a frozen one is held to its digest.
    const encoderFrozen = !this.text.conditioning.encoderTrainsInStep;
    if ((encoderFrozen && after.textEncoder !== before.textEncoder) || after.vae !== before.vae) {
      throw new InternalError('the frozen text encoder or VAE changed during training (their weights must stay bit-identical)');
    }
    return { cache, frozenBefore: before, frozenAfter: after };
  }

  [Symbol.dispose](): void {
    this.text[Symbol.dispose]();
  }
}
