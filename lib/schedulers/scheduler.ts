/**
 * The public noise scheduler: diffusers' DDPM, DDIM, Euler, DPM-Solver multistep, PNDM, Euler ancestral,
 * LMS, Heun, KDPM2 (and ancestral), UniPC, DEIS and DPM-Solver singlestep schedulers, computed natively
 * with diffusers' numerics, loaded from and saved to `scheduler_config.json`.
 *
 * ```ts
 * const scheduler = await loadScheduler('my-model/scheduler');
 * await scheduler.setTimesteps(25);
 * let x = await scheduler.scaleInitialNoise(noise);
 * for (const t of scheduler.timesteps) {
 *   const input = await scheduler.scaleModelInput(x, t);
 *   const { prevSample } = await scheduler.step(await unet(input, t), t, x, { generator });
 *   x = prevSample;
 * }
 * ```
 * Multistep state (previous model outputs, PNDM's history, the step index) lives in the instance;
 * setTimesteps() resets it, so one instance runs one sampling loop at a time. Heun and KDPM2 evaluate the
 * model twice per step: their timesteps repeat (or alternate with midpoints), and a loop simply runs
 * every entry, as diffusers' pipelines do.
 */
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import {
  formatSchedulerConfig,
  parseSchedulerConfig,
  parseSchedulerConfigText,
  schedulerConfigToJson,
  type ParsedSchedulerConfig,
  type SchedulerClassName,
  type SchedulerConfig,
} from '../config/scheduler';
import type { JsonValue } from '../config/json';
import { ConfigError, DisposedError, expected } from '../errors';
import type { Generator } from '../native/generator';
import { callAsync, loadNative } from '../native/load';
import { checkTensor, Tensor } from '../native/tensor';
import type { NativeSchedule, NativeScheduler, NativeStepOptions } from '../native/types';
import { writeAll, writeFileAtomically } from '../util/atomic-write';
import { createFolder } from '../util/output-folder';
import { toNativeSchedulerConfig } from './native-config';

export const SCHEDULER_CONFIG_FILE = 'scheduler_config.json';

export interface SchedulerOptions {
  /** Build this class from the config instead of its `_class_name` (like diffusers' from_config). */
  className?: SchedulerClassName;
}

export interface StepOptions {
  /**
   * Where random noise is drawn from (DDPM, DDIM with eta > 0, the SDE DPM-Solvers, Euler churn, Euler ancestral,
   * KDPM2 ancestral): one draw of the model output's shape per step that needs one, as diffusers draws it.
   */
  generator?: Generator;
  /** DDIM: 0 = deterministic DDIM, 1 = DDPM-like. */
  eta?: number;
  /** DDIM: recompute the noise from the clipped x0. */
  useClippedModelOutput?: boolean;
  /** Use this noise instead of drawing it (same shape as the model output). Not with `generator`. */
  varianceNoise?: Tensor;
  /** Euler churn (Karras et al. 2022): amount, sigma range it applies to, noise scale. */
  sChurn?: number;
  sTmin?: number;
  sTmax?: number;
  sNoise?: number;
}

/** What diffusers' scheduler.timesteps holds: int64, float32, or float64 (LMS, Heun, KDPM2 with Karras sigmas). */
export type TimestepDType = 'int64' | 'float32' | 'float64';

export interface StepOutput {
  /** x_{t−1}: the sample to pass to the next step. */
  prevSample: Tensor;
  /** The model's estimate of the clean sample (DDPM, DDIM and the sigma-space schedulers: Euler, Euler ancestral, LMS, Heun, KDPM2). */
  predOriginalSample?: Tensor;
}

interface Schedule {
  timesteps: number[];
  timestepDType: TimestepDType;
  sigmas: number[] | undefined;
  initNoiseSigma: number;
  numInferenceSteps: number;
}

function toNumbers(array: ArrayLike<number | bigint>): number[] {
  return Array.from(array, (v) => Number(v));
}

async function readSchedule(native: NativeSchedule): Promise<Schedule> {
  const timesteps = new Tensor(native.timesteps);
  const sigmas = native.sigmas === null ? undefined : new Tensor(native.sigmas);
  try {
    return {
      timesteps: toNumbers(await timesteps.data()),
      timestepDType: timesteps.dtype === 'int64' || timesteps.dtype === 'float64' ? timesteps.dtype : 'float32',
      sigmas: sigmas === undefined ? undefined : toNumbers(await sigmas.data()),
      initNoiseSigma: native.initNoiseSigma,
      numInferenceSteps: native.numInferenceSteps,
    };
  } finally {
    timesteps.dispose();
    sigmas?.dispose();
  }
}

export class Scheduler {
  #native: NativeScheduler | undefined;
  #schedule: Schedule;
  readonly #parsed: ParsedSchedulerConfig;
  /** Where the config came from (a file path, or "<config>"), for messages. */
  readonly source: string;

  private constructor(native: NativeScheduler, schedule: Schedule, parsed: ParsedSchedulerConfig, source: string) {
    this.#native = native;
    this.#schedule = schedule;
    this.#parsed = parsed;
    this.source = source;
  }

  /**
   * A scheduler from a diffusers config object (as in `scheduler_config.json`; missing keys take
   * diffusers' defaults). Unknown keys are reported in `warnings`; unsupported values throw ConfigError.
   */
  static async fromConfig(config: unknown, options: SchedulerOptions & { source?: string } = {}): Promise<Scheduler> {
    const source = options.source ?? '<config>';
    return Scheduler.fromParsed(parseSchedulerConfig(config, source, options), source);
  }

  /** @internal A scheduler from an already validated config. */
  static async fromParsed(parsed: ParsedSchedulerConfig, source: string): Promise<Scheduler> {
    const addon = loadNative();
    const nativeConfig = toNativeSchedulerConfig(parsed.config);
    const native = await callAsync(() => addon.NativeScheduler.create(nativeConfig));
    try {
      const schedule = await readSchedule(await callAsync(() => native.schedule()));
      return new Scheduler(native, schedule, parsed, source);
    } catch (error) {
      native.dispose();
      throw error;
    }
  }

  private live(): NativeScheduler {
    if (this.#native === undefined || this.#native.disposed) throw new DisposedError('Scheduler');
    return this.#native;
  }

  get className(): SchedulerClassName {
    return this.#parsed.config.className;
  }

  /** The validated config, every option filled in (diffusers' key names). */
  get config(): Readonly<SchedulerConfig['values']> {
    return this.#parsed.config.values;
  }

  /** The tagged config, for code that switches on the class. */
  get taggedConfig(): SchedulerConfig {
    return this.#parsed.config;
  }

  /** Unknown keys of the source config, one line each. */
  get warnings(): readonly string[] {
    return this.#parsed.warnings;
  }

  /**
   * diffusers' `scheduler.order`: model evaluations per inference step (2 for Heun and KDPM2, whose timesteps
   * repeat or interleave midpoints; 1 otherwise). A pipeline that starts partway (img2img) skips
   * `order ×` the steps it cuts.
   */
  get order(): 1 | 2 {
    const c = this.className;
    return c === 'HeunDiscreteScheduler' || c === 'KDPM2DiscreteScheduler' || c === 'KDPM2AncestralDiscreteScheduler' ? 2 : 1;
  }

  /** The inference timesteps, in the order to run them (PNDM, Heun and KDPM2 repeat some or interleave midpoints). */
  get timesteps(): readonly number[] {
    return this.#schedule.timesteps;
  }

  /** What diffusers' timesteps hold: int64 (DDPM, DDIM, PNDM, the DPM-Solvers, UniPC, DEIS), float32 (the sigma-space schedulers), float64 (LMS, Heun, KDPM2 with Karras sigmas). */
  get timestepDType(): TimestepDType {
    return this.#schedule.timestepDType;
  }

  /**
   * A 0-d tensor holding `timestep` in the schedule's dtype (int64, float32 or float64), as diffusers' loops pass
   * `t` from `scheduler.timesteps` to the model.
   */
  timestepTensor(timestep: number): Tensor {
    checkTimestep(timestep);
    if (this.timestepDType === 'float32') return Tensor.from(Float32Array.of(timestep), []);
    if (this.timestepDType === 'float64') return Tensor.from(Float64Array.of(timestep), []);
    if (!Number.isSafeInteger(timestep)) throw expected('an integer timestep (this schedule is int64)', 'timestep', timestep);
    return Tensor.from(BigInt64Array.of(BigInt(timestep)), []);
  }

  /** Every class but DDPM, DDIM and PNDM: the noise level of each timestep (as diffusers' scheduler.sigmas). */
  get sigmas(): readonly number[] | undefined {
    return this.#schedule.sigmas;
  }

  /** Scale of the initial noise: x_T = noise · initNoiseSigma. */
  get initNoiseSigma(): number {
    return this.#schedule.initNoiseSigma;
  }

  /** 0 until setTimesteps(). */
  get numInferenceSteps(): number {
    return this.#schedule.numInferenceSteps;
  }

  get numTrainTimesteps(): number {
    return this.#parsed.config.values.num_train_timesteps;
  }

  get disposed(): boolean {
    return this.#native === undefined || this.#native.disposed;
  }

  /** Chooses the inference timesteps and resets the multistep state. */
  async setTimesteps(numInferenceSteps: number): Promise<void> {
    const max = this.numTrainTimesteps;
    if (!Number.isSafeInteger(numInferenceSteps) || numInferenceSteps < 1 || numInferenceSteps > max) {
      throw expected(`an integer in [1, ${max}] (num_train_timesteps)`, 'numInferenceSteps', numInferenceSteps);
    }
    const native = this.live();
    this.#schedule = await readSchedule(await callAsync(() => native.setTimesteps(numInferenceSteps)));
  }

  /** The starting sample of a sampling loop: noise · initNoiseSigma (call after setTimesteps). */
  async scaleInitialNoise(noise: Tensor): Promise<Tensor> {
    const native = this.live();
    const handle = checkTensor(noise, 'noise').native;
    return new Tensor(await callAsync(() => native.scaleInitialNoise(handle)));
  }

  /** The model input for timestep t (the sigma-space schedulers divide by sqrt(σ² + 1); the others return the sample). */
  async scaleModelInput(sample: Tensor, timestep: number): Promise<Tensor> {
    const native = this.live();
    checkTimestep(timestep);
    const handle = checkTensor(sample, 'sample').native;
    return new Tensor(await callAsync(() => native.scaleModelInput(handle, timestep)));
  }

  /** One reverse-diffusion step from timestep t. */
  async step(modelOutput: Tensor, timestep: number, sample: Tensor, options: StepOptions = {}): Promise<StepOutput> {
    const native = this.live();
    checkTimestep(timestep);
    const nativeOptions = toNativeStepOptions(options);
    const [output, input] = [checkTensor(modelOutput, 'modelOutput').native, checkTensor(sample, 'sample').native];
    const result = await callAsync(() => native.step(output, timestep, input, nativeOptions));
    const out: StepOutput = { prevSample: new Tensor(result.prevSample) };
    if (result.predOriginalSample !== undefined) out.predOriginalSample = new Tensor(result.predOriginalSample);
    return out;
  }

  /**
   * The forward process q(x_t | x_0): sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·noise for DDPM, DDIM and PNDM
   * (integer training timesteps); the others look each timestep up in their schedule (x0 + σ·noise for the
   * sigma-space schedulers, α·x0 + σ·noise for the DPM-Solvers, UniPC and DEIS).
   * One timestep per batch item, or one for all.
   */
  async addNoise(originalSamples: Tensor, noise: Tensor, timesteps: Tensor | readonly number[]): Promise<Tensor> {
    const native = this.live();
    const [x0, n] = [checkTensor(originalSamples, 'originalSamples').native, checkTensor(noise, 'noise').native];
    return this.withTimesteps(timesteps, async (t) => new Tensor(await callAsync(() => native.addNoise(x0, n, t.native))));
  }

  /** The v-prediction target sqrt(ᾱ)·noise − sqrt(1 − ᾱ)·x0 (DDPM, DDIM, Euler). */
  async getVelocity(sample: Tensor, noise: Tensor, timesteps: Tensor | readonly number[]): Promise<Tensor> {
    const native = this.live();
    const [x, n] = [checkTensor(sample, 'sample').native, checkTensor(noise, 'noise').native];
    return this.withTimesteps(timesteps, async (t) => new Tensor(await callAsync(() => native.getVelocity(x, n, t.native))));
  }

  /** Signal-to-noise ratio ᾱ / (1 − ᾱ) at integer training timesteps, for min-SNR loss weighting. */
  async snr(timesteps: Tensor | readonly number[]): Promise<Tensor> {
    const native = this.live();
    return this.withTimesteps(timesteps, async (t) => new Tensor(await callAsync(() => native.snr(t.native))), 'int64');
  }

  /** The training betas, float32 [num_train_timesteps]. */
  async betas(): Promise<Tensor> {
    const { betas, alphasCumprod } = await callAsync(() => this.live().tables());
    alphasCumprod.dispose();
    return new Tensor(betas);
  }

  /** ᾱ_t = ∏(1 − β), float32 [num_train_timesteps]. */
  async alphasCumprod(): Promise<Tensor> {
    const { betas, alphasCumprod } = await callAsync(() => this.live().tables());
    betas.dispose();
    return new Tensor(alphasCumprod);
  }

  /** The config as diffusers' save_config writes it. */
  toJSON(): Record<string, JsonValue> {
    return schedulerConfigToJson(this.#parsed);
  }

  /** Writes `<dir>/scheduler_config.json` atomically (the folder is created if needed). */
  async save(dir: string): Promise<string> {
    if (typeof dir !== 'string' || dir.length === 0) throw expected('a folder path', 'dir', dir);
    await createFolder(dir);
    const target = nodePath.join(dir, SCHEDULER_CONFIG_FILE);
    const bytes = Buffer.from(formatSchedulerConfig(this.#parsed), 'utf8');
    await writeFileAtomically(target, (handle) => writeAll(handle, bytes));
    return target;
  }

  dispose(): void {
    this.#native?.dispose();
    this.#native = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `${this.className}(${this.disposed ? 'disposed' : `${this.numInferenceSteps} steps`})`;
  }

  private async withTimesteps<T>(timesteps: Tensor | readonly number[], use: (t: Tensor) => Promise<T>, force?: 'int64'): Promise<T> {
    if (timesteps instanceof Tensor) return use(timesteps);
    if (!Array.isArray(timesteps) || timesteps.length === 0 || !timesteps.every((t) => typeof t === 'number' && Number.isFinite(t))) {
      throw expected('a Tensor or a non-empty array of finite numbers', 'timesteps', timesteps);
    }
    // A schedule of float timesteps is looked up with floats of its own dtype, so every listed value matches.
    const floats = force !== 'int64' && this.timestepDType !== 'int64';
    if (!floats && !timesteps.every((t) => Number.isSafeInteger(t))) throw expected('integer timesteps', 'timesteps', timesteps);
    const t = floats
      ? this.timestepDType === 'float64'
        ? Tensor.from(Float64Array.from(timesteps), [timesteps.length])
        : Tensor.from(Float32Array.from(timesteps), [timesteps.length])
      : Tensor.from(
          BigInt64Array.from(timesteps, (v: number) => BigInt(v)),
          [timesteps.length],
        );
    try {
      return await use(t);
    } finally {
      t.dispose();
    }
  }
}

function checkTimestep(timestep: unknown): asserts timestep is number {
  if (typeof timestep !== 'number' || !Number.isFinite(timestep)) throw expected('a finite number (one of scheduler.timesteps)', 'timestep', timestep);
}

function toNativeStepOptions(options: StepOptions): NativeStepOptions {
  if (typeof options !== 'object' || options === null) throw expected('an options object', 'options', options);
  const out: NativeStepOptions = {};
  if (options.generator !== undefined) out.generator = options.generator.native;
  if (options.varianceNoise !== undefined) out.varianceNoise = checkTensor(options.varianceNoise, 'options.varianceNoise').native;
  if (options.eta !== undefined) out.eta = options.eta;
  if (options.useClippedModelOutput !== undefined) out.useClippedModelOutput = options.useClippedModelOutput;
  if (options.sChurn !== undefined) out.sChurn = options.sChurn;
  if (options.sTmin !== undefined) out.sTmin = options.sTmin;
  if (options.sTmax !== undefined) out.sTmax = options.sTmax;
  if (options.sNoise !== undefined) out.sNoise = options.sNoise;
  return out;
}

/**
 * The config file of a scheduler: `dirOrFile` itself if it is a file, else `<dir>/scheduler_config.json`,
 * else `<dir>/scheduler/scheduler_config.json` (a whole pipeline folder).
 */
export async function resolveSchedulerConfigPath(dirOrFile: string): Promise<string> {
  if (typeof dirOrFile !== 'string' || dirOrFile.length === 0) throw expected('a file or folder path', 'dirOrFile', dirOrFile);
  const stat = await fs.stat(dirOrFile).catch(() => undefined);
  if (stat === undefined) throw new ConfigError(`${dirOrFile}: no such file or folder (expected a scheduler_config.json or a folder holding one)`);
  if (stat.isFile()) return dirOrFile;
  const tried = [nodePath.join(dirOrFile, SCHEDULER_CONFIG_FILE), nodePath.join(dirOrFile, 'scheduler', SCHEDULER_CONFIG_FILE)];
  for (const candidate of tried) {
    if ((await fs.stat(candidate).catch(() => undefined))?.isFile()) return candidate;
  }
  throw new ConfigError(`${dirOrFile}: no scheduler config found; tried ${tried.join(' and ')}`);
}

/** Loads a scheduler from a `scheduler_config.json`, its folder, or a pipeline folder. */
export async function loadScheduler(dirOrFile: string, options: SchedulerOptions = {}): Promise<Scheduler> {
  const file = await resolveSchedulerConfigPath(dirOrFile);
  const text = await fs.readFile(file, 'utf8');
  return Scheduler.fromParsed(parseSchedulerConfigText(text, file, options), file);
}
