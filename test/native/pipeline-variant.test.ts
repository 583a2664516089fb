// loadStableDiffusion({ variant }) reads the variant of every component that has one, as diffusers'
// from_pretrained(variant=...) does: save_pretrained(variant="fp16") writes model.fp16.safetensors for the
// text encoder and diffusion_pytorch_model.fp16.safetensors for the VAE and U-Net (before, only the U-Net
// was looked for, so such a folder did not open). test/interop/variants.interop.test.ts checks the same
// against folders diffusers itself wrote.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { f32ArrayToF16 } from '../../lib/checkpoint/half';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../lib/checkpoint/safetensors';
import { loadStableDiffusion } from '../../lib/models/stable-diffusion';
import { addVariant } from '../../lib/models/model-folder';
import { useTempDir } from '../helpers/temp-dir';

const BASE = path.join(__dirname, '..', 'fixtures', 'diffusers', 'sd-pipeline-tiny');
const WEIGHTS = { text_encoder: 'model.safetensors', vae: 'diffusion_pytorch_model.safetensors', unet: 'diffusion_pytorch_model.safetensors' } as const;
const tmp = useTempDir('pipeline-variant');

/** A copy of the tiny pipeline whose `variantOf` components hold only fp16 files of the variant. */
async function pipelineWithVariant(name: string, variantOf: ReadonlyArray<keyof typeof WEIGHTS>): Promise<string> {
  const dir = path.join(tmp(), name);
  fs.cpSync(BASE, dir, { recursive: true });
  for (const component of variantOf) {
    const plain = path.join(dir, component, WEIGHTS[component]);
    const f = await SafetensorsFile.open(plain);
    const tensors: Array<[string, TensorToWrite]> = [];
    for (const n of f.names()) {
      const t = await f.read(n);
      tensors.push([
        n,
        t.data instanceof Float32Array
          ? { dtype: 'F16', shape: t.shape, data: f32ArrayToF16(t.data) }
          : { dtype: t.dtype, shape: t.shape, data: await f.readBytes(n) },
      ]);
    }
    await f.close();
    await writeSafetensors(path.join(dir, component, addVariant(WEIGHTS[component], 'fp16')), tensors, { format: 'pt' });
    fs.rmSync(plain);
  }
  return dir;
}

test('every component saved with variant "fp16" opens with { variant: "fp16" }, in float32', async () => {
  const dir = await pipelineWithVariant('all', ['text_encoder', 'vae', 'unet']);
  using sd = await loadStableDiffusion(dir, { variant: 'fp16' });
  expect([sd.unet.dtype, sd.vae.dtype, sd.textEncoder.dtype]).toEqual(['float32', 'float32', 'float32']);
  await expect(loadStableDiffusion(dir)).rejects.toThrow(/has no model\.safetensors/);
});

test('components without the variant load their plain weights; a variant no component has is named', async () => {
  const dir = await pipelineWithVariant('unet-only', ['unet']);
  using sd = await loadStableDiffusion(dir, { variant: 'fp16' });
  expect(sd.unet.config._class_name).toBe('UNet2DConditionModel');
  await expect(loadStableDiffusion(BASE, { variant: 'fp16' })).rejects.toThrow(
    /options\.variant is "fp16" but no component has weights of it \(looked for text_encoder\/model\.fp16\.safetensors, vae\/diffusion_pytorch_model\.fp16\.safetensors, unet\/diffusion_pytorch_model\.fp16\.safetensors/,
  );
});
