// The config.json / scheduler_config.json difftune writes hold only keys the diffusers release named in
// their `_diffusers_version` (0.31.0) takes, so that release loads them without "The config attributes
// {...} were passed to ..., but are not expected and will be ignored" on every load.
import * as fs from 'fs';
import * as path from 'path';
import { parseLenientJson } from '../../../lib/config/json';
import { DEFAULT_DIFFUSERS_VERSION, defaultSchedulerConfig, parseSchedulerConfigText, SCHEDULER_CLASSES, schedulerConfigToJson, type SchedulerClassName } from '../../../lib/config/scheduler';
import { parseUNetConfig, unetConfigForVersion } from '../../../lib/config/unet';
import { parseVaeConfig } from '../../../lib/config/vae';
import { diffusersConfigJson } from '../../../lib/models/model-folder';
import { growUNetConfig } from '../../../lib/models/grow';

const FIXTURES = path.join(__dirname, '..', '..', 'fixtures', 'diffusers');
const readJson = (file: string): unknown => parseLenientJson(fs.readFileSync(file, 'utf8'), file);

const BOOKKEEPING = ['_class_name', '_diffusers_version'];

// The parameters of each class's `__init__` (its @register_to_config) in diffusers v0.31.0.
const V031_KEYS: Record<string, readonly string[]> = {
  // src/diffusers/models/unets/unet_2d.py (no mid_block_type: UNet2DModel takes it from v0.33.0).
  UNet2DModel: [
    'sample_size', 'in_channels', 'out_channels', 'center_input_sample', 'time_embedding_type', 'freq_shift', 'flip_sin_to_cos',
    'down_block_types', 'up_block_types', 'block_out_channels', 'layers_per_block', 'mid_block_scale_factor', 'downsample_padding',
    'downsample_type', 'upsample_type', 'dropout', 'act_fn', 'attention_head_dim', 'norm_num_groups', 'attn_norm_num_groups', 'norm_eps',
    'resnet_time_scale_shift', 'add_attention', 'class_embed_type', 'num_class_embeds', 'num_train_timesteps',
  ],
  // src/diffusers/models/unets/unet_2d_condition.py
  UNet2DConditionModel: [
    'sample_size', 'in_channels', 'out_channels', 'center_input_sample', 'flip_sin_to_cos', 'freq_shift', 'down_block_types', 'mid_block_type',
    'up_block_types', 'only_cross_attention', 'block_out_channels', 'layers_per_block', 'downsample_padding', 'mid_block_scale_factor',
    'dropout', 'act_fn', 'norm_num_groups', 'norm_eps', 'cross_attention_dim', 'transformer_layers_per_block',
    'reverse_transformer_layers_per_block', 'encoder_hid_dim', 'encoder_hid_dim_type', 'attention_head_dim', 'num_attention_heads',
    'dual_cross_attention', 'use_linear_projection', 'class_embed_type', 'addition_embed_type', 'addition_time_embed_dim', 'num_class_embeds',
    'upcast_attention', 'resnet_time_scale_shift', 'resnet_skip_time_act', 'resnet_out_scale_factor', 'time_embedding_type',
    'time_embedding_dim', 'time_embedding_act_fn', 'timestep_post_act', 'time_cond_proj_dim', 'conv_in_kernel', 'conv_out_kernel',
    'projection_class_embeddings_input_dim', 'attention_type', 'class_embeddings_concat', 'mid_block_only_cross_attention',
    'cross_attention_norm', 'addition_embed_type_num_heads',
  ],
  // src/diffusers/models/autoencoders/autoencoder_kl.py
  AutoencoderKL: [
    'in_channels', 'out_channels', 'down_block_types', 'up_block_types', 'block_out_channels', 'layers_per_block', 'act_fn', 'latent_channels',
    'norm_num_groups', 'sample_size', 'scaling_factor', 'shift_factor', 'latents_mean', 'latents_std', 'force_upcast', 'use_quant_conv',
    'use_post_quant_conv', 'mid_block_add_attention',
  ],
  // src/diffusers/schedulers/scheduling_ddpm.py
  DDPMScheduler: [
    'num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas', 'variance_type', 'clip_sample', 'prediction_type',
    'thresholding', 'dynamic_thresholding_ratio', 'clip_sample_range', 'sample_max_value', 'timestep_spacing', 'steps_offset',
    'rescale_betas_zero_snr',
  ],
  // src/diffusers/schedulers/scheduling_ddim.py
  DDIMScheduler: [
    'num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas', 'clip_sample', 'set_alpha_to_one', 'steps_offset',
    'prediction_type', 'thresholding', 'dynamic_thresholding_ratio', 'clip_sample_range', 'sample_max_value', 'timestep_spacing',
    'rescale_betas_zero_snr',
  ],
  // src/diffusers/schedulers/scheduling_euler_discrete.py
  EulerDiscreteScheduler: [
    'num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas', 'prediction_type', 'interpolation_type',
    'use_karras_sigmas', 'use_exponential_sigmas', 'use_beta_sigmas', 'sigma_min', 'sigma_max', 'timestep_spacing', 'timestep_type',
    'steps_offset', 'rescale_betas_zero_snr', 'final_sigmas_type',
  ],
  // src/diffusers/schedulers/scheduling_dpmsolver_multistep.py
  DPMSolverMultistepScheduler: [
    'num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas', 'solver_order', 'prediction_type', 'thresholding',
    'dynamic_thresholding_ratio', 'sample_max_value', 'algorithm_type', 'solver_type', 'lower_order_final', 'euler_at_final',
    'use_karras_sigmas', 'use_exponential_sigmas', 'use_beta_sigmas', 'use_lu_lambdas', 'final_sigmas_type', 'lambda_min_clipped',
    'variance_type', 'timestep_spacing', 'steps_offset', 'rescale_betas_zero_snr',
  ],
  // src/diffusers/schedulers/scheduling_pndm.py
  PNDMScheduler: [
    'num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas', 'skip_prk_steps', 'set_alpha_to_one',
    'prediction_type', 'timestep_spacing', 'steps_offset',
  ],
  // src/diffusers/schedulers/scheduling_euler_ancestral_discrete.py
  EulerAncestralDiscreteScheduler: [
    'num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas', 'prediction_type', 'timestep_spacing',
    'steps_offset', 'rescale_betas_zero_snr',
  ],
  // src/diffusers/schedulers/scheduling_lms_discrete.py
  LMSDiscreteScheduler: [
    'num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas', 'use_karras_sigmas', 'use_exponential_sigmas',
    'use_beta_sigmas', 'prediction_type', 'timestep_spacing', 'steps_offset',
  ],
  // src/diffusers/schedulers/scheduling_heun_discrete.py
  HeunDiscreteScheduler: [
    'num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas', 'prediction_type', 'use_karras_sigmas',
    'use_exponential_sigmas', 'use_beta_sigmas', 'clip_sample', 'clip_sample_range', 'timestep_spacing', 'steps_offset',
  ],
  // src/diffusers/schedulers/scheduling_k_dpm_2_discrete.py
  KDPM2DiscreteScheduler: [
    'num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas', 'use_karras_sigmas', 'use_exponential_sigmas',
    'use_beta_sigmas', 'prediction_type', 'timestep_spacing', 'steps_offset',
  ],
  // src/diffusers/schedulers/scheduling_k_dpm_2_ancestral_discrete.py
  KDPM2AncestralDiscreteScheduler: [
    'num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas', 'use_karras_sigmas', 'use_exponential_sigmas',
    'use_beta_sigmas', 'prediction_type', 'timestep_spacing', 'steps_offset',
  ],
  // src/diffusers/schedulers/scheduling_unipc_multistep.py
  UniPCMultistepScheduler: [
    'num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas', 'solver_order', 'prediction_type', 'thresholding',
    'dynamic_thresholding_ratio', 'sample_max_value', 'predict_x0', 'solver_type', 'lower_order_final', 'disable_corrector', 'solver_p',
    'use_karras_sigmas', 'use_exponential_sigmas', 'use_beta_sigmas', 'timestep_spacing', 'steps_offset', 'final_sigmas_type',
    'rescale_betas_zero_snr',
  ],
  // src/diffusers/schedulers/scheduling_deis_multistep.py
  DEISMultistepScheduler: [
    'num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas', 'solver_order', 'prediction_type', 'thresholding',
    'dynamic_thresholding_ratio', 'sample_max_value', 'algorithm_type', 'solver_type', 'lower_order_final', 'use_karras_sigmas',
    'use_exponential_sigmas', 'use_beta_sigmas', 'timestep_spacing', 'steps_offset',
  ],
  // src/diffusers/schedulers/scheduling_dpmsolver_singlestep.py
  DPMSolverSinglestepScheduler: [
    'num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas', 'solver_order', 'prediction_type', 'thresholding',
    'dynamic_thresholding_ratio', 'sample_max_value', 'algorithm_type', 'solver_type', 'lower_order_final', 'use_karras_sigmas',
    'use_exponential_sigmas', 'use_beta_sigmas', 'final_sigmas_type', 'lambda_min_clipped', 'variance_type',
  ],
};

/** The keys of `written` its class in diffusers v0.31.0 does not take. */
function unknownTo031(written: Record<string, unknown>): string[] {
  expect(written._diffusers_version).toBe('0.31.0');
  const known = new Set([...V031_KEYS[written._class_name as string]!, ...BOOKKEEPING]);
  return Object.keys(written).filter((k) => !known.has(k));
}

function writtenUNetConfig(raw: unknown): Record<string, unknown> {
  return diffusersConfigJson(unetConfigForVersion(parseUNetConfig(raw, 'config.json').config, DEFAULT_DIFFUSERS_VERSION));
}

test('difftune writes the diffusers version these key lists are from', () => {
  expect(DEFAULT_DIFFUSERS_VERSION).toBe('0.31.0');
});

describe.each(['unet2d-tiny', 'unet2d-classcond', 'unet2d-ddpmcifar-shape', 'unet2dcond-tiny', 'unet2dcond-sd2ish', 'unet2dcond-classcond'])('U-Net fixture %s', (name) => {
  test('its written config.json holds only keys diffusers v0.31 takes', () => {
    expect(unknownTo031(writtenUNetConfig(readJson(path.join(FIXTURES, name, 'config.json'))))).toEqual([]);
  });
});

test.each(['UNet2DModel', 'UNet2DConditionModel'])('a %s from defaults writes every v0.31 key and no other', (className) => {
  const written = writtenUNetConfig({ _class_name: className });
  expect(unknownTo031(written)).toEqual([]);
  expect(Object.keys(written).filter((k) => !BOOKKEEPING.includes(k)).sort()).toEqual([...V031_KEYS[className]!].sort());
});

test('a UNet2DModel without a mid block keeps mid_block_type null (diffusers v0.31 warns about it; the file would be wrong without it)', () => {
  const written = writtenUNetConfig({ _class_name: 'UNet2DModel', mid_block_type: null });
  expect(written.mid_block_type).toBeNull();
  expect(unknownTo031(written)).toEqual(['mid_block_type']);
  // Read back, it still has no mid block.
  expect(parseUNetConfig(written, 'written').config.mid_block_type).toBeNull();
});

test('a config naming diffusers v0.33 or later keeps UNet2DModel mid_block_type, which that release takes', () => {
  const { config } = parseUNetConfig({ _class_name: 'UNet2DModel' }, 'config.json');
  expect(unetConfigForVersion(config, '0.33.0').mid_block_type).toBe('UNetMidBlock2D');
  expect(unetConfigForVersion(config, '0.35.0.dev0').mid_block_type).toBe('UNetMidBlock2D');
  expect('mid_block_type' in unetConfigForVersion(config, '0.32.2')).toBe(false);
});

test('a grown UNet2DModel config holds only keys the release it names takes', () => {
  const raw = readJson(path.join(FIXTURES, 'unet2d-tiny', 'config.json')) as Record<string, unknown>;
  const grown = growUNetConfig(raw, { source: 'unet2d-tiny' });
  expect(unknownTo031(grown)).toEqual([]);
  // No version named: the keys of the release difftune writes.
  const { _diffusers_version: _, ...unversioned } = raw;
  expect(Object.keys(growUNetConfig(unversioned, { source: 'unet2d-tiny' }))).not.toContain('mid_block_type');
});

test('the written AutoencoderKL config.json holds only keys diffusers v0.31 takes', () => {
  for (const raw of [readJson(path.join(FIXTURES, 'vae-tiny', 'config.json')), { _class_name: 'AutoencoderKL' }]) {
    const { config, extra } = parseVaeConfig(raw, 'vae/config.json');
    const written = diffusersConfigJson(config, extra);
    expect(unknownTo031(written)).toEqual([]);
  }
  const { config } = parseVaeConfig({ _class_name: 'AutoencoderKL' }, 'vae/config.json');
  expect(Object.keys(diffusersConfigJson(config)).filter((k) => !BOOKKEEPING.includes(k)).sort()).toEqual([...V031_KEYS.AutoencoderKL!].sort());
});

test.each(SCHEDULER_CLASSES.map((c) => [c]))('a %s from defaults writes every v0.31 key and no other', (className: SchedulerClassName) => {
  const written = schedulerConfigToJson({ config: defaultSchedulerConfig(className), diffusersVersion: undefined, extraKeys: {} });
  expect(unknownTo031(written)).toEqual([]);
  expect(Object.keys(written).filter((k) => !BOOKKEEPING.includes(k)).sort()).toEqual([...V031_KEYS[className]!].sort());
});

test('every scheduler fixture written back holds only keys diffusers v0.31 takes', () => {
  const dir = path.join(FIXTURES, 'schedulers');
  for (const name of fs.readdirSync(dir)) {
    const file = path.join(dir, name, 'scheduler_config.json');
    const parsed = parseSchedulerConfigText(fs.readFileSync(file, 'utf8'), file);
    const written = schedulerConfigToJson({ ...parsed, diffusersVersion: undefined });
    expect({ name, unknown: unknownTo031(written) }).toEqual({ name, unknown: [] });
  }
});
