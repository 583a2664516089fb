// difftune → diffusers, textual inversion and text-encoder training (issue 18): the learned_embeds.safetensors
// a difftune run writes (two vectors), a one-vector file in diffusers' 1-D layout and an A1111 emb_params
// file load with diffusers' load_textual_inversion into the tiny SD pipeline and give difftune's token ids
// exactly and its prompt embeddings within the text encoder's forward bound; the whole pipelines difftune
// saves — textual inversion's (tokenizer with added tokens, grown text encoder) and a fully trained text
// encoder's — open in StableDiffusionPipeline.from_pretrained to the same ids and embeddings.
import * as path from 'node:path';
import { writeSafetensors } from '../../lib/checkpoint/safetensors';
import { loadStableDiffusion } from '../../lib/models/stable-diffusion';
import { loadTextualInversion, saveTextualInversionFile } from '../../lib/models/textual-inversion';
import { Tensor } from '../../lib/native/tensor';
import { encodePrompts, tokenizePrompts } from '../../lib/sample/txt2img';
import { useTempDir } from '../helpers/temp-dir';
import { describeInterop, readTensors, relError, ROOT, runPython, U32 } from './helpers/harness';
import { finetuneTinySd, SD_BASE } from './helpers/sd';

const tmp = useTempDir('interop-ti');

const PROMPTS = ['a photo of a <blue-shape>', 'a <blue-shape> next to a <one> and <a1111>', 'a red circle, flat style'];

/** The text encoder's forward bound (lora-layouts.interop.test.ts): its longest dot product, attention over 77 tokens. */
const TEXT_ENCODER_BOUND = Math.max(77, 32, 37) * U32;

interface Case {
  pipeline: string;
  embeddings?: Array<{ file: string; token?: string }>;
}

describeInterop('textual inversion files and trained text encoders load in diffusers to difftune’s prompts', () => {
  let dir: string;
  let cases: Array<Case & { out: string }>;
  let response: Array<{ vocab: number; added: Record<string, number>; tokens: string[][] }>;
  let warnings: string[];

  beforeAll(async () => {
    dir = tmp();
    const ti = path.join(dir, 'ti');
    await finetuneTinySd(ti, {
      data: { path: path.join(ROOT, 'recipes', 'data', 'shapes', 'train'), layout: 'plain', limit: 3, resolution: 32, channels: 3 },
      freeze: {},
      textualInversion: { placeholderToken: '<blue-shape>', initializerToken: 'blue', numVectors: 2, saveAsFullPipeline: true },
      train: { steps: 3, batchSize: 2, lr: 5e-2, seed: 0 },
    });
    const te = path.join(dir, 'te');
    await finetuneTinySd(te, { freeze: { preset: 'attention-only', textEncoder: 'full' }, train: { steps: 3, batchSize: 2, lr: 1e-2, seed: 0 } });
    using one = Tensor.from(
      Float32Array.from({ length: 32 }, (_, i) => Math.cos(i)),
      [1, 32],
    );
    await saveTextualInversionFile(path.join(dir, 'one.safetensors'), '<one>', one);
    await writeSafetensors(path.join(dir, 'a1111.safetensors'), [
      ['emb_params', { dtype: 'F32', shape: [1, 32], data: Float32Array.from({ length: 32 }, (_, i) => Math.sin(3 * i)) }],
    ]);
    const embeddings = [
      { file: path.join(ti, 'learned_embeds.safetensors') },
      { file: path.join(dir, 'one.safetensors') },
      { file: path.join(dir, 'a1111.safetensors'), token: '<a1111>' },
    ];
    cases = [
      { pipeline: SD_BASE, embeddings, out: path.join(dir, 'base-embeddings.safetensors') },
      { pipeline: ti, out: path.join(dir, 'ti-pipeline.safetensors') },
      { pipeline: te, out: path.join(dir, 'te-pipeline.safetensors') },
    ];
    const r = await runPython('textual_inversion', { cases: cases.map((c) => ({ ...c, prompts: PROMPTS })) });
    response = r.cases as typeof response;
    warnings = r.warnings;
  }, 600_000);

  test('diffusers and transformers load every file and folder without a warning', () => {
    expect(warnings).toEqual([]);
  });

  test.each([
    [0, 'the base pipeline with difftune’s learned_embeds (2 vectors), a 1-D one-vector file and an A1111 emb_params file'],
    [1, 'the whole pipeline textual inversion saved (tokenizer with the tokens, grown text encoder)'],
    [2, 'the whole pipeline with a fully trained text encoder'],
  ])('case %i: %s', async (i) => {
    const c = cases[i]!;
    using sd = await loadStableDiffusion(c.pipeline);
    for (const e of c.embeddings ?? []) await loadTextualInversion(sd, e.file, { token: e.token });
    expect(response[i]!.vocab).toBe(sd.tokenizer.vocabSize);
    expect(response[i]!.added).toEqual(Object.fromEntries([...sd.tokenizer.addedTokens].filter(([, id]) => id >= 1000)));
    expect(response[i]!.tokens).toEqual(PROMPTS.map((p) => sd.tokenizer.tokenize(sd.tokenizer.expandMultiVectorTokens(p))));
    const theirs = await readTensors(c.out);
    using ids = tokenizePrompts(sd, PROMPTS);
    expect(Array.from(theirs.get('ids')!.data)).toEqual(Array.from(ids.toArray() as BigInt64Array, Number));
    using embeds = await encodePrompts(sd, PROMPTS);
    expect(relError(Float32Array.from(embeds.toArray() as Float32Array), theirs.get('embeds')!.data as Float32Array)).toBeLessThan(TEXT_ENCODER_BOUND);
  });
});
