/**
 * init-pipeline on the real SD 1.5 and 2.1 configs made narrow (test/helpers/real-configs.ts: every
 * level, block and layer kept, widths cut): each model's file has exactly the tensors its class builds
 * from the config, and its single file has every key diffusers' conversion script writes for the real
 * model (key-table-*.json). That single file — SD 2.1's in the OpenCLIP layout, with a 24th block,
 * text_projection and logit_scale as Stability AI's files have them — converts to a folder that loads and
 * samples, whose configs (v-prediction, upcast_attention, 768 px) are the config folder's, and back to the
 * same bytes. The same seed writes the same bytes; fp16 is the float32 draw rounded.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { runConvertCli } from '../../lib/checkpoint/convert-cli';
import { readLdmLayout } from '../../lib/checkpoint/ldm-configs';
import {
  DIFFUSERS_WEIGHT_FILES,
  readDiffusersComponents,
  saveLdmSingleFile,
  SINGLE_FILE_KEPT_FILE,
  toLdmSingleFile,
  type RawTensor,
} from '../../lib/checkpoint/ldm-single-file';
import { f16ToF32, f32ToF16, SafetensorsFile } from '../../lib/checkpoint/safetensors';
import { CLIPTextModel } from '../../lib/models/clip-text';
import { initPipeline, type InitPipelineResult } from '../../lib/models/init-pipeline';
import { loadStableDiffusion } from '../../lib/models/stable-diffusion';
import { UNet } from '../../lib/models/unet';
import { AutoencoderKL } from '../../lib/models/vae';
import { txt2img } from '../../lib/sample/txt2img';
import { REAL_CONFIGS, writeNarrowRealConfig, type RealConfigName } from '../helpers/real-configs';
import { useTempDir } from '../helpers/temp-dir';

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const json = (file: string): Record<string, unknown> => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const code = await runConvertCli(argv, out, err);
  return { code, out: String(out.read() ?? ''), err: String(err.read() ?? '') };
}

/** What Stability AI's SD 2.x files hold beyond diffusers' 23-layer text encoder, at the narrow width 32. */
function openClipExtras(width: number, intermediate: number): Map<string, RawTensor> {
  const open = 'cond_stage_model.model.';
  const block = `${open}transformer.resblocks.23`;
  const shapes: Array<[string, number[]]> = [
    [`${block}.attn.in_proj_weight`, [3 * width, width]],
    [`${block}.attn.in_proj_bias`, [3 * width]],
    [`${block}.attn.out_proj.weight`, [width, width]],
    [`${block}.attn.out_proj.bias`, [width]],
    [`${block}.ln_1.weight`, [width]],
    [`${block}.ln_1.bias`, [width]],
    [`${block}.mlp.c_fc.weight`, [intermediate, width]],
    [`${block}.mlp.c_fc.bias`, [intermediate]],
    [`${block}.mlp.c_proj.weight`, [width, intermediate]],
    [`${block}.mlp.c_proj.bias`, [width]],
    [`${block}.ln_2.weight`, [width]],
    [`${block}.ln_2.bias`, [width]],
    [`${open}text_projection`, [width, width]],
    [`${open}logit_scale`, []],
  ];
  return new Map(
    shapes.map(([name, shape], k) => {
      const values = new Float32Array(shape.reduce((a, b) => a * b, 1)).map((_, i) => Math.sin(i + 100 * k));
      return [name, { dtype: 'F32', shape, data: new Uint8Array(values.buffer) }];
    }),
  );
}

describe.each<RealConfigName>(['sd-v1-5', 'sd-v2-1'])('%s, narrow', (name) => {
  const tmp = useTempDir(`init-${name}`);
  const sd2 = name !== 'sd-v1-5';
  let config: string;
  let out: string;
  let result: InitPipelineResult;
  beforeAll(async () => {
    config = writeNarrowRealConfig(name, path.join(tmp(), 'config'));
    out = path.join(tmp(), 'pipeline');
    result = await initPipeline(config, out, { seed: 3 });
  }, 120_000);

  it('writes each model with exactly the tensors its class builds from the config', async () => {
    const build = { unet: UNet.fromConfig, vae: AutoencoderKL.fromConfig, text_encoder: CLIPTextModel.fromConfig } as const;
    for (const component of result.components) {
      const raw = json(path.join(config, component.name, 'config.json'));
      using model = await build[component.name](raw);
      const params = await model.parameters();
      const st = await SafetensorsFile.open(path.join(out, DIFFUSERS_WEIGHT_FILES[component.name]));
      try {
        expect(Object.fromEntries([...st.tensors].map(([n, i]) => [n, [i.dtype, ...i.shape]]))).toEqual(
          Object.fromEntries(params.map((p) => [p.name, ['F32', ...p.shape]])),
        );
        expect(st.metadata).toEqual({ format: 'pt' });
      } finally {
        await st.close();
      }
      expect(component.parameters).toBe(params.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0));
      expect(component.tensors).toBe(params.length);
    }
  });

  it('copies the configs, tokenizer and scheduler as they are; components it does not write are [null, null]', () => {
    for (const file of [
      'unet/config.json',
      'vae/config.json',
      'text_encoder/config.json',
      'scheduler/scheduler_config.json',
      'tokenizer/vocab.json',
      'tokenizer/merges.txt',
      'tokenizer/special_tokens_map.json',
    ]) {
      expect(readFileSync(path.join(out, file), 'utf8')).toBe(readFileSync(path.join(config, file), 'utf8'));
    }
    const index = json(path.join(out, 'model_index.json'));
    expect(index.unet).toEqual(['diffusers', 'UNet2DConditionModel']);
    expect(index.safety_checker).toEqual([null, null]);
    expect(index.feature_extractor).toEqual([null, null]);
  });

  it("has every tensor of the real model: its single file has exactly the keys diffusers' script writes for the real configs", async () => {
    const single = toLdmSingleFile(await readDiffusersComponents(out), readLdmLayout(out));
    const real = json(path.join(REAL_CONFIGS, `key-table-${name}.json`)).single_file as Array<[string]>;
    expect([...single.keys()].sort()).toEqual(real.map(([key]) => key).sort());
  });

  it('is reproducible: the same seed writes the same bytes, another seed others, and fp16 is the float32 draw rounded', async () => {
    const again = await initPipeline(config, path.join(tmp(), 'again'), { seed: 3 });
    const other = await initPipeline(config, path.join(tmp(), 'other'), { seed: 4 });
    const half = await initPipeline(config, path.join(tmp(), 'half'), { seed: 3, dtype: 'float16' });
    for (const [i, c] of result.components.entries()) {
      expect(sha256(again.components[i]!.file)).toBe(sha256(c.file));
      expect(sha256(other.components[i]!.file)).not.toBe(sha256(c.file));
    }
    const f32 = await SafetensorsFile.open(result.components[0]!.file);
    const f16 = await SafetensorsFile.open(half.components[0]!.file);
    try {
      const dataBytes = (st: SafetensorsFile): number => [...st.tensors.values()].reduce((n, i) => n + i.byteLength, 0);
      expect([dataBytes(f32), dataBytes(f16)]).toEqual([4 * result.components[0]!.parameters, 2 * result.components[0]!.parameters]);
      for (const tensor of ['conv_in.weight', 'down_blocks.0.resnets.0.norm1.weight', 'mid_block.attentions.0.proj_in.bias']) {
        const a = (await f32.read(tensor)).data as Float32Array;
        const b = (await f16.read(tensor)).data as Float32Array;
        expect(f16.info(tensor).dtype).toBe('F16');
        expect(Array.from(b)).toEqual(Array.from(a, (v) => f16ToF32(f32ToF16(v))));
      }
    } finally {
      await f32.close();
      await f16.close();
    }
  }, 120_000);

  it(`${sd2 ? 'converts its SD 2.x single file (OpenCLIP layout, 24th block, text_projection, logit_scale)' : 'converts its single file'} to a folder that loads and samples, and back to the same bytes`, async () => {
    const te = json(path.join(config, 'text_encoder', 'config.json'));
    const kept = sd2 ? openClipExtras(te.hidden_size as number, te.intermediate_size as number) : new Map<string, RawTensor>();
    const file = path.join(tmp(), 'model.safetensors');
    await saveLdmSingleFile(file, await readDiffusersComponents(out), { config: out, kept });
    const keys = (await SafetensorsFile.open(file)).names();
    expect(keys.some((k) => k.startsWith(sd2 ? 'cond_stage_model.model.transformer.resblocks.' : 'cond_stage_model.transformer.text_model.'))).toBe(true);
    expect(keys.some((k) => k.startsWith(sd2 ? 'cond_stage_model.transformer.' : 'cond_stage_model.model.'))).toBe(false);

    const folder = path.join(tmp(), 'converted');
    const r = await run(['--single-file', file, '--config', config, '--out', folder]);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(existsSync(path.join(folder, SINGLE_FILE_KEPT_FILE))).toBe(sd2);
    // v-prediction, upcast_attention and 768 px are the config folder's, not guessed from the file.
    expect(json(path.join(folder, 'scheduler', 'scheduler_config.json')).prediction_type).toBe(sd2 ? 'v_prediction' : undefined);
    expect(json(path.join(folder, 'unet', 'config.json'))).toMatchObject(sd2 ? { upcast_attention: true, sample_size: 96 } : { sample_size: 64 });
    for (const c of Object.values(DIFFUSERS_WEIGHT_FILES)) expect(sha256(path.join(folder, c))).toBe(sha256(path.join(out, c)));

    {
      using sd = await loadStableDiffusion(folder);
      const image = await txt2img(sd, { prompt: 'a photo of an astronaut riding a horse!', steps: 2, seed: 0, height: 64, width: 64 });
      try {
        expect(image.images.shape).toEqual([1, 3, 64, 64]);
        expect(Array.from((await image.images.data()) as Float32Array).every(Number.isFinite)).toBe(true);
      } finally {
        image.dispose();
      }
    }

    const back = path.join(tmp(), 'back.safetensors');
    expect(await run(['--to-single-file', folder, '--out', back])).toMatchObject({ code: 0, err: '' });
    expect(sha256(back)).toBe(sha256(file));
  }, 120_000);
});
