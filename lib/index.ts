/**
 * difftune's public API: re-exports only. Importing it does not load the native addon.
 *
 * What a user of the package needs: tensors and runtime facts, state dicts and safetensors files, the model
 * handles with their loaders and configs, schedulers, datasets and the loader, freeze planning, LoRA files,
 * fine-tuning and its recipe, sampling and text-to-image, single-file conversion, and the errors. Everything
 * else in lib/ (conformance runners, the demo and transfer study, the benchmark harness, the data-parallel
 * machinery, native ops, parsers and helpers) is internal: the tests and scripts import it by path, and it
 * may change without notice. test/unit/public-api.test.ts holds this list against the README's imports.
 */

// Errors: every one difftune raises is a DifftuneError with a code.
export * from './errors';

// Tensors, dtypes, the runtime.
export { Tensor, type TensorOptions, type ReadOptions } from './native/tensor';
export { DTYPES, DTYPE_BYTES, isDType, type DType, type ComputeDType } from './native/dtype';
export { runtimeInfo, setThreads, type RuntimeInfo } from './native/runtime';
export { isNativeLoaded } from './native/load';
export { Generator } from './native/generator';

// State dicts and safetensors files.
export { loadStateDict, saveStateDict, disposeStateDict, type StateDict, type LoadStateDictOptions } from './checkpoint/state-dict';
export {
  SafetensorsFile,
  writeSafetensors,
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

// Single-file (CompVis / LDM) Stable Diffusion checkpoints ⇄ diffusers folders.
export {
  loadLdmSingleFile,
  saveLdmSingleFile,
  convertLdmSingleFileToFolder,
  writeLdmSingleFileFromFolder,
  readDiffusersComponents,
  readSingleFileKept,
  type RawTensor,
  type RawStateDict,
  type DiffusersComponents,
  type LdmLoadResult,
  type SingleFileOptions,
  type SaveSingleFileOptions,
  type LdmConversionResult,
  type LdmSingleFileWritten,
} from './checkpoint/ldm-single-file';

// Models: the handles, their loaders and their configs.
export { loadUNet, UNet, type UNetOptions, type UNetRuntimeOptions, type LoadUNetOptions, type ForwardOptions, type BackwardResult } from './models/unet';
export type { UNetConfig, UNet2DConfig, UNet2DConditionConfig } from './config/unet';
export { growUNet, type GrowOptions } from './models/grow';
export { growModelFolder, type GrownFolder } from './models/grow-folder';
export { AutoencoderKL, loadVae, type LatentDistribution, type LoadVaeOptions, type VaeBackwardResult } from './models/vae';
export type { AutoencoderKLConfig } from './config/vae';
export {
  CLIPTextModel,
  loadTextEncoder,
  type TextEncodeOptions,
  type TextEncoderOutput,
  type TextEncoderBackwardResult,
  type LoadTextEncoderOptions,
} from './models/clip-text';
export type { CLIPTextConfig } from './config/clip-text';
export {
  CLIPTokenizer,
  type EncodeOptions,
  type Encoding,
  type BatchEncoding,
  type LoadTokenizerOptions,
  type TokenizerOverrides,
} from './text/clip-tokenizer';
export { loadStableDiffusion, type StableDiffusion, type LoadStableDiffusionOptions } from './models/stable-diffusion';
export { readModelIndex, StableDiffusionIndex, type ModelIndexFile, type ComponentSpec, type StableDiffusionComponent } from './models/model-index';

// LoRA files (PEFT/diffusers and kohya layouts).
export {
  applyLoraFile,
  readLoraFile,
  saveLoraFile,
  loraTargetModules,
  LORA_WEIGHTS,
  type LoraOptions,
  type LoraEntry,
  type LoraModel,
  type LoraState,
} from './models/lora';
export { type LoraLayout } from './models/lora-layouts';

// Textual inversion embeddings (diffusers' learned_embeds.safetensors, A1111's safetensors).
export {
  loadTextualInversion,
  readTextualInversionFile,
  saveTextualInversionFile,
  LEARNED_EMBEDS,
  type TextualInversionEmbedding,
} from './models/textual-inversion';

// Schedulers.
export { Scheduler, loadScheduler, type SchedulerOptions, type StepOptions, type StepOutput, type TimestepDType } from './schedulers/scheduler';
export {
  SCHEDULER_CLASSES,
  SCHEDULER_SHORT_NAMES,
  resolveSchedulerName,
  type SchedulerClassName,
  type SchedulerConfig,
  type DDPMSchedulerConfig,
  type DDIMSchedulerConfig,
  type EulerDiscreteSchedulerConfig,
  type DPMSolverMultistepSchedulerConfig,
  type PNDMSchedulerConfig,
  type EulerAncestralDiscreteSchedulerConfig,
  type LMSDiscreteSchedulerConfig,
  type HeunDiscreteSchedulerConfig,
  type KDPM2DiscreteSchedulerConfig,
  type KDPM2AncestralDiscreteSchedulerConfig,
  type UniPCMultistepSchedulerConfig,
  type DEISMultistepSchedulerConfig,
  type DPMSolverSinglestepSchedulerConfig,
} from './config/scheduler';

// Datasets and the loader.
export { createDataset, Dataset, type SampleInfo, type CreateDatasetHooks } from './data/dataset';
export { DataLoader, type Batch, type RawBatch, type LoaderState, type LoaderOptions } from './data/loader';
export type { DatasetItem, ImageSource, ScanProgress, SkippedFile } from './data/item';
export type { DataOptions, DataOptionsInput, DataSource, Interpolation } from './config/data';

// Freeze planning: which parameters train.
export {
  planFreeze,
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
export { PRESET_NAMES, type FreezeOptions, type FreezeOptionsInput, type PresetName } from './config/freeze';

// Fine-tuning and its recipe.
export { finetune, planRecipe, prepareRecipe, type FinetuneOptions, type FinetuneProgress, type FinetuneResult } from './train/finetune';
export {
  trainVae,
  saveTrainedVae,
  DEFAULT_KL_WEIGHT,
  type TrainVaeOptions,
  type TrainVaeResult,
  type VaeStepRecord,
  type VaeMeasure,
  type VaeReconstructionLoss,
} from './train/vae-training';
export { recipeSchema, parseRecipe, applyOverrides, type Recipe } from './config/recipe';
export type { LrScheduleName, LrScheduleInput } from './config/lr-schedule';

// Sampling and text-to-image.
export { sample, type SampleOptions } from './sample/pipeline';
export { txt2img, type Txt2ImgOptions, type Txt2ImgResult, type StepTrace } from './sample/txt2img';
export { img2img, type Img2ImgOptions, type Img2ImgResult, type Img2ImgStart } from './sample/img2img';
export { toImages, writeGrid, type Images } from './sample/image';
