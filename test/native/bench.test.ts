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

const root = path.resolve(__dirname, '..', '..');

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
