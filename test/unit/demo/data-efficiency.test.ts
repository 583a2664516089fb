// The data-efficiency study's arithmetic on made-up numbers: "fine-tuning with N images matches scratch
// with M images" (log-linear between sizes, first crossing, never, already at the smallest size, curves
// that are not monotonic), steps to reach a loss, the two README goals, --data-sizes and the summary schema.
import {
  dataEfficiencyGoals,
  dataEfficiencySummarySchema,
  dataEfficiencyTable,
  dataSizesValue,
  imagesToReach,
  matchStatements,
  stepsToReach,
  type DataEfficiencyRun,
  type DataEfficiencySummary,
} from '../../../lib/demo/data-efficiency';
import { parseCli } from '../../../lib/util/cli-args';
import { cli } from '../../../scripts/transfer-study';

const pts = (entries: Array<[number, number]>) => entries.map(([images, loss]) => ({ images, loss }));

describe('imagesToReach', () => {
  test('interpolates linearly in log(images) between the sizes around the crossing', () => {
    const r = imagesToReach(
      pts([
        [64, 0.1],
        [256, 0.06],
        [1024, 0.04],
      ]),
      0.08,
    );
    expect(r.kind).toBe('interpolated');
    if (r.kind !== 'interpolated') return;
    expect(r.images).toBeCloseTo(128, 9); // halfway in loss is halfway in log size: √(64 × 256)
    expect(r.between).toEqual([64, 256]);
  });

  test('a target equal to a measured loss is that size exactly', () => {
    expect(
      imagesToReach(
        pts([
          [64, 0.1],
          [256, 0.06],
        ]),
        0.06,
      ),
    ).toEqual({ kind: 'interpolated', images: 256, between: [64, 256] });
  });

  test('reached at the smallest size measured: that size or fewer', () => {
    expect(
      imagesToReach(
        pts([
          [64, 0.05],
          [256, 0.04],
        ]),
        0.07,
      ),
    ).toEqual({ kind: 'smallest', images: 64 });
  });

  test('never reached: better than every size measured', () => {
    expect(
      imagesToReach(
        pts([
          [64, 0.1],
          [256, 0.09],
          [4096, 0.08],
        ]),
        0.05,
      ),
    ).toEqual({ kind: 'never', largest: 4096 });
  });

  test('a target that is not finite (a diverged fine-tuned run) reaches nothing', () => {
    expect(
      imagesToReach(
        pts([
          [64, 0.1],
          [256, 0.09],
        ]),
        NaN,
      ),
    ).toEqual({ kind: 'no-target' });
  });

  test('on a curve that is not monotonic the first crossing counts, not a later dip or rise', () => {
    // 1024 is worse than 256 (noise or overfitting): 256 already reached 0.07.
    const dip = imagesToReach(
      pts([
        [64, 0.1],
        [256, 0.05],
        [1024, 0.09],
        [4096, 0.04],
      ]),
      0.07,
    );
    expect(dip).toMatchObject({ kind: 'interpolated', between: [64, 256] });
    // A rise before the crossing: interpolate from the size just before it (256, 0.12), not from 64.
    const rise = imagesToReach(
      pts([
        [64, 0.1],
        [256, 0.12],
        [1024, 0.06],
      ]),
      0.08,
    );
    expect(rise).toMatchObject({ kind: 'interpolated', between: [256, 1024] });
    if (rise.kind === 'interpolated') expect(rise.images).toBeCloseTo(256 * 4 ** (2 / 3), 6);
  });

  test('sizes in any order; a diverged size before the crossing gives the crossing size', () => {
    expect(
      imagesToReach(
        pts([
          [1024, 0.04],
          [64, 0.1],
          [256, 0.06],
        ]),
        0.08,
      ),
    ).toMatchObject({ kind: 'interpolated', between: [64, 256] });
    expect(
      imagesToReach(
        pts([
          [64, NaN],
          [256, 0.06],
        ]),
        0.08,
      ),
    ).toEqual({ kind: 'interpolated', images: 256, between: [64, 256] });
  });

  test('no sizes is a ConfigError', () => {
    expect(() => imagesToReach([], 0.1)).toThrow(/expected at least one measured size/);
  });
});

describe('stepsToReach', () => {
  const curve = [
    { step: 0, loss: 0.2 },
    { step: 50, loss: 0.1 },
    { step: 100, loss: 0.06 },
  ];
  test('linear between validations, the first point, never', () => {
    expect(stepsToReach(curve, 0.08)).toBeCloseTo(75, 9);
    expect(stepsToReach(curve, 0.1)).toBe(50);
    expect(stepsToReach(curve, 0.3)).toBe(0);
    expect(stepsToReach(curve, 0.05)).toBeNull();
    expect(stepsToReach([{ step: 0, loss: NaN }, ...curve.slice(1)], 0.15)).toBe(50);
  });
});

/** A run whose held-out curve falls linearly from 0.3 at step 0 to `loss` at `steps` (validated every 10 steps). */
function run(variant: DataEfficiencyRun['variant'], images: number, loss: number, steps = 100): DataEfficiencyRun {
  const curve = Array.from({ length: steps / 10 + 1 }, (_, i) => ({ step: i * 10, loss: 0.3 + ((loss - 0.3) * i * 10) / steps }));
  return { variant, images, heldOutLoss: loss, bestHeldOutLoss: loss, steps, seconds: steps * 0.5, secondsPerStep: 0.5, curve };
}

function runs(scratch: Array<[number, number]>, ft: Array<[number, number]>): DataEfficiencyRun[] {
  return [...scratch.map(([n, l]) => run('from scratch', n, l)), ...ft.map(([n, l]) => run('fine-tuned', n, l))];
}

describe('matchStatements', () => {
  test('one statement per fine-tuned size, in each of the three forms', () => {
    const m = matchStatements(
      runs(
        [
          [64, 0.2],
          [256, 0.1],
          [1024, 0.08],
        ],
        [
          [64, 0.15], // between scratch 64 and 256
          [256, 0.09], // between 256 and 1024
          [1024, 0.05], // better than every scratch size
        ],
      ),
    );
    expect(m.map((s) => s.images)).toEqual([64, 256, 1024]);
    expect(m[0]!.statement).toBe('fine-tuning with 64 images matches scratch with ≈ 128 images (between 64 and 256)');
    expect(m[1]!.statement).toBe('fine-tuning with 256 images matches scratch with ≈ 512 images (between 256 and 1024)');
    expect(m[2]!.statement).toBe('fine-tuning with 1024 images is better than scratch with every size measured (up to 1024 images)');
    const worse = matchStatements(
      runs(
        [
          [64, 0.1],
          [256, 0.08],
        ],
        [
          [64, 0.12],
          [256, 0.11],
        ],
      ),
    );
    expect(worse[0]!.statement).toBe(
      'fine-tuning with 64 images matches scratch with ≤ 64 images (scratch with the fewest images measured is already as good)',
    );
  });

  test('a size with only one of the two runs is refused', () => {
    expect(() => matchStatements([run('from scratch', 64, 0.1), run('fine-tuned', 64, 0.1), run('fine-tuned', 256, 0.1)])).toThrow(
      /expected a fine-tuned and a from-scratch run with 256 images but found no from-scratch one/,
    );
  });
});

describe('dataEfficiencyGoals', () => {
  test('both met: fine-tuned is down to scratch within 1/5 of the steps everywhere, and 256 images (1/16) match scratch on 4096', () => {
    // Fine-tuned curves that start at the scratch final loss's level quickly: loss 0.3 → x in 100 steps is linear,
    // so reaching scratch's final within 20 steps needs a much lower final loss.
    const ft = (images: number, final: number, scratchFinal: number): DataEfficiencyRun => ({
      ...run('fine-tuned', images, final),
      curve: [
        { step: 0, loss: 0.3 },
        { step: 10, loss: scratchFinal + 0.001 },
        { step: 20, loss: scratchFinal - 0.001 },
        { step: 100, loss: final },
      ],
    });
    const scratch: Array<[number, number]> = [
      [64, 0.2],
      [256, 0.12],
      [1024, 0.08],
      [4096, 0.06],
    ];
    const all = [...scratch.map(([n, l]) => run('from scratch', n, l)), ft(64, 0.07, 0.2), ft(256, 0.055, 0.12), ft(1024, 0.05, 0.08), ft(4096, 0.045, 0.06)];
    const g = dataEfficiencyGoals(all);
    expect(g.steps.met).toBe(true);
    expect(g.steps.perSize.map((p) => p.steps)).toEqual([15, 15, 15, 15].map((s) => expect.closeTo(s, 6) as unknown as number));
    expect(g.steps.perSize.every((p) => p.budget === 100 && p.met)).toBe(true);
    expect(g.steps.statement).toMatch(/^met at every size: 64 images: 15 of 100 steps \(15%\); 256 images: 15 of 100/);
    expect(g.images).toMatchObject({ met: true, scratchImages: 4096, scratchLoss: 0.06, fineTunedImages: 256, fineTunedLoss: 0.055, fraction: 256 / 4096 });
    expect(g.images.estimate).toMatchObject({ kind: 'interpolated', between: [64, 256] });
    expect(g.images.statement).toBe(
      "met: fine-tuned with 256 images (6.3% of them) reaches from-scratch's held-out loss with all 4096 images (0.0600) with 0.0550",
    );
  });

  test('not met: the linear curves take half the steps or never reach it, and fine-tuned needs 1024 of 4096', () => {
    const g = dataEfficiencyGoals(
      runs(
        [
          [64, 0.2],
          [256, 0.12],
          [1024, 0.08],
          [4096, 0.06],
        ],
        [
          [64, 0.1], // 0.3 → 0.1 linearly: 0.2 at step 50
          [256, 0.11],
          [1024, 0.058],
          [4096, 0.07], // never down to 0.06
        ],
      ),
    );
    expect(g.steps.met).toBe(false);
    expect(g.steps.perSize[0]).toMatchObject({
      images: 64,
      steps: expect.closeTo(50, 6),
      fraction: expect.closeTo(0.5, 6),
      met: false,
    });
    expect(g.steps.perSize[3]).toMatchObject({ images: 4096, steps: null, fraction: null, met: false });
    expect(g.steps.statement).toMatch(
      /^not met at 4 of 4 sizes \(the goal is ≤ 1\/5 of the steps at every size\): 64 images: 50 of 100 steps \(50%\); .*4096 images: not within 100 steps$/,
    );
    expect(g.images).toMatchObject({ met: false, fineTunedImages: 1024, fraction: 0.25 });
    expect(g.images.statement).toBe(
      "not met: fine-tuned needs 1024 images (25%) to reach from-scratch's held-out loss with all 4096 images (0.0600); the goal is ≤ 1/10 (409 images)",
    );
  });

  test('never reaches the bar, and no size small enough was measured', () => {
    const g = dataEfficiencyGoals(
      runs(
        [
          [64, 0.2],
          [256, 0.1],
        ],
        [
          [64, 0.15],
          [256, 0.12],
        ],
      ),
    );
    expect(g.images).toMatchObject({ met: false, fineTunedImages: null, fineTunedLoss: null, fraction: null, estimate: { kind: 'never', largest: 256 } });
    expect(g.images.statement).toBe(
      "not met: fine-tuned stays above from-scratch's held-out loss with all 256 images (0.1000) with every size measured (no size ≤ 1/10 of 256 was measured)",
    );
  });

  test('the smallest fine-tuned size already beats scratch on everything: met at the smallest size', () => {
    const g = dataEfficiencyGoals(
      runs(
        [
          [64, 0.2],
          [1024, 0.1],
        ],
        [
          [64, 0.09],
          [1024, 0.05],
        ],
      ),
    );
    expect(g.images).toMatchObject({ met: true, fineTunedImages: 64, estimate: { kind: 'smallest', images: 64 } });
    // The linear curves start at 0.3, above scratch's 0.2 at 64; one starting below it is there at step 0.
    const early = dataEfficiencyGoals([run('from scratch', 64, 0.35), run('fine-tuned', 64, 0.1), run('from scratch', 256, 0.2), run('fine-tuned', 256, 0.05)]);
    expect(early.steps.perSize.map((p) => p.steps)).toEqual([0, expect.closeTo(40, 6) as unknown as number]);
    expect(early.steps.statement).toBe(
      'not met at 1 of 2 sizes (the goal is ≤ 1/5 of the steps at every size): 64 images: at step 0, before fine-tuning; 256 images: 40 of 100 steps (40%)',
    );
  });
});

describe('--data-sizes', () => {
  const parse = (text: string) => dataSizesValue.schema.safeParse(text);
  test('sizes come back in ascending order', () => {
    expect(parse('4096,64, 256,1024')).toEqual({ success: true, data: [64, 256, 1024, 4096] });
  });
  test.each(['64', '64,64', '0,64', '64,abc', '1.5,2', '', '64,,256'])('%j is refused', (text) => {
    expect(parse(text).success).toBe(false);
  });
  test('the CLI names the flag and what it wants', () => {
    expect(() => parseCli(cli, ['--recipe', 'r.json', '--data-sizes', '64'])).toThrow(
      '--data-sizes: expected two or more different image counts ≥ 1, separated by commas (64,256,1024,4096) but received "64"',
    );
    expect(parseCli(cli, ['--recipe', 'r.json', '--data-sizes', '256,64'])).toMatchObject({ values: { 'data-sizes': [64, 256] } });
  });
});

test('a summary with a diverged run passes the schema through JSON (NaN is null) and the table says so', () => {
  const all = runs(
    [
      [64, 0.2],
      [256, 0.1],
    ],
    [
      [64, NaN],
      [256, 0.05],
    ],
  );
  const summary: DataEfficiencySummary = {
    kind: 'data-efficiency',
    recipe: 'r.json',
    date: '2026-01-01T00:00:00.000Z',
    machine: '2 × test CPU',
    sizes: [64, 256],
    subsetRule: 'data.limit',
    fineTuned: 'ft',
    fromScratch: 'scratch',
    trainSteps: 100,
    batchSize: 32,
    heldOut: { data: 'fashion-mnist (test split)', samples: 64 },
    runs: all,
    matches: matchStatements(all),
    goals: dataEfficiencyGoals(all),
    seconds: 3725,
  };
  const parsed = dataEfficiencySummarySchema.parse(JSON.parse(JSON.stringify(summary)));
  expect(parsed.runs[2]!.heldOutLoss).toBeNull();
  expect(parsed.matches[0]!.statement).toBe('fine-tuning with 64 images matches no scratch run: its held-out loss is not finite (the run diverged)');
  const table = dataEfficiencyTable(parsed);
  expect(table).toContain("| 64 | 0.2000 | not finite | nothing (the fine-tuned run's held-out loss is not finite) |");
  expect(table).toContain('| 256 | 0.1000 | 0.0500 | more than 256 images (better than scratch with every size measured) |');
  expect(table).toContain('The study took 1 h 2 min (4 runs) on 2 × test CPU.');
  expect(table).toMatch(/- With ≤ 1\/10 of the images, fine-tuned matches scratch on all of them: \*\*not met\*\* — fine-tuned /);
  // The bold verdict stands for the statement's own, which is not repeated.
  expect(table).not.toMatch(/\*\* — (not )?met/);
  expect(() => dataEfficiencySummarySchema.parse({ ...summary, extra: 1 })).toThrow();
});
