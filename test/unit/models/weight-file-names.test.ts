// Which weight files a model folder's weights are read from, with and without a variant, under every name
// diffusers v0.31's from_pretrained reads (models/modeling_utils.py, models/model_loading_utils.py
// _fetch_index_file / _fetch_index_file_legacy, utils/hub_utils.py _add_variant) and only those.
// Shards are empty files here: choosing them does not read them (test/native/unet-io.test.ts loads real ones).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ConfigError } from '../../../lib/errors';
import { addVariant, describeWeightFileNames, hasWeightFiles, shardedWeightFiles, weightFileNames } from '../../../lib/models/model-folder';

const WEIGHTS = 'diffusion_pytorch_model.safetensors';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-weight-names-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A folder with `shards` (empty files) and `index` mapping two tensors to each shard. */
function shardedFolder(name: string, index: string, shards: readonly string[]): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    fs.writeFileSync(path.join(dir, shard), '');
    weightMap[`block${i}.weight`] = shard;
    weightMap[`block${i}.bias`] = shard;
  });
  fs.writeFileSync(path.join(dir, index), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  return dir;
}

test("addVariant puts the variant before the last extension, as diffusers' _add_variant", () => {
  expect(addVariant(WEIGHTS, 'fp16')).toBe('diffusion_pytorch_model.fp16.safetensors');
  expect(addVariant('diffusion_pytorch_model.safetensors.index.json', 'fp16')).toBe('diffusion_pytorch_model.safetensors.index.fp16.json');
  expect(addVariant('model.safetensors', 'bf16')).toBe('model.bf16.safetensors');
  expect(addVariant(WEIGHTS, undefined)).toBe(WEIGHTS);
});

test('the names looked for, in diffusers v0.31 order: shard indexes first, then the single file', () => {
  expect(weightFileNames(WEIGHTS)).toEqual({ indexes: ['diffusion_pytorch_model.safetensors.index.json'], single: WEIGHTS });
  expect(weightFileNames(WEIGHTS, 'fp16')).toEqual({
    indexes: ['diffusion_pytorch_model.safetensors.index.fp16.json', 'diffusion_pytorch_model.safetensors.fp16.index.json'],
    single: 'diffusion_pytorch_model.fp16.safetensors',
  });
});

test.each([
  // save_pretrained(variant="fp16", max_shard_size=...) of diffusers v0.31
  ['v0.31', 'diffusion_pytorch_model.safetensors.index.fp16.json', ['diffusion_pytorch_model.fp16-00001-of-00002.safetensors', 'diffusion_pytorch_model.fp16-00002-of-00002.safetensors']],
  // v0.29 and v0.30: the same index name, transformers-style shard names
  ['v0.29–v0.30', 'diffusion_pytorch_model.safetensors.index.fp16.json', ['diffusion_pytorch_model-00001-of-00002.fp16.safetensors', 'diffusion_pytorch_model-00002-of-00002.fp16.safetensors']],
  // the deprecated index name v0.31 still reads (_fetch_index_file_legacy)
  ['legacy', 'diffusion_pytorch_model.safetensors.fp16.index.json', ['diffusion_pytorch_model-00001-of-00002.fp16.safetensors', 'diffusion_pytorch_model-00002-of-00002.fp16.safetensors']],
])('a sharded fp16 variant as %s names it is found', (name, index, shards) => {
  const dir = shardedFolder(name, index, shards);
  expect(hasWeightFiles(dir, WEIGHTS, 'fp16')).toBe(true);
  expect(shardedWeightFiles(dir, WEIGHTS, 'fp16')).toEqual(shards.map((s) => path.join(dir, s)));
  // Not the weights of the plain model.
  expect(hasWeightFiles(dir, WEIGHTS)).toBe(false);
  expect(shardedWeightFiles(dir, WEIGHTS)).toBeUndefined();
});

test('a sharded plain model and a single variant file are found', () => {
  const sharded = shardedFolder('plain', 'diffusion_pytorch_model.safetensors.index.json', ['diffusion_pytorch_model-00001-of-00002.safetensors', 'diffusion_pytorch_model-00002-of-00002.safetensors']);
  expect(shardedWeightFiles(sharded, WEIGHTS)?.map((f) => path.basename(f))).toEqual(['diffusion_pytorch_model-00001-of-00002.safetensors', 'diffusion_pytorch_model-00002-of-00002.safetensors']);
  expect(shardedWeightFiles(sharded, WEIGHTS, 'fp16')).toBeUndefined();
  const single = path.join(tmp, 'single');
  fs.mkdirSync(single);
  fs.writeFileSync(path.join(single, 'diffusion_pytorch_model.fp16.safetensors'), '');
  expect(shardedWeightFiles(single, WEIGHTS, 'fp16')).toEqual([path.join(single, 'diffusion_pytorch_model.fp16.safetensors')]);
  expect(shardedWeightFiles(single, WEIGHTS)).toBeUndefined();
});

test('a shard index wins over a single file beside it, as in diffusers', () => {
  const dir = shardedFolder('both', 'diffusion_pytorch_model.safetensors.index.fp16.json', ['diffusion_pytorch_model.fp16-00001-of-00001.safetensors']);
  fs.writeFileSync(path.join(dir, 'diffusion_pytorch_model.fp16.safetensors'), '');
  expect(shardedWeightFiles(dir, WEIGHTS, 'fp16')).toEqual([path.join(dir, 'diffusion_pytorch_model.fp16-00001-of-00001.safetensors')]);
});

test('transformers text encoders: model.safetensors.index.fp16.json and model.fp16-0000k-of-0000n.safetensors', () => {
  const dir = shardedFolder('text', 'model.safetensors.index.fp16.json', ['model.fp16-00001-of-00002.safetensors', 'model.fp16-00002-of-00002.safetensors']);
  expect(shardedWeightFiles(dir, 'model.safetensors', 'fp16')?.map((f) => path.basename(f))).toEqual(['model.fp16-00001-of-00002.safetensors', 'model.fp16-00002-of-00002.safetensors']);
});

test('an index name diffusers never reads or writes (<weights>.fp16.safetensors.index.json) is not taken for the weights', () => {
  const dir = shardedFolder('unknown-name', 'diffusion_pytorch_model.fp16.safetensors.index.json', ['diffusion_pytorch_model.fp16-00001-of-00001.safetensors']);
  expect(hasWeightFiles(dir, WEIGHTS, 'fp16')).toBe(false);
  expect(shardedWeightFiles(dir, WEIGHTS, 'fp16')).toBeUndefined();
  expect(describeWeightFileNames(WEIGHTS, 'fp16')).toBe(
    'diffusion_pytorch_model.fp16.safetensors (nor a shard index diffusion_pytorch_model.safetensors.index.fp16.json or diffusion_pytorch_model.safetensors.fp16.index.json)',
  );
});

test('an index naming a missing shard is a ConfigError naming the index and the shard', () => {
  const dir = shardedFolder('missing', 'diffusion_pytorch_model.safetensors.index.fp16.json', ['diffusion_pytorch_model.fp16-00001-of-00002.safetensors', 'diffusion_pytorch_model.fp16-00002-of-00002.safetensors']);
  fs.rmSync(path.join(dir, 'diffusion_pytorch_model.fp16-00002-of-00002.safetensors'));
  const index = path.join(dir, 'diffusion_pytorch_model.safetensors.index.fp16.json');
  expect(() => shardedWeightFiles(dir, WEIGHTS, 'fp16')).toThrow(ConfigError);
  expect(() => shardedWeightFiles(dir, WEIGHTS, 'fp16')).toThrow(`${index}: shard diffusion_pytorch_model.fp16-00002-of-00002.safetensors is missing from ${dir}`);
});
