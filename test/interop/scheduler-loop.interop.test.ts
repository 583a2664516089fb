// Every scheduler class difftune supports (SCHEDULER_CLASSES, read at run time, so classes added later
// are covered), as a whole sampling loop: the same U-Net, the same initial noise and the same noise
// for the steps that draw their own (one seeded generator on both sides), the scheduler config difftune
// writes loaded by diffusers. The final samples agree within float32 rounding.
import * as path from 'node:path';
import { SCHEDULER_CLASSES } from '../../lib/config/scheduler';
import { TOLERANCES } from '../../lib/conformance/tolerances';
import { loadUNet } from '../../lib/models/unet';
import { sample } from '../../lib/sample/pipeline';
import { Scheduler } from '../../lib/schedulers/scheduler';
import { useTempDir } from '../helpers/temp-dir';
import { describeInterop, FIXTURES, floats, interop, readTensors, relError, runPython, unetForwardBound, type ReadTensor } from './helpers/harness';

const tmp = useTempDir('interop-schedulers');
const UNET = path.join(FIXTURES, 'unet2d-tiny');
const LOOP = { steps: 10, seed: 11, batch: 2, height: 16, width: 16 };

/** diffusers' LMSDiscreteScheduler integrates its coefficients with SciPy. */
const NEEDS_SCIPY = new Set<string>(['LMSDiscreteScheduler']);

interface Ours {
  samples: Float32Array;
  timesteps: number[];
  /** The sampling loop's bound: each U-Net evaluation differs by at most unetForwardBound of its output; a
   * step passes that on with a factor of at most one (its model-output coefficients are at most one relative
   * to the sample's scale), and the evaluations' errors add up. */
  bound: number;
}

interface Theirs {
  class?: string;
  timesteps?: number[];
  load_warnings?: string[];
  loop_warnings?: string[];
  error?: string;
}

describeInterop('sampling loops: every scheduler class difftune supports, against diffusers', () => {
  const classes = SCHEDULER_CLASSES.filter((c) => !(NEEDS_SCIPY.has(c) && interop.available && !interop.scipy));
  const ours = new Map<string, Ours | Error>();
  let theirs: Theirs[] = [];
  let samples: Map<string, ReadTensor>;

  // One diffusers process runs every loop (a process per class would spend most of its time importing).
  beforeAll(async () => {
    using unet = await loadUNet(UNET);
    const folders: string[] = [];
    for (const className of classes) {
      const dir = path.join(tmp(), className);
      folders.push(dir);
      try {
        using scheduler = await Scheduler.fromConfig({ _class_name: className });
        await scheduler.save(dir);
        using out = await sample(unet, scheduler, { batchSize: LOOP.batch, steps: LOOP.steps, seed: LOOP.seed, height: LOOP.height, width: LOOP.width });
        ours.set(className, {
          samples: await floats(out),
          timesteps: [...scheduler.timesteps],
          bound: scheduler.timesteps.length * unetForwardBound(unet.config),
        });
      } catch (error) {
        ours.set(className, error instanceof Error ? error : new Error(String(error)));
      }
    }
    const out = path.join(tmp(), 'samples.safetensors');
    theirs = (await runPython('scheduler_loop', { model: UNET, schedulers: folders, ...LOOP, out })).loops as Theirs[];
    samples = await readTensors(out);
  }, 600_000);

  if (interop.available && !interop.scipy) test.skip.each([...NEEDS_SCIPY])('%s (diffusers needs SciPy: apt-get install python3-scipy)', () => undefined);

  test.each(classes.map((c, i) => [c, i] as const))('%s', (className, i) => {
    const mine = ours.get(className);
    if (mine instanceof Error) throw mine;
    const loop = theirs[i]!;
    if (loop.error !== undefined) throw new Error(`diffusers' ${className} loop failed:\n${loop.error}`);
    // The config difftune wrote loads silently (what the loop itself logs is diffusers' business: its
    // DPMSolverSinglestepScheduler warns in set_timesteps at its own defaults).
    expect(loop.load_warnings).toEqual([]);
    expect(loop.class).toBe(className);
    // Integer timesteps exactly; interpolated ones (KDPM2's midpoints) within the fixtures' bound for
    // scheduler tables, both being computed from float32 sigmas.
    expect(relError(mine!.timesteps, loop.timesteps!)).toBeLessThanOrEqual(TOLERANCES.schedulerTable);
    expect(relError(mine!.samples, samples.get(String(i))!.data)).toBeLessThanOrEqual(mine!.bound);
  });
});
