/** difftune's public API: re-exports only. Importing it does not load the native addon. */
export * from './errors';
export { Tensor, type TensorOptions, type ReadOptions } from './native/tensor';
export { DTYPES, DTYPE_BYTES, isDType, type DType, type ComputeDType } from './native/dtype';
export { runtimeInfo, setThreads, gemmBenchmark, type RuntimeInfo, type GemmOptions } from './native/runtime';
export { isNativeLoaded } from './native/load';
export {
  SafetensorsFile,
  writeSafetensors,
  decodeTensorData,
  encodeTensorData,
  f16ToF32,
  f32ToF16,
  bf16ToF32,
  f32ToBf16,
  type DType as SafetensorsDType,
  type TensorInfo,
  type SafetensorsHeader,
  type TensorToWrite,
  type TensorsToWrite,
} from './checkpoint/safetensors';
export { loadStateDict, saveStateDict, disposeStateDict, type StateDict, type LoadStateDictOptions } from './checkpoint/state-dict';
export { parseLenientJson } from './config/json';
export { loadUNet, readUNetConfig, UNet, type UNetOptions, type UNetRuntimeOptions, type LoadUNetOptions, type ForwardOptions, type BackwardResult } from './models/unet';
export { growUNet, growUNetConfig, growUNetParts, growUNetWeights, type GrowOptions, type GrownUNet } from './models/grow';
export { growModelFolder, type GrownFolder } from './models/grow-folder';
export { parseUNetConfig, type UNetConfig, type UNet2DConfig, type UNet2DConditionConfig } from './config/unet';
export { AutoencoderKL, loadVae, VAE_WEIGHTS, type LatentDistribution, type LoadVaeOptions, type VaeBackwardResult } from './models/vae';
export { parseVaeConfig, vaeScaleFactor, type AutoencoderKLConfig } from './config/vae';
export { CLIPTextModel, loadTextEncoder, resolveTextEncoderWeights, TEXT_ENCODER_WEIGHTS, type TextEncodeOptions, type TextEncoderOutput, type TextEncoderBackwardResult, type LoadTextEncoderOptions } from './models/clip-text';
export { parseClipTextConfig, type CLIPTextConfig } from './config/clip-text';
export { Generator } from './native/generator';
export {
  Scheduler,
  loadScheduler,
  resolveSchedulerConfigPath,
  SCHEDULER_CONFIG_FILE,
  type SchedulerOptions,
  type StepOptions,
  type StepOutput,
} from './schedulers/scheduler';
export {
  SCHEDULER_CLASSES,
  SCHEDULER_SCHEMAS,
  parseSchedulerConfig,
  parseSchedulerConfigText,
  defaultSchedulerConfig,
  formatSchedulerConfig,
  schedulerConfigToJson,
  type SchedulerClassName,
  type SchedulerConfig,
  type ParsedSchedulerConfig,
  type DDPMSchedulerConfig,
  type DDIMSchedulerConfig,
  type EulerDiscreteSchedulerConfig,
  type DPMSolverMultistepSchedulerConfig,
  type PNDMSchedulerConfig,
} from './config/scheduler';
export { relError, type Check } from './conformance/compare';
export { TOLERANCES } from './conformance/tolerances';
export { CaseRegistry, type CaseRunner } from './conformance/registry';
export { FixtureSet, type FixtureCase } from './conformance/fixture-set';
export { defaultRegistry } from './conformance/default-registry';
export { runFixtureSet, findFixtureSets, type CaseReport, type SetReport } from './conformance/run';
export { createDataset, Dataset, type SampleInfo } from './data/dataset';
export { DataLoader, type Batch, type RawBatch, type LoaderState, type LoaderOptions } from './data/loader';
export { planThreads, type ThreadPlan, type ThreadRequest } from './data/threads';
export type { DatasetItem, ImageSource, ScanProgress, SkippedFile } from './data/item';
export { dataOptionsSchema, parseDataOptions, DATA_SOURCES, INTERPOLATIONS, type DataOptions, type DataOptionsInput, type DataSource, type Interpolation } from './config/data';
export { imagesToTensor } from './native/images';
export { compilePattern, REGEX_PREFIX, type CompiledPattern } from './config/patterns';
export { PRESETS, isPresetName, type PresetRule, type RuleAction } from './freeze/presets';
export { isBias, isNormParameter, isEmbeddingTable, defaultWeightDecay, topLevelBlock } from './freeze/param-kinds';
export {
  planFreeze,
  planLoraBase,
  type FreezePlan,
  type ParameterInfo,
  type PlannedParameter,
  type AppliedRule,
  type BlockSummary,
  type ParamGroupSummary,
  type MemoryEstimate,
  type PlanOptions,
} from './freeze/plan';
export { formatPlan } from './freeze/format';
export { freezeOptionsSchema, parseFreezeOptions, PRESET_NAMES, type FreezeOptions, type FreezeOptionsInput, type PresetName } from './config/freeze';
export { lrAt, lrMultiplierAt, makeLrSchedule, resolveLrSchedule, type LrScheduleOptions, type ResolvedLrSchedule } from './train/lr-schedule';
export { lrScheduleSchema, parseLrSchedule, LR_SCHEDULE_NAMES, LR_SCHEDULE_DEFAULTS, type LrScheduleName, type LrScheduleInput, type LrScheduleConfig } from './config/lr-schedule';
export { finetune, planRecipe, prepareRecipe, type FinetuneOptions, type FinetuneProgress, type FinetuneResult } from './train/finetune';
export { Trainer, type TrainerOptions, type TrainableParameter, type MicroBatch } from './train/trainer';
export { recipeSchema, parseRecipe, applyOverrides, type Recipe } from './config/recipe';
export { listCheckpoints, readCheckpointState, type CheckpointState } from './checkpoint/train-state';
export { concat, classifierFreeGuidance, gaussianSample, scale } from './native/ops';
export { sample, type SampleOptions } from './sample/pipeline';
export { txt2img, encodePrompts, tokenizePrompts, type Txt2ImgOptions, type Txt2ImgResult, type StepTrace } from './sample/txt2img';
export { loadStableDiffusion, type StableDiffusion, type LoadStableDiffusionOptions } from './models/stable-diffusion';
export { isTextToImageFolder } from './models/model-folder';
export { toImages, writeGrid, type Images } from './sample/image';
export { randn } from './native/ops';
export { loraOptionsSchema, loraTargetModules, loraParameterNames, readLoraFile, saveLoraFile, LORA_WEIGHTS, type LoraOptions, type LoraEntry } from './models/lora';
export { runTransferDemo, type DemoOptions, type DemoSummary } from './demo/transfer-demo';
export { runTransferStudy, defaultVariants, studyTable, type StudyRow, type StudyVariant } from './demo/transfer-study';
export { CLIPTokenizer, CLIP_MAX_LENGTH, type EncodeOptions, type Encoding, type BatchEncoding, type LoadTokenizerOptions, type TokenizerOverrides } from './text/clip-tokenizer';
export { readTokenizerFiles, type TokenizerFiles } from './text/tokenizer-files';
export {
  readModelIndex,
  parseModelIndex,
  StableDiffusionIndex,
  STABLE_DIFFUSION_COMPONENTS,
  MODEL_INDEX_FILE,
  type ModelIndexFile,
  type ComponentSpec,
  type StableDiffusionComponent,
} from './models/model-index';
export {
  loadLdmSingleFile,
  saveLdmSingleFile,
  fromLdmSingleFile,
  toLdmSingleFile,
  planLdmConversion,
  convertLdmSingleFileToFolder,
  readDiffusersComponents,
  isTrainingOnlyKey,
  type RawTensor,
  type RawStateDict,
  type DiffusersComponents,
  type LdmLoadResult,
  type SingleFileOptions,
} from './checkpoint/ldm-single-file';
export { ldmKeyTable, LDM_PREFIXES, type LdmKey, type LdmLayout, type LdmComponent } from './checkpoint/ldm-layout';
export { readLdmLayout } from './checkpoint/ldm-configs';
export { registerTokenizerCases } from './conformance/tokenizer-cases';
export { registerSingleFileCases } from './conformance/single-file-cases';
export { benchDataParallel, type DataParallelBenchOptions, type DataParallelBenchResult } from './bench/data-parallel';
export { joinDataParallel, type DataParallel } from './distributed/data-parallel';
export { ProcessGroup, distCapabilities, type ProcessGroupOptions, type ProcessGroupCounters } from './distributed/process-group';
export { readDistEnv, workerEnv, type DistEnv } from './distributed/env';
export { launchWorkers, parseLaunchArgs, type LaunchOptions } from './distributed/launch';
