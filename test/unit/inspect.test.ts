/** runInspect, the logic behind `npm run inspect`, run in-process (no build needed). */

import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { runInspect } from '../../lib/checkpoint/inspect';
import { entry, rawSafetensors } from '../helpers/safetensors-bytes';
import { useTempDir } from '../helpers/temp-dir';

const fixtures = path.join(__dirname, '..', 'fixtures', 'diffusers');
const tempDir = useTempDir('inspect');

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runInspect(argv, { write: (t: string) => (out += t) }, { write: (t: string) => (err += t) });
  return { code, out, err };
}

const hasStack = (text: string): boolean => /\n\s+at /.test(text);

describe('a file', () => {
  test('prints metadata, a table of tensors and totals', async () => {
    const file = path.join(fixtures, 'unet2d-tiny', 'diffusion_pytorch_model.safetensors');
    const { code, out, err } = await run(file);
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out).toContain(`file: ${file}`);
    expect(out).toMatch(/metadata:\n {2}format: pt\n/);
    expect(out).toMatch(/ {2}name +dtype +shape +bytes\n/);
    expect(out).toMatch(/ {2}conv_in\.weight +F32 +\[32, 3, 3, 3\] +3456\n/);
    expect(out).toMatch(/total: 144 tensors, \d+ elements, \d+ bytes \(\d+\.\d\d MiB\)\n$/);
  });

  test('a file without metadata, with a 0-d and an empty tensor', async () => {
    const file = path.join(tempDir(), 'small.safetensors');
    writeFileSync(file, rawSafetensors({ s: entry('I64', [], 0, 8), e: entry('F16', [0, 2], 8, 8) }, 8));
    const { code, out } = await run(file);
    expect(code).toBe(0);
    expect(out).toContain('metadata: (none)');
    expect(out).toMatch(/ {2}s +I64 +\[\] +8\n/);
    expect(out).toMatch(/ {2}e +F16 +\[0, 2\] +0\n/);
    expect(out).toContain('total: 2 tensors, 1 elements, 8 bytes (8 bytes)');
  });

  test('a malformed file: exit 1, one line naming the file, no stack', async () => {
    const file = path.join(tempDir(), 'broken.safetensors');
    writeFileSync(file, rawSafetensors({ w: entry('F32', [2, 3], 0, 20) }, 20));
    const { code, out, err } = await run(file);
    expect(code).toBe(1);
    expect(out).toBe('');
    expect(err).toMatch(/^inspect: /);
    expect(err).toContain(file);
    expect(err).toContain('needs 6 elements × 4 bytes = 24 bytes');
    expect(err.trim().split('\n')).toHaveLength(1);
    expect(hasStack(err)).toBe(false);
  });

  test('--stack adds the stack trace', async () => {
    const file = path.join(tempDir(), 'broken2.safetensors');
    writeFileSync(file, Buffer.from([1, 2, 3]));
    const { code, err } = await run(file, '--stack');
    expect(code).toBe(1);
    expect(err).toMatch(/^inspect: .*broken2\.safetensors: file is 3 bytes/);
    expect(hasStack(err)).toBe(true);
  });

  test('a pickle checkpoint is refused with the conversion recipe', async () => {
    const file = path.join(tempDir(), 'model.ckpt');
    writeFileSync(file, Buffer.from([0x80, 0x02]));
    const { code, err } = await run(file);
    expect(code).toBe(1);
    expect(err).toContain('arbitrary code');
    expect(err).toContain('save_file');
    expect(hasStack(err)).toBe(false);
  });

  test('a missing path', async () => {
    const missing = path.join(tempDir(), 'nope.safetensors');
    const { code, err } = await run(missing);
    expect(code).toBe(1);
    expect(err).toBe(`inspect: ${missing}: no such file or directory (ERR_CONFIG)\n`);
  });
});

describe('a folder', () => {
  test('a whole Stable Diffusion folder: configs and weights of every component', async () => {
    const { code, out, err } = await run(path.join(fixtures, 'sd-pipeline-tiny'));
    expect(err).toBe('');
    expect(code).toBe(0);
    for (const section of [
      'model_index.json',
      'cases.safetensors',
      'scheduler/scheduler_config.json',
      'text_encoder/config.json',
      'text_encoder/model.safetensors',
      'unet/config.json',
      'unet/diffusion_pytorch_model.safetensors',
      'vae/config.json',
      'vae/diffusion_pytorch_model.safetensors',
    ]) {
      expect(out).toContain(`\n== ${section}\n`);
    }
    expect(out).toContain('"_class_name": "UNet2DConditionModel"');
    expect(out).toContain('text_model.embeddings.position_ids');
  });

  test('a config with -Infinity is printed as such', async () => {
    const { code, out } = await run(path.join(fixtures, 'schedulers', 'dpmpp-sde'));
    expect(code).toBe(0);
    expect(out).toContain('"lambda_min_clipped": -Infinity');
  });

  test('an invalid config.json: exit 1 with file:line:column', async () => {
    const dir = path.join(tempDir(), 'bad-config');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'config.json'), '{\n  "a": 1,\n  "b": }\n');
    const { code, err } = await run(dir);
    expect(code).toBe(1);
    expect(err).toBe(`inspect: ${path.join(dir, 'config.json')}:3:8: invalid JSON: Unexpected "}", expected a JSON value (ERR_CONFIG)\n`);
  });

  test('pickle files in a folder are listed as skipped, not loaded', async () => {
    const dir = path.join(tempDir(), 'with-pickle');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'config.json'), '{"a": 1}');
    writeFileSync(path.join(dir, 'diffusion_pytorch_model.bin'), Buffer.from([0x80, 0x02]));
    const { code, out } = await run(dir);
    expect(code).toBe(0);
    expect(out).toContain('== diffusion_pytorch_model.bin\nskipped: a pickle checkpoint');
  });

  test('a folder with nothing to show', async () => {
    const dir = path.join(tempDir(), 'empty');
    mkdirSync(dir);
    const { code, err } = await run(dir);
    expect(code).toBe(1);
    expect(err).toContain('found no model_index.json, config.json, scheduler_config.json or *.safetensors file');
  });
});

describe('arguments', () => {
  test('no path: usage, exit 1', async () => {
    const { code, err } = await run();
    expect(code).toBe(1);
    expect(err).toContain('inspect: no path given');
    expect(err).toContain('usage: npm run inspect -- <file.safetensors | model-folder>');
  });

  test('an unknown option: exit 1', async () => {
    const { code, err } = await run('--frobnicate', 'x');
    expect(code).toBe(1);
    expect(err).toContain('unknown option "--frobnicate"');
  });

  test('two paths: exit 1', async () => {
    const { code, err } = await run('a', 'b');
    expect(code).toBe(1);
    expect(err).toContain('expected one path, got 2');
  });

  test('--help: usage on stdout, exit 0', async () => {
    const { code, out } = await run('--help');
    expect(code).toBe(0);
    expect(out).toContain('usage: npm run inspect -- <file.safetensors | model-folder>');
  });

  test('-- ends options', async () => {
    const { code, err } = await run('--', '--stack');
    expect(code).toBe(1);
    expect(err).toContain('--stack: no such file or directory');
  });
});
