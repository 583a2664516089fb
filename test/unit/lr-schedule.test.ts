/**
 * Learning-rate schedules against values worked out by hand from diffusers' formulas
 * (optimization.py, v0.31): lr(step) = lr × λ(step), step 0-based as LambdaLR after `step` calls.
 */
import { ConfigError, InvalidArgumentError } from '../../lib/errors';
import { parseLrSchedule } from '../../lib/config/lr-schedule';
import { lrAt, lrMultiplierAt, makeLrSchedule, resolveLrSchedule, type LrScheduleOptions } from '../../lib/train/lr-schedule';

const curve = (options: LrScheduleOptions, steps: number[]): number[] => steps.map((s) => lrAt(s, options));
const expectClose = (actual: number[], expected: number[]): void => {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((a, i) => expect(a).toBeCloseTo(expected[i] ?? NaN, 14));
};

test('constant: the base lr at every step, the default schedule', () => {
  expect(curve({ name: 'constant', lr: 2e-4, totalSteps: 10 }, [0, 5, 10, 50])).toEqual([2e-4, 2e-4, 2e-4, 2e-4]);
  expect(lrAt(3, { lr: 1, totalSteps: 10 })).toBe(1);
  expect(resolveLrSchedule({ lr: 1, totalSteps: 10 }).name).toBe('constant');
});

test('constant_with_warmup: a linear ramp from 0 over warmupSteps, then flat', () => {
  expectClose(curve({ name: 'constant_with_warmup', warmupSteps: 10, lr: 1, totalSteps: 100 }, [0, 1, 5, 9, 10, 11, 100, 500]), [0, 0.1, 0.5, 0.9, 1, 1, 1, 1]);
});

describe('linear', () => {
  test('decays from the base lr to exactly 0 at totalSteps and stays there', () => {
    expectClose(curve({ name: 'linear', lr: 1, totalSteps: 4 }, [0, 1, 2, 3, 4, 5, 100]), [1, 0.75, 0.5, 0.25, 0, 0, 0]);
    expect(lrAt(4, { name: 'linear', lr: 1e-4, totalSteps: 4 })).toBe(0);
  });

  test('with warmup: ramps up, then decays over the remaining steps', () => {
    // warmup 10 of 100: λ(5) = 5/10; λ(55) = (100 − 55)/90 = 0.5; λ(10) = 90/90 = 1
    expectClose(curve({ name: 'linear', warmupSteps: 10, lr: 1e-3, totalSteps: 100 }, [0, 5, 10, 55, 100]), [0, 5e-4, 1e-3, 5e-4, 0]);
  });
});

describe('cosine', () => {
  test('half a cosine by default: 1 at the start, 0.5 in the middle, 0 at the end', () => {
    // λ = ½(1 + cos(π · 0.5 · 2 · progress)); progress ¼ → ½(1 + cos(π/4)) = ½ + √2/4
    expectClose(curve({ name: 'cosine', lr: 1, totalSteps: 100 }, [0, 25, 50, 75, 100]), [1, 0.5 + Math.SQRT2 / 4, 0.5, 0.5 - Math.SQRT2 / 4, 0]);
  });

  test('with warmup the cosine starts after it: the middle of 20 + 100 steps is step 70', () => {
    expectClose(curve({ name: 'cosine', warmupSteps: 20, lr: 1, totalSteps: 120 }, [0, 10, 20, 70, 120]), [0, 0.5, 1, 0.5, 0]);
  });

  test('numCycles 1 is a full period: 0 in the middle, back to 1 at the end', () => {
    expectClose(curve({ name: 'cosine', numCycles: 1, lr: 1, totalSteps: 100 }, [0, 50, 100]), [1, 0, 1]);
  });

  test('past totalSteps the cosine continues, as diffusers computes it', () => {
    expectClose(curve({ name: 'cosine', lr: 1, totalSteps: 100 }, [150, 200]), [0.5, 1]);
  });
});

describe('cosine_with_restarts', () => {
  test('numCycles 1 (the default) is a single half cosine to 0', () => {
    expectClose(curve({ name: 'cosine_with_restarts', lr: 1, totalSteps: 100 }, [0, 50, 99, 100, 150]), [1, 0.5, 0.5 * (1 + Math.cos(Math.PI * 0.99)), 0, 0]);
  });

  test('numCycles 2 restarts at the peak half-way through', () => {
    // λ = ½(1 + cos(π · ((2 · progress) mod 1)))
    expectClose(curve({ name: 'cosine_with_restarts', numCycles: 2, lr: 1, totalSteps: 100 }, [0, 25, 49, 50, 75, 100]), [
      1,
      0.5,
      0.5 * (1 + Math.cos(Math.PI * 0.98)),
      1,
      0.5,
      0,
    ]);
  });

  test('with warmup, cycles span the steps after it', () => {
    expectClose(curve({ name: 'cosine_with_restarts', numCycles: 3, warmupSteps: 10, lr: 1, totalSteps: 70 }, [5, 10, 20, 30, 50]), [0.5, 1, 0.5, 1, 1]);
  });
});

describe('polynomial', () => {
  test('power 1 decays linearly from the base lr to exactly lrEnd and stays there', () => {
    const options: LrScheduleOptions = { name: 'polynomial', lrEnd: 1e-5, lr: 1e-3, totalSteps: 100 };
    expectClose(curve(options, [0, 50, 100, 150]), [1e-3, (1e-3 - 1e-5) * 0.5 + 1e-5, 1e-5, 1e-5]);
    expect(lrAt(100, options)).toBeCloseTo(1e-5, 18);
  });

  test('power 2: lr = (lr − lrEnd)(1 − progress)² + lrEnd', () => {
    expectClose(curve({ name: 'polynomial', power: 2, lrEnd: 1e-5, lr: 1e-3, totalSteps: 100 }, [50, 90]), [
      (1e-3 - 1e-5) * 0.25 + 1e-5,
      (1e-3 - 1e-5) * 0.01 + 1e-5,
    ]);
  });

  test('diffusers defaults: power 1, lrEnd 1e-7; warmup ramps first', () => {
    const s = resolveLrSchedule({ name: 'polynomial', warmupSteps: 10, lr: 1e-4, totalSteps: 110 });
    expect([s.power, s.lrEnd]).toEqual([1, 1e-7]);
    expectClose(
      [5, 10, 60, 110].map((step) => s.lr * lrMultiplierAt(step, s)),
      [5e-5, 1e-4, (1e-4 - 1e-7) * 0.5 + 1e-7, 1e-7],
    );
  });
});

test('makeLrSchedule validates once and gives the same values as lrAt', () => {
  const options: LrScheduleOptions = { name: 'cosine', warmupSteps: 3, lr: 5e-5, totalSteps: 40 };
  const f = makeLrSchedule(options);
  for (let step = 0; step <= 45; step++) expect(f(step)).toBe(lrAt(step, options));
});

test('defaults resolve like diffusers: numCycles 0.5 for cosine, 1 for restarts', () => {
  expect(resolveLrSchedule({ name: 'cosine', lr: 1, totalSteps: 10 }).numCycles).toBe(0.5);
  expect(resolveLrSchedule({ name: 'cosine_with_restarts', lr: 1, totalSteps: 10 }).numCycles).toBe(1);
});

describe('errors name the field', () => {
  test('options a schedule would ignore', () => {
    expect(() => parseLrSchedule({ name: 'constant', warmupSteps: 100 })).toThrow(
      /train\.lrSchedule\.warmupSteps: the "constant" schedule has no warmup \(as in diffusers\); use "constant_with_warmup"/,
    );
    expect(() => parseLrSchedule({ name: 'linear', numCycles: 2 })).toThrow(
      /train\.lrSchedule\.numCycles: used only by "cosine" and "cosine_with_restarts", not by "linear"/,
    );
    expect(() => parseLrSchedule({ name: 'cosine', power: 2 })).toThrow(/train\.lrSchedule\.power: used only by "polynomial"/);
    expect(() => parseLrSchedule({ name: 'cosine', lrEnd: 0 })).toThrow(/train\.lrSchedule\.lrEnd: used only by "polynomial"/);
  });

  test('invalid values and unknown keys', () => {
    expect(() => parseLrSchedule({ name: 'exponential' })).toThrow(/train\.lrSchedule\.name: Invalid enum value/);
    expect(() => parseLrSchedule({ warmupSteps: 1.5 })).toThrow(/train\.lrSchedule\.warmupSteps: Expected integer/);
    expect(() => parseLrSchedule({ name: 'cosine', numCycles: 0 })).toThrow(ConfigError);
    expect(() => parseLrSchedule({ warmup: 10 })).toThrow(/Unrecognized key\(s\) in object: 'warmup'/);
    expect(() => parseLrSchedule({ name: 'linear', warmupSteps: -1 }, 'recipe.train.lrSchedule')).toThrow(/recipe\.train\.lrSchedule\.warmupSteps/);
  });

  test('schedules that cannot run over train.steps', () => {
    expect(() => lrAt(0, { name: 'linear', warmupSteps: 20, lr: 1, totalSteps: 10 })).toThrow(
      /train\.lrSchedule\.warmupSteps: expected at most train\.steps \(10\) warmup steps but found 20/,
    );
    expect(() => lrAt(0, { name: 'polynomial', warmupSteps: 10, lr: 1, totalSteps: 10 })).toThrow(/"polynomial" needs decay steps/);
    expect(() => lrAt(0, { name: 'polynomial', lrEnd: 1e-3, lr: 1e-3, totalSteps: 10 })).toThrow(
      /train\.lrSchedule\.lrEnd: expected an end lr below train\.lr \(0\.001\) but found 0\.001/,
    );
  });

  test('bad lr, steps and step index', () => {
    expect(() => lrAt(0, { lr: 0, totalSteps: 10 })).toThrow(/Expected a positive finite learning rate for train\.lr but received 0 of type number/);
    expect(() => lrAt(0, { lr: 1, totalSteps: 0 })).toThrow(/for train\.steps but received 0/);
    expect(() => lrAt(-1, { lr: 1, totalSteps: 10 })).toThrow(InvalidArgumentError);
    expect(() => lrAt(1.5, { lr: 1, totalSteps: 10 })).toThrow(/Expected a non-negative integer optimizer step for step but received 1\.5/);
  });
});
