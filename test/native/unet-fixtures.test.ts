// Every U-Net case that diffusers computed for the fixture models — forward, backward and the
// pipeline-style sampling loop with each set's scheduler — reproduced through the conformance
// runner within the fixtures README's tolerances (forward 1e-5, gradients 5e-5, loops 1e-4).
import * as path from 'path';
import { defaultRegistry } from '../../lib/conformance/default-registry';
import { runFixtureSet } from '../../lib/conformance/run';
import { releaseUNetCaseModels } from '../../lib/conformance/unet-cases';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');
// The last two sample with Heun and KDPM2, whose timesteps repeat or interleave midpoints (two model calls per step).
const SETS = [
  'unet2d-tiny',
  'unet2d-ddpmcifar-shape',
  'unet2d-classcond',
  'unet2dcond-tiny',
  'unet2dcond-sd2ish',
  'unet2dcond-classcond',
  'unet2d-heun-karras-loop',
  'unet2dcond-kdpm2-loop',
];

afterAll(() => releaseUNetCaseModels());

test.each(SETS)('%s: every case passes', async (set) => {
  const report = await runFixtureSet(path.join(FIXTURES, set), defaultRegistry());
  const types = new Set(report.cases.map((c) => c.type));
  expect(types).toEqual(new Set(['unet_forward', 'unet_backward', 'unet_sampling_loop']));
  const failures = report.cases
    .filter((c) => c.status !== 'pass')
    .map((c) => `${c.name}: ${c.status} ${c.message ?? ''} ${c.worst ? `${c.worst.name} rel ${c.worst.rel}` : ''}`);
  expect(failures).toEqual([]);
});
