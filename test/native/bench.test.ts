/**
 * The harness's self-test: a one-model suite on the tiny fixture (a second or two of work) produces a
 * bench.json that passes its zod schema, with numbers that hang together. No timing assertions.
 */
import * as path from 'path';
import { runBench } from '../../lib/bench/run';
import { benchFileSchema } from '../../lib/bench/schema';
import { formatMarkdown } from '../../lib/bench/report';
import { benchModels } from '../../lib/bench/presets';
import { countFlops } from '../../lib/bench/flops';
import { UNet } from '../../lib/models/unet';
import * as fs from 'fs';
import { evaluateGoals } from '../../lib/bench/goals';
import { benchPipelineEntry } from '../../lib/bench/txt2img';
import type { BenchModel } from '../../lib/bench/presets';
import { useTempDir } from '../helpers/temp-dir';

const root = path.resolve(__dirname, '..', '..');
const tmp = useTempDir('bench-txt2img');

describe('npm run bench self-test', () => {
  it('times the tiny U-Net and writes a schema-valid result', async () => {
    const lines: string[] = [];
    const file = await runBench({
      suite: 'quick',
      root,
      config: { pytorch: false },
      log: (l) => lines.push(l),
      suiteOverride: {
        name: 'self-test',
        samplingSteps: 2,
        retries: 0,
        gemmN: 256,
        dataLoader: { resolution: 16, batch: 4, batches: 2 },
        dataParallel: null,
        entries: [
          {
            model: 'unet2d-tiny',
            workloads: ['forward', 'train-step', 'sample'],
            dtypes: ['fp32'],
            freezes: ['full'],
            steps: 2,
            warmup: 0,
            samplingLoops: 1,
            pytorch: false,
          },
          // LoRA with gradient checkpointing, as the full suite times the real SD 1.5 U-Net.
          {
            model: 'unet2dcond-tiny',
            workloads: ['train-step'],
            dtypes: ['fp32'],
            freezes: ['lora'],
            gradientCheckpointing: true,
            steps: 1,
            warmup: 0,
            samplingLoops: 1,
            pytorch: false,
          },
        ],
      },
    });
    expect(benchFileSchema.safeParse(JSON.parse(JSON.stringify(file))).success).toBe(true);
    const ids = file.results.map((r) => `${r.id}:${r.status}`);
    expect(ids).toEqual([
      'unet2d-tiny/forward/fp32:ok',
      'unet2d-tiny/sample/fp32:ok',
      'unet2d-tiny/train-step/fp32/full:ok',
      'unet2dcond-tiny/train-step/fp32/lora-r4+gc:ok',
      'png-folder/data-loader/fp32:ok',
    ]);
    const [forward, sampling, train] = file.results;
    expect(forward!.timing!.timesMs).toHaveLength(2);
    expect(forward!.gflops! * (forward!.timing!.medianMs / 1000)).toBeCloseTo(forward!.gflopPerStep!, 6);
    expect(sampling!.gflopPerStep).toBeCloseTo(2 * forward!.gflopPerStep!, 9);
    // Full training: forward + input gradients (all but conv_in) + weight gradients ≈ 3× forward.
    expect(train!.gflopPerStep! / forward!.gflopPerStep!).toBeGreaterThan(2.9);
    expect(train!.gflopPerStep! / forward!.gflopPerStep!).toBeLessThanOrEqual(3);
    expect(train!.dataWait).not.toBeNull();
    expect(train!.trainableParams).toBe(train!.params);
    expect(forward!.dataWait).toBeNull();
    const lora = file.results[3]!;
    expect(lora.gradientCheckpointing).toBe(true);
    expect(lora.trainableParams).toBeLessThan(lora.params!);
    expect(lora.peakRssMb).toBeGreaterThan(0);
    expect(file.gemm.fp32Gflops).toBeGreaterThan(0);
    expect(file.runtime.threads).toBeGreaterThan(0);
    expect(file.pytorch.available).toBe(false);
    expect(formatMarkdown(file)).toContain('| unet2d-tiny | forward | fp32 |');
  });

  it('skips bf16 rows with the reason on a CPU without bf16 arithmetic', async () => {
    const lines: string[] = [];
    const file = await runBench({
      suite: 'quick',
      root,
      config: { pytorch: false },
      log: (l) => lines.push(l),
      // An AVX2 CPU's /proc/cpuinfo: whatever this machine has, bf16 is judged emulated.
      cpuinfo: 'processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n',
      suiteOverride: {
        name: 'self-test',
        samplingSteps: 2,
        retries: 0,
        gemmN: 64,
        dataLoader: null,
        dataParallel: null,
        entries: [
          {
            model: 'unet2d-tiny',
            workloads: ['forward', 'train-step'],
            dtypes: ['fp32', 'bf16'],
            freezes: ['full'],
            steps: 1,
            warmup: 0,
            samplingLoops: 1,
            pytorch: false,
          },
        ],
      },
    });
    expect(file.results.map((r) => `${r.id}:${r.status}`)).toEqual([
      'unet2d-tiny/forward/fp32:ok',
      'unet2d-tiny/forward/bf16:skipped',
      'unet2d-tiny/train-step/fp32/full:ok',
      'unet2d-tiny/train-step/bf16/full:skipped',
    ]);
    for (const r of file.results.filter((x) => x.dtype === 'bf16'))
      expect(r.reason).toMatch(/avx512_bf16\/amx_bf16 absent .*emulated ~20-30× slower than float32/);
    expect(file.gemm.bf16Gflops).toBeNull();
    expect(lines.some((l) => /bf16 rows are skipped/.test(l))).toBe(true);
  });

  it('times txt2img on the tiny SD pipeline: text encoding, each denoising step, decode, whole call', async () => {
    const lines: string[] = [];
    const file = await runBench({
      suite: 'quick',
      root,
      config: { pytorch: false },
      log: (l) => lines.push(l),
      suiteOverride: {
        name: 'self-test',
        samplingSteps: 10,
        retries: 0,
        gemmN: 64,
        dataLoader: null,
        dataParallel: null,
        entries: [
          {
            model: 'sd-pipeline-tiny',
            workloads: ['txt2img'],
            dtypes: ['fp32'],
            freezes: [],
            steps: 2,
            warmup: 1,
            samplingLoops: 1,
            pytorch: false,
            txt2imgSteps: 4,
          },
        ],
      },
    });
    expect(benchFileSchema.safeParse(JSON.parse(JSON.stringify(file))).success).toBe(true);
    expect(file.results.map((r) => `${r.id}:${r.status}`)).toEqual(['sd-pipeline-tiny/txt2img/fp32:ok']);
    const row = file.results[0]!;
    // Two timed calls of 4 steps each: the timing pools their steps.
    expect(row.timing!.timesMs).toHaveLength(8);
    expect(row.samplingSteps).toBe(4);
    expect(row.resolution).toBe(32);
    const c = row.txt2img!;
    expect(c).toMatchObject({
      scheduler: 'DPMSolverMultistepScheduler',
      predictionType: 'epsilon',
      steps: 4,
      guidanceScale: 7.5,
      height: 32,
      width: 32,
      seed: 0,
      vaeSlicing: false,
      vaeTiling: false,
      runs: 2,
    });
    expect(c.negativePrompt).not.toBe('');
    for (const ms of [c.textEncodeMs, c.loopMs, c.decodeMs, c.totalMs, c.loadMs!]) expect(ms).toBeGreaterThan(0);
    // The phases are inside the call and do not overlap.
    expect(c.textEncodeMs + c.loopMs + c.decodeMs).toBeLessThanOrEqual(c.totalMs);
    expect(c.loopMs).toBeGreaterThanOrEqual(4 * row.timing!.minMs);
    // One step's U-Net forward on the guidance-doubled batch (2 × 4×16×16 latents).
    expect(row.gflopPerStep).toBeGreaterThan(0);
    expect(row.gflops! * (row.timing!.medianMs / 1000)).toBeCloseTo(row.gflopPerStep!, 6);
    expect(row.peakRssMb).toBeGreaterThan(0);
    expect(row.params).toBeGreaterThan(0);
    expect(row.pytorch).toBeUndefined();
    const md = formatMarkdown(file);
    expect(md).toContain('| sd-pipeline-tiny | txt2img (4 steps, 32²; per step) | fp32 |');
    expect(md).toContain('## Text-to-image pipeline calls');
    // The SD 2.1 goal needs the sd21-pipeline row.
    expect(evaluateGoals(file.results).some((g) => g.name.startsWith('SD 2.1'))).toBe(false);
  });

  it('writes an init-pipeline model into the scratch folder, times it, and removes it', async () => {
    const model: BenchModel = {
      name: 'tiny-init',
      source: { kind: 'init-pipeline', configDir: path.join(root, 'test/fixtures/diffusers/sd-pipeline-tiny'), seed: 3 },
      batch: 1,
      resolution: 16,
      crossAttnLen: 77,
      imageChannels: null,
      note: 'the tiny pipeline with random weights',
    };
    const lines: string[] = [];
    const settings = {
      threads: 1,
      samplingSteps: 2,
      loraRank: 4,
      channelsLast: false,
      peak: { fp32: 10, bf16: null },
      tmpDir: tmp(),
      log: (l: string) => lines.push(l),
      warmup: 0,
      steps: 1,
      retries: 0,
      otherCpuThreshold: 0.3,
    };
    const [row] = await benchPipelineEntry(model, settings, { available: false, reason: 'no torch here' }, (l) => lines.push(l));
    expect(row!.status).toBe('ok');
    expect(row!.txt2img).toMatchObject({ steps: 2, height: 16, width: 16 });
    expect(row!.timing!.timesMs).toHaveLength(2);
    expect(row!.pytorch).toEqual({ status: 'skipped', reason: 'no torch here' });
    expect(lines.some((l) => /writing tiny-init .*init-pipeline, seed 3/.test(l))).toBe(true);
    expect(fs.existsSync(path.join(tmp(), 'tiny-init'))).toBe(false);
  });

  it('counts ddpm-cifar10 at 12.4 GFLOP per image forward, 92% convolutions (the standing baseline)', async () => {
    const model = benchModels(path.join(root, 'test/fixtures/diffusers'), path.join(root, 'models')).get('ddpm-cifar10')!;
    if (model.source.kind !== 'preset') throw new Error('ddpm-cifar10 is a preset');
    using unet = await UNet.fromConfig(model.source.config);
    const parameters = await unet.parameters();
    expect(parameters.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0)).toBe(35_746_307);
    const c = countFlops(parameters, { levels: 4, height: 32, width: 32, batch: 1, encoderSeqLen: 0 });
    expect(c.forward / 1e9).toBeCloseTo(12.44, 2);
    expect(c.conv / c.forward).toBeCloseTo(0.918, 3);
  });
});
