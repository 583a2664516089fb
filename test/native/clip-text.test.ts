// CLIPTextModel: every clip-text-tiny case transformers computed (77 and 12 tokens, an attention mask,
// backward) within the fixtures README's tolerances (outputs 1e-5, gradients 5e-5); the pipeline's
// text_encoder/ folder with its position_ids buffer; pooling rules; clear errors for bad input.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { disposeStateDict, loadStateDict, saveStateDict } from '../../lib/checkpoint/state-dict';
import { registerClipTextCases, releaseClipTextCaseModels } from '../../lib/conformance/clip-text-cases';
import { CaseRegistry } from '../../lib/conformance/registry';
import { runFixtureSet } from '../../lib/conformance/run';
import { ConfigError, InvalidArgumentError, UnsupportedFormatError } from '../../lib/errors';
import { CLIPTextModel, loadTextEncoder } from '../../lib/models/clip-text';
import { Tensor } from '../../lib/native/tensor';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');
const TINY = path.join(FIXTURES, 'clip-text-tiny');
const PIPELINE_TEXT = path.join(FIXTURES, 'sd-pipeline-tiny', 'text_encoder');

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-clip-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));
afterAll(() => releaseClipTextCaseModels());

function ids(rows: number[][]): Tensor {
  return Tensor.from(BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0]!.length]);
}

function readConfig(dir: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
}

async function values(t: Tensor): Promise<number[]> {
  return Array.from((await t.data()) as Float32Array);
}

test('clip-text-tiny: every case passes', async () => {
  const report = await runFixtureSet(TINY, registerClipTextCases(new CaseRegistry()));
  expect(report.cases.map((c) => c.name)).toEqual(['forward_77', 'forward_short', 'forward_attention_mask', 'backward_mse']);
  for (const c of report.cases) process.stdout.write(`${c.name}: ${c.checks.length} checks, worst ${c.worst?.name} rel ${c.worst?.rel.toExponential(2)}\n`);
  const failures = report.cases
    .filter((c) => c.status !== 'pass')
    .map((c) => `${c.name}: ${c.status} ${c.message ?? ''} ${c.worst ? `${c.worst.name} rel ${c.worst.rel}` : ''}`);
  expect(failures).toEqual([]);
});

test('the sd-pipeline-tiny text_encoder/ (with position_ids) loads; embed() is encode().promptEmbeds', async () => {
  using encoder = await loadTextEncoder(PIPELINE_TEXT);
  expect(encoder.hiddenSize).toBe(32);
  const names = (await encoder.parameters()).map((p) => p.name);
  expect(names).not.toContain('text_model.embeddings.position_ids');
  expect(names.length).toBe(52);
  using input = ids([[998, 5, 6, 7, 999, 999, 999]]);
  const r = await encoder.encode(input, { clipSkip: 1, outputHiddenStates: true });
  expect(r.lastHiddenState.shape).toEqual([1, 7, 32]);
  expect(r.pooledOutput.shape).toEqual([1, 32]);
  expect(r.hiddenStates?.length).toBe(4);
  using skipped = await encoder.embed(input, { clipSkip: 1 });
  expect(await values(skipped)).toEqual(await values(r.promptEmbeds));
  using plain = await encoder.embed(input);
  expect(await values(plain)).toEqual(await values(r.lastHiddenState));
  expect(await values(plain)).not.toEqual(await values(skipped));
  // pooled = last_hidden_state at the first largest id (position 4).
  const last = await values(r.lastHiddenState);
  expect(await values(r.pooledOutput)).toEqual(last.slice(4 * 32, 5 * 32));
  for (const t of [r.lastHiddenState, r.pooledOutput, r.promptEmbeds, ...(r.hiddenStates ?? [])]) t.dispose();
  // The same folder's weights without the buffer load just as well.
  const weights = await loadStateDict(path.join(PIPELINE_TEXT, 'model.safetensors'));
  expect(weights.has('text_model.embeddings.position_ids')).toBe(true);
  weights.get('text_model.embeddings.position_ids')!.dispose();
  weights.delete('text_model.embeddings.position_ids');
  await encoder.loadStateDict(weights, 'without position_ids');
  disposeStateDict(weights);
});

test('eos_token_id other than 2 pools at the first occurrence of that id', async () => {
  const config = readConfig(TINY);
  using legacy = await CLIPTextModel.fromConfig(config, { seed: 1 });
  using modern = await CLIPTextModel.fromConfig({ ...config, eos_token_id: 7 }, { seed: 1 });
  using input = ids([[998, 7, 999, 7, 3]]);
  const a = await legacy.encode(input);
  const b = await modern.encode(input);
  const lastA = await values(a.lastHiddenState);
  expect(await values(a.lastHiddenState)).toEqual(await values(b.lastHiddenState));
  expect(await values(a.pooledOutput)).toEqual(lastA.slice(64, 96)); // argmax: 999 at position 2
  expect(await values(b.pooledOutput)).toEqual(lastA.slice(32, 64)); // first 7 at position 1
  for (const t of [a.lastHiddenState, a.pooledOutput, a.promptEmbeds, b.lastHiddenState, b.pooledOutput, b.promptEmbeds]) t.dispose();
});

test('hidden_act gelu differs from quick_gelu (the config is honoured)', async () => {
  const config = readConfig(TINY);
  const weights = await loadStateDict(path.join(TINY, 'model.safetensors'));
  using quick = await CLIPTextModel.fromConfig(config);
  using exact = await CLIPTextModel.fromConfig({ ...config, hidden_act: 'gelu' });
  await quick.loadStateDict(weights);
  await exact.loadStateDict(weights);
  disposeStateDict(weights);
  using input = ids([[998, 10, 20, 999]]);
  using x = await quick.embed(input);
  using y = await exact.embed(input);
  const xv = await values(x);
  const yv = await values(y);
  const diff = Math.max(...xv.map((v, i) => Math.abs(v - yv[i]!)));
  expect(diff).toBeGreaterThan(1e-4);
});

test('bad input is a clear error, never a crash', async () => {
  using encoder = await loadTextEncoder(TINY);
  using floats = Tensor.from(new Float32Array(4), [1, 4]);
  await expect(encoder.encode(floats)).rejects.toThrow(/Expected int64 token ids for inputIds but received a Float tensor/);
  using flat = ids([[1, 2, 3]]);
  using oneD = Tensor.from(new BigInt64Array([1n, 2n]), [2]);
  await expect(encoder.encode(oneD)).rejects.toThrow(/Expected inputIds of shape \[batch, tokens\] with 1 to 77 tokens/);
  using long = Tensor.from(new BigInt64Array(78), [1, 78]);
  await expect(encoder.encode(long)).rejects.toThrow(/but received \[1, 78\]/);
  using outOfVocab = ids([[1, 1000]]);
  await expect(encoder.encode(outOfVocab)).rejects.toThrow(/Expected token ids in \[0, 999\] \(vocab_size 1000\) but received the id 1000/);
  using negative = ids([[-1, 3]]);
  await expect(encoder.encode(negative)).rejects.toThrow(/received the id -1/);
  using badMask = Tensor.from(new BigInt64Array(2), [1, 2]);
  await expect(encoder.encode(flat, { attentionMask: badMask })).rejects.toThrow(/Expected an attentionMask of shape \[1, 3\]/);
  await expect(encoder.encode(flat, { clipSkip: 4 })).rejects.toThrow(/clipSkip/);
  await expect(encoder.encode(flat, { clipSkip: -1 })).rejects.toThrow(InvalidArgumentError);
  await expect(encoder.encode([1, 2] as unknown as Tensor)).rejects.toThrow(/Expected a Tensor for inputIds/);
  using target = Tensor.from(new Float32Array(32), [1, 1, 32]);
  await expect(encoder.forwardBackwardMse(flat, target)).rejects.toThrow(/Expected a target of shape \[1, 3, 32\]/);
  encoder.dispose();
  await expect(encoder.encode(flat)).rejects.toThrow(/CLIPTextModel was used after dispose/);
});

test('bad configs and folders are clear errors; pickles are refused', async () => {
  const config = readConfig(TINY);
  await expect(CLIPTextModel.fromConfig({ ...config, hidden_act: 'tanh' }, { source: 'text_encoder/config.json' })).rejects.toThrow(
    /text_encoder\/config.json: "hidden_act"/,
  );
  await expect(CLIPTextModel.fromConfig({ ...config, num_attention_heads: 5 })).rejects.toThrow(/"num_attention_heads" 5 does not divide "hidden_size" 32/);
  await expect(CLIPTextModel.fromConfig({ ...config, model_type: 'clip' })).rejects.toThrow(/"text_config"/);
  await expect(CLIPTextModel.fromConfig({ ...config, architectures: ['CLIPTextModelWithProjection'] })).rejects.toThrow(ConfigError);
  await expect(CLIPTextModel.fromConfig({ ...config, vocab_size: -3 })).rejects.toThrow(/"vocab_size"/);
  await expect(loadTextEncoder(path.join(tmp, 'none'))).rejects.toThrow(/has no readable config.json/);
  const pickled = path.join(tmp, 'pickled');
  fs.mkdirSync(pickled);
  fs.copyFileSync(path.join(TINY, 'config.json'), path.join(pickled, 'config.json'));
  fs.writeFileSync(path.join(pickled, 'pytorch_model.bin'), Buffer.from([0x80, 0x02]));
  await expect(loadTextEncoder(pickled)).rejects.toThrow(UnsupportedFormatError);
  await expect(loadTextEncoder(pickled)).rejects.toThrow(/pytorch_model\.bin is a PyTorch pickle checkpoint.*safe_serialization=True/);
  // Weights for another config: every mismatch listed.
  const wide = path.join(tmp, 'wide');
  fs.mkdirSync(wide);
  fs.writeFileSync(path.join(wide, 'config.json'), JSON.stringify({ ...config, intermediate_size: 40, num_hidden_layers: 2 }));
  const weights = await loadStateDict(path.join(TINY, 'model.safetensors'));
  await saveStateDict(path.join(wide, 'model.safetensors'), weights, { format: 'pt' });
  disposeStateDict(weights);
  await expect(loadTextEncoder(wide)).rejects.toThrow(
    /unexpected weights \(16\)[\s\S]*wrongly shaped weights \(6\):[\s\S]*text_model\.encoder\.layers\.0\.mlp\.fc1\.weight \(expected \[40, 32\], found \[37, 32\]\)/,
  );
});
