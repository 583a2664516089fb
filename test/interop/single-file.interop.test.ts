// Single-file (original LDM layout) checkpoints both ways: the file `npm run convert -- --to-single-file`
// writes from a difftune fine-tune opens with diffusers' StableDiffusionPipeline.from_single_file, and a
// file diffusers' own conversion script writes opens in difftune (`npm run convert -- --single-file`);
// both with the weights bit for bit.
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { runConvertCli } from '../../lib/checkpoint/convert-cli';
import { DIFFUSERS_WEIGHT_FILES } from '../../lib/checkpoint/ldm-single-file';
import { SafetensorsFile } from '../../lib/checkpoint/safetensors';
import { useTempDir } from '../helpers/temp-dir';
import { describeInterop, runPython } from './helpers/harness';
import { compareTxt2img, finetuneTinySd, SD_BASE } from './helpers/sd';

const tmp = useTempDir('interop-single-file');

/** What `npm run convert -- <argv>` prints and returns. */
async function convert(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const code = await runConvertCli(argv, out, err);
  return { code, out: String(out.read() ?? ''), err: String(err.read() ?? '') };
}

/** Every tensor's bytes of a component's weights file in `dir`. */
async function weights(dir: string, component: keyof typeof DIFFUSERS_WEIGHT_FILES): Promise<Map<string, Buffer>> {
  const f = await SafetensorsFile.open(path.join(dir, DIFFUSERS_WEIGHT_FILES[component]));
  try {
    const out = new Map<string, Buffer>();
    for (const name of f.names()) out.set(name, await f.readBytes(name));
    return out;
  } finally {
    await f.close();
  }
}

interface WeightComparison {
  max_abs_diff: number;
  only_here: string[];
  only_there: string[];
}

describeInterop('single-file checkpoints both ways', () => {
  let finetuned: string;
  let diffusersFile: string;
  beforeAll(async () => {
    finetuned = path.join(tmp(), 'sd-finetuned');
    expect((await finetuneTinySd(finetuned)).status).toBe('completed');
    diffusersFile = path.join(tmp(), 'diffusers-single.safetensors');
    const written = await runPython('single_file', { pipeline: finetuned, out: diffusersFile });
    expect(written.warnings).toEqual([]);
  }, 300_000);

  test('npm run convert --to-single-file → StableDiffusionPipeline.from_single_file(config=<base>)', async () => {
    const file = path.join(tmp(), 'difftune-single.safetensors');
    const r = await convert(['--to-single-file', finetuned, '--out', file]);
    expect(r).toMatchObject({ code: 0, err: '' });
    // The component configs come from the base pipeline, as for a checkpoint downloaded on its own.
    const open = { single_file: file, config: SD_BASE };
    const response = await runPython('sd_pipeline', { ...open, compare_weights: finetuned });
    // No more warnings than diffusers' own single file of the same folder gets: the fixture's text encoder
    // carries the position_ids buffer transformers ≤ 4.30 saved, which from_single_file reports as unused.
    const theirs = await runPython('sd_pipeline', { single_file: diffusersFile, config: SD_BASE });
    expect(response.warnings).toEqual(theirs.warnings);
    const same = { max_abs_diff: 0, only_here: [], only_there: [] };
    expect(response.weights).toEqual({ unet: same, vae: same, text_encoder: same } satisfies Record<string, WeightComparison>);
    const c = await compareTxt2img(finetuned, open, { prompt: 'an orange square', guidanceScale: 7.5, steps: 4, seed: 6 }, tmp());
    expect(c.levels).toBeLessThanOrEqual(1);
    expect(c.rel).toBeLessThanOrEqual(c.bound);
  }, 300_000);

  test("diffusers' convert_diffusers_to_original_stable_diffusion.py → npm run convert --single-file --config <base>", async () => {
    const folder = path.join(tmp(), 'from-diffusers-single');
    const r = await convert(['--single-file', diffusersFile, '--config', SD_BASE, '--out', folder]);
    expect(r).toMatchObject({ code: 0, err: '' });
    for (const component of ['unet', 'vae', 'text_encoder'] as const) {
      const [want, got] = [await weights(finetuned, component), await weights(folder, component)];
      expect({ component, names: [...got.keys()].sort() }).toEqual({ component, names: [...want.keys()].sort() });
      const differing = [...want].filter(([name, bytes]) => !bytes.equals(got.get(name)!)).map(([name]) => name);
      expect({ component, differing }).toEqual({ component, differing: [] });
    }
  }, 300_000);
});
