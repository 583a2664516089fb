/**
 * What the native U-Net is given (native/unet/unet_config.h): diffusers' config made flat and explicit,
 * per block, with the Transformer2DModel depth of every attention layer. The schemas, their validation
 * and diffusers' reading of the transformer depths are in ./unet.
 */
import { perBlock, transformerDepths, type UNetConfig } from './unet';

/** The flat config the native UNet takes (native/unet/unet_config.h). */
export interface NativeUNetConfig {
  conditional: boolean;
  inChannels: number;
  outChannels: number;
  centerInputSample: boolean;
  timeEmbeddingType: string;
  flipSinToCos: boolean;
  freqShift: number;
  downBlockTypes: string[];
  upBlockTypes: string[];
  midBlockType: string;
  blockOutChannels: number[];
  layersPerBlock: number[];
  /** Transformer2DModel depth of every layer: layersPerBlock[i] entries per down block, in block order. */
  downTransformerLayers: number[];
  midTransformerLayers: number;
  /** layersPerBlock[n − 1 − i] + 1 entries per up block i, in block order. */
  upTransformerLayers: number[];
  midBlockScaleFactor: number;
  downsamplePadding: number;
  dropout: number;
  actFn: string;
  attentionHeadDim: number[];
  numAttentionHeads: number[];
  crossAttentionDim: number[];
  onlyCrossAttention: boolean[];
  normNumGroups: number;
  attnNormNumGroups: number;
  normEps: number;
  resnetTimeScaleShift: string;
  addAttention: boolean;
  classEmbedType: string;
  numClassEmbeds: number;
  useLinearProjection: boolean;
  upcastAttention: boolean;
  convInKernel: number;
  convOutKernel: number;
  timeEmbeddingDim: number;
  timestepPostAct: string;
  timeEmbeddingActFn: string;
}

/** The native model's flat config: per-block lists, diffusers' implicit choices made explicit. */
export function toNativeUNetConfig(config: UNetConfig): NativeUNetConfig {
  const n = config.block_out_channels.length;
  const file = 'config';
  // What both classes share, then each class's own choices.
  const common = {
    inChannels: config.in_channels,
    outChannels: config.out_channels,
    centerInputSample: config.center_input_sample,
    timeEmbeddingType: config.time_embedding_type,
    flipSinToCos: config.flip_sin_to_cos,
    freqShift: config.freq_shift,
    downBlockTypes: [...config.down_block_types],
    upBlockTypes: [...config.up_block_types],
    midBlockType: config.mid_block_type ?? '',
    blockOutChannels: [...config.block_out_channels],
    midBlockScaleFactor: config.mid_block_scale_factor,
    downsamplePadding: config.downsample_padding,
    dropout: config.dropout,
    actFn: config.act_fn,
    normEps: config.norm_eps,
    resnetTimeScaleShift: config.resnet_time_scale_shift,
    classEmbedType: config.class_embed_type ?? '',
    numClassEmbeds: config.num_class_embeds ?? -1,
  };
  if (config._class_name === 'UNet2DModel') {
    return {
      ...common,
      conditional: false,
      layersPerBlock: perBlock(config.layers_per_block, n, 'layers_per_block', file),
      // No transformers in a UNet2DModel: depth 1 for every layer keeps the lists' lengths.
      downTransformerLayers: new Array<number>(config.layers_per_block * n).fill(1),
      midTransformerLayers: 1,
      upTransformerLayers: new Array<number>((config.layers_per_block + 1) * n).fill(1),
      attentionHeadDim: perBlock(config.attention_head_dim ?? -1, n, 'attention_head_dim', file),
      numAttentionHeads: perBlock(1, n, 'num_attention_heads', file),
      crossAttentionDim: perBlock(-1, n, 'cross_attention_dim', file),
      onlyCrossAttention: perBlock(false, n, 'only_cross_attention', file),
      normNumGroups: config.norm_num_groups ?? -1,
      attnNormNumGroups: config.attn_norm_num_groups ?? -1,
      addAttention: config.add_attention,
      useLinearProjection: false,
      upcastAttention: false,
      convInKernel: 3,
      convOutKernel: 3,
      timeEmbeddingDim: -1,
      timestepPostAct: '',
      timeEmbeddingActFn: '',
    };
  }
  const heads = perBlock(config.attention_head_dim, n, 'attention_head_dim', file);
  const depths = transformerDepths(config, file);
  return {
    ...common,
    conditional: true,
    layersPerBlock: perBlock(config.layers_per_block, n, 'layers_per_block', file),
    downTransformerLayers: depths.down.flat(),
    midTransformerLayers: depths.mid,
    upTransformerLayers: depths.up.flat(),
    attentionHeadDim: heads,
    numAttentionHeads: heads,
    crossAttentionDim: perBlock(config.cross_attention_dim, n, 'cross_attention_dim', file),
    onlyCrossAttention: perBlock(config.only_cross_attention, n, 'only_cross_attention', file),
    normNumGroups: config.norm_num_groups,
    attnNormNumGroups: -1,
    addAttention: true,
    useLinearProjection: config.use_linear_projection,
    upcastAttention: config.upcast_attention,
    convInKernel: config.conv_in_kernel,
    convOutKernel: config.conv_out_kernel,
    timeEmbeddingDim: config.time_embedding_dim ?? -1,
    timestepPostAct: config.timestep_post_act ?? '',
    timeEmbeddingActFn: config.time_embedding_act_fn ?? '',
  };
}
