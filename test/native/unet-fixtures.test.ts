// Every U-Net forward and backward case that diffusers computed for the fixture models, reproduced
// within the fixtures README's tolerances (forward 1e-5, gradients 5e-5, relative to max |expected|).
import * as fs from 'fs';
import * as path from 'path';
import { disposeStateDict, loadStateDict, type StateDict } from '../../lib/checkpoint/state-dict';
import { runUNetBackwardCase, runUNetForwardCase, type TensorCheck } from '../../lib/conformance/unet-cases';
import { loadUNet, type UNet } from '../../lib/models/unet';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');
const SETS = ['unet2d-tiny', 'unet2d-ddpmcifar-shape', 'unet2d-classcond', 'unet2dcond-tiny', 'unet2dcond-sd2ish', 'unet2dcond-classcond'];

interface FixtureCase {
  name: string;
  type: string;
}

describe.each(SETS)('%s', (set) => {
  const dir = path.join(FIXTURES, set);
  const cases = (JSON.parse(fs.readFileSync(path.join(dir, 'cases.json'), 'utf8')) as { cases: FixtureCase[] }).cases;
  let unet: UNet;
  let tensors: StateDict;
  const lookup = (k: string) => {
    const t = tensors.get(k);
    if (t === undefined) throw new Error(`${set}/cases.safetensors has no tensor ${k}`);
    return t;
  };

  beforeAll(async () => {
    unet = await loadUNet(dir);
    tensors = await loadStateDict(path.join(dir, 'cases.safetensors'));
  });
  afterAll(() => {
    unet?.dispose();
    if (tensors) disposeStateDict(tensors);
  });

  const expectWithin = (checks: TensorCheck[]) => {
    expect(checks.length).toBeGreaterThan(0);
    for (const check of checks) {
      if (!(check.rel <= check.bound)) throw new Error(`${set}: ${check.name} rel error ${check.rel} exceeds ${check.bound}`);
    }
  };

  test.each(cases.filter((c) => c.type === 'unet_forward').map((c) => [c.name, c] as const))('forward %s', async (_name, c) => {
    expectWithin(await runUNetForwardCase(unet, c, lookup));
  });

  test.each(cases.filter((c) => c.type === 'unet_backward').map((c) => [c.name, c] as const))('backward %s', async (_name, c) => {
    expectWithin(await runUNetBackwardCase(unet, c, lookup));
  });
});
