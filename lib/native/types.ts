/**
 * The whole native surface, declared once. Only lib/native/load.ts loads the addon; everything else
 * talks to it through these types (and most code through the wrappers in lib/native/*.ts).
 */

// The models' config structs are declared next to the code that builds them from diffusers' configs
// (lib/config, a layer below this one), and typed here at the boundary they cross.
import type { NativeClipTextConfig } from '../config/clip-text';
import type { NativeUNetConfig } from '../config/unet-native';
import type { NativeVaeConfig } from '../config/vae';

export type { NativeClipTextConfig, NativeUNetConfig, NativeVaeConfig };

export type NativeDType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** What a tensor reads back as: half types as Float32Array (or Uint16Array raw), int64 as BigInt64Array, bool as Uint8Array. */
export type NativeTypedArray = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: NativeDType;
  /** "cpu", "cuda:0", ... */
  readonly device: string;
  /** numel × element size. */
  readonly byteLength: number;
  readonly disposed: boolean;
  /** Copies a CPU tensor into a new typed array on the calling thread (small tensors). */
  readSync(raw?: boolean): NativeTypedArray;
  /** Copies on the compute thread (any device); the array aliases a private copy, no second copy. */
  read(raw?: boolean): Promise<NativeTypedArray>;
  /** A new tensor on `device` with `dtype` (default: the same), always a copy. */
  to(device: string, dtype?: NativeDType): Promise<NativeTensor>;
  /** Drops the native reference now; idempotent. */
  dispose(): void;
}

export interface NativeTensorStatic {
  /** A new CPU tensor holding a copy of the bytes (little-endian, row-major). */
  fromBytes(data: ArrayBufferView | ArrayBuffer, shape: readonly number[], dtype: NativeDType): NativeTensor;
}

export interface NativeRuntimeInfo {
  torchVersion: string;
  torchMajor: number;
  torchMinor: number;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  parallelInfo: string;
  buildConfig: string;
  onednn: boolean;
  napiVersion: number;
  /**
   * glibc malloc's thresholds as the addon set them at load ("difftune": a fixed 1 MiB mmap threshold, so
   * freed activations go back to the OS), or left them ("environment": the user's MALLOC_* / GLIBC_TUNABLES
   * or DIFFTUNE_MALLOC_TUNING=0; "unsupported": not glibc). Thresholds in bytes, null when not set here.
   */
  malloc: { source: 'difftune' | 'environment' | 'unsupported'; mmapThreshold: number | null; trimThreshold: number | null };
  /** libtorch's CPU allocator as the addon installed it (native/tensor/cpu_allocator.h); bytes and counts. */
  cpuCache: NativeCpuCacheStats;
}

/**
 * The cache of large CPU blocks ("difftune"; "environment": DIFFTUNE_CPU_CACHE=0 left libtorch's own allocator;
 * then every number is 0). Requests of minBlockBytes and more come from it; what it keeps stays within
 * peakLiveBytes + slackBytes.
 */
export interface NativeCpuCacheStats {
  source: 'difftune' | 'environment' | 'unsupported';
  minBlockBytes: number;
  slackBytes: number;
  cachedBytes: number;
  liveBytes: number;
  peakLiveBytes: number;
  peakBytes: number;
  hits: number;
  misses: number;
  evictions: number;
}

export interface NativeGemmOptions {
  n: number;
  reps: number;
  device: string;
  dtype: 'float32' | 'bfloat16' | 'float16';
}

export interface NativeGemmResult {
  /** Median seconds of one n×n×n multiply. */
  seconds: number;
  gflops: number;
}

export interface NativeParameterInfo {
  name: string;
  shape: number[];
  dtype: NativeDType;
  requiresGrad: boolean;
}

export interface NativeNamedTensors {
  names: string[];
  tensors: NativeTensor[];
}

export interface NativeUNetInputs {
  sample: NativeTensor;
  timestep: NativeTensor;
  encoderHiddenStates?: NativeTensor;
  classLabels?: NativeTensor;
}

export interface NativeBackwardResult {
  output: NativeTensor;
  loss: NativeTensor;
  gradSample: NativeTensor;
  gradEncoderHiddenStates?: NativeTensor;
  gradParams: NativeNamedTensors;
}

export interface NativeUNetRuntimeOptions {
  gradientCheckpointing: boolean;
  channelsLast: boolean;
  /** Autocast compute dtype; null: off. */
  autocast: 'bfloat16' | 'float16' | null;
}

/**
 * What every native model handle (U-Net, AutoencoderKL, CLIP text encoder) has, on the compute thread.
 * loadStateDict is strict: one error lists every missing, unexpected and wrongly shaped weight (the
 * text encoder accepts and ignores text_model.embeddings.position_ids).
 */
export interface NativeModelHandle {
  readonly disposed: boolean;
  parameters(): Promise<NativeParameterInfo[]>;
  loadStateDict(names: string[], tensors: NativeTensor[], source: string): Promise<void>;
  /** loadStateDict's check alone, from a file header's names, shapes and dtypes (weights streamed in afterwards). */
  checkStateDict(names: string[], shapes: number[][], dtypes: NativeDType[], source: string): Promise<void>;
  /** Copies some weights in (converted to the parameters' dtype), after checkStateDict passed for the whole set. */
  copyWeights(names: string[], tensors: NativeTensor[], source: string): Promise<void>;
  stateDict(): Promise<NativeNamedTensors>;
  to(device: string, dtype: NativeDType): Promise<void>;
  initialize(seed: number): Promise<void>;
  dispose(): void;
}

/** LoRA adapters on a model's Linear/Conv2d layers by module path (native/nn/lora.h): the U-Net's and the text encoder's. */
export interface NativeLoraMethods {
  /** LoRA adapters on the named Linear/Conv2d layers (A kaiming-uniform or gaussian, B zero). */
  addLora(options: { targets: string[]; rank: number; alpha: number; dropout: number; init: 'kaiming' | 'gaussian'; seed: number }): Promise<void>;
  /** Installs adapters with given weights; all or nothing. */
  setLora(entries: Array<{ module: string; A: NativeTensor; B: NativeTensor; alpha: number }>, dropout: number): Promise<void>;
  loraEntries(): Promise<Array<{ module: string; A: NativeTensor; B: NativeTensor; alpha: number }>>;
  /** W += alpha/rank·B·A for every adapter, then the adapters are removed. */
  mergeLora(): Promise<void>;
  removeLora(): Promise<void>;
}

/** A U-Net (UNet2DModel or UNet2DConditionModel) living on the compute thread. */
export interface NativeUNet extends NativeModelHandle, NativeLoraMethods {
  setTraining(training: boolean): Promise<void>;
  setOptions(options: NativeUNetRuntimeOptions): Promise<void>;
  forward(inputs: NativeUNetInputs): Promise<NativeTensor>;
  /** loss = mean((unet(inputs) − target)²), backward; gradients of `gradNames` (all if omitted). */
  forwardBackwardMse(inputs: NativeUNetInputs, target: NativeTensor, gradNames?: string[]): Promise<NativeBackwardResult>;
}

export interface NativeUNetStatic {
  /** The flat config toNativeUNetConfig builds (native/unet/unet_config.h). */
  create(config: NativeUNetConfig): Promise<NativeUNet>;
}

/** The three tensors of an encoded batch: DiagonalGaussianDistribution's mean, clamped logvar, std. */
export interface NativeLatentDistribution {
  mean: NativeTensor;
  logvar: NativeTensor;
  std: NativeTensor;
}

/**
 * diffusers' enable_vae_slicing / enable_vae_tiling: `slicing` encodes/decodes a batch one image at a time;
 * `tiling` cuts an image larger than a tile into tiles of tileSampleSize pixels (tileLatentSize latents)
 * overlapping by `overlap` of a tile, blended linearly (diffusers' tile_sample_min_size,
 * tile_latent_min_size, tile_overlap_factor).
 */
export interface NativeVaeTiling {
  slicing: boolean;
  tiling: boolean;
  tileSampleSize?: number;
  tileLatentSize?: number;
  overlap?: number;
}

/** A frozen diffusers AutoencoderKL living on the compute thread (no autograd except decodeBackwardMse). */
export interface NativeAutoencoderKL extends NativeModelHandle {
  /** images [B, in_channels, H, W] → the latent distribution [B, latent_channels, H/f, W/f]. */
  encode(images: NativeTensor, tiling?: NativeVaeTiling): Promise<NativeLatentDistribution>;
  /** latents in the VAE's own scale → images. */
  decode(latents: NativeTensor, tiling?: NativeVaeTiling): Promise<NativeTensor>;
  /** decode(encode(images).mean). */
  forward(images: NativeTensor): Promise<NativeTensor>;
  /** loss = mean((decode(latents) − target)²), backward; gradients of `gradNames` (all if omitted). */
  decodeBackwardMse(
    latents: NativeTensor,
    target: NativeTensor,
    gradNames?: string[],
  ): Promise<{ output: NativeTensor; loss: NativeTensor; gradLatents: NativeTensor; gradParams: NativeNamedTensors }>;
}

export interface NativeAutoencoderKLStatic {
  /** The flat config toNativeVaeConfig builds (native/vae/vae_config.h). */
  create(config: NativeVaeConfig): Promise<NativeAutoencoderKL>;
}

/** native/train/vae_trainer.h: the loss (reconstruction + klWeight · KL) and AdamW's settings. */
export interface NativeVaeTrainerConfig {
  reconstructionLoss: 'mse' | 'l1';
  klWeight: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** <= 0: no clipping. */
  maxGradNorm?: number;
  seed: number;
}

export interface NativeVaeBatch {
  /** [B, in_channels, H, W] float in [-1, 1]; H and W multiples of the VAE's scale factor. */
  images: NativeTensor;
  /** Global index of each image: its posterior noise derives from (seed, step, index). */
  sampleIndices: number[];
  /** The optimizer step (0-based). */
  step: number;
}

/** Each a mean over the batch of per-image sums: loss = reconstruction + klWeight · kl. */
export interface NativeVaeLossParts {
  loss: number;
  reconstruction: number;
  kl: number;
  finite: boolean;
}

/** Sums over a batch (batches of a held-out set add up). */
export interface NativeVaeEvaluation {
  /** The reconstruction loss of decode(mean) over every element. */
  reconstructionSum: number;
  klSum: number;
  /** Over every element of a posterior draw. */
  latentSum: number;
  latentSquareSum: number;
  images: number;
  pixelElements: number;
  latentElements: number;
}

/** AdamW over every parameter of one AutoencoderKL (native/train/vae_trainer.h). */
export interface NativeVaeTrainer {
  readonly disposed: boolean;
  /** Forward, backward, clipping, AdamW at `lr`; skipped when the loss or gradients are not finite. */
  step(batch: NativeVaeBatch, lr: number): Promise<NativeVaeLossParts & { gradNorm: number; skipped: boolean; optimizerSteps: number }>;
  /** The step's loss and every parameter's gradient, without an update. */
  gradients(batch: NativeVaeBatch): Promise<NativeVaeLossParts & { gradParams: NativeNamedTensors }>;
  /** Without autograd: the reconstruction of the posterior mean, the KL and a posterior draw's moments. */
  evaluate(batch: NativeVaeBatch): Promise<NativeVaeEvaluation>;
  optimizerSteps(): Promise<number>;
  dispose(): void;
}

export interface NativeVaeTrainerStatic {
  create(vae: NativeAutoencoderKL, config: NativeVaeTrainerConfig): Promise<NativeVaeTrainer>;
}

/** What the CLIP text encoder returns for a batch of token ids. */
export interface NativeTextEncoderOutput {
  lastHiddenState: NativeTensor;
  pooledOutput: NativeTensor;
  /** lastHiddenState, or with clipSkip k final_layer_norm(hiddenStates[−(k+1)]). */
  promptEmbeds: NativeTensor;
  /** Only when asked for: embeddings, then each layer's output before final_layer_norm. */
  hiddenStates?: NativeTensor[];
}

/** A frozen transformers CLIPTextModel living on the compute thread (no autograd except forwardBackwardMse). */
export interface NativeCLIPTextModel extends NativeModelHandle, NativeLoraMethods {
  /** Always in eval mode and without autograd, also while a trainer trains the encoder. */
  encode(inputIds: NativeTensor, options: { attentionMask?: NativeTensor; clipSkip: number; outputHiddenStates: boolean }): Promise<NativeTextEncoderOutput>;
  /** Appends rows [n, hidden_size] to the token embedding (vocab_size grows by n); resolves to the first new id. */
  appendTokenEmbeddings(rows: NativeTensor): Promise<number>;
  /** Training through a trainer: encoder layers recompute their activations in backward. */
  setOptions(options: { gradientCheckpointing: boolean }): Promise<void>;
  /** loss = mean((last_hidden_state − target)²), backward; gradients of `gradNames` (all if omitted). */
  forwardBackwardMse(
    inputIds: NativeTensor,
    target: NativeTensor,
    attentionMask: NativeTensor | undefined,
    gradNames?: string[],
  ): Promise<{ output: NativeTensor; loss: NativeTensor; gradParams: NativeNamedTensors }>;
}

export interface NativeCLIPTextModelStatic {
  /** The flat config toNativeClipTextConfig builds (native/clip/clip_config.h). */
  create(config: NativeClipTextConfig): Promise<NativeCLIPTextModel>;
}

export type NativeSchedulerClass =
  | 'DDPMScheduler'
  | 'DDIMScheduler'
  | 'EulerDiscreteScheduler'
  | 'DPMSolverMultistepScheduler'
  | 'PNDMScheduler'
  | 'EulerAncestralDiscreteScheduler'
  | 'LMSDiscreteScheduler'
  | 'HeunDiscreteScheduler'
  | 'KDPM2DiscreteScheduler'
  | 'KDPM2AncestralDiscreteScheduler'
  | 'UniPCMultistepScheduler'
  | 'DEISMultistepScheduler'
  | 'DPMSolverSinglestepScheduler';

/**
 * Every scheduler option as one flat object (diffusers' config keys in camelCase); each family reads
 * the ones it has. Built by lib/schedulers/native-config.ts from a validated config.
 */
export interface NativeSchedulerConfig {
  className: NativeSchedulerClass;
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  betaSchedule: 'linear' | 'scaled_linear' | 'squaredcos_cap_v2' | 'sigmoid';
  trainedBetas: number[] | null;
  rescaleBetasZeroSnr: boolean;
  predictionType: 'epsilon' | 'v_prediction' | 'sample';
  timestepSpacing: 'leading' | 'trailing' | 'linspace';
  stepsOffset: number;
  clipSample: boolean;
  clipSampleRange: number;
  thresholding: boolean;
  dynamicThresholdingRatio: number;
  sampleMaxValue: number;
  setAlphaToOne: boolean;
  ddpmVarianceType: 'fixed_small' | 'fixed_small_log' | 'fixed_large' | 'learned' | 'learned_range';
  skipPrkSteps: boolean;
  interpolationType: 'linear' | 'log_linear';
  useKarrasSigmas: boolean;
  useExponentialSigmas: boolean;
  useLuLambdas: boolean;
  sigmaMin: number | null;
  sigmaMax: number | null;
  timestepType: 'discrete' | 'continuous';
  finalSigmasType: 'zero' | 'sigma_min';
  solverOrder: number;
  algorithmType: 'dpmsolver++' | 'dpmsolver' | 'sde-dpmsolver++' | 'sde-dpmsolver';
  solverType: 'midpoint' | 'heun';
  lowerOrderFinal: boolean;
  eulerAtFinal: boolean;
  /** May be -Infinity (no clipping). */
  lambdaMinClipped: number;
  dpmVarianceType: 'none' | 'learned' | 'learned_range';
  /** UniPC: solve in x0 (true) or in the noise. */
  predictX0: boolean;
  /** UniPC's B(h). */
  uniPCSolverType: 'bh1' | 'bh2';
  /** UniPC: steps (0-based) whose corrector is skipped. */
  disableCorrector: number[];
}

export interface NativeSchedule {
  /**
   * int64 (DDPM, DDIM, PNDM; DPM-Solver, UniPC, DEIS after setTimesteps), float32 (Euler and the other sigma-space
   * schedulers) or float64 (LMS, Heun, KDPM2 with Karras sigmas), as diffusers' scheduler.timesteps.
   */
  timesteps: NativeTensor;
  /** float32, one more than timesteps (all but DDPM, DDIM, PNDM); null for those. */
  sigmas: NativeTensor | null;
  initNoiseSigma: number;
  /** 0 before setTimesteps. */
  numInferenceSteps: number;
}

export interface NativeStepOptions {
  generator?: NativeGenerator;
  eta?: number;
  useClippedModelOutput?: boolean;
  varianceNoise?: NativeTensor;
  sChurn?: number;
  sTmin?: number;
  sTmax?: number;
  sNoise?: number;
}

export interface NativeStepResult {
  prevSample: NativeTensor;
  /** DDPM, DDIM and the sigma-space schedulers (Euler, Euler ancestral, LMS, Heun, KDPM2). */
  predOriginalSample?: NativeTensor;
}

/** A noise scheduler with its multistep state, living on the compute thread. */
export interface NativeScheduler {
  readonly disposed: boolean;
  /** Resets the multistep state. */
  setTimesteps(numInferenceSteps: number): Promise<NativeSchedule>;
  schedule(): Promise<NativeSchedule>;
  tables(): Promise<{ betas: NativeTensor; alphasCumprod: NativeTensor }>;
  /** noise · initNoiseSigma. */
  scaleInitialNoise(noise: NativeTensor): Promise<NativeTensor>;
  scaleModelInput(sample: NativeTensor, timestep: number): Promise<NativeTensor>;
  step(modelOutput: NativeTensor, timestep: number, sample: NativeTensor, options?: NativeStepOptions): Promise<NativeStepResult>;
  addNoise(originalSamples: NativeTensor, noise: NativeTensor, timesteps: NativeTensor): Promise<NativeTensor>;
  getVelocity(sample: NativeTensor, noise: NativeTensor, timesteps: NativeTensor): Promise<NativeTensor>;
  /** alpha² / sigma² at integer training timesteps (float32). */
  snr(timesteps: NativeTensor): Promise<NativeTensor>;
  dispose(): void;
}

export interface NativeSchedulerStatic {
  create(config: NativeSchedulerConfig): Promise<NativeScheduler>;
}

/** A seedable CPU random generator. */
export interface NativeGenerator {
  readonly initialSeed: bigint;
  readonly disposed: boolean;
  /** Queued on the compute thread, after the work already submitted. */
  manualSeed(seed: number | bigint): Promise<void>;
  /** The full state as a uint8 tensor (a copy). */
  getState(): Promise<NativeTensor>;
  setState(state: NativeTensor): Promise<void>;
  dispose(): void;
}

export interface NativeGeneratorStatic {
  new (seed: number | bigint): NativeGenerator;
}

export interface NativeTrainerConfig {
  /** `rows`: only these rows (dim 0) train, the others are restored bit for bit after each update (textual inversion). */
  trainable: Array<{ name: string; lrMultiplier: number; weightDecay: boolean; rows?: number[] }>;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** <= 0: no clipping. */
  maxGradNorm?: number;
  predictionType: 'epsilon' | 'v_prediction' | 'sample';
  /** [num_train_timesteps] from the noise scheduler. */
  alphasCumprod: NativeTensor;
  timestepMin?: number;
  timestepMax?: number;
  minSnrGamma?: number;
  noiseOffset?: number;
  inputPerturbation?: number;
  seed: number;
  ema: boolean;
  emaDecay?: number;
  emaMinDecay?: number;
  emaInvGamma?: number;
  emaPower?: number;
  emaUpdateAfterStep?: number;
  emaUpdateEvery?: number;
  emaWarmup?: boolean;
  emaOnCpu?: boolean;
  mixedPrecision: 'no' | 'bf16' | 'fp16';
  /** The conditioning model's slots are named `<conditioningPrefix><name>` in `trainable`, the optimizer state and EMA (default "text_encoder."). */
  conditioningPrefix?: string;
  /** clip skip of the conditioning model's output (0: its last hidden state). */
  conditioningClipSkip?: number;
}

export interface NativeMicroBatch {
  /** [B, C, H, W] clean samples. */
  pixels: NativeTensor;
  classLabels?: NativeTensor;
  encoderHiddenStates?: NativeTensor;
  /** [B, T] token ids instead of encoderHiddenStates: the trainer's conditioning model encodes them inside the step's graph. */
  inputIds?: NativeTensor;
  /** Global index of each sample: its noise and timestep derive from (seed, step, index). */
  sampleIndices: number[];
  /** The optimizer step (0-based) this micro-batch belongs to. */
  step: number;
  /** Samples in the whole optimizer step, over all its micro-batches. */
  totalSamples: number;
  /** Divides the loss sum instead of totalSamples (data-parallel: global samples ÷ world size). */
  lossDivisor?: number;
  /** Each sample's weight in the loss sum (default 1 each); with weights, totalSamples may count fewer samples than the batch holds. */
  lossWeights?: number[];
}

export interface NativeTrainer {
  readonly disposed: boolean;
  accumulate(batch: NativeMicroBatch): Promise<{ lossSum: number; samples: number; finite: boolean }>;
  step(lr: number): Promise<{ gradNorm: number; skipped: boolean; optimizerSteps: number; emaDecay: number; lossScale: number }>;
  validationLoss(batch: {
    pixels: NativeTensor;
    classLabels?: NativeTensor;
    encoderHiddenStates?: NativeTensor;
    inputIds?: NativeTensor;
    sampleIndices: number[];
    seed: number;
    timesteps: number[];
  }): Promise<number>;
  optimizerState(): Promise<NativeNamedTensors>;
  loadOptimizerState(names: string[], tensors: NativeTensor[], optimizerSteps: number): Promise<void>;
  emaWeights(): Promise<NativeNamedTensors>;
  loadEmaWeights(names: string[], tensors: NativeTensor[], updates: number): Promise<void>;
  counters(): Promise<{ optimizerSteps: number; emaUpdates: number; lossScale: number }>;
  setLossScale(scale: number): Promise<void>;
  /** Data-parallel: broadcasts rank 0's trainable (and EMA) weights, then all-reduces every step's gradients; null detaches. */
  setProcessGroup(group: NativeProcessGroup | null): Promise<void>;
  dispose(): void;
}

export interface NativeTrainerStatic {
  /** `conditioning`: a model run inside each step on the batches' inputIds, whose slots may train too. */
  create(unet: NativeUNet, config: NativeTrainerConfig, conditioning?: NativeCLIPTextModel): Promise<NativeTrainer>;
}

export interface NativeAddon {
  NativeTrainer: NativeTrainerStatic;
  NativeTensor: NativeTensorStatic;
  NativeScheduler: NativeSchedulerStatic;
  NativeGenerator: NativeGeneratorStatic;
  NativeUNet: NativeUNetStatic;
  NativeAutoencoderKL: NativeAutoencoderKLStatic;
  NativeVaeTrainer: NativeVaeTrainerStatic;
  NativeCLIPTextModel: NativeCLIPTextModelStatic;
  runtimeInfo(): NativeRuntimeInfo;
  /** Sets torch's intra-op threads on the compute thread; resolves to the count in effect. */
  setThreads(threads: number): Promise<number>;
  /** Returns the CPU cache's kept blocks to the OS and restarts its high-water mark. */
  releaseCpuCache(): void;
  getThreads(): Promise<number>;
  gemmBenchmark(options: NativeGemmOptions): Promise<NativeGemmResult>;
  /** Jobs submitted to the compute thread and not yet completed. */
  pendingJobs(): number;
  /** Blocks until every compute thread of the process is idle and stopped (process 'exit' only). */
  prepareForExit(): void;
  /** torch.cat(tensors, dim). */
  concat(tensors: NativeTensor[], dim: number): Promise<NativeTensor>;
  /** N(0, 1) float32 noise, drawn on the CPU from the generator when given, then moved to `device`. */
  randn(shape: readonly number[], device: string, generator?: NativeGenerator): Promise<NativeTensor>;
  /** (u, c) = output.chunk(2) along the batch; u + scale·(c − u). */
  classifierFreeGuidance(output: NativeTensor, guidanceScale: number): Promise<NativeTensor>;
  /** tensor · factor. */
  scale(tensor: NativeTensor, factor: number): Promise<NativeTensor>;
  /** (mean + exp(½·clamp(logvar, −30, 20))·noise)·factor. */
  gaussianSample(mean: NativeTensor, logvar: NativeTensor, noise: NativeTensor, factor: number): Promise<NativeTensor>;
  /** A decoded image batch, uint8 [N, H, W, C] (copied at the call), as float32 [N, C, H, W] in [-1, 1]. */
  imagesToTensor(pixels: Uint8Array, shape: number[]): Promise<NativeTensor>;
  NativeProcessGroup: NativeProcessGroupStatic;
  /** Which c10d backends this build of the addon has. */
  distCapabilities(): { gloo: boolean; nccl: boolean };
}

export interface NativeProcessGroupOptions {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  /** A rendezvous or collective waiting longer than this fails with an error naming the rank. */
  timeoutMs: number;
  /** Default "auto": NCCL for CUDA tensors where the build has it, else Gloo. */
  backend?: 'auto' | 'gloo' | 'nccl';
  /** Where the trained tensors live (picks the backend under "auto"). */
  device?: string;
  /** Gradients travel in flat buckets of at most this many bytes (default 25 MiB). */
  bucketBytes?: number;
}

export interface NativeProcessGroupCounters {
  /** Gradient elements handed to all-reduce so far (trainable parameters only). */
  gradientElements: number;
  gradientAllreduces: number;
  broadcastElements: number;
  scalarAllreduces: number;
}

/** A c10d process group; every method runs on the compute thread, in order with training work. */
export interface NativeProcessGroup {
  readonly disposed: boolean;
  /** The rendezvous: resolves once all ranks joined. */
  connect(): Promise<void>;
  /** Element-wise sums over the ranks. */
  allreduceSum(values: number[]): Promise<number[]>;
  barrier(): Promise<void>;
  shutdown(): Promise<void>;
  counters(): Promise<NativeProcessGroupCounters>;
  /** "gloo" or "nccl" once connected. */
  backend(): Promise<string>;
  dispose(): void;
}

export interface NativeProcessGroupStatic {
  new (options: NativeProcessGroupOptions): NativeProcessGroup;
}
