// Sizes from configs alone: lower bounds that sit within 1% of real models, refusals before anything is
// allocated that name the config key or argument, and no refusal of real models on a 24 GB machine.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsFile } from '../../../lib/checkpoint/safetensors';
import { parseClipTextConfig } from '../../../lib/config/clip-text';
import { CLIP_TEXT_SIZE_CAPS, clipTextParameterCount, UNET_SIZE_CAPS, unetParameterCount, VAE_SIZE_CAPS, vaeParameterCount } from '../../../lib/config/model-size';
import { parseUNetConfig, type UNetConfig } from '../../../lib/config/unet';
import { parseVaeConfig } from '../../../lib/config/vae';
import { OutOfMemoryError } from '../../../lib/errors';
import { checkModelFits, checkUNetActivationsFit, formatByteCount } from '../../../lib/models/memory-check';
import { translateNativeError } from '../../../lib/native/load';

const FIXTURES = path.join(__dirname, '..', '..', 'fixtures', 'diffusers');
const GB24 = 24e9;

const unet = (raw: Record<string, unknown>): UNetConfig => parseUNetConfig({ _class_name: 'UNet2DConditionModel', ...raw }, 'config.json').config;
const SD15 = unet({ cross_attention_dim: 768 });
const SD21 = unet({ cross_attention_dim: 1024, attention_head_dim: [5, 10, 20, 20], use_linear_projection: true });
const SD_VAE = parseVaeConfig({ block_out_channels: [128, 256, 512, 512], down_block_types: Array(4).fill('DownEncoderBlock2D'), up_block_types: Array(4).fill('UpDecoderBlock2D'), layers_per_block: 2 }, 'vae').config;
const CLIP_L = parseClipTextConfig({ hidden_size: 768, intermediate_size: 3072, num_attention_heads: 12, num_hidden_layers: 12 }, 'te').config;
const OPENCLIP_H = parseClipTextConfig({ hidden_size: 1024, intermediate_size: 4096, num_attention_heads: 16, num_hidden_layers: 23, hidden_act: 'gelu' }, 'te').config;

async function numel(file: string): Promise<number> {
  const st = await SafetensorsFile.open(file);
  try {
    return st.names().reduce((sum, n) => sum + st.info(n).shape.reduce((a, b) => a * b, 1), 0);
  } finally {
    await st.close();
  }
}

test.each([
  ['SD 1.5 U-Net', unetParameterCount(SD15), 859_520_964],
  ['SD 2.1 U-Net', unetParameterCount(SD21), 865_910_724],
  ['SD VAE', vaeParameterCount(SD_VAE), 83_653_863],
  ['CLIP ViT-L/14 text', clipTextParameterCount(CLIP_L), 123_060_480],
  ['OpenCLIP ViT-H/14 text', clipTextParameterCount(OPENCLIP_H), 340_387_840],
])('%s: the estimate is a lower bound within 1%% of the real count', (_name, estimate, actual) => {
  expect(estimate).toBeLessThanOrEqual(actual);
  expect(estimate).toBeGreaterThan(0.99 * actual);
});

test.each(['unet2d-tiny', 'unet2d-classcond', 'unet2d-ddpmcifar-shape', 'unet2dcond-tiny', 'unet2dcond-classcond', 'unet2dcond-sd2ish', 'vae-tiny', 'clip-text-tiny'])(
  'fixture %s: the estimate from config.json never exceeds its weights, and is within 3%%',
  async (set) => {
    const raw = JSON.parse(fs.readFileSync(path.join(FIXTURES, set, 'config.json'), 'utf8')) as Record<string, unknown>;
    let estimate: number;
    let weights: string;
    if (set.startsWith('vae')) [estimate, weights] = [vaeParameterCount(parseVaeConfig(raw, set).config), 'diffusion_pytorch_model.safetensors'];
    else if (set.startsWith('clip')) [estimate, weights] = [clipTextParameterCount(parseClipTextConfig(raw, set).config), 'model.safetensors'];
    else [estimate, weights] = [unetParameterCount(parseUNetConfig(raw, set).config), 'diffusion_pytorch_model.safetensors'];
    const actual = await numel(path.join(FIXTURES, set, weights));
    expect(estimate).toBeLessThanOrEqual(actual);
    expect(estimate).toBeGreaterThan(0.97 * actual);
  },
);

test('an absurd block_out_channels is refused with the key named, real models on 24 GB are not', () => {
  const absurd = unet({ block_out_channels: [320, 640, 1280, 1280000] });
  const size = { model: 'UNet2DConditionModel', source: 'big/config.json', count: unetParameterCount, caps: UNET_SIZE_CAPS };
  let error: unknown;
  try {
    checkModelFits({ ...size, config: absurd }, GB24);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(OutOfMemoryError);
  const message = (error as Error).message;
  expect(message).toMatch(/^big\/config\.json: a UNet2DConditionModel with this config has at least [\d,]+ parameters, [\d.]+ [TP]B \([\d,]+ bytes\) as float32, more than the 24\.0 GB/);
  expect(message).toContain('"block_out_channels" [320,640,1280,1280000] makes it this large');
  expect(message).not.toContain('cross_attention_dim');

  expect(() => checkModelFits({ ...size, config: SD21 }, GB24)).not.toThrow();
  expect(() => checkModelFits({ ...size, config: SD15 }, GB24)).not.toThrow();
  expect(() => checkModelFits({ model: 'AutoencoderKL', source: 'vae', config: SD_VAE, count: vaeParameterCount, caps: VAE_SIZE_CAPS }, GB24)).not.toThrow();
  expect(() => checkModelFits({ model: 'CLIPTextModel', source: 'te', config: OPENCLIP_H, count: clipTextParameterCount, caps: CLIP_TEXT_SIZE_CAPS }, GB24)).not.toThrow();
});

test('a text encoder too wide and too deep names both keys', () => {
  const config = parseClipTextConfig({ hidden_size: 1_048_576, num_attention_heads: 16, num_hidden_layers: 400 }, 'te').config;
  expect(() => checkModelFits({ model: 'CLIPTextModel', source: 'te/config.json', config, count: clipTextParameterCount, caps: CLIP_TEXT_SIZE_CAPS }, GB24)).toThrow(
    /"hidden_size" 1048576 and "num_hidden_layers" 400 make it this large/,
  );
});

test('a step whose activations cannot fit is refused naming the argument; SD 2.1 at 768² batch 1 on 24 GB is not', () => {
  const sd21Weights = unetParameterCount(SD21) * 4;
  const step = { config: SD21, param: 'sample', activationBytes: 4, parameterBytes: sd21Weights, action: 'a forward' };
  expect(() => checkUNetActivationsFit({ ...step, shape: [1, 4, 96, 96] }, GB24)).not.toThrow();
  expect(() => checkUNetActivationsFit({ ...step, shape: [2, 4, 96, 96], action: 'a training step', param: 'batch.pixels' }, GB24)).not.toThrow();
  expect(() => checkUNetActivationsFit({ ...step, shape: [64, 4, 1024, 1024] }, GB24)).toThrow(OutOfMemoryError);
  expect(() => checkUNetActivationsFit({ ...step, shape: [64, 4, 1024, 1024] }, GB24)).toThrow(
    /^sample \[64, 4, 1024, 1024\]: a forward of the U-Net over it keeps at least [\d.]+ GB \([\d,]+ bytes\) of activations \(the first level's 3 skip connections: batch 64 × 320 channels × 1024×1024 pixels × 4 bytes\)/,
  );
});

test('byte counts read in decimal units with the exact count', () => {
  expect(formatByteCount(1_234_567_890)).toBe('1.2 GB (1,234,567,890 bytes)');
  expect(formatByteCount(512)).toBe('512 bytes');
});

test('an out-of-memory error from the addon names the operation it happened in', () => {
  const native = Object.assign(new Error('out of memory: could not allocate 1.1 TB (1099511627776 bytes) on the CPU'), { code: 'ERR_OUT_OF_MEMORY' });
  const error = translateNativeError(native, 'randn of shape [65536, 65536, 64]');
  expect(error).toBeInstanceOf(OutOfMemoryError);
  expect((error as Error).message).toBe('out of memory: could not allocate 1.1 TB (1099511627776 bytes) on the CPU, in randn of shape [65536, 65536, 64]');
  const torch = Object.assign(new Error('shape mismatch'), { code: 'ERR_TORCH' });
  expect((translateNativeError(torch, 'x') as Error).message).toBe('shape mismatch');
});
