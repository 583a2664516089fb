// Every fixture case of test/fixtures/diffusers (diffusers' own float32 CPU results) run on a CUDA device:
// the models load there and every case tensor moves there (lib/conformance with a device). A check passes
// within CUDA_TOLERANCE_FACTOR × its CPU bound (test/gpu/gpu.ts says why), tokenizer cases exactly as on
// the CPU (they never touch the device).
import * as path from 'path';
import { defaultRegistry } from '../../lib/conformance/default-registry';
import { releaseClipTextCaseModels } from '../../lib/conformance/clip-text-cases';
import { releasePipelineCaseModels } from '../../lib/conformance/pipeline-cases';
import { findFixtureSets, runFixtureSet } from '../../lib/conformance/run';
import { releaseUNetCaseModels } from '../../lib/conformance/unet-cases';
import { releaseVaeCaseModels } from '../../lib/conformance/vae-cases';
import { CUDA, CUDA_TOLERANCE_FACTOR, DEVICE, describeGpu } from './gpu';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');

afterAll(async () => {
  await releaseUNetCaseModels();
  await releaseVaeCaseModels();
  await releaseClipTextCaseModels();
  await releasePipelineCaseModels();
});

describeGpu('fixture cases on CUDA', () => {
  // Listed at collection time only where the tier runs (findFixtureSets is async: each set is one test).
  let sets: string[] = [];
  beforeAll(async () => {
    sets = CUDA ? await findFixtureSets(FIXTURES) : [];
  });

  test('every case of every set passes within the stated CUDA tolerance', async () => {
    expect(sets.length).toBeGreaterThan(0);
    const registry = defaultRegistry();
    const failures: string[] = [];
    let cases = 0;
    for (const dir of sets) {
      const report = await runFixtureSet(dir, registry, undefined, { device: DEVICE });
      for (const c of report.cases) {
        cases += 1;
        if (c.status === 'error' || c.status === 'unsupported') {
          failures.push(`${report.set}/${c.name}: ${c.status} ${c.message ?? ''}`);
          continue;
        }
        for (const check of c.checks) {
          // A bound of 1 or more is an absolute allowance on 8-bit pixels (with a cap on how many may be off),
          // judged by the runner as on the CPU; relative float bounds scale.
          if (check.bound >= 1) {
            if (!check.pass) failures.push(`${report.set}/${c.name} ${check.name}: ${check.note ?? `off by ${check.rel}`}`);
            continue;
          }
          const bound = check.bound * CUDA_TOLERANCE_FACTOR;
          if (!(check.rel <= bound)) failures.push(`${report.set}/${c.name} ${check.name}: rel ${check.rel} > ${bound}${check.note ? ` (${check.note})` : ''}`);
        }
      }
    }
    expect(cases).toBeGreaterThan(100);
    expect(failures).toEqual([]);
  }, 1_800_000);
});
