// The recipe: field-path errors, relative paths against the recipe file, --set overrides. Pure.
import * as os from 'os';
import * as path from 'path';
import { applyOverrides, parseRecipe, resolveRecipePaths } from '../../lib/config/recipe';
import { runTransferStudy } from '../../lib/demo/transfer-study';
import { ConfigError } from '../../lib/errors';

const minimal = {
  model: { pretrained: 'models/base' },
  data: { source: 'mnist', resolution: 16, channels: 1 },
  train: { steps: 10, lr: 1e-4 },
  output: 'runs/x',
};

test('defaults are filled in and the sections are validated by their own schemas', () => {
  const r = parseRecipe(minimal, 'r.json');
  expect(r.train.batchSize).toBe(1);
  expect(r.train.gradientAccumulation).toBe(1);
  expect(r.train.mixedPrecision).toBe('no');
  expect(r.lora).toBeNull();
  expect(r.checkpoint).toEqual({ every: 0, keep: 2 });
  expect(r.model.device).toBe('cpu');
});

test('model.device takes cpu, cuda and cuda:N; EMA lives on the model\'s device unless ema.device is "cpu"', () => {
  for (const device of ['cpu', 'cuda', 'cuda:0', 'cuda:7']) expect(parseRecipe({ ...minimal, model: { pretrained: 'm', device } }).model.device).toBe(device);
  expect(parseRecipe({ ...minimal, train: { steps: 5, lr: 1e-4, ema: {} } }).train.ema?.device).toBe('model');
  expect(parseRecipe({ ...minimal, train: { steps: 5, lr: 1e-4, ema: { device: 'cpu' } } }).train.ema?.device).toBe('cpu');
});

test.each([
  [{ ...minimal, train: { steps: 0, lr: 1e-4 } }, /r\.json: train\.steps: Number must be greater than 0/],
  [{ ...minimal, train: { steps: 5, lr: 1e-4, mixedPrecision: 'fp8' } }, /train\.mixedPrecision/],
  [{ ...minimal, data: { source: 'mnist', resolution: -1 } }, /r\.json: data\.resolution/],
  [{ ...minimal, freeze: { preset: 'everything' } }, /r\.json: freeze\.preset/],
  [{ ...minimal, lora: { rank: 0 } }, /lora\.rank/],
  [{ ...minimal, lora: { preset: 'lycoris' } }, /r\.json: lora\.preset: Invalid enum value\. Expected 'locon', received 'lycoris'/],
  [{ ...minimal, lora: { preset: 'locon', rank: 0 } }, /lora\.rank/],
  [{ ...minimal, extra: 1 }, /Unrecognized key\(s\) in object: 'extra'/],
  [{ ...minimal, output: undefined }, /output: Required/],
  [{ ...minimal, model: { pretrained: 'm', device: 'gpu' } }, /r\.json: model\.device: expected a device: "cpu", "cuda" or "cuda:N"/],
  [{ ...minimal, model: { pretrained: 'm', device: 'cuda:01' } }, /model\.device/],
  [{ ...minimal, train: { steps: 5, lr: 1e-4, ema: { device: 'cuda' } } }, /train\.ema\.device/],
])('a bad recipe names the field (%#)', (bad, message) => {
  expect(() => parseRecipe(bad, 'r.json')).toThrow(ConfigError);
  expect(() => parseRecipe(bad, 'r.json')).toThrow(message);
});

test('relative paths resolve against the recipe file’s folder; absolute ones stay', () => {
  const r = resolveRecipePaths(parseRecipe({ ...minimal, data: { path: 'imgs', resolution: 32 }, resume: 'ck/checkpoint-4' }, 'r.json'), '/home/u/project');
  expect(r.model.pretrained).toBe(path.resolve('/home/u/project/models/base'));
  expect(r.data.path).toBe(path.resolve('/home/u/project/imgs'));
  expect(r.output).toBe(path.resolve('/home/u/project/runs/x'));
  expect(r.resume).toBe(path.resolve('/home/u/project/ck/checkpoint-4'));
  const latest = resolveRecipePaths(parseRecipe({ ...minimal, output: '/abs/out', resume: 'latest' }, 'r.json'), '/x');
  expect(latest.output).toBe('/abs/out');
  expect(latest.resume).toBe('latest');
});

test('lora.preset fills in its values; a field beside it wins', () => {
  const locon = parseRecipe({ ...minimal, lora: { preset: 'locon' } }).lora!;
  expect(locon).toMatchObject({ preset: 'locon', rank: 8, alpha: 16, attention: true, convolutions: true, resamplers: true, feedForward: false, targets: [] });
  expect(parseRecipe({ ...minimal, lora: { preset: 'locon', rank: 4, convolutions: false } }).lora).toMatchObject({ rank: 4, alpha: 16, convolutions: false });
  // Without a preset nothing changes: rank 4, alpha = rank, attention only.
  const plain = parseRecipe({ ...minimal, lora: {} }).lora!;
  expect(plain).toMatchObject({ rank: 4, attention: true, convolutions: false, resamplers: false });
  expect(plain.alpha).toBeUndefined();
  expect(plain.preset).toBeUndefined();
});

test('--set parses JSON values, else strings, creating objects on the way', () => {
  const r = applyOverrides(minimal, [
    'train.lr=3e-5',
    'train.ema={"decay":0.99}',
    'output=runs/other',
    'lora.rank=8',
    'data.classes=[1,2]',
    'model.pretrained=true-ish',
  ]);
  expect((r.train as Record<string, unknown>).lr).toBe(3e-5);
  expect((r.train as Record<string, unknown>).ema).toEqual({ decay: 0.99 });
  expect(r.output).toBe('runs/other');
  expect(r.lora).toEqual({ rank: 8 });
  expect((r.data as Record<string, unknown>).classes).toEqual([1, 2]);
  expect((r.model as Record<string, unknown>).pretrained).toBe('true-ish');
  expect((minimal.train as Record<string, unknown>).ema).toBeUndefined(); // the input is not mutated
  expect(() => applyOverrides(minimal, ['nokey'])).toThrow(/expected key\.path=value/);
  expect(() => applyOverrides(minimal, ['output.x=1'])).toThrow(/"output" is not an object/);
  // An inherited method is no recipe field: walking through it creates an own object.
  expect(applyOverrides(minimal, ['toString.x=1']).toString).toEqual({ x: 1 });
});

test('--set refuses keys that reach Object.prototype, naming them, and pollutes nothing', () => {
  for (const [set, key] of [
    ['__proto__.polluted=1', '__proto__'],
    ['constructor.prototype.polluted=1', 'constructor", "prototype'],
    ['train.__proto__.polluted=1', '__proto__'],
    ['__proto__={"polluted":1}', '__proto__'],
  ] as const) {
    let error: unknown;
    try {
      applyOverrides(minimal, [set]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain(`--set ${set}: expected field names but found "${key}"`);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  }
});

test('the transfer study refuses a variant override through Object.prototype before any run', async () => {
  const overrides = JSON.parse('{"train": {"__proto__": {"polluted": 1}}}') as Record<string, unknown>;
  await expect(runTransferStudy(minimal, 'r.json', path.join(os.tmpdir(), 'difftune-never-written'), [{ name: 'bad', overrides }])).rejects.toThrow(
    /variant "bad": overrides\.train\.__proto__: expected field names but found "__proto__"/,
  );
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
});

test('validation grids: prompts, class labels, images, steps, guidance and scheduler, with their defaults', () => {
  const r = parseRecipe({ ...minimal, validation: { every: 10, classLabels: [0, 3] } }, 'r.json');
  expect(r.validation).toMatchObject({ classLabels: [0, 3], prompts: [], steps: 25, guidanceScale: 7.5, scheduler: 'DDIMScheduler', seed: 1234 });
  expect(r.validation.numImages).toBeUndefined();
  // Short names as --scheduler takes them.
  expect(parseRecipe({ ...minimal, validation: { every: 1, numImages: 2, scheduler: 'euler-ancestral' } }, 'r.json').validation.scheduler).toBe(
    'EulerAncestralDiscreteScheduler',
  );
  expect(parseRecipe(minimal, 'r.json').validation).toMatchObject({ every: 0, prompts: [], classLabels: [] });
});

test.each([
  [{ every: 0, prompts: ['a cat'] }, /r\.json: validation\.every: validation grids .* set every/],
  [{ every: 5, numImages: 4 }, null],
  [{ numImages: 4 }, /validation\.every/],
  [{ every: 5, prompts: ['a cat'], classLabels: [1] }, /validation\.classLabels: give prompts .* or classLabels .*, not both/],
  [{ every: 5, classLabels: [-1] }, /validation\.classLabels\[0\]: Number must be greater than or equal to 0/],
  [{ every: 5, numImages: 0 }, /validation\.numImages/],
  [{ every: 5, scheduler: 'ddim' }, null],
  [{ every: 5, wrongCaptions: true }, null],
  [{ wrongCaptions: true }, /r\.json: validation\.wrongCaptions: the wrong-caption held-out loss is measured at validations: set every/],
  [
    { every: 5, scheduler: 'fast' },
    /validation\.scheduler: expected a scheduler class \(DDPMScheduler, DDIMScheduler, .*\) or short name \(ddpm, ddim, .*\) but found "fast"/,
  ],
])('validation grid settings are checked, naming the field (%#)', (validation, message) => {
  const parse = () => parseRecipe({ ...minimal, validation }, 'r.json');
  if (message === null) expect(parse).not.toThrow();
  else expect(parse).toThrow(message);
});

test('dreambooth: defaults, classData resolved against the recipe file, prior preservation needs classPrompt and classData together', () => {
  expect(parseRecipe(minimal, 'r.json').dreambooth).toBeNull();
  const d = { instancePrompt: 'a photo of sks dog', classPrompt: 'a photo of dog', classData: 'class-dogs' };
  const r = resolveRecipePaths(parseRecipe({ ...minimal, dreambooth: d }, 'r.json'), '/home/u/project');
  expect(r.dreambooth).toEqual({
    ...d,
    classData: path.resolve('/home/u/project/class-dogs'),
    numClassImages: 100,
    priorLossWeight: 1,
    classGeneration: { steps: 50, guidanceScale: 7.5, seed: 0, batchSize: 4, scheduler: null },
  });
  // Without prior preservation: the instance prompt alone.
  expect(parseRecipe({ ...minimal, dreambooth: { instancePrompt: 'sks' } }, 'r.json').dreambooth?.classData).toBeUndefined();
});

test.each([
  [{ instancePrompt: 'sks', classPrompt: 'dog' }, /r\.json: dreambooth\.classData: prior preservation needs both classPrompt and classData/],
  [{ instancePrompt: 'sks', classData: 'dogs' }, /dreambooth\.classPrompt: prior preservation needs both/],
  [{ classPrompt: 'dog', classData: 'dogs' }, /dreambooth\.instancePrompt: Required/],
  [{ instancePrompt: 'sks', priorLossWeight: -1 }, /dreambooth\.priorLossWeight: Number must be greater than or equal to 0/],
  [{ instancePrompt: 'sks', numClassImages: 0 }, /dreambooth\.numClassImages/],
  [{ instancePrompt: 'sks', classGeneration: { scheduler: 'euler' } }, /dreambooth\.classGeneration\.scheduler: Invalid enum value/],
  [{ instancePrompt: 'sks', classGeneration: { sampler: 'ddim' } }, /dreambooth\.classGeneration: Unrecognized key\(s\) in object: 'sampler'/],
])('a bad dreambooth section names the field (%#)', (dreambooth, message) => {
  expect(() => parseRecipe({ ...minimal, dreambooth }, 'r.json')).toThrow(message);
});
