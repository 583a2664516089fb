// npm run convert: the single-file checkpoint of sd-pipeline-tiny becomes a diffusers folder that samples
// exactly like the original folder, and the folder converts back to the same single file, byte for byte.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PassThrough } from 'stream';
import { runConvertCli } from '../../lib/checkpoint/convert-cli';
import { DIFFUSERS_WEIGHT_FILES } from '../../lib/checkpoint/ldm-single-file';
import { SafetensorsFile } from '../../lib/checkpoint/safetensors';
import { loadStableDiffusion } from '../../lib/models/stable-diffusion';
import { randn } from '../../lib/native/ops';
import { Generator } from '../../lib/native/generator';
import { txt2img } from '../../lib/sample/txt2img';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');
const PIPELINE = path.join(FIXTURES, 'sd-pipeline-tiny');
const SINGLE = path.join(FIXTURES, 'sd-singlefile-tiny', 'model.safetensors');

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const code = await runConvertCli(argv, out, err);
  return { code, out: out.read()?.toString() ?? '', err: err.read()?.toString() ?? '' };
}

async function image(dir: string): Promise<Float32Array> {
  using sd = await loadStableDiffusion(dir);
  using generator = new Generator(7);
  using latents = await randn([1, 4, 16, 16], { generator });
  const r = await txt2img(sd, { prompt: 'a red circle', negativePrompt: 'blurry', steps: 3, latents });
  try {
    return (await r.images.data()) as Float32Array;
  } finally {
    r.dispose();
  }
}

test('a single file converts to a diffusers folder that samples exactly like the original, and back byte for byte', async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-convert-'));
  const folder = path.join(work, 'converted');
  const r = await run(['--single-file', SINGLE, '--config', PIPELINE, '--out', folder]);
  expect(r).toMatchObject({ code: 0, err: '' });
  expect(r.out).toMatch(/unet 208, vae 124, text_encoder 53/);
  expect(Buffer.compare(Buffer.from((await image(folder)).buffer), Buffer.from((await image(PIPELINE)).buffer))).toBe(0);

  const back = path.join(work, 'back.safetensors');
  expect(await run(['--to-single-file', folder, '--out', back])).toMatchObject({ code: 0, err: '' });
  expect(fs.readFileSync(back).equals(fs.readFileSync(SINGLE))).toBe(true);

  // Nothing is overwritten; a missing --config is named.
  expect((await run(['--to-single-file', folder, '--out', back])).err).toMatch(/already exists/);
  expect((await run(['--single-file', SINGLE, '--out', path.join(work, 'x')])).err).toMatch(/--config/);
}, 60_000);

test('--config pointing at a fine-tuning output copies only the pipeline files; the weights carry {"format":"pt"}', async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-convert-'));
  try {
    const config = path.join(work, 'run');
    fs.cpSync(PIPELINE, config, { recursive: true });
    fs.mkdirSync(path.join(config, 'checkpoint-1', 'unet'), { recursive: true });
    fs.writeFileSync(path.join(config, 'checkpoint-1', 'unet', 'config.json'), '{}');
    fs.writeFileSync(path.join(config, 'metrics.jsonl'), '{"step":1}\n');
    fs.mkdirSync(path.join(config, 'cache', 'latents'), { recursive: true });
    fs.mkdirSync(path.join(config, '.cache', 'latents'), { recursive: true });
    const folder = path.join(work, 'converted');
    expect(await run(['--single-file', SINGLE, '--config', config, '--out', folder])).toMatchObject({ code: 0, err: '' });
    expect(fs.readdirSync(folder).sort()).toEqual(['model_index.json', 'scheduler', 'text_encoder', 'tokenizer', 'unet', 'vae']);
    for (const file of Object.values(DIFFUSERS_WEIGHT_FILES)) {
      const st = await SafetensorsFile.open(path.join(folder, file));
      try {
        expect(st.metadata).toEqual({ format: 'pt' });
      } finally {
        await st.close();
      }
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
});
