import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { disposeStateDict, loadStateDict, saveStateDict } from '../../lib/checkpoint/state-dict';
import { SafetensorsFile, writeSafetensors } from '../../lib/checkpoint/safetensors';
import { FileSystemError, UnsupportedDtypeError } from '../../lib/errors';
import { Tensor } from '../../lib/native/tensor';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');

test('a fixture model loads into native tensors with the file’s names, shapes and bytes', async () => {
  const file = path.join(FIXTURES, 'unet2d-tiny', 'diffusion_pytorch_model.safetensors');
  const sd = await loadStateDict(file);
  const st = await SafetensorsFile.open(file);
  try {
    expect([...sd.keys()]).toEqual(st.names());
    for (const name of ['conv_in.weight', 'down_blocks.0.resnets.0.norm1.bias']) {
      const t = sd.get(name)!;
      expect(t.shape).toEqual(st.info(name).shape);
      expect(Buffer.from((await t.data()).buffer)).toEqual(await st.readBytes(name));
    }
  } finally {
    await st.close();
    disposeStateDict(sd);
  }
});

test('native tensors save and reload bit-exact for every dtype, with metadata', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-sd-'));
  const out = path.join(dir, 'w.safetensors');
  const sd = new Map<string, Tensor>([
    ['f32', Tensor.from(new Float32Array([1.5, -2, 3e-8]), [3])],
    ['f16', Tensor.from(new Uint16Array([0x3c00, 0x7bff]), [2], { dtype: 'float16' })],
    ['bf16', Tensor.from(new Uint16Array([0x3f80, 0xc040]), [1, 2], { dtype: 'bfloat16' })],
    ['i64', Tensor.from(new BigInt64Array([1n, -(2n ** 62n)]), [2])],
    ['bool', Tensor.from(new Uint8Array([1, 0, 1]), [3], { dtype: 'bool' })],
    ['scalar', Tensor.from(new Float64Array([Math.PI]), [])],
    ['empty', Tensor.from(new Int32Array(0), [0, 4])],
  ]);
  await saveStateDict(out, sd, { format: 'pt' });
  const back = await loadStateDict(out);
  const file = await SafetensorsFile.open(out);
  try {
    expect(file.metadata).toEqual({ format: 'pt' });
    for (const [name, t] of sd) {
      const b = back.get(name)!;
      expect(b.dtype).toBe(t.dtype);
      expect(b.shape).toEqual(t.shape);
      expect(Buffer.from((await b.data({ raw: true })).buffer)).toEqual(Buffer.from((await t.data({ raw: true })).buffer));
    }
  } finally {
    await file.close();
    disposeStateDict(sd);
    disposeStateDict(back);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a dtype libtorch 1.13 lacks is refused only when a tensor must be made of it', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-sd-'));
  const out = path.join(dir, 'u16.safetensors');
  try {
    await writeSafetensors(out, {
      ok: { dtype: 'F32', shape: [1], data: new Float32Array([1]) },
      raw: { dtype: 'U16', shape: [2], data: new Uint16Array([1, 2]) },
    });
    const ok = await loadStateDict(out, { names: ['ok'] });
    expect(ok.get('ok')!.toArray()[0]).toBe(1);
    disposeStateDict(ok);
    await expect(loadStateDict(out)).rejects.toThrow(UnsupportedDtypeError);
    await expect(loadStateDict(out)).rejects.toThrow(/tensor "raw" has dtype U16/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('saveStateDict into a missing folder is a FileSystemError naming the file and its folder, not a hidden temp file', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-sd-'));
  const out = path.join(dir, 'missing', 'w.safetensors');
  using t = Tensor.from(new Float32Array([1, 2]), [2]);
  try {
    const error = await saveStateDict(out, new Map([['w', t]])).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FileSystemError);
    expect((error as FileSystemError).message).toBe(`cannot write ${out}: the folder ${path.dirname(out)} does not exist (ENOENT)`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
