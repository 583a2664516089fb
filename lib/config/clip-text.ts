/**
 * transformers CLIPTextModel configs (`text_encoder/config.json`, model_type "clip_text_model"): a zod
 * schema with transformers' CLIPTextConfig defaults, and the flat form the native model takes. Keys
 * the schema does not know are kept and reported. Pure: never loads the addon.
 */
import { z } from 'zod';
import { ConfigError } from '../errors';
import { expectConfigObject, parseConfigObject, unknownConfigKeys } from './schema-object';

const posInt = z.number().int().positive();

/** PretrainedConfig keys with no meaning for the text encoder's computation. */
const BOOKKEEPING_KEYS = new Set([
  '_name_or_path',
  'architectures',
  'model_type',
  'torch_dtype',
  'transformers_version',
  'return_dict',
  'output_hidden_states',
  'output_attentions',
  'torchscript',
  'use_bfloat16',
  'tf_legacy_loss',
  'pruned_heads',
  'tie_word_embeddings',
  'is_encoder_decoder',
  'is_decoder',
  'add_cross_attention',
  'id2label',
  'label2id',
  'problem_type',
  'chunk_size_feed_forward',
  'gradient_checkpointing',
]);

export const clipTextSchema = z.object({
  /** Token vocabulary (49408 for OpenAI CLIP). */
  vocab_size: posInt.default(49408),
  /** Width D of every token's hidden state (768 for SD 1.x, 1024 for SD 2.x). */
  hidden_size: posInt.default(512),
  /** Width of the MLP's hidden layer. */
  intermediate_size: posInt.default(2048),
  /** Used only by CLIPTextModelWithProjection; kept. */
  projection_dim: posInt.default(512),
  num_hidden_layers: posInt.default(12),
  num_attention_heads: posInt.default(8),
  /** Longest token sequence (77). */
  max_position_embeddings: posInt.default(77),
  /** quick_gelu (OpenAI CLIP, SD 1.x) or gelu (OpenCLIP, SD 2.x). */
  hidden_act: z.enum(['quick_gelu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu', 'silu']).default('quick_gelu'),
  layer_norm_eps: z.number().positive().default(1e-5),
  /** Training only: the encoder runs in eval mode. */
  attention_dropout: z.number().min(0).max(1).default(0),
  dropout: z.number().min(0).max(1).default(0),
  /** Initialisation scales of transformers (fromConfig uses torch.nn's defaults instead). */
  initializer_range: z.number().default(0.02),
  initializer_factor: z.number().default(1),
  pad_token_id: z.number().int().nullable().default(1),
  bos_token_id: z.number().int().nullable().default(49406),
  /** 2 (SD 1.x/2.x configs): pooled output at the largest id; otherwise at the first eos_token_id. */
  eos_token_id: z.number().int().default(49407),
  /** diffusers pipelines pass the tokenizer's attention mask only when this is true. */
  use_attention_mask: z.boolean().optional(),
});

export type CLIPTextConfig = z.infer<typeof clipTextSchema>;

/** The flat config the native CLIP text encoder takes (native/clip/clip_config.h). */
export interface NativeClipTextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  maxPositionEmbeddings: number;
  hiddenAct: string;
  layerNormEps: number;
  eosTokenId: number;
}

export interface ParsedClipTextConfig {
  config: CLIPTextConfig;
  /** Keys in the file that this schema does not know: kept, not used. */
  unknownKeys: string[];
  extra: Record<string, unknown>;
}

/** Validates a parsed text_encoder/config.json; an unsupported value is a ConfigError naming the file and key. */
export function parseClipTextConfig(raw: unknown, file: string): ParsedClipTextConfig {
  const obj = expectConfigObject(raw, file);
  if (obj.model_type !== undefined && obj.model_type !== 'clip_text_model') {
    throw new ConfigError(
      `${file}: "model_type" must be "clip_text_model" (a CLIPTextModel config) but is ${JSON.stringify(obj.model_type)}` +
        (obj.model_type === 'clip' ? '; a full CLIP config holds the text encoder under "text_config"' : ''),
    );
  }
  const arch = obj.architectures;
  if (arch !== undefined && !(Array.isArray(arch) && arch.every((a) => a === 'CLIPTextModel'))) {
    throw new ConfigError(`${file}: "architectures" must be ["CLIPTextModel"] but is ${JSON.stringify(arch)} (difftune builds CLIPTextModel only)`);
  }
  const config = parseConfigObject(clipTextSchema, obj, file);
  if (config.hidden_size % config.num_attention_heads !== 0) {
    throw new ConfigError(`${file}: "num_attention_heads" ${config.num_attention_heads} does not divide "hidden_size" ${config.hidden_size}`);
  }
  return { config, ...unknownConfigKeys(clipTextSchema, obj, BOOKKEEPING_KEYS) };
}

export function toNativeClipTextConfig(config: CLIPTextConfig): NativeClipTextConfig {
  return {
    vocabSize: config.vocab_size,
    hiddenSize: config.hidden_size,
    intermediateSize: config.intermediate_size,
    numHiddenLayers: config.num_hidden_layers,
    numAttentionHeads: config.num_attention_heads,
    maxPositionEmbeddings: config.max_position_embeddings,
    hiddenAct: config.hidden_act,
    layerNormEps: config.layer_norm_eps,
    eosTokenId: config.eos_token_id,
  };
}
