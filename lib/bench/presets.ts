/**
 * The models the harness times. Realistic sizes are the presets that
 * ../shared/reference/bench_diffusers.py --make-model writes (same configs: only the keys the original
 * config.json sets, diffusers' defaults for the rest), built here with torch.nn's initialisation from a
 * seed; the tiny fixtures and the demo's base model are read from their folders.
 */

const DDPM_LINEAR = { _class_name: 'DDPMScheduler', num_train_timesteps: 1000, beta_start: 0.0001, beta_end: 0.02, beta_schedule: 'linear' };
const SD1_SCALED = { _class_name: 'DDPMScheduler', num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear' };

const SD15_DOWN = ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'];
const SD15_UP = ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'];
/** runwayml/stable-diffusion-v1-5 unet/config.json (859.5 M parameters). */
const SD15_UNET = {
  _class_name: 'UNet2DConditionModel',
  act_fn: 'silu',
  attention_head_dim: 8,
  block_out_channels: [320, 640, 1280, 1280],
  center_input_sample: false,
  cross_attention_dim: 768,
  down_block_types: SD15_DOWN,
  downsample_padding: 1,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  out_channels: 4,
  sample_size: 64,
  up_block_types: SD15_UP,
};

export type ModelSource =
  | { kind: 'preset'; config: Record<string, unknown>; scheduler: Record<string, unknown> }
  | { kind: 'folder'; dir: string }
  /** A Stable Diffusion pipeline folder (the txt2img workload). */
  | { kind: 'pipeline'; dir: string }
  /**
   * A pipeline of a config folder's exact structure with seeded random weights, written by init-pipeline into
   * the run's scratch folder (or taken from --config pipelineDir), then loaded by both sides.
   */
  | { kind: 'init-pipeline'; configDir: string; seed: number };

/** Pipelines (the txt2img workload) rather than lone U-Nets. */
export function isPipelineModel(model: BenchModel): boolean {
  return model.source.kind === 'pipeline' || model.source.kind === 'init-pipeline';
}

export interface BenchModel {
  name: string;
  source: ModelSource;
  /** Training/sampling batch (bench_diffusers' reference batches for the presets). */
  batch: number;
  /** H = W of the U-Net's input; for pipelines, of the image (pixels). */
  resolution: number;
  /** Text tokens of encoder_hidden_states for text-conditioned U-Nets. */
  crossAttnLen: number;
  /** Data for the training step: image channels for a PNG folder, or null (latent models: fixed random latents). */
  imageChannels: number | null;
  /** How long one bench_diffusers.py run may take (default 600 s). */
  pytorchTimeoutS?: number;
  note: string;
}

/** Model names → definitions; `fixturesDir` is test/fixtures/diffusers, `modelsDir` the repo's models/. */
export function benchModels(fixturesDir: string, modelsDir: string): Map<string, BenchModel> {
  const list: BenchModel[] = [
    {
      name: 'unet2d-tiny',
      source: { kind: 'folder', dir: `${fixturesDir}/unet2d-tiny` },
      batch: 4,
      resolution: 16,
      crossAttnLen: 0,
      imageChannels: 3,
      note: 'tiny UNet2DModel fixture',
    },
    {
      name: 'unet2dcond-tiny',
      source: { kind: 'folder', dir: `${fixturesDir}/unet2dcond-tiny` },
      batch: 2,
      resolution: 16,
      crossAttnLen: 77,
      imageChannels: null,
      note: 'tiny SD-shaped fixture',
    },
    {
      name: 'ddpm-cifar10',
      source: {
        kind: 'preset',
        config: {
          _class_name: 'UNet2DModel',
          act_fn: 'silu',
          attention_head_dim: null,
          block_out_channels: [128, 256, 256, 256],
          center_input_sample: false,
          down_block_types: ['DownBlock2D', 'AttnDownBlock2D', 'DownBlock2D', 'DownBlock2D'],
          downsample_padding: 0,
          flip_sin_to_cos: false,
          freq_shift: 1,
          in_channels: 3,
          layers_per_block: 2,
          mid_block_scale_factor: 1,
          norm_eps: 1e-6,
          norm_num_groups: 32,
          out_channels: 3,
          sample_size: 32,
          time_embedding_type: 'positional',
          up_block_types: ['UpBlock2D', 'UpBlock2D', 'AttnUpBlock2D', 'UpBlock2D'],
        },
        scheduler: DDPM_LINEAR,
      },
      batch: 8,
      resolution: 32,
      crossAttnLen: 0,
      imageChannels: 3,
      note: 'exact google/ddpm-cifar10-32 config (35.7 M)',
    },
    {
      name: 'mnist-small',
      source: {
        kind: 'preset',
        config: {
          _class_name: 'UNet2DModel',
          sample_size: 32,
          in_channels: 1,
          out_channels: 1,
          block_out_channels: [32, 64, 64],
          layers_per_block: 2,
          down_block_types: ['DownBlock2D', 'AttnDownBlock2D', 'DownBlock2D'],
          up_block_types: ['UpBlock2D', 'AttnUpBlock2D', 'UpBlock2D'],
        },
        scheduler: DDPM_LINEAR,
      },
      batch: 32,
      resolution: 32,
      crossAttnLen: 0,
      imageChannels: 1,
      note: 'UNet2DModel 1×32×32, [32, 64, 64] (1.6 M)',
    },
    {
      name: 'sd15-unet-small',
      source: { kind: 'preset', config: { ...SD15_UNET, block_out_channels: [64, 128, 256, 256] }, scheduler: SD1_SCALED },
      batch: 2,
      resolution: 32,
      crossAttnLen: 77,
      imageChannels: null,
      note: 'SD 1.5 structure at [64, 128, 256, 256] (37.5 M), 4×32×32 latents, 77 tokens',
    },
    {
      name: 'mnist-ddpm',
      source: { kind: 'folder', dir: `${modelsDir}/mnist-ddpm/unet` },
      batch: 32,
      resolution: 28,
      crossAttnLen: 0,
      imageChannels: 1,
      note: "the demo's base model (2.5 M)",
    },
    {
      name: 'sd15-unet',
      source: { kind: 'preset', config: SD15_UNET, scheduler: SD1_SCALED },
      batch: 1,
      resolution: 64,
      crossAttnLen: 77,
      imageChannels: null,
      // Loading the 3.44 GB file, then warm-up and timed LoRA steps of about a minute each on 2 cores.
      pytorchTimeoutS: 3600,
      note: 'exact SD 1.5 U-Net config (859.5 M), 4×64×64 latents (512 px), 77 tokens',
    },
    {
      name: 'sd-pipeline-tiny',
      source: { kind: 'pipeline', dir: `${fixturesDir}/sd-pipeline-tiny` },
      batch: 1,
      resolution: 32,
      crossAttnLen: 77,
      imageChannels: null,
      note: 'tiny SD pipeline fixture (32 px)',
    },
    {
      name: 'sd21-pipeline',
      source: { kind: 'init-pipeline', configDir: `${fixturesDir}/../real-configs/sd-v2-1`, seed: 0 },
      batch: 1,
      resolution: 768,
      crossAttnLen: 77,
      imageChannels: null,
      // Loading 5.2 GB, then 20 guided steps of the 865.9 M U-Net on 2×4×96×96 latents (4.3 TFLOP each) and a 768² decode:
      // tens of minutes per side on 2 cores.
      pytorchTimeoutS: 7200,
      note: 'the SD 2.1 768-px pipeline: real configs (v-prediction, OpenCLIP-H text encoder), seeded random weights by init-pipeline',
    },
  ];
  return new Map(list.map((m) => [m.name, m]));
}
