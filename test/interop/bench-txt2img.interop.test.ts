// The bench's txt2img rows with their PyTorch side: bench_txt2img.py runs diffusers' StableDiffusionPipeline on
// the tiny fixture pipeline with the call difftune's row made, and its phases land in the row, the report and
// the schema.
import { runBench } from '../../lib/bench/run';
import { formatMarkdown } from '../../lib/bench/report';
import { benchFileSchema } from '../../lib/bench/schema';
import { describeInterop, interop, ROOT } from './helpers/harness';

describeInterop('npm run bench: txt2img beside diffusers', () => {
  test('the tiny pipeline: both sides time the same call phase by phase', async () => {
    const file = await runBench({
      suite: 'full',
      root: ROOT,
      referenceDir: interop.available ? interop.reference : undefined,
      config: { models: ['sd-pipeline-tiny'], workloads: ['txt2img'], threads: 1, samplingSteps: 5, steps: 1, warmup: 0 },
      log: () => undefined,
    });
    expect(benchFileSchema.safeParse(JSON.parse(JSON.stringify(file))).success).toBe(true);
    expect(file.results.map((r) => `${r.id}:${r.status}`)).toEqual(['sd-pipeline-tiny/txt2img/fp32:ok']);
    const row = file.results[0]!;
    const p = row.pytorch!;
    if (p.status !== 'ok') throw new Error(`diffusers' side ${p.status}: ${p.reason ?? '(no reason)'}`);
    expect(p).toMatchObject({ status: 'ok', implementation: 'diffusers StableDiffusionPipeline', dtype: 'fp32' });
    expect(p.ratio).toBeCloseTo(row.timing!.medianMs / p.medianMs!, 9);
    for (const ms of [p.txt2img!.textEncodeMs, p.txt2img!.loopMs, p.txt2img!.decodeMs, p.txt2img!.totalMs, p.txt2img!.loadMs!]) expect(ms).toBeGreaterThan(0);
    expect(p.txt2img!.textEncodeMs + p.txt2img!.loopMs + p.txt2img!.decodeMs).toBeLessThanOrEqual(p.txt2img!.totalMs);
    expect(p.stepsPeakRssMb ?? p.peakRssMb).toBeGreaterThan(0);
    expect(formatMarkdown(file)).toMatch(/\| sd-pipeline-tiny \| diffusers \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| \d+ \|/);
  }, 300_000);
});
