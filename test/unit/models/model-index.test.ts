/**
 * model_index.json: the SD 1.x fixture folder and an SD 2.x-style folder (DDIM, v-prediction, pad "!")
 * resolve their five components; a missing, absent or unsupported component is named.
 */
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseSchedulerConfigText } from '../../../lib/config/scheduler';
import { ConfigError } from '../../../lib/errors';
import { parseModelIndex, readModelIndex, STABLE_DIFFUSION_COMPONENT_NAMES } from '../../../lib/models/model-index';
import { CLIPTokenizer } from '../../../lib/text/clip-tokenizer';
import { useTempDir } from '../../helpers/temp-dir';

const SD1 = path.join(__dirname, '../../fixtures/diffusers/sd-pipeline-tiny');

/** stabilityai/stable-diffusion-2-1's model_index.json and scheduler config. */
const SD2_INDEX = {
  _class_name: 'StableDiffusionPipeline',
  _diffusers_version: '0.8.0',
  feature_extractor: ['transformers', 'CLIPImageProcessor'],
  requires_safety_checker: false,
  safety_checker: [null, null],
  scheduler: ['diffusers', 'DDIMScheduler'],
  text_encoder: ['transformers', 'CLIPTextModel'],
  tokenizer: ['transformers', 'CLIPTokenizer'],
  unet: ['diffusers', 'UNet2DConditionModel'],
  vae: ['diffusers', 'AutoencoderKL'],
};
const SD2_SCHEDULER = {
  _class_name: 'DDIMScheduler',
  _diffusers_version: '0.8.0',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  clip_sample: false,
  num_train_timesteps: 1000,
  prediction_type: 'v_prediction',
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
};

describe('model_index.json', () => {
  const tmp = useTempDir('model-index');
  function copyOfSd1(name: string, index?: Record<string, unknown>): string {
    const dir = path.join(tmp(), name);
    cpSync(SD1, dir, { recursive: true, filter: (src) => !src.endsWith('.safetensors') });
    if (index !== undefined) writeFileSync(path.join(dir, 'model_index.json'), JSON.stringify(index));
    return dir;
  }
  const sd1Index = (): Record<string, unknown> => JSON.parse(readFileSync(path.join(SD1, 'model_index.json'), 'utf8')) as Record<string, unknown>;

  it('resolves the SD 1.x fixture folder', () => {
    const index = readModelIndex(SD1);
    expect(index.className).toBe('StableDiffusionPipeline');
    for (const name of STABLE_DIFFUSION_COMPONENT_NAMES) expect(index.componentDir(name)).toBe(path.join(SD1, name));
    expect(index.componentClass('scheduler')).toBe('PNDMScheduler');
    expect(index.file.components.get('safety_checker')).toBeNull();
    expect(index.file.flags).toEqual({ requires_safety_checker: false });
  });

  it('resolves an SD 2.x folder: DDIM with v-prediction, pad token "!"', async () => {
    const dir = copyOfSd1('sd2', SD2_INDEX);
    writeFileSync(path.join(dir, 'scheduler/scheduler_config.json'), JSON.stringify(SD2_SCHEDULER));
    writeFileSync(path.join(dir, 'tokenizer/special_tokens_map.json'), JSON.stringify({ bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', pad_token: '!', unk_token: '<|endoftext|>' }));
    const index = readModelIndex(dir);
    expect(index.componentClass('scheduler')).toBe('DDIMScheduler');
    const scheduler = parseSchedulerConfigText(readFileSync(path.join(index.componentDir('scheduler'), 'scheduler_config.json'), 'utf8'), 'scheduler_config.json');
    expect(scheduler.config.values.prediction_type).toBe('v_prediction');
    const tokenizer = await CLIPTokenizer.load(index.componentDir('tokenizer'));
    expect(tokenizer.padId).toBe(0);
  });

  it('accepts CLIPTokenizerFast when its folder holds vocab.json and merges.txt', () => {
    const dir = copyOfSd1('fast', { ...sd1Index(), tokenizer: ['transformers', 'CLIPTokenizerFast'] });
    expect(readModelIndex(dir).componentClass('tokenizer')).toBe('CLIPTokenizerFast');
    rmSync(path.join(dir, 'tokenizer/merges.txt'));
    expect(() => readModelIndex(dir)).toThrow(/tokenizer: .* has no merges\.txt/);
  });

  it('names every missing or unsupported component in one error', () => {
    const dir = copyOfSd1('bad', { ...sd1Index(), vae: [null, null], scheduler: ['diffusers', 'LCMScheduler'], text_encoder: undefined });
    let message = '';
    try {
      readModelIndex(dir);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    expect(message).toMatch(/vae: \[null, null\] \(absent\), but a Stable Diffusion pipeline needs a AutoencoderKL/);
    expect(message).toMatch(/scheduler: class "LCMScheduler" is not supported \(supported: DDPMScheduler, DDIMScheduler/);
    expect(message).toMatch(/text_encoder: not in model_index\.json/);
    expect(message).not.toMatch(/unet:/);
  });

  it('accepts a scheduler class it lacks when the caller picks another class to convert its config to', () => {
    const dir = copyOfSd1('lcm', { ...sd1Index(), scheduler: ['diffusers', 'LCMScheduler'] });
    expect(() => readModelIndex(dir)).toThrow(/scheduler: class "LCMScheduler" is not supported .*; pick a supported class to convert its config to: --scheduler <name>/);
    expect(readModelIndex(dir, { schedulerClass: 'EulerAncestralDiscreteScheduler' }).componentClass('scheduler')).toBe('LCMScheduler');
  });

  it('names a missing component folder or config file', () => {
    const dir = copyOfSd1('nofolder');
    rmSync(path.join(dir, 'unet'), { recursive: true });
    rmSync(path.join(dir, 'scheduler/scheduler_config.json'));
    expect(() => readModelIndex(dir)).toThrow(/unet: the folder .*unet is missing[\s\S]*scheduler: .* has no scheduler_config\.json/);
  });

  it('refuses malformed files', () => {
    expect(() => parseModelIndex({ unet: ['diffusers', 'UNet2DConditionModel'] }, 'm.json')).toThrow(/m\.json key "_class_name"/);
    expect(() => parseModelIndex({ _class_name: 'P', unet: ['diffusers'] }, 'm.json')).toThrow(/m\.json key "unet": expected a component/);
    expect(() => parseModelIndex({ _class_name: 'P', unet: ['diffusers', null] }, 'm.json')).toThrow(/key "unet"/);
    const dir = path.join(tmp(), 'empty');
    mkdirSync(dir);
    expect(() => readModelIndex(dir)).toThrow(/cannot read model_index\.json/);
  });
});
