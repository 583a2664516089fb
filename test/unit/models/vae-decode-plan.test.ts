// The VAE decode memory plan: which of diffusers' savers (slicing, tiling) a decode needs to fit, from
// the activation estimate alone. Pure: no addon.
import * as fs from 'fs';
import * as path from 'path';
import { vaeDecodeElements } from '../../../lib/config/model-size';
import { parseVaeConfig } from '../../../lib/config/vae';
import { planVaeDecode } from '../../../lib/models/memory-check';

// runwayml/stable-diffusion-v1-5 vae/config.json: [128, 256, 512, 512], sample_size 512.
const SD_VAE = parseVaeConfig(
  {
    _class_name: 'AutoencoderKL',
    block_out_channels: [128, 256, 512, 512],
    down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
    up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
    latent_channels: 4,
    layers_per_block: 2,
    norm_num_groups: 32,
    sample_size: 512,
  },
  'sd-vae',
).config;
const TILE = { tileSampleSize: 512, tileLatentSize: 64, overlap: 0.25 };
const GB = 1e9;

test("the estimate: 5 maps of the last up block's widest channels at full size, or the mid block's attention", () => {
  // 512²: 5 × 256 channels × 512² (the measured decode took 1.22 GB of activations).
  expect(vaeDecodeElements(SD_VAE, [64, 64], 1)).toBe(5 * 256 * 512 * 512);
  // 2048² (256² latents): the attention over 65536 latents dominates, 3 × 65536².
  expect(vaeDecodeElements(SD_VAE, [256, 256], 1)).toBe(3 * 65536 ** 2);
  expect(vaeDecodeElements(SD_VAE, [64, 64], 3)).toBe(3 * 5 * 256 * 512 * 512);
  const noAttention = parseVaeConfig({ ...SD_VAE, mid_block_add_attention: false }, 'sd-vae').config;
  expect(vaeDecodeElements(noAttention, [256, 256], 1)).toBe(5 * 256 * 2048 * 2048);
});

test('nothing is turned on while the plain decode fits', () => {
  const plan = planVaeDecode(SD_VAE, [4, 4, 96, 96], TILE, 64 * GB);
  expect(plan).toMatchObject({ slicing: false, tiling: false });
  expect(plan.note).toBeUndefined();
  expect(plan.bytes).toBe(plan.plainBytes);
});

test('slicing first: when the batch does not fit but one image does (the same images)', () => {
  // 768²: about 2.7 GB per image; 4 images about 11 GB.
  const plan = planVaeDecode(SD_VAE, [4, 4, 96, 96], TILE, 4 * GB);
  expect(plan).toMatchObject({ slicing: true, tiling: false });
  expect(plan.plainBytes).toBeGreaterThan(4 * GB);
  expect(plan.bytes).toBeLessThanOrEqual(4 * GB);
  expect(plan.note).toMatch(/^VAE decode of latents \[4, 4, 96, 96\]: about 1\d\.\d GB of activations at once, more than the 4\.0 GB this process can still use; decoding one image at a time \(slicing/);
});

test('tiling when one image alone does not fit', () => {
  const one = planVaeDecode(SD_VAE, [1, 4, 128, 128], TILE, 2 * GB);
  expect(one).toMatchObject({ slicing: false, tiling: true });
  expect(one.note).toMatch(/decoding in 512-pixel tiles \(tiling, as diffusers' enable_vae_tiling\): about 1\.\d GB$/);
  const batch = planVaeDecode(SD_VAE, [2, 4, 128, 128], TILE, 2 * GB);
  expect(batch).toMatchObject({ slicing: true, tiling: true });
  expect(batch.bytes).toBeLessThan(batch.plainBytes / 3);
});

test('the tiny fixture pipeline never turns a saver on in this machine', () => {
  const file = path.join(__dirname, '..', '..', 'fixtures', 'diffusers', 'sd-pipeline-tiny', 'vae', 'config.json');
  const tiny = parseVaeConfig(JSON.parse(fs.readFileSync(file, 'utf8')), file).config;
  expect(planVaeDecode(tiny, [2, 4, 16, 16], { tileSampleSize: 32, tileLatentSize: 16, overlap: 0.25 })).toMatchObject({ slicing: false, tiling: false });
});
