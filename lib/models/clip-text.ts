/**
 * transformers CLIPTextModel from a `text_encoder/` folder: `loadTextEncoder(dir)` reads config.json and
 * model.safetensors (single file, sharded index, or a variant such as fp16) into a native model; `save(dir)`
 * writes one. encode runs without autograd, in eval mode; training runs the encoder inside the trainer's
 * step (lib/train/trainer.ts). Pickle weights (pytorch_model.bin) are refused.
 */
import { ConfigError, expected } from '../errors';
import { parseClipTextConfig, toNativeClipTextConfig, type CLIPTextConfig } from '../config/clip-text';
import type { LoadStats } from '../checkpoint/state-dict';
import { CLIP_TEXT_SIZE_CAPS, clipTextParameterCount } from '../config/model-size';
import type { ComputeDType } from '../native/dtype';
import { callAsync, loadNative } from '../native/load';
import { Tensor } from '../native/tensor';
import type { NativeCLIPTextModel } from '../native/types';
import { checkModelOptions, FrozenModel, readConfigJson, refusePickles, type ModelOptions } from './frozen-model';
import { describeWeightFileNames, saveModelFolder, shardedWeightFiles, weightsSource } from './model-folder';
import { checkTensor, createNativeModel, loraCalls, streamWeightsInto, toTensorMap, type LoraAddOptions, type LoraEntry } from './native-model';

export const TEXT_ENCODER_WEIGHTS = 'model.safetensors';

export interface LoadTextEncoderOptions extends ModelOptions {
  /** Weights variant: "fp16" reads model.fp16.safetensors (converted to `dtype`). */
  variant?: string;
}

export interface TextEncodeOptions {
  /** [B, T], 1 for tokens to attend to and 0 for padding; masks padded keys on top of the causal mask. */
  attentionMask?: Tensor;
  /** k > 0: promptEmbeds = final_layer_norm(hiddenStates[−(k+1)]) (diffusers' clip_skip). */
  clipSkip?: number;
  /** Also return every hidden state (embeddings, then each layer before final_layer_norm). */
  outputHiddenStates?: boolean;
}

export interface TextEncoderOutput {
  /** [B, T, D] after final_layer_norm. */
  lastHiddenState: Tensor;
  /** [B, D]: lastHiddenState at each sequence's end-of-text token. */
  pooledOutput: Tensor;
  /** What a pipeline feeds the U-Net: lastHiddenState, or the clipSkip layer through final_layer_norm. */
  promptEmbeds: Tensor;
  /** num_hidden_layers + 1 tensors [B, T, D], when asked for. */
  hiddenStates?: Tensor[];
}

export interface TextEncoderBackwardResult {
  output: Tensor;
  loss: Tensor;
  gradParams: Map<string, Tensor>;
}

/** The weight files of a text_encoder folder, in load order; pickles are refused. */
export function resolveTextEncoderWeights(dir: string, variant?: string): string[] {
  // transformers names variants and shards as diffusers does (model.fp16.safetensors, model.safetensors.index.fp16.json).
  const files = shardedWeightFiles(dir, TEXT_ENCODER_WEIGHTS, variant);
  if (files !== undefined) return files;
  refusePickles(dir, ['pytorch_model.bin', 'pytorch_model.fp16.bin', `pytorch_model.${variant ?? 'fp16'}.bin`], 'CLIPTextModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True) (transformers)');
  throw new ConfigError(`${dir} has no ${describeWeightFileNames(TEXT_ENCODER_WEIGHTS, variant)}${variant ? '' : '; for a variant pass { variant: "fp16" }'}`);
}

export class CLIPTextModel extends FrozenModel<NativeCLIPTextModel> {
  #config: CLIPTextConfig;
  /** config.json as read (every key, bookkeeping ones too): what save() writes back, vocab_size updated. */
  readonly #raw: Readonly<Record<string, unknown>>;
  /** Keys of config.json that difftune does not know (kept, unused). */
  readonly unknownKeys: readonly string[];
  readonly extraConfig: Readonly<Record<string, unknown>>;

  private constructor(native: NativeCLIPTextModel, config: CLIPTextConfig, extra: Record<string, unknown>, raw: unknown, device: string, dtype: ComputeDType) {
    super(native, 'CLIPTextModel', device, dtype);
    this.#config = config;
    this.#raw = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? { ...(raw as Record<string, unknown>) } : {};
    this.extraConfig = extra;
    this.unknownKeys = Object.keys(extra);
  }

  get config(): CLIPTextConfig {
    return this.#config;
  }

  /** @internal The native handle, for the trainer. */
  get native(): NativeCLIPTextModel {
    return this.live();
  }

  /** A model from a config (raw config.json content), initialised with torch.nn's defaults from `seed`. */
  static async fromConfig(rawConfig: unknown, options: ModelOptions & { seed?: number; source?: string } = {}): Promise<CLIPTextModel> {
    const { device, dtype } = checkModelOptions(options);
    const { config, extra } = parseClipTextConfig(rawConfig, options.source ?? 'config');
    const native = loadNative();
    const handle = await createNativeModel({ model: 'CLIPTextModel', source: options.source ?? 'config', config, count: clipTextParameterCount, caps: CLIP_TEXT_SIZE_CAPS }, () => native.NativeCLIPTextModel.create(toNativeClipTextConfig(config)), (h) => h.initialize(options.seed ?? 0), device, dtype);
    return new CLIPTextModel(handle, config, extra, rawConfig, device, dtype);
  }

  /** @internal A model from a validated config, its weights streamed from `files` (see streamWeightsInto). */
  static async fromFiles(rawConfig: unknown, configSource: string, files: readonly string[], source: string, options: ModelOptions): Promise<CLIPTextModel> {
    const { device, dtype } = checkModelOptions(options);
    const { config, extra } = parseClipTextConfig(rawConfig, configSource);
    const native = loadNative();
    let stats: LoadStats | undefined;
    const load = async (h: NativeCLIPTextModel): Promise<void> => {
      stats = await streamWeightsInto(h, files, source);
    };
    const handle = await createNativeModel({ model: 'CLIPTextModel', source: configSource, config, count: clipTextParameterCount, caps: CLIP_TEXT_SIZE_CAPS }, () => native.NativeCLIPTextModel.create(toNativeClipTextConfig(config)), load, device, dtype);
    const model = new CLIPTextModel(handle, config, extra, rawConfig, device, dtype);
    model.loadStats = stats;
    return model;
  }

  /** D: the width of the embeddings (the U-Net's cross_attention_dim must match it). */
  get hiddenSize(): number {
    return this.config.hidden_size;
  }

  /** Encodes token ids [B, T] (int64). The caller disposes every returned tensor. */
  async encode(inputIds: Tensor, options: TextEncodeOptions = {}): Promise<TextEncoderOutput> {
    checkTensor(inputIds, 'inputIds');
    if (options === null || typeof options !== 'object') throw expected('an options object', 'options', options);
    const clipSkip = options.clipSkip ?? 0;
    if (!Number.isSafeInteger(clipSkip) || clipSkip < 0 || clipSkip > this.config.num_hidden_layers) {
      throw expected(`an integer in [0, ${this.config.num_hidden_layers}] (num_hidden_layers)`, 'options.clipSkip', options.clipSkip);
    }
    const mask = options.attentionMask === undefined ? undefined : checkTensor(options.attentionMask, 'options.attentionMask').native;
    const native = this.live();
    const r = await callAsync(() => native.encode(inputIds.native, { attentionMask: mask, clipSkip, outputHiddenStates: options.outputHiddenStates === true }));
    const out: TextEncoderOutput = { lastHiddenState: new Tensor(r.lastHiddenState), pooledOutput: new Tensor(r.pooledOutput), promptEmbeds: new Tensor(r.promptEmbeds) };
    if (r.hiddenStates !== undefined) out.hiddenStates = r.hiddenStates.map((h) => new Tensor(h));
    return out;
  }

  /** Only the embeddings a pipeline feeds the U-Net ([B, T, D]; see TextEncodeOptions.clipSkip). */
  async embed(inputIds: Tensor, options: Omit<TextEncodeOptions, 'outputHiddenStates'> = {}): Promise<Tensor> {
    const r = await this.encode(inputIds, { ...options, outputHiddenStates: false });
    r.lastHiddenState.dispose();
    r.pooledOutput.dispose();
    return r.promptEmbeds;
  }

  /**
   * Adds LoRA adapters to `targets` (layer names such as `text_model.encoder.layers.0.self_attn.q_proj`);
   * their weights are named like peft's state dict (`<layer>.lora_A.weight`, `.lora_B.weight`).
   */
  async addLora(options: LoraAddOptions): Promise<void> {
    await loraCalls.add(this.live(), options);
  }

  /** Installs adapters with these weights (e.g. read from a LoRA file); replaces adapters on those layers. encode applies them. */
  async setLora(entries: readonly LoraEntry[], dropout = 0): Promise<void> {
    await loraCalls.set(this.live(), entries, dropout);
  }

  /** Copies of every adapter: layer, A (lora_A / lora_down), B (lora_B / lora_up), alpha. */
  async loraEntries(): Promise<LoraEntry[]> {
    return loraCalls.entries(this.live());
  }

  /** Folds the adapters into the base weights (W += alpha/rank·B·A) and removes them. */
  async mergeLora(): Promise<void> {
    const native = this.live();
    await callAsync(() => native.mergeLora());
  }

  async removeLora(): Promise<void> {
    const native = this.live();
    await callAsync(() => native.removeLora());
  }

  /**
   * Appends token-embedding rows [n, hidden_size] (new tokens, e.g. textual inversion's), as transformers'
   * resize_token_embeddings followed by setting the new rows; vocab_size grows by n. Returns the first new id.
   */
  async appendTokenEmbeddings(rows: Tensor): Promise<number> {
    checkTensor(rows, 'rows');
    const native = this.live();
    const first = await callAsync(() => native.appendTokenEmbeddings(rows.native));
    this.#config = { ...this.#config, vocab_size: first + rows.shape[0]! };
    return first;
  }

  /** Training options: gradient checkpointing of the encoder layers (when a trainer runs it with autograd). */
  async setOptions(options: { gradientCheckpointing: boolean }): Promise<void> {
    if (options === null || typeof options !== 'object' || typeof options.gradientCheckpointing !== 'boolean')
      throw expected('{ gradientCheckpointing: boolean }', 'options', options);
    const native = this.live();
    await callAsync(() => native.setOptions({ gradientCheckpointing: options.gradientCheckpointing }));
  }

  /** transformers' config.json as it was read, vocab_size and torch_dtype as the model is now, keys sorted as transformers writes them. */
  configJson(): Record<string, unknown> {
    const all: Record<string, unknown> = { architectures: ['CLIPTextModel'], model_type: 'clip_text_model', ...this.#raw, vocab_size: this.#config.vocab_size, torch_dtype: this.dtype };
    return Object.fromEntries(Object.keys(all).sort().map((k) => [k, all[k]]));
  }

  /** Writes config.json and model.safetensors (a folder transformers' CLIPTextModel.from_pretrained loads), each atomically. */
  async save(dir: string): Promise<void> {
    await saveModelFolder(dir, TEXT_ENCODER_WEIGHTS, () => this.stateDict(), () => this.configJson());
  }

  /** Forward, MSE of last_hidden_state against `target`, backward: the loss, output and the gradients asked for. */
  async forwardBackwardMse(inputIds: Tensor, target: Tensor, options: { attentionMask?: Tensor; gradNames?: string[] } = {}): Promise<TextEncoderBackwardResult> {
    checkTensor(inputIds, 'inputIds');
    checkTensor(target, 'target');
    const mask = options.attentionMask === undefined ? undefined : checkTensor(options.attentionMask, 'options.attentionMask').native;
    const native = this.live();
    const r = await callAsync(() => native.forwardBackwardMse(inputIds.native, target.native, mask, options.gradNames));
    return { output: new Tensor(r.output), loss: new Tensor(r.loss), gradParams: toTensorMap(r.gradParams) };
  }
}

/** Loads a transformers CLIPTextModel folder (config.json + model.safetensors). */
export async function loadTextEncoder(dir: string, options: LoadTextEncoderOptions = {}): Promise<CLIPTextModel> {
  checkModelOptions(options);
  const { file, raw } = readConfigJson(dir, 'transformers CLIPTextModel (config.json + model.safetensors)');
  const files = resolveTextEncoderWeights(dir, options.variant);
  return CLIPTextModel.fromFiles(raw, file, files, weightsSource(dir, files), options);
}
