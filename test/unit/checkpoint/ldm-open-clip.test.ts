/**
 * The SD 2.x single-file layout (OpenCLIP text encoder) on sd-pipeline-tiny's weights, its text encoder
 * declared gelu as SD 2.x's is: q/k/v are joined into in_proj_weight / in_proj_bias byte for byte and cut
 * apart again, the file's own keys decide how it is read, the tensors diffusers has no place for survive
 * file → folder → file, and `convert --to-single-file` writes the SD 2.x layout, never SD 1.x's.
 */
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { runConvertCli } from '../../../lib/checkpoint/convert-cli';
import { readLdmLayout, withTextEncoderStyle } from '../../../lib/checkpoint/ldm-configs';
import {
  convertLdmSingleFileToFolder,
  fromLdmSingleFile,
  readDiffusersComponents,
  readSingleFileKept,
  saveLdmSingleFile,
  SINGLE_FILE_KEPT_FILE,
  toLdmSingleFile,
  type DiffusersComponents,
  type RawTensor,
  DIFFUSERS_WEIGHT_FILES,
  writeLdmSingleFileFromFolder,
} from '../../../lib/checkpoint/ldm-single-file';
import { SafetensorsFile, writeSafetensors } from '../../../lib/checkpoint/safetensors';
import { expectSameStateDict, readRaw } from '../../helpers/raw-state-dict';
import { useTempDir } from '../../helpers/temp-dir';

const PIPELINE = path.join(__dirname, '../../fixtures/diffusers/sd-pipeline-tiny');
const OPEN = 'cond_stage_model.model.';
const WIDTH = 32; // sd-pipeline-tiny's text encoder hidden_size
const LAYERS = 3;

/** Deterministic bytes (a counter), distinct per tensor. */
function tensor(shape: number[], seed: number): RawTensor {
  const data = new Uint8Array(shape.reduce((a, b) => a * b, 1) * 4);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + seed * 17) & 0xff;
  return { dtype: 'F32', shape, data };
}

/** What a real SD 2.x file has beyond diffusers' CLIPTextModel: one more block, text_projection, logit_scale. */
function keptTensors(): Map<string, RawTensor> {
  const block = `${OPEN}transformer.resblocks.${LAYERS}`;
  const shapes: Array<[string, number[]]> = [
    [`${block}.attn.in_proj_weight`, [3 * WIDTH, WIDTH]],
    [`${block}.attn.in_proj_bias`, [3 * WIDTH]],
    [`${block}.attn.out_proj.weight`, [WIDTH, WIDTH]],
    [`${block}.attn.out_proj.bias`, [WIDTH]],
    [`${block}.ln_1.weight`, [WIDTH]],
    [`${block}.ln_1.bias`, [WIDTH]],
    [`${block}.mlp.c_fc.weight`, [37, WIDTH]],
    [`${block}.mlp.c_fc.bias`, [37]],
    [`${block}.mlp.c_proj.weight`, [WIDTH, 37]],
    [`${block}.mlp.c_proj.bias`, [WIDTH]],
    [`${block}.ln_2.weight`, [WIDTH]],
    [`${block}.ln_2.bias`, [WIDTH]],
    [`${OPEN}text_projection`, [WIDTH, WIDTH]],
    [`${OPEN}logit_scale`, []],
  ];
  return new Map(shapes.map(([k, s], i) => [k, tensor(s, i)]));
}

function sink(): Writable & { text: string } {
  const s = new Writable({
    write(chunk: Buffer, _e, done) {
      s.text += chunk.toString();
      done();
    },
  }) as Writable & { text: string };
  s.text = '';
  return s;
}

describe('the OpenCLIP layout on sd-pipeline-tiny', () => {
  let diffusers: DiffusersComponents;
  const sd1 = readLdmLayout(PIPELINE);
  const sd2 = withTextEncoderStyle(sd1, 'open-clip');
  beforeAll(async () => {
    diffusers = await readDiffusersComponents(PIPELINE);
  });

  it("stacks q, k, v into in_proj_weight/in_proj_bias byte for byte and names the rest as OpenCLIP's", () => {
    const single = toLdmSingleFile(diffusers, sd2);
    const te = diffusers.text_encoder;
    for (let i = 0; i < LAYERS; i++) {
      for (const [fused, suffix] of [
        ['in_proj_weight', 'weight'],
        ['in_proj_bias', 'bias'],
      ] as const) {
        const parts = ['q_proj', 'k_proj', 'v_proj'].map((p) => te.get(`text_model.encoder.layers.${i}.self_attn.${p}.${suffix}`)!);
        const joined = single.get(`${OPEN}transformer.resblocks.${i}.attn.${fused}`)!;
        expect(joined.shape).toEqual([3 * WIDTH, ...parts[0]!.shape.slice(1)]);
        expect(Buffer.compare(Buffer.from(joined.data), Buffer.concat(parts.map((p) => Buffer.from(p.data))))).toBe(0);
      }
    }
    const textKeys = [...single.keys()].filter((k) => k.startsWith('cond_stage_model.'));
    expect(textKeys.every((k) => k.startsWith(OPEN))).toBe(true);
    expect(textKeys).toEqual(expect.arrayContaining([`${OPEN}token_embedding.weight`, `${OPEN}positional_embedding`, `${OPEN}ln_final.weight`]));
    // 2 embeddings + 2 final norm + per block 2 fused + 10 others (the 3 × 4 q/k/v tensors became 2), and the
    // fixture's legacy position_ids where diffusers' script puts it.
    expect(textKeys).toHaveLength(4 + LAYERS * 12 + 1);
    expect(textKeys).toContain(`${OPEN}transformer.text_model.embeddings.position_ids`);
  });

  it('reads a file by its own keys whatever the configs say, keeping the extra OpenCLIP tensors', () => {
    const kept = keptTensors();
    const single = toLdmSingleFile(diffusers, sd2, 'sd2', kept);
    for (const layout of [sd1, sd2]) {
      const back = fromLdmSingleFile(single, layout);
      for (const c of ['unet', 'vae', 'text_encoder'] as const) expectSameStateDict(back.components[c], diffusers[c]);
      expectSameStateDict(back.kept, kept);
      expect(back.ignored).toEqual([]);
    }
    // An SD 1.x-layout file still reads with the SD 2.x-style configs.
    expectSameStateDict(fromLdmSingleFile(toLdmSingleFile(diffusers, sd1), sd2).components.text_encoder, diffusers.text_encoder);
  });

  describe('files and the convert CLI', () => {
    const tmp = useTempDir('open-clip');
    /** sd-pipeline-tiny with its text encoder declared gelu (OpenCLIP), as an SD 2.x folder. */
    const sd2Folder = (): string => {
      const dir = path.join(tmp(), 'sd2-config');
      if (!existsSync(dir)) {
        cpSync(PIPELINE, dir, { recursive: true });
        const file = path.join(dir, 'text_encoder', 'config.json');
        writeFileSync(file, JSON.stringify({ ...(JSON.parse(readFileSync(file, 'utf8')) as object), hidden_act: 'gelu' }, null, 2));
      }
      return dir;
    };

    it('file → folder keeps the extra tensors beside the text encoder; folder → file gives the same bytes', async () => {
      const original = path.join(tmp(), 'sd2.safetensors');
      await saveLdmSingleFile(original, diffusers, { config: sd2Folder(), kept: keptTensors() });
      const folder = path.join(tmp(), 'converted');
      const loaded = await convertLdmSingleFileToFolder(original, folder, { config: sd2Folder() });
      expect(loaded.kept.size).toBe(14);
      expectSameStateDict(await readRaw(path.join(folder, SINGLE_FILE_KEPT_FILE)), keptTensors());
      expectSameStateDict((await readDiffusersComponents(folder)).text_encoder, diffusers.text_encoder);

      const out = sink();
      const err = sink();
      const again = path.join(tmp(), 'again.safetensors');
      expect(await runConvertCli(['--to-single-file', folder, '--out', again], out, err)).toBe(0);
      expect(err.text).toBe('');
      expect(out.text).toMatch(/SD 2\.x OpenCLIP text encoder, 14 kept tensors from text_encoder\/single_file_extras\.safetensors/);
      expect(Buffer.compare(readFileSync(again), readFileSync(original))).toBe(0);
    });

    it('converts both ways one tensor at a time (q/k/v: only their rows of in_proj), writing the bytes the in-memory path writes', async () => {
      const original = path.join(tmp(), 'streamed-source.safetensors');
      await saveLdmSingleFile(original, diffusers, { config: sd2Folder(), kept: keptTensors() });
      const largest = Math.max(...[...(await readRaw(original)).values()].map((t) => t.data.byteLength));
      const readBytes = jest.spyOn(SafetensorsFile.prototype, 'readBytes');
      const readInto = jest.spyOn(SafetensorsFile.prototype, 'readInto');
      try {
        const folder = path.join(tmp(), 'streamed');
        await convertLdmSingleFileToFolder(original, folder, { config: sd2Folder() });
        expect(readBytes).not.toHaveBeenCalled();
        const qkvReads = readInto.mock.calls.filter(([name]) => name.endsWith('attn.in_proj_weight') && !name.includes(`resblocks.${LAYERS}.`)); // not the kept block
        expect(qkvReads).toHaveLength(3 * LAYERS);
        for (const [, , range] of qkvReads) expect(range?.length).toBe(WIDTH * WIDTH * 4);
        expect(Math.max(...readInto.mock.calls.map(([, target]) => target.byteLength))).toBeLessThanOrEqual(largest);
        // The same bytes as writing the whole state dicts (the path before streaming).
        const inMemory = path.join(tmp(), 'in-memory.safetensors');
        await writeSafetensors(inMemory, diffusers.text_encoder, { format: 'pt' });
        expect(Buffer.compare(readFileSync(path.join(folder, DIFFUSERS_WEIGHT_FILES.text_encoder)), readFileSync(inMemory))).toBe(0);

        readInto.mockClear();
        const back = path.join(tmp(), 'streamed-back.safetensors');
        const written = await writeLdmSingleFileFromFolder(folder, back);
        expect(written).toEqual({
          components: { unet: diffusers.unet.size, vae: diffusers.vae.size, text_encoder: diffusers.text_encoder.size },
          kept: 14,
          textEncoderStyle: 'open-clip',
        });
        expect(readBytes).not.toHaveBeenCalled();
        expect(Buffer.compare(readFileSync(back), readFileSync(original))).toBe(0);
      } finally {
        readBytes.mockRestore();
        readInto.mockRestore();
      }
    });

    it('--to-single-file on an SD 2.x folder without extra tensors writes the SD 2.x layout (what diffusers’ script writes)', async () => {
      const target = path.join(tmp(), 'plain-sd2.safetensors');
      expect(await runConvertCli(['--to-single-file', sd2Folder(), '--out', target], sink(), sink())).toBe(0);
      expect(await readSingleFileKept(sd2Folder())).toEqual(new Map());
      const keys = [...(await readRaw(target)).keys()].filter((k) => k.startsWith('cond_stage_model.'));
      expect(keys.length).toBeGreaterThan(0);
      expect(keys.filter((k) => !k.startsWith(OPEN))).toEqual([]);
    });
  });
});
