// difftune → diffusers, LoRA: the adapter files of a difftune LoRA run with alpha ≠ rank — PEFT layout
// (pytorch_lora_weights.safetensors) and kohya layout (lora.kohya.safetensors) — loaded into the base
// pipeline with diffusers' load_lora_weights act at the trained strength: the U-Net output and the
// images are those of difftune's merged model (issue 15, item 3).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsFile } from '../../lib/checkpoint/safetensors';
import { loadUNet } from '../../lib/models/unet';
import { useTempDir } from '../helpers/temp-dir';
import { describeInterop, readTensor, relError, runPython, unetForwardBound } from './helpers/harness';
import { compareTxt2img, finetuneTinySd, SD_BASE, tinySdUNetInputs, unetOutput } from './helpers/sd';

const tmp = useTempDir('interop-lora');

describeInterop('LoRA files difftune writes load in diffusers at the trained strength', () => {
  let output: string;
  let inputsFile: string;
  let merged: Float32Array;
  let base: Float32Array;
  let bound: number;

  beforeAll(async () => {
    output = path.join(tmp(), 'lora-run');
    // rank 4, alpha 16: the update is scaled by 4, which a loader that ignores alpha (diffusers v0.31 with
    // alpha only in the metadata) would apply as 1. A high learning rate makes the adapters matter. The
    // locon preset's layers (attention, resnet and down/upsampler convolutions) and the feed-forward ones.
    const result = await finetuneTinySd(output, {
      lora: { preset: 'locon', rank: 4, alpha: 16, format: 'kohya', saveMerged: true, feedForward: true },
      train: { steps: 4, batchSize: 2, lr: 1e-2, seed: 0 },
    });
    expect(result.loraFiles).toEqual([path.join(output, 'pytorch_lora_weights.safetensors'), path.join(output, 'lora.kohya.safetensors')]);
    const adapters = await SafetensorsFile.open(result.loraFiles![0]!);
    const names = adapters.names();
    await adapters.close();
    for (const layer of ['.downsamplers.0.conv.', '.upsamplers.0.conv.', '.resnets.0.conv1.', '.attn1.to_q.', '.ff.net.2.'])
      expect([layer, names.some((n) => n.includes(layer))]).toEqual([layer, true]);
    inputsFile = path.join(tmp(), 'unet-inputs.safetensors');
    const x = await tinySdUNetInputs(inputsFile, 5);
    try {
      using mergedUNet = await loadUNet(path.join(output, 'unet'));
      using baseUNet = await loadUNet(path.join(SD_BASE, 'unet'));
      merged = await unetOutput(mergedUNet, x);
      base = await unetOutput(baseUNet, x);
      bound = unetForwardBound(mergedUNet.config);
    } finally {
      x.dispose();
    }
    // The adapters change the output far beyond the comparison's bound, so a wrong strength (a quarter
    // of it when alpha is lost) cannot pass.
    expect(relError(base, merged)).toBeGreaterThan(1000 * bound);
  }, 600_000);

  test.each([
    ['PEFT', 'pytorch_lora_weights.safetensors'],
    ['kohya', 'lora.kohya.safetensors'],
  ])(
    '%s file: load_lora_weights gives the merged U-Net’s output',
    async (_format, weightName) => {
      const out = path.join(tmp(), `unet-${weightName}`);
      const response = await runPython('sd_pipeline', {
        pipeline: SD_BASE,
        lora: [{ path: output, weight_name: weightName }],
        unet_forward: { inputs: inputsFile, out },
      });
      expect(response.warnings).toEqual([]);
      const theirs = (await readTensor(out, 'output')).data as Float32Array;
      // diffusers computes W·x + B·(A·x)·scale, difftune's merged model (W + scale·B·A)·x: two more roundings
      // per adapted layer, within the forward bound.
      expect(relError(merged, theirs)).toBeLessThanOrEqual(bound);
    },
    300_000,
  );

  test('images: the base pipeline with the PEFT file in diffusers, the merged pipeline in difftune', async () => {
    expect(fs.existsSync(path.join(output, 'model_index.json'))).toBe(true);
    const c = await compareTxt2img(
      output,
      { pipeline: SD_BASE, lora: [{ path: output, weight_name: 'pytorch_lora_weights.safetensors' }] },
      { prompt: 'a green triangle', guidanceScale: 5, steps: 6, seed: 4 },
      tmp(),
    );
    expect(c.response.warnings).toEqual([]);
    expect(c.rel).toBeLessThanOrEqual(c.bound);
    expect(c.levels).toBeLessThanOrEqual(1);
  }, 300_000);
});
