// A VAE difftune trained (lib/train/vae-training.ts) and saved with its measured scaling_factor loads in
// diffusers' AutoencoderKL.from_pretrained without a warning and decodes and encodes as difftune does.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createDataset } from '../../lib/data/dataset';
import { AutoencoderKL, loadVae } from '../../lib/models/vae';
import { Tensor } from '../../lib/native/tensor';
import { saveTrainedVae, trainVae } from '../../lib/train/vae-training';
import { useTempDir } from '../helpers/temp-dir';
import { describeInterop, FIXTURES, floats, readTensor, relError, runPython, U32, writeTensors } from './helpers/harness';

const tmp = useTempDir('interop-vae-training');

function values(n: number, phase: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + phase) * 0.9);
}

describeInterop('a VAE trained by difftune', () => {
  test('loads in diffusers with its scaling_factor; decode and encode match within float32 tolerance', async () => {
    const config = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'vae-tiny', 'config.json'), 'utf8')) as unknown;
    using vae = await AutoencoderKL.fromConfig(config, { seed: 4 });
    const data = (split: 'train' | 'test', limit: number) => createDataset({ source: 'mnist', split, limit, resolution: 16, channels: 3 });
    const r = await trainVae(vae, { images: await data('train', 8), heldOut: await data('test', 4), steps: 10, batchSize: 4, lr: 2e-3 });
    const dir = path.join(tmp(), 'vae');
    await saveTrainedVae(vae, dir, { scalingFactor: r.scalingFactor });

    using loaded = await loadVae(dir);
    using latents = Tensor.from(values(2 * 4 * 8 * 8, 1), [2, 4, 8, 8]);
    using images = Tensor.from(values(2 * 3 * 16 * 16, 2), [2, 3, 16, 16]);
    const inputs = path.join(tmp(), 'inputs.safetensors');
    await writeTensors(inputs, { latents, images });
    const out = path.join(tmp(), 'out.safetensors');
    const response = await runPython('vae', { model: dir, inputs, out });
    expect(response.warnings).toEqual([]);
    expect(response.class).toBe('AutoencoderKL');
    expect(response.scaling_factor).toBe(r.scalingFactor);

    using decoded = await loaded.decode(latents);
    const dist = await loaded.encode(images);
    try {
      // The same float32 arithmetic summed in other orders: a few hundred roundoffs at most.
      expect(relError(await floats(decoded), (await readTensor(out, 'decoded')).data as Float32Array)).toBeLessThan(1000 * U32);
      expect(relError(await floats(dist.mean), (await readTensor(out, 'mean')).data as Float32Array)).toBeLessThan(1000 * U32);
    } finally {
      dist.mean.dispose();
      dist.logvar.dispose();
    }
  }, 300_000);
});
