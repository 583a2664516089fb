// Textual inversion files into a pipeline (diffusers' load_textual_inversion): diffusers' layout with one
// or several vectors, A1111's emb_params / string_to_param.* safetensors under the file's name or a given
// token; the tokens become the rows appended to the token embedding, prompts spread a multi-vector token;
// what does not fit is refused with nothing changed; npm run sample takes --textual-inversion [--token].
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { Writable } from 'stream';
import { writeSafetensors } from '../../lib/checkpoint/safetensors';
import { loadStableDiffusion, type StableDiffusion } from '../../lib/models/stable-diffusion';
import { loadTextualInversion, readTextualInversionFile, saveTextualInversionFile } from '../../lib/models/textual-inversion';
import { Tensor } from '../../lib/native/tensor';
import { runSampleCli } from '../../lib/sample/cli';
import { encodePrompts, tokenizePrompts } from '../../lib/sample/txt2img';
import { useTempDir } from '../helpers/temp-dir';

const PIPELINE = path.join(__dirname, '..', 'fixtures', 'diffusers', 'sd-pipeline-tiny');
const tmp = useTempDir('ti-files');

const vectors = (n: number, seed: number) =>
  Tensor.from(
    Float32Array.from({ length: n * 32 }, (_, i) => Math.sin(seed + i * 0.7)),
    [n, 32],
  );

async function tokenRows(sd: StableDiffusion, first: number, n: number): Promise<Float32Array> {
  const state = await sd.textEncoder.stateDict();
  try {
    return (state.get('text_model.embeddings.token_embedding.weight')!.toArray() as Float32Array).slice(first * 32, (first + n) * 32);
  } finally {
    for (const t of state.values()) t.dispose();
  }
}

test("diffusers' layout: one vector as [D], several as [n, D]; the rows and tokens land where prompts find them", async () => {
  const dir = tmp();
  using one = vectors(1, 1);
  using three = vectors(3, 2);
  await saveTextualInversionFile(path.join(dir, 'one.safetensors'), '<one>', one);
  await saveTextualInversionFile(path.join(dir, 'three.safetensors'), '<cat-toy>', three);
  const read = await readTextualInversionFile(path.join(dir, 'one.safetensors'));
  expect([read.token, read.layout, read.vectors.shape]).toEqual(['<one>', 'diffusers', [1, 32]]);
  read.vectors.dispose();

  using sd = await loadStableDiffusion(PIPELINE);
  using before = await encodePrompts(sd, ['a photo of <cat-toy>']);
  expect(await loadTextualInversion(sd, path.join(dir, 'one.safetensors'))).toEqual({ token: '<one>', tokens: ['<one>'], layout: 'diffusers' });
  expect(await loadTextualInversion(sd, path.join(dir, 'three.safetensors'))).toEqual({
    token: '<cat-toy>',
    tokens: ['<cat-toy>', '<cat-toy>_1', '<cat-toy>_2'],
    layout: 'diffusers',
  });
  expect(sd.textEncoder.config.vocab_size).toBe(1004);
  expect(Array.from(await tokenRows(sd, 1000, 4))).toEqual([...(one.toArray() as Float32Array), ...(three.toArray() as Float32Array)]);
  // The prompt names the token once; the pipeline spreads it over its three vectors.
  using ids = tokenizePrompts(sd, ['a photo of <cat-toy> and <one>']);
  const row = Array.from(ids.toArray() as BigInt64Array, Number);
  expect(row.filter((id) => id >= 1000)).toEqual([1001, 1002, 1003, 1000]);
  using after = await encodePrompts(sd, ['a photo of <cat-toy>']);
  expect(Buffer.from((after.toArray() as Float32Array).buffer).equals(Buffer.from((before.toArray() as Float32Array).buffer))).toBe(false);
});

test("A1111's safetensors: emb_params under the file's name, string_to_param.* under its metadata name, or a given token", async () => {
  const dir = tmp();
  using v = vectors(2, 3);
  const data = v.toArray() as Float32Array;
  await writeSafetensors(path.join(dir, 'charturner.safetensors'), [['emb_params', { dtype: 'F32', shape: [2, 32], data }]]);
  await writeSafetensors(path.join(dir, 'other.safetensors'), [['string_to_param.*', { dtype: 'F32', shape: [2, 32], data }]], { name: 'styleword' });
  using sd = await loadStableDiffusion(PIPELINE);
  expect(await loadTextualInversion(sd, path.join(dir, 'charturner.safetensors'))).toEqual({
    token: 'charturner',
    tokens: ['charturner', 'charturner_1'],
    layout: 'a1111',
  });
  expect((await loadTextualInversion(sd, path.join(dir, 'other.safetensors'))).token).toBe('styleword');
  expect((await loadTextualInversion(sd, path.join(dir, 'other.safetensors'), { token: '<mine>' })).tokens).toEqual(['<mine>', '<mine>_1']);
  expect(Array.from(await tokenRows(sd, 1004, 2))).toEqual(Array.from(data));
});

test('refused with nothing changed: a token the tokenizer has, another width, several tensors, a pickle', async () => {
  const dir = tmp();
  using v = vectors(1, 4);
  await saveTextualInversionFile(path.join(dir, 'a.safetensors'), 'a', v);
  await saveTextualInversionFile(path.join(dir, 'x.safetensors'), '<x>', v);
  await writeSafetensors(path.join(dir, 'wide.safetensors'), [['<w>', { dtype: 'F32', shape: [64], data: new Float32Array(64) }]]);
  await writeSafetensors(path.join(dir, 'two.safetensors'), [
    ['<p>', { dtype: 'F32', shape: [32], data: new Float32Array(32) }],
    ['<q>', { dtype: 'F32', shape: [32], data: new Float32Array(32) }],
  ]);
  fs.writeFileSync(path.join(dir, 'old.pt'), Buffer.from([0x80, 0x02]));
  using sd = await loadStableDiffusion(PIPELINE);
  await expect(loadTextualInversion(sd, path.join(dir, 'a.safetensors'))).rejects.toThrow(/already has the token "a"/);
  await loadTextualInversion(sd, path.join(dir, 'x.safetensors'));
  await expect(loadTextualInversion(sd, path.join(dir, 'x.safetensors'))).rejects.toThrow(/already has the token "<x>"/);
  await expect(loadTextualInversion(sd, path.join(dir, 'wide.safetensors'))).rejects.toThrow(/64 wide but the text encoder's hidden_size is 32/);
  await expect(loadTextualInversion(sd, path.join(dir, 'two.safetensors'))).rejects.toThrow(/found 2 tensors: <p>, <q>/);
  await expect(loadTextualInversion(sd, path.join(dir, 'old.pt'))).rejects.toThrow(/never loads pickle/);
  expect(sd.textEncoder.config.vocab_size).toBe(1001);
  expect(sd.tokenizer.vocabSize).toBe(1001);
});

test('npm run sample --textual-inversion [--token] draws with the embedding: another image than without it', async () => {
  const dir = tmp();
  using v = vectors(2, 5);
  const file = path.join(dir, 'learned_embeds.safetensors');
  await saveTextualInversionFile(file, '<cat-toy>', v);
  const sink = () => {
    let text = '';
    return Object.assign(
      new Writable({
        write(chunk: Buffer, _e, done) {
          text += chunk.toString();
          done();
        },
      }),
      { text: () => text },
    );
  };
  const run = async (name: string, extra: string[]): Promise<Buffer> => {
    const err = sink();
    const code = await runSampleCli(
      ['--model', PIPELINE, '--prompt', 'a photo of <toy>', '--steps', '2', '--seed', '1', '--out', path.join(dir, name), ...extra],
      sink(),
      err,
    );
    expect({ code, err: code === 0 ? '' : err.text() }).toEqual({ code: 0, err: '' });
    return await sharp(path.join(dir, name)).raw().toBuffer();
  };
  const plain = await run('plain.png', []);
  const withToken = await run('ti.png', ['--textual-inversion', file, '--token', '<toy>']);
  expect(withToken.equals(plain)).toBe(false);
  const err = sink();
  expect(await runSampleCli(['--model', PIPELINE, '--prompt', 'x', '--token', 'a', '--out', path.join(dir, 'n.png')], sink(), err)).toBe(1);
  expect(err.text()).toMatch(/--token: expected at most one per --textual-inversion \(0\)/);
});
