// Weight variants, shards and dtypes both ways: folders diffusers' save_pretrained writes with
// variant="fp16" and max_shard_size (one U-Net, a whole pipeline) open in difftune and compute what
// diffusers computes from them (issue 15, item 7); a folder difftune writes in bfloat16 opens in diffusers.
import * as path from 'node:path';
import { SafetensorsFile } from '../../lib/checkpoint/safetensors';
import { loadUNet } from '../../lib/models/unet';
import { useTempDir } from '../helpers/temp-dir';
import { describeInterop, FIXTURES, readTensor, relError, runPython, unetForwardBound } from './helpers/harness';
import { compareTxt2img, SD_BASE, tinySdUNetInputs, unetOutput } from './helpers/sd';

const tmp = useTempDir('interop-variants');
const UNET = path.join(FIXTURES, 'unet2dcond-tiny');

/** diffusers' U-Net output from `dir` (loaded with `variant`) on the inputs file. */
async function diffusersOutput(dir: string, inputs: string, variant?: string): Promise<{ output: Float32Array; warnings: string[] }> {
  const out = path.join(tmp(), `out-${path.basename(dir)}.safetensors`);
  const response = await runPython('unet', { model: dir, variant, inputs, out });
  return { output: (await readTensor(out, 'output')).data as Float32Array, warnings: response.warnings };
}

describeInterop('variants, shards and dtypes', () => {
  test('U-Net folders save_pretrained writes (fp16 variant, sharded, both) open in difftune with diffusers’ outputs', async () => {
    const dirs = { fp16Sharded: path.join(tmp(), 'fp16-sharded'), sharded: path.join(tmp(), 'sharded'), fp16: path.join(tmp(), 'fp16') };
    const saved = await runPython('unet', {
      model: UNET,
      save: [
        { dir: dirs.fp16Sharded, variant: 'fp16', dtype: 'float16', max_shard_size: '200KB' },
        { dir: dirs.sharded, max_shard_size: '400KB' },
        { dir: dirs.fp16, variant: 'fp16', dtype: 'float16' },
      ],
    });
    const files = saved.saved_files as Record<string, string[]>;
    // The names diffusers v0.31 writes: the variant before the last extension, of the index too.
    expect(files[dirs.fp16Sharded]).toContain('diffusion_pytorch_model.safetensors.index.fp16.json');
    expect(files[dirs.fp16Sharded]!.filter((f) => /^diffusion_pytorch_model\.fp16-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(1);
    expect(files[dirs.sharded]).toContain('diffusion_pytorch_model.safetensors.index.json');
    expect(files[dirs.sharded]!.filter((f) => /^diffusion_pytorch_model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(1);
    expect(files[dirs.fp16]).toContain('diffusion_pytorch_model.fp16.safetensors');

    const inputsFile = path.join(tmp(), 'unet-inputs.safetensors');
    const x = await tinySdUNetInputs(inputsFile, 8);
    try {
      // diffusers v0.31 reads sharded models only through accelerate, which the harness lacks: a sharded
      // folder is compared with diffusers' output from the unsharded folder of the same weights.
      const fp16 = await diffusersOutput(dirs.fp16, inputsFile, 'fp16');
      const fp32 = await diffusersOutput(UNET, inputsFile);
      expect([fp16.warnings, fp32.warnings]).toEqual([[], []]);
      for (const [dir, variant, theirs] of [
        [dirs.fp16Sharded, 'fp16', fp16.output],
        [dirs.sharded, undefined, fp32.output],
        [dirs.fp16, 'fp16', fp16.output],
      ] as const) {
        using unet = await loadUNet(dir, { variant });
        // Both upcast the same float16 weights to float32 (or read the same float32 ones) and compute in float32.
        expect({ dir, rel: relError(await unetOutput(unet, x), theirs) <= unetForwardBound(unet.config) }).toEqual({ dir, rel: true });
      }
    } finally {
      x.dispose();
    }
  }, 300_000);

  test('a whole pipeline saved with variant="fp16" (and sharded): loadStableDiffusion({ variant }) draws diffusers’ images', async () => {
    const [single, sharded] = [path.join(tmp(), 'sd-fp16'), path.join(tmp(), 'sd-fp16-sharded')];
    const saved = await runPython('sd_pipeline', {
      pipeline: SD_BASE,
      save: [
        { dir: single, variant: 'fp16', dtype: 'float16' },
        { dir: sharded, variant: 'fp16', dtype: 'float16', max_shard_size: '50KB' },
      ],
    });
    const files = (saved.saved_files as Record<string, Record<string, string[]>>)[sharded]!;
    expect(files.unet).toContain('diffusion_pytorch_model.safetensors.index.fp16.json');
    expect(files.vae).toContain('diffusion_pytorch_model.safetensors.index.fp16.json');
    // transformers names its variant shards the same way: model.safetensors.index.fp16.json, model.fp16-00001-of-0000n.safetensors.
    expect(files.text_encoder).toContain('model.safetensors.index.fp16.json');
    // diffusers opens the unsharded folder (see above), difftune both.
    for (const dir of [single, sharded]) {
      const c = await compareTxt2img(dir, { pipeline: single, variant: 'fp16' }, { prompt: 'a red circle', guidanceScale: 7.5, steps: 5, seed: 3 }, tmp(), {
        variant: 'fp16',
      });
      expect(c.response.warnings).toEqual([]);
      expect({ dir, rel: c.rel <= c.bound, levels: c.levels <= 1 }).toEqual({ dir, rel: true, levels: true });
    }
  }, 300_000);

  test('a U-Net difftune saves in bfloat16 opens in diffusers, which computes what difftune computes from it', async () => {
    const dir = path.join(tmp(), 'difftune-bf16');
    {
      using unet = await loadUNet(UNET, { dtype: 'bfloat16' });
      await unet.save(dir);
    }
    const file = await SafetensorsFile.open(path.join(dir, 'diffusion_pytorch_model.safetensors'));
    const dtypes = new Set(file.names().map((n) => file.info(n).dtype));
    await file.close();
    expect([...dtypes]).toEqual(['BF16']);
    const inputsFile = path.join(tmp(), 'unet-inputs-bf16.safetensors');
    const x = await tinySdUNetInputs(inputsFile, 9);
    try {
      using unet = await loadUNet(dir);
      const ours = await unetOutput(unet, x);
      const theirs = await diffusersOutput(dir, inputsFile);
      expect(theirs.warnings).toEqual([]);
      expect(relError(ours, theirs.output)).toBeLessThanOrEqual(unetForwardBound(unet.config));
    } finally {
      x.dispose();
    }
  }, 300_000);
});
