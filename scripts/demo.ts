/**
 * npm run demo [-- --out <folder>]: what difftune can do today, for real, with timings. Until the
 * recipes land it exercises the native bridge end to end: libtorch runtime facts, loading a
 * diffusers fixture model's weights into native tensors, a GEMM throughput probe on the compute
 * thread (while the event loop keeps turning), and an atomic safetensors save and bit-exact reload.
 */
import * as fs from 'fs';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { disposeStateDict, gemmBenchmark, loadStateDict, runtimeInfo, saveStateDict, SafetensorsFile } from '../lib/index';
import { packageRoot } from '../lib/native/load';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(2)} MB`;
}

async function main(): Promise<void> {
  const root = packageRoot();
  const out = path.resolve(arg('--out', path.join(root, 'runs', 'demo')));
  fs.mkdirSync(out, { recursive: true });

  const info = await runtimeInfo();
  console.log(`difftune demo — libtorch ${info.torchVersion}, backend ${info.backend}, ${info.threads} intra-op threads, N-API ${info.napiVersion}`);

  const modelDir = path.join(root, 'test', 'fixtures', 'diffusers', 'unet2d-tiny');
  const weights = path.join(modelDir, 'diffusion_pytorch_model.safetensors');
  let t0 = performance.now();
  const file = await SafetensorsFile.open(weights);
  const headerMs = performance.now() - t0;
  const bytes = [...file.tensors.values()].reduce((a, t) => a + t.byteLength, 0);
  await file.close();
  t0 = performance.now();
  const stateDict = await loadStateDict(weights);
  const loadMs = performance.now() - t0;
  console.log(`loaded ${stateDict.size} tensors (${mb(bytes)}) of ${path.relative(root, modelDir)} into native tensors: header ${headerMs.toFixed(1)} ms, tensors ${loadMs.toFixed(1)} ms`);

  // The event loop must stay free while native work runs: sample its lag during the GEMM probe.
  const lags: number[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    lags.push(now - last - 5);
    last = now;
  }, 5);
  const fp32 = await gemmBenchmark({ n: 1024, reps: 8, dtype: 'float32' });
  const bf16 = await gemmBenchmark({ n: 1024, reps: 4, dtype: 'bfloat16' });
  clearInterval(timer);
  lags.sort((a, b) => a - b);
  const p99 = lags[Math.floor(lags.length * 0.99)] ?? 0;
  console.log(`GEMM 1024³ on the compute thread: float32 ${fp32.gflops.toFixed(1)} GFLOP/s (${(fp32.seconds * 1e3).toFixed(1)} ms), bfloat16 ${bf16.gflops.toFixed(1)} GFLOP/s`);
  console.log(`event loop during native work: ${lags.length} ticks, p99 lag ${Math.max(0, p99).toFixed(1)} ms`);

  const saved = path.join(out, 'unet2d-tiny-copy.safetensors');
  t0 = performance.now();
  await saveStateDict(saved, stateDict, { format: 'pt' });
  const saveMs = performance.now() - t0;
  const reloaded = await loadStateDict(saved);
  let identical = true;
  for (const [name, t] of stateDict) {
    const a = Buffer.from((await t.data()).buffer);
    const b = Buffer.from((await reloaded.get(name)!.data()).buffer);
    if (!a.equals(b)) identical = false;
  }
  console.log(`saved atomically to ${path.relative(process.cwd(), saved)} in ${saveMs.toFixed(1)} ms; reload bit-exact: ${identical ? 'yes' : 'NO'}`);
  disposeStateDict(stateDict);
  disposeStateDict(reloaded);
  console.log('The U-Net forward/backward and fine-tuning join this demo as their issues land (see README).');
  if (!identical) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(`demo: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
