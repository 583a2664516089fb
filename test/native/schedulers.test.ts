// The schedulers against diffusers: every scheduler fixture set runs through the conformance runner
// (the same code as `npm run conformance`) and every case must pass within the README's tolerance.
// Then the properties the fixtures cannot show: clear config errors, setTimesteps resetting the
// multistep state, reproducible seeded noise, and saving configs back.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { disposeStateDict, loadStateDict, type StateDict } from '../../lib/checkpoint/state-dict';
import { defaultRegistry } from '../../lib/conformance/default-registry';
import { findFixtureSets, runFixtureSet } from '../../lib/conformance/run';
import { ConfigError, DisposedError, InvalidArgumentError } from '../../lib/errors';
import { relError } from '../../lib/conformance/compare';
import { TOLERANCES } from '../../lib/conformance/tolerances';
import { Generator } from '../../lib/native/generator';
import { randn } from '../../lib/native/ops';
import { Tensor } from '../../lib/native/tensor';
import { loadScheduler, Scheduler } from '../../lib/schedulers/scheduler';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');
const SCHEDULER_SETS = path.join(FIXTURES, 'schedulers');

function setDir(name: string): string {
  return path.join(SCHEDULER_SETS, name);
}

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-schedulers-'));
}

async function values(t: Tensor): Promise<number[]> {
  return Array.from<number | bigint, number>(await t.data(), (v) => Number(v));
}

describe('every scheduler fixture set passes', () => {
  const registry = defaultRegistry();
  const sets = fs
    .readdirSync(SCHEDULER_SETS)
    .filter((name) => fs.existsSync(path.join(SCHEDULER_SETS, name, 'cases.json')))
    .sort();

  test('all 75 sets are found', async () => {
    expect(sets.length).toBe(75);
    expect((await findFixtureSets(SCHEDULER_SETS)).length).toBe(75);
  });

  test.each(sets)('%s', async (name) => {
    const report = await runFixtureSet(setDir(name), registry);
    expect(report.cases.length).toBeGreaterThanOrEqual(6);
    const failures = report.cases
      .filter((c) => c.status !== 'pass')
      .map(
        (c) =>
          `${c.name} (${c.type}): ${c.status} ${c.message ?? ''} ${c.checks
            .filter((k) => !k.pass)
            .map((k) => `${k.name} rel ${k.rel} > ${k.bound} ${k.note ?? ''}`)
            .join('; ')}`,
      );
    expect(failures).toEqual([]);
  });

  test('a case type without a runner is a failure, not a skip', async () => {
    const dir = tempDir();
    fs.copyFileSync(path.join(setDir('ddim-sd1'), 'scheduler_config.json'), path.join(dir, 'scheduler_config.json'));
    const cases = {
      format: 'diffusers-reference-fixtures/1',
      set: 'made-up',
      kind: 'scheduler',
      config_file: 'scheduler_config.json',
      tensors_file: null,
      cases: [{ name: 'x', type: 'scheduler_warp_drive' }],
    };
    fs.writeFileSync(path.join(dir, 'cases.json'), JSON.stringify(cases));
    const report = await runFixtureSet(dir, registry);
    expect(report.cases).toMatchObject([{ name: 'x', status: 'unsupported', message: 'no runner for case type "scheduler_warp_drive"' }]);
  });
});

describe('config errors', () => {
  test('an unknown _class_name names the file, the class found and the classes supported; picking a class converts it', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'scheduler_config.json');
    fs.writeFileSync(file, '{"_class_name": "LCMScheduler", "beta_start": 0.00085, "original_inference_steps": 50}');
    await expect(loadScheduler(dir)).rejects.toThrow(ConfigError);
    await expect(loadScheduler(dir)).rejects.toThrow(`${file}: "_class_name": expected one of DDPMScheduler`);
    await expect(loadScheduler(dir)).rejects.toThrow(/DPMSolverSinglestepScheduler but found "LCMScheduler".*--scheduler <name>/);
    using s = await loadScheduler(dir, { className: 'HeunDiscreteScheduler' });
    expect([s.className, s.config.beta_start, s.warnings.length]).toEqual(['HeunDiscreteScheduler', 0.00085, 1]);
  });

  test('an unsupported option value names the file and the key', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'scheduler_config.json');
    fs.writeFileSync(file, '{"_class_name": "EulerDiscreteScheduler", "interpolation_type": "cubic", "lambda_min_clipped": -Infinity}');
    await expect(loadScheduler(file)).rejects.toThrow(
      `${file}: EulerDiscreteScheduler config key "interpolation_type": expected one of "linear", "log_linear" but found "cubic" of type string`,
    );
  });

  test('fromConfig reports unknown keys as warnings', async () => {
    using s = await Scheduler.fromConfig({ _class_name: 'DDIMScheduler', tensor_format: 'pt' });
    expect(s.warnings).toEqual(['<config>: unknown DDIMScheduler config key "tensor_format" ignored']);
  });

  test('a folder without a config lists what was tried', async () => {
    const dir = tempDir();
    await expect(loadScheduler(dir)).rejects.toThrow(/no scheduler config found; tried .*scheduler_config\.json and .*scheduler\/scheduler_config\.json/);
  });

  test('a pipeline folder is searched for scheduler/scheduler_config.json', async () => {
    using s = await loadScheduler(path.join(FIXTURES, 'sd-pipeline-tiny'));
    expect(s.className).toBe('PNDMScheduler');
  });
});

/** Runs the fixture loop's steps [from, to) on `scheduler`, feeding the stored model outputs. */
async function runSteps(scheduler: Scheduler, tensors: StateDict, set: string, from: number, to: number, start: Tensor): Promise<Tensor> {
  let x = start;
  for (let i = from; i < to; i++) {
    const t = scheduler.timesteps[i]!;
    const step = `loop/step_${String(i).padStart(3, '0')}`;
    const noise = tensors.get(`${step}/variance_noise`);
    const out = await scheduler.step(tensors.get(`${step}/model_output`)!, t, x, noise ? { varianceNoise: noise } : {});
    out.predOriginalSample?.dispose();
    if (x !== start) x.dispose();
    x = out.prevSample;
  }
  return x;
}

describe('setTimesteps resets the multistep state', () => {
  test.each([
    'dpmpp-order3',
    'pndm-linear-epsilon',
    'pndm-sd1',
    'euler-karras',
    'dpmpp-sde',
    'lms-sd1',
    'heun-sd1',
    'kdpm2-ancestral-sd1',
    'unipc-order3-bh1',
    'deis-order3',
    'dpm-singlestep-order3',
  ])('%s: an interrupted loop, then a full one, equals a fresh loop', async (set) => {
    const tensors = await loadStateDict(path.join(setDir(set), 'cases.safetensors'));
    try {
      using fresh = await loadScheduler(setDir(set));
      await fresh.setTimesteps(10);
      using init = await fresh.scaleInitialNoise(tensors.get('loop/inputs/init_noise')!);
      using expected = await runSteps(fresh, tensors, set, 0, fresh.timesteps.length, init);

      using reused = await loadScheduler(setDir(set));
      await reused.setTimesteps(10);
      using partial = await runSteps(reused, tensors, set, 0, 5, init);
      await reused.setTimesteps(10);
      using got = await runSteps(reused, tensors, set, 0, reused.timesteps.length, init);
      expect(await values(got)).toEqual(await values(expected));
      expect(await values(partial)).not.toEqual(await values(expected));
    } finally {
      disposeStateDict(tensors);
    }
  });
});

describe('Generator', () => {
  const shape = [2, 4, 8, 8];
  const zeros = (): Tensor => Tensor.from(new Float32Array(2 * 4 * 8 * 8), shape);

  // DDPM at t > 0 draws its variance noise from the generator.
  async function ddpmStep(generator: Generator): Promise<number[]> {
    using s = await loadScheduler(setDir('ddpm-linear-epsilon'));
    using x = zeros();
    const out = await s.step(x, 500, x, { generator });
    out.predOriginalSample?.dispose();
    using prev = out.prevSample;
    return await values(prev);
  }

  test('the same seed gives the same noise; another seed does not', async () => {
    using a = new Generator(42);
    using b = new Generator(42);
    using c = new Generator(43n);
    const first = await ddpmStep(a);
    expect(first.some((v) => v !== 0)).toBe(true);
    expect(await ddpmStep(b)).toEqual(first);
    expect(await ddpmStep(c)).not.toEqual(first);
    expect(a.seed).toBe(42n);
  });

  test('a saved state resumes the exact sequence; manualSeed restarts it', async () => {
    using g = new Generator(7);
    const state = await g.getState();
    const one = await ddpmStep(g);
    const two = await ddpmStep(g);
    expect(two).not.toEqual(one);
    await g.setState(state);
    expect(await ddpmStep(g)).toEqual(one);
    expect(await ddpmStep(g)).toEqual(two);
    await g.manualSeed(7);
    expect(await ddpmStep(g)).toEqual(one);
  });

  test('bad seeds, states and disposed generators are clear errors', async () => {
    expect(() => new Generator(-1)).toThrow('Expected a non-negative safe integer or a BigInt below 2^64 for seed but received -1 of type number');
    using g = new Generator(1);
    await expect(g.setState(new Uint8Array(3))).rejects.toThrow(InvalidArgumentError);
    const d = new Generator(1);
    d.dispose();
    await expect(ddpmStep(d)).rejects.toThrow(DisposedError);
  });

  test('a generator and explicit noise together are refused', async () => {
    using s = await loadScheduler(setDir('ddim-eta0.5'));
    await s.setTimesteps(10);
    using g = new Generator(0);
    using x = zeros();
    await expect(s.step(x, s.timesteps[0]!, x, { eta: 0.5, generator: g, varianceNoise: x })).rejects.toThrow(
      'DDIMScheduler.step: pass either options.generator or options.varianceNoise, not both',
    );
  });
});

// The ancestral and SDE schedulers draw their own noise: with the fixture's seed, our Generator gives the
// same draws as the torch generator diffusers was run with (make_fixtures.py: add_noise's two inputs,
// the loop's initial noise, then one randn of the model output's shape per step that needs one), so the
// whole stored trajectory is reproduced without the stored noise.
describe('seeded noise is diffusers’ draw for draw', () => {
  // Bit-identical with libtorch's vectorized kernels. Under ATEN_CPU_CAPABILITY=default the Box–Muller
  // transform's log, sqrt and cos/sin run as scalar libm calls (glibc picks FMA variants by CPU), each an
  // ulp or two from the vectorized ones; compounded they measured ≤ 7.7 float32 ulps (4.6e-7) of the
  // largest draw. The bound allows 64 ulps (2^-18 ≈ 3.8e-6); a wrong seed or draw order is off by O(1).
  const DRAW_BOUND = 2 ** -18;
  test.each(['euler-ancestral-sd1', 'kdpm2-ancestral-sd1', 'dpm-singlestep-sde', 'dpmpp-sde'])('%s', async (set) => {
    const cases = JSON.parse(fs.readFileSync(path.join(setDir(set), 'cases.json'), 'utf8')) as {
      seed: number;
      cases: Array<{ type: string; inputs: Record<string, string>; steps?: Array<{ variance_noise?: string }> }>;
    };
    const tensors = await loadStateDict(path.join(setDir(set), 'cases.safetensors'));
    try {
      using generator = new Generator(cases.seed);
      const addNoise = tensors.get('add_noise/inputs/noise')!;
      for (const key of ['add_noise/inputs/original_samples', 'add_noise/inputs/noise']) {
        using draw = await randn(addNoise.shape, { generator });
        expect(relError(await values(draw), await values(tensors.get(key)!))).toBeLessThanOrEqual(DRAW_BOUND);
      }
      const init = tensors.get('loop/inputs/init_noise')!;
      using initDraw = await randn(init.shape, { generator });
      expect(relError(await values(initDraw), await values(init))).toBeLessThanOrEqual(DRAW_BOUND);

      using s = await loadScheduler(setDir(set));
      await s.setTimesteps(10);
      let x = await s.scaleInitialNoise(initDraw);
      let drawn = 0;
      try {
        for (const [i, t] of s.timesteps.entries()) {
          const step = `loop/step_${String(i).padStart(3, '0')}`;
          if (tensors.has(`${step}/variance_noise`)) ++drawn;
          // DPM-Solver multistep's SDE takes its noise as an argument (diffusers' variance_noise); the others draw it.
          const noise = set === 'dpmpp-sde' ? { varianceNoise: await randn(init.shape, { generator }) } : { generator };
          const out = await s.step(tensors.get(`${step}/model_output`)!, t, x, noise);
          noise.varianceNoise?.dispose();
          out.predOriginalSample?.dispose();
          x.dispose();
          x = out.prevSample;
          expect(relError(await values(x), await values(tensors.get(`${step}/prev_sample`)!))).toBeLessThanOrEqual(TOLERANCES.schedulerLoop);
        }
      } finally {
        x.dispose();
      }
      expect(drawn).toBeGreaterThan(0);
    } finally {
      disposeStateDict(tensors);
    }
  });
});

describe('Scheduler API', () => {
  test('bad arguments name the parameter', async () => {
    using s = await loadScheduler(setDir('euler-linear-epsilon'));
    await expect(s.setTimesteps(0)).rejects.toThrow(
      'Expected an integer in [1, 1000] (num_train_timesteps) for numInferenceSteps but received 0 of type number',
    );
    await s.setTimesteps(4);
    using x = zeros4();
    await expect(s.step(x, 123.5, x)).rejects.toThrow('Expected one of scheduler.timesteps for timestep but received 123.5');
    using ints = Tensor.from(new Int32Array([1, 2]), [2]);
    await expect(s.getVelocity(x, x, ints)).rejects.toThrow(InvalidArgumentError);
    using dpm = await loadScheduler(setDir('dpmpp-linear-epsilon'));
    await expect(dpm.getVelocity(x, x, [999])).rejects.toThrow('DPMSolverMultistepScheduler has no getVelocity');
    for (const set of ['heun-sd1', 'unipc-sd1']) {
      using other = await loadScheduler(setDir(set));
      await expect(other.getVelocity(x, x, [999])).rejects.toThrow(`${other.className} has no getVelocity (nor does diffusers')`);
    }
    using unipc = await loadScheduler(setDir('unipc-sd1'));
    await expect(unipc.step(x, 999, x)).rejects.toThrow('UniPCMultistepScheduler.step: call setTimesteps() first');
    // An array where a tensor belongs was "received undefined"; a NaN timestep became the last step.
    const array = [0, 1] as unknown as Tensor;
    await expect(s.step(array, 999, x)).rejects.toThrow(new InvalidArgumentError('Expected a Tensor for modelOutput but received an array of length 2'));
    await expect(s.addNoise(x, array, [999])).rejects.toThrow('Expected a Tensor for noise but received an array of length 2');
    await expect(s.scaleModelInput(array, 999)).rejects.toThrow('Expected a Tensor for sample but received an array of length 2');
    using nan = Tensor.from(new Float32Array([NaN]), [1]);
    await expect(dpm.addNoise(x, x, nan)).rejects.toThrow(
      new InvalidArgumentError('Expected finite timesteps (taken from scheduler.timesteps) for timesteps but received NaN at index 0'),
    );
  });

  test('DDPM add_noise, get_velocity and SNR at training timesteps', async () => {
    using s = await loadScheduler(setDir('ddpm-linear-epsilon'));
    using x0 = Tensor.from(new Float32Array([1, 1, 1, 1]), [2, 2]);
    using noise = Tensor.from(new Float32Array([0, 0, 0, 0]), [2, 2]);
    using ac = await s.alphasCumprod();
    const table = await values(ac);
    using noisy = await s.addNoise(x0, noise, [0, 999]);
    const n = await values(noisy);
    expect(n[0]).toBeCloseTo(Math.sqrt(table[0]!), 6);
    expect(n[2]).toBeCloseTo(Math.sqrt(table[999]!), 6);
    using snr = await s.snr([0, 500]);
    const r = await values(snr);
    expect(r[0]).toBeCloseTo(table[0]! / (1 - table[0]!), 0);
    expect(r[1]! / (table[500]! / (1 - table[500]!))).toBeCloseTo(1, 5);
    await expect(s.addNoise(x0, noise, [1000, 0])).rejects.toThrow('Expected training timesteps in [0, 999] for timesteps but received values in [0, 1000]');
  });

  test('save writes scheduler_config.json in diffusers form, and it loads back', async () => {
    const src = path.join(setDir('dpmpp-karras'), 'scheduler_config.json');
    using s = await loadScheduler(src);
    const dir = tempDir();
    const written = await s.save(path.join(dir, 'scheduler'));
    expect(fs.readFileSync(written, 'utf8')).toBe(fs.readFileSync(src, 'utf8'));
    using back = await loadScheduler(dir);
    expect(back.toJSON()).toEqual(s.toJSON());
  });

  test('timestepTensor gives a 0-d tensor in the schedule dtype', async () => {
    using euler = await loadScheduler(setDir('euler-karras'));
    await euler.setTimesteps(4);
    using te = euler.timestepTensor(euler.timesteps[1]!);
    expect([te.shape, te.dtype, Number(te.toArray()[0])]).toEqual([[], 'float32', euler.timesteps[1]]);
    using ddim = await loadScheduler(setDir('ddim-sd1'));
    using td = ddim.timestepTensor(981);
    expect([td.shape, td.dtype, td.toArray()[0]]).toEqual([[], 'int64', 981n]);
    expect(() => ddim.timestepTensor(1.5)).toThrow('Expected an integer timestep (this schedule is int64) for timestep but received 1.5 of type number');
  });

  test('Heun and KDPM2 run two model evaluations per step (order 2); Karras LMS/Heun/KDPM2 keep diffusers’ float64 timesteps', async () => {
    using heun = await loadScheduler(setDir('heun-sd1'));
    await heun.setTimesteps(3);
    expect([heun.order, heun.timesteps.length, heun.timesteps[1], heun.timestepDType]).toEqual([2, 5, heun.timesteps[2], 'float32']);
    using kdpm2 = await loadScheduler(setDir('kdpm2-karras'));
    await kdpm2.setTimesteps(3);
    expect([kdpm2.order, kdpm2.timesteps.length, kdpm2.timestepDType]).toEqual([2, 5, 'float64']);
    using t = kdpm2.timestepTensor(kdpm2.timesteps[1]!);
    expect([t.dtype, Number(t.toArray()[0])]).toEqual(['float64', kdpm2.timesteps[1]]);
    using lms = await loadScheduler(setDir('lms-karras'));
    await lms.setTimesteps(4);
    expect([lms.order, lms.timestepDType, Number.isInteger(lms.timesteps[1])]).toEqual([1, 'float64', false]);
    // A float64 timestep is looked up exactly: its float32 rounding is not in the schedule.
    using x = zeros4();
    await expect(lms.scaleModelInput(x, Math.fround(lms.timesteps[1]!))).rejects.toThrow('Expected one of scheduler.timesteps');
  });

  test('a disposed scheduler throws DisposedError', async () => {
    const s = await loadScheduler(setDir('ddim-sd1'));
    s.dispose();
    await expect(s.setTimesteps(4)).rejects.toThrow(DisposedError);
  });
});

function zeros4(): Tensor {
  return Tensor.from(new Float32Array(16), [1, 4, 2, 2]);
}
