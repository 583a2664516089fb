/**
 * Running the real diffusers (through the reference harness) from an interop test: the prerequisite
 * check, a `describe` that skips with the reason when they are missing, the Python scripts of
 * test/interop/py/ run as child processes, tensor files both ways, and the comparisons with their bounds.
 *
 * A script is `python3 test/interop/py/<name>.py <request.json> <response.json>`; see py/interop.py.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseLenientJson } from '../../../lib/config/json';
import { relError } from '../../../lib/conformance/compare';
import { SafetensorsFile } from '../../../lib/checkpoint/safetensors';
import { saveStateDict } from '../../../lib/checkpoint/state-dict';
import type { Tensor } from '../../../lib/native/tensor';
import { toImages } from '../../../lib/sample/image';
import { prerequisites, type InteropPrerequisites } from './prerequisites';

export { relError };

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'diffusers');
const PY = path.join(__dirname, '..', 'py');

export const interop: InteropPrerequisites = prerequisites();

let told = false;
/** `describe` when the harness is there; otherwise `describe.skip`, saying once per file what is missing. */
export function describeInterop(name: string, body: () => void): void {
  if (interop.available) {
    describe(name, body);
    return;
  }
  if (!told) process.stderr.write(`interop tests skipped: ${interop.reason}\n`);
  told = true;
  describe.skip(name, body);
}

/** What every script answers besides its own fields: what diffusers, transformers and peft warned about. */
export interface PyResponse {
  warnings: string[];
  [field: string]: unknown;
}

/**
 * Runs test/interop/py/<script>.py with `request`; resolves to its response, or rejects with the
 * script's exit status and the tail of its stderr (diffusers' traceback).
 */
export async function runPython(script: string, request: Record<string, unknown>, timeoutMs = 300_000): Promise<PyResponse> {
  if (!interop.available) throw new Error(`interop prerequisites missing: ${interop.reason}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-interop-py-'));
  try {
    const requestFile = path.join(dir, 'request.json');
    const responseFile = path.join(dir, 'response.json');
    fs.writeFileSync(requestFile, JSON.stringify(request));
    const child = spawn(interop.python, [path.join(PY, `${script}.py`), requestFile, responseFile], {
      env: { ...process.env, DIFFTUNE_REFERENCE: interop.reference, OMP_NUM_THREADS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-8000)));
    child.stdout.resume();
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', resolve);
    }).finally(() => clearTimeout(timer));
    if (code !== 0 || !fs.existsSync(responseFile)) {
      throw new Error(`${script}.py exited with ${code ?? 'a signal (timeout?)'}:\n${stderr.trim().split('\n').slice(-25).join('\n')}`);
    }
    // Python's json writes Infinity and NaN (scheduler configs hold -Infinity).
    return parseLenientJson(fs.readFileSync(responseFile, 'utf8'), responseFile) as unknown as PyResponse;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes named tensors to a .safetensors file for a script to read. */
export async function writeTensors(file: string, tensors: Readonly<Record<string, Tensor>>): Promise<void> {
  await saveStateDict(file, new Map(Object.entries(tensors)));
}

export interface ReadTensor {
  shape: readonly number[];
  data: Float32Array | Uint8Array;
}

/** Every tensor of a file a script wrote (float32 or uint8). */
export async function readTensors(file: string): Promise<Map<string, ReadTensor>> {
  const f = await SafetensorsFile.open(file);
  try {
    const out = new Map<string, ReadTensor>();
    for (const name of f.names()) {
      const t = await f.read(name);
      if (!(t.data instanceof Float32Array || t.data instanceof Uint8Array)) throw new Error(`${file}: ${name} is ${t.dtype}, expected F32 or U8`);
      out.set(name, { shape: t.shape, data: t.data });
    }
    return out;
  } finally {
    await f.close();
  }
}

/** One tensor of a file a script wrote. */
export async function readTensor(file: string, name: string): Promise<ReadTensor> {
  const t = (await readTensors(file)).get(name);
  if (t === undefined) throw new Error(`${file} has no tensor ${name}`);
  return t;
}

/** The float32 values of a CPU tensor. */
export async function floats(t: Tensor): Promise<Float32Array> {
  return Float32Array.from((await t.data()) as Float32Array);
}

/** Images [N, C, H, W] in about [-1, 1] → uint8 NHWC, as diffusers' numpy_to_pil makes them (the layout the scripts write). */
export async function pixels(images: Tensor): Promise<Uint8Array> {
  return (await toImages(images)).pixels;
}

/** The largest difference between two 8-bit images, in levels (Infinity when their sizes differ). */
export function levelDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/** float32's unit roundoff. */
export const U32 = 2 ** -24;

/**
 * The bound on max|difftune − diffusers| / max|diffusers| for one U-Net forward with the same weights
 * and inputs: the two only sum the same products in other orders, and a float32 dot product of K terms
 * is off by at most K·2^-24 of its terms' magnitudes. The longest reduction of a U-Net is an up block's
 * 3×3 convolution over the skip-concatenated channels, at most 9 · 2 · max(block_out_channels) terms
 * (longer than every attention, time-embedding and cross-attention dot product of these models).
 */
export function unetForwardBound(config: { block_out_channels: readonly number[] }): number {
  return 9 * 2 * Math.max(...config.block_out_channels) * U32;
}
