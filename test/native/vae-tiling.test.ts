// Sliced and tiled VAE encoding/decoding against diffusers (test/fixtures/vae-tiling, made by its
// make_fixture.py from the vae-tiny set): small tiles give several rows and columns, edge tiles narrower
// than the blend and non-square inputs, so every path of blend_v / blend_h and the crops is exercised.
import * as fs from 'fs';
import * as path from 'path';
import { SafetensorsFile } from '../../lib/checkpoint/safetensors';
import { relError } from '../../lib/conformance/compare';
import { TOLERANCES } from '../../lib/conformance/tolerances';
import { loadStableDiffusion } from '../../lib/models/stable-diffusion';
import { loadVae, type AutoencoderKL, type VaeMemoryOptions } from '../../lib/models/vae';
import { scale } from '../../lib/native/ops';
import { Tensor } from '../../lib/native/tensor';
import { txt2img } from '../../lib/sample/txt2img';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'vae-tiling');
const VAE = path.join(__dirname, '..', 'fixtures', 'diffusers', 'vae-tiny');
const PIPELINE = path.join(__dirname, '..', 'fixtures', 'diffusers', 'sd-pipeline-tiny');

interface Case {
  name: string;
  slicing: boolean;
  tiling: { tile_sample_min_size: number; tile_latent_min_size: number; tile_overlap_factor: number } | null;
}
const cases = (JSON.parse(fs.readFileSync(path.join(FIXTURE, 'cases.json'), 'utf8')) as { cases: Case[] }).cases;

let vae: AutoencoderKL;
let file: SafetensorsFile;
beforeAll(async () => {
  vae = await loadVae(VAE);
  file = await SafetensorsFile.open(path.join(FIXTURE, 'cases.safetensors'));
});
afterAll(async () => {
  vae.dispose();
  await file.close();
});

async function stored(name: string): Promise<Tensor> {
  const t = await file.read(name);
  return Tensor.from(t.data, t.shape);
}

function options(c: Case): VaeMemoryOptions {
  const t = c.tiling;
  return {
    slicing: c.slicing,
    tiling: t === null ? false : { tileSampleSize: t.tile_sample_min_size, tileLatentSize: t.tile_latent_min_size, overlap: t.tile_overlap_factor },
  };
}

test.each(cases.map((c) => [c.name, c] as const))('decode %s matches diffusers', async (_name, c) => {
  using latents = await stored('inputs/latents');
  using expected = await stored(`${c.name}/decoded`);
  using got = await vae.decode(latents, options(c));
  expect(got.shape).toEqual(expected.shape);
  expect(relError(got.toArray() as Float32Array, expected.toArray() as Float32Array)).toBeLessThanOrEqual(TOLERANCES.vae);
});

test.each(cases.filter((c) => c.tiling !== null).map((c) => [c.name, c] as const))('encode %s matches diffusers', async (_name, c) => {
  using images = await stored('inputs/images');
  const dist = await vae.encode(images, options(c));
  try {
    for (const part of ['mean', 'logvar'] as const) {
      using expected = await stored(`${c.name}/${part}`);
      expect(dist[part].shape).toEqual(expected.shape);
      expect(relError(dist[part].toArray() as Float32Array, expected.toArray() as Float32Array)).toBeLessThanOrEqual(TOLERANCES.vae);
    }
  } finally {
    dist.mean.dispose();
    dist.logvar.dispose();
  }
});

test('tiles change the image (the fixture is not the plain decode), slicing does not', async () => {
  using plain = await stored('plain/decoded');
  using tiled = await stored('t16/decoded');
  using sliced = await stored('plain_sliced/decoded');
  expect(relError(tiled.toArray() as Float32Array, plain.toArray() as Float32Array)).toBeGreaterThan(1e-3);
  expect(relError(sliced.toArray() as Float32Array, plain.toArray() as Float32Array)).toBeLessThanOrEqual(TOLERANCES.vae);
});

test("tiling: true takes diffusers' tile sizes from the config; bad sizes are refused by name", () => {
  // vae-tiny: sample_size 32, two levels (scale factor 2).
  expect(vae.tiling()).toEqual({ tileSampleSize: 32, tileLatentSize: 16, overlap: 0.25 });
  expect(vae.tiling({ tileSampleSize: 20 })).toEqual({ tileSampleSize: 20, tileLatentSize: 10, overlap: 0.25 });
  expect(() => vae.tiling({ tileSampleSize: 0 })).toThrow(/options\.tiling\.tileSampleSize/);
  expect(() => vae.tiling({ overlap: 1 })).toThrow(/options\.tiling\.overlap/);
});

test('a tile that would not advance is refused', async () => {
  using latents = await stored('inputs/latents');
  await expect(vae.decode(latents, { tiling: { tileSampleSize: 2, tileLatentSize: 1, overlap: 0.5 } })).rejects.toThrow(/do not advance/);
});

test('txt2img decodes with the savers asked for (vaeTiling, vaeSlicing)', async () => {
  using sd = await loadStableDiffusion(PIPELINE);
  const base = { prompt: ['a cat', 'a dog'], guidanceScale: 1, steps: 1, seed: 3 };
  const plain = await txt2img(sd, { ...base, vaeSlicing: false, vaeTiling: false });
  const tiles = { tileSampleSize: 16, tileLatentSize: 8, overlap: 0.25 };
  const lines: string[] = [];
  const tiled = await txt2img(sd, { ...base, vaeSlicing: true, vaeTiling: tiles, onLog: (l) => lines.push(l) });
  try {
    using scaled = await scale(plain.latents, 1 / sd.vae.scalingFactor);
    using expected = await sd.vae.decode(scaled, { slicing: true, tiling: tiles });
    expect(Buffer.from(tiled.images.toArray().buffer).equals(Buffer.from(expected.toArray().buffer))).toBe(true);
    expect(relError(tiled.images.toArray() as Float32Array, plain.images.toArray() as Float32Array)).toBeGreaterThan(1e-4);
    // Asked for, not chosen: nothing to log.
    expect(lines).toEqual([]);
  } finally {
    plain.dispose();
    tiled.dispose();
  }
});
