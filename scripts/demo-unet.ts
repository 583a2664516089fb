/**
 * npm run demo:unet [-- --out <folder>]: the U-Net and the native bridge, end to end, with timings:
 * libtorch runtime facts; loading a tiny
 * Stable-Diffusion-shaped diffusers U-Net (made by diffusers itself, shipped in test/fixtures);
 * a forward and a forward+backward pass on the compute thread while the event loop keeps turning;
 * a GEMM probe; saving the model as a diffusers folder and reloading it bit-exact.
 */
import * as fs from 'fs';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { loadUNet } from '../lib/models/unet';
import { gemmBenchmark, runtimeInfo } from '../lib/native/runtime';
import { Tensor } from '../lib/native/tensor';
import { formatCliError } from '../lib/errors';
import { packageRoot } from '../lib/native/load';
import { defineCli, formatHelp, parseCli, usageHint } from '../lib/util/cli-args';

export const cli = defineCli({
  name: 'demo:unet',
  summary:
    'The U-Net and the native bridge end to end, with timings: libtorch runtime facts; the tiny Stable-Diffusion-shaped U-Net of test/fixtures loaded; a forward and a forward+backward pass while the event loop keeps turning; a GEMM probe; the model saved as a diffusers folder and reloaded bit-exact.',
  flags: {
    out: { type: 'string', value: '<folder>', description: 'where the saved U-Net goes (default runs/demo-unet)' },
  },
  examples: ['npm run demo:unet -- --out runs/demo-unet'],
});

/** Deterministic pseudo-random normal values (no dependence on Math.random). */
function randn(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  const next = (): number => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s + 1) / 4294967297;
  };
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
  return out;
}

async function median(runs: number, fn: () => Promise<void>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

async function main(argv: readonly string[]): Promise<void> {
  const args = parseCli(cli, argv);
  if (args.help) {
    process.stdout.write(formatHelp(cli));
    return;
  }
  const root = packageRoot();
  const out = path.resolve(args.values.out ?? path.join(root, 'runs', 'demo-unet'));
  fs.mkdirSync(out, { recursive: true });

  const info = await runtimeInfo();
  console.log(`difftune demo — libtorch ${info.torchVersion}, backend ${info.backend}, ${info.threads} intra-op threads`);

  const modelDir = path.join(root, 'test', 'fixtures', 'diffusers', 'unet2dcond-tiny');
  let t0 = performance.now();
  using unet = await loadUNet(modelDir);
  const params = await unet.parameters();
  const count = params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  console.log(
    `loaded ${path.relative(root, modelDir)} (${unet.config._class_name}, ${params.length} tensors, ${(count / 1e6).toFixed(2)} M parameters) in ${(performance.now() - t0).toFixed(0)} ms`,
  );

  const batch = 2;
  using sample = Tensor.from(randn(batch * 4 * 16 * 16, 1), [batch, 4, 16, 16]);
  using timestep = Tensor.from(new BigInt64Array([10n, 500n]), [batch]);
  using context = Tensor.from(randn(batch * 77 * 32, 2), [batch, 77, 32]);
  using target = Tensor.from(randn(batch * 4 * 16 * 16, 3), [batch, 4, 16, 16]);

  // The event loop must stay free while native work runs: count its ticks during the passes.
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const fwdMs = await median(5, async () => {
    (await unet.forward(sample, timestep, { encoderHiddenStates: context })).dispose();
  });
  let loss = NaN;
  const bwdMs = await median(5, async () => {
    const r = await unet.forwardBackwardMse(sample, timestep, target, { encoderHiddenStates: context, gradNames: ['conv_in.weight'] });
    loss = (r.loss.toArray() as Float32Array)[0]!;
    for (const t of [r.output, r.loss, r.gradSample, r.gradEncoderHiddenStates, ...r.gradParams.values()]) t?.dispose();
  });
  clearInterval(timer);
  console.log(
    `forward (batch ${batch}, 4×16×16, 77 tokens): ${fwdMs.toFixed(1)} ms median; forward+backward: ${bwdMs.toFixed(1)} ms median (MSE loss ${loss.toFixed(4)})`,
  );
  console.log(`event loop kept turning: ${ticks} timer ticks during the native passes`);

  const fp32 = await gemmBenchmark({ n: 1024, reps: 8, dtype: 'float32' });
  console.log(`GEMM 1024³ float32 on the compute thread: ${fp32.gflops.toFixed(1)} GFLOP/s`);

  const saved = path.join(out, 'unet');
  t0 = performance.now();
  await unet.save(saved);
  using reloaded = await loadUNet(saved);
  using a = await unet.forward(sample, timestep, { encoderHiddenStates: context });
  using b = await reloaded.forward(sample, timestep, { encoderHiddenStates: context });
  const same = Buffer.from(a.toArray().buffer).equals(Buffer.from(b.toArray().buffer));
  console.log(
    `saved a diffusers folder to ${path.relative(process.cwd(), saved)} and reloaded it in ${(performance.now() - t0).toFixed(0)} ms; outputs bit-identical: ${same ? 'yes' : 'NO'}`,
  );
  if (!same) process.exitCode = 1;
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(`${formatCliError('demo:unet', error)}\n${usageHint(cli, error)}`.trimEnd());
    process.exit(1);
  });
}
