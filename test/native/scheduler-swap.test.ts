// Picking a scheduler class for a model folder, as a diffusers user swaps schedulers: `--scheduler` takes
// short and class names; a pipeline whose scheduler class difftune lacks opens once another class is
// picked (its config converted like diffusers' from_config) and names the file, the class and the
// supported classes otherwise; and the sampling loops run Heun/KDPM2, whose timesteps repeat or
// interleave midpoints (two model calls per step), as diffusers' pipelines do.
import * as fs from 'fs';
import * as path from 'path';
import { Writable } from 'stream';
import { disposeStateDict } from '../../lib/checkpoint/state-dict';
import { relError } from '../../lib/conformance/compare';
import { FixtureSet } from '../../lib/conformance/fixture-set';
import { TOLERANCES } from '../../lib/conformance/tolerances';
import { ConfigError } from '../../lib/errors';
import { loadStableDiffusion } from '../../lib/models/stable-diffusion';
import { loadUNet } from '../../lib/models/unet';
import { runSampleCli } from '../../lib/sample/cli';
import { sample } from '../../lib/sample/pipeline';
import { txt2img } from '../../lib/sample/txt2img';
import { finetune } from '../../lib/train/finetune';
import { loadScheduler } from '../../lib/schedulers/scheduler';
import { useTempDir } from '../helpers/temp-dir';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');
const PIPELINE = path.join(FIXTURES, 'sd-pipeline-tiny');
const tmp = useTempDir('scheduler-swap');

function sink(): Writable & { text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return Object.assign(stream, { text: () => text });
}

/** sd-pipeline-tiny with its scheduler recorded as `className` (model_index.json and scheduler_config.json) and an extra key. */
function pipelineWithScheduler(name: string, className: string): string {
  const dir = path.join(tmp(), name);
  fs.cpSync(PIPELINE, dir, { recursive: true });
  fs.rmSync(path.join(dir, 'cases.json'));
  fs.rmSync(path.join(dir, 'cases.safetensors'));
  const indexFile = path.join(dir, 'model_index.json');
  const index = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(indexFile, JSON.stringify({ ...index, scheduler: ['diffusers', className] }));
  const configFile = path.join(dir, 'scheduler', 'scheduler_config.json');
  const config = JSON.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(configFile, JSON.stringify({ ...config, _class_name: className, original_inference_steps: 50 }));
  return dir;
}

describe('a pipeline whose scheduler class difftune lacks', () => {
  test('opens when another class is picked, converting the common keys; otherwise names the file, the class and the supported classes', async () => {
    const dir = pipelineWithScheduler('lcm', 'LCMScheduler');
    const error = await loadStableDiffusion(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(`${path.join(dir, 'model_index.json')}: cannot load`);
    expect((error as Error).message).toContain(
      'scheduler: class "LCMScheduler" is not supported (supported: DDPMScheduler, DDIMScheduler, EulerDiscreteScheduler, DPMSolverMultistepScheduler, PNDMScheduler, EulerAncestralDiscreteScheduler',
    );
    expect((error as Error).message).toContain('--scheduler <name>');

    using sd = await loadStableDiffusion(dir, { schedulerClass: 'EulerAncestralDiscreteScheduler' });
    const original = JSON.parse(fs.readFileSync(path.join(PIPELINE, 'scheduler', 'scheduler_config.json'), 'utf8')) as Record<string, unknown>;
    expect(sd.scheduler.className).toBe('EulerAncestralDiscreteScheduler');
    expect(sd.scheduler.config).toMatchObject({ beta_schedule: original.beta_schedule, beta_start: original.beta_start, steps_offset: original.steps_offset });
    expect(sd.scheduler.warnings.join('\n')).toContain('unknown EulerAncestralDiscreteScheduler config key "original_inference_steps" ignored');
  });

  test('a scheduler_config.json naming an unknown class is named by its file when model_index.json names a supported one', async () => {
    const dir = pipelineWithScheduler('mismatch', 'LCMScheduler');
    fs.writeFileSync(path.join(dir, 'model_index.json'), JSON.stringify({ ...JSON.parse(fs.readFileSync(path.join(PIPELINE, 'model_index.json'), 'utf8')) }));
    const file = path.join(dir, 'scheduler', 'scheduler_config.json');
    await expect(loadStableDiffusion(dir)).rejects.toThrow(`${file}: "_class_name": expected one of DDPMScheduler`);
    await expect(loadStableDiffusion(dir)).rejects.toThrow(
      /but found "LCMScheduler" of type string \(to use this config anyway, pick a supported class: --scheduler/,
    );
  });

  test('npm run sample: --scheduler takes short and class names; without it the error says what to do', async () => {
    const dir = pipelineWithScheduler('cli', 'LCMScheduler');
    const base = ['--model', dir, '--prompt', 'a red circle', '--steps', '2', '--seed', '3'];
    for (const [name, className] of [
      ['kdpm2-ancestral', 'KDPM2AncestralDiscreteScheduler'],
      ['UniPCMultistepScheduler', 'UniPCMultistepScheduler'],
    ] as const) {
      const out = sink();
      const err = sink();
      const code = await runSampleCli([...base, '--scheduler', name, '--out', path.join(tmp(), `${name}.png`)], out, err);
      expect({ code, err: code === 0 ? '' : err.text() }).toEqual({ code: 0, err: '' });
      expect(out.text()).toContain(`, ${className}, 2 steps`);
    }
    const err = sink();
    expect(await runSampleCli([...base, '--out', path.join(tmp(), 'none.png')], sink(), err)).toBe(1);
    expect(err.text()).toMatch(/scheduler: class "LCMScheduler" is not supported .*--scheduler <name>/);
    const bad = sink();
    expect(await runSampleCli([...base, '--scheduler', 'euler_a', '--out', path.join(tmp(), 'bad.png')], sink(), bad)).toBe(1);
    expect(bad.text()).toMatch(/--scheduler.*one of ddpm, ddim, pndm, euler, euler-ancestral, lms, heun, kdpm2, kdpm2-ancestral, dpmpp,.* or a class name/);
  });
});

describe('sampling loops with two model calls per step', () => {
  test('sample() reproduces diffusers’ Heun (Karras sigmas) loop of unet2d-heun-karras-loop from the same noise', async () => {
    const dir = path.join(FIXTURES, 'unet2d-heun-karras-loop');
    const set = await FixtureSet.open(dir);
    const c = set.cases.find((x) => x.type === 'unet_sampling_loop') as unknown as {
      inputs: { init_noise: string };
      steps: Array<{ prev_sample: string }>;
      num_inference_steps: number;
    };
    const last = c.steps[c.steps.length - 1]!.prev_sample;
    const tensors = await set.tensors([c.inputs.init_noise, last]);
    try {
      using unet = await loadUNet(dir);
      using scheduler = await loadScheduler(path.join(dir, 'scheduler'));
      const calls: number[] = [];
      using out = await sample(unet, scheduler, {
        batchSize: tensors.get(c.inputs.init_noise)!.shape[0]!,
        steps: c.num_inference_steps,
        seed: 0,
        initialNoise: tensors.get(c.inputs.init_noise),
        onStep: (i) => calls.push(i),
      });
      // 4 steps: the first timestep once, the other three twice.
      expect(calls.length).toBe(2 * c.num_inference_steps - 1);
      expect(c.steps.length).toBe(calls.length);
      expect(relError(out.toArray(), tensors.get(last)!.toArray())).toBeLessThanOrEqual(TOLERANCES.samplingLoop);
    } finally {
      disposeStateDict(tensors);
    }
  });

  test('txt2img runs every entry of a Heun / KDPM2-ancestral schedule; a seed fixes the ancestral draws', async () => {
    for (const schedulerClass of ['HeunDiscreteScheduler', 'KDPM2AncestralDiscreteScheduler'] as const) {
      using sd = await loadStableDiffusion(PIPELINE, { schedulerClass });
      const run = async (seed: number): Promise<{ timesteps: number[]; image: Float32Array }> => {
        const timesteps: number[] = [];
        const r = await txt2img(sd, { prompt: 'a cat', steps: 2, seed, onStep: (s) => void timesteps.push(s.timestep) });
        try {
          return { timesteps, image: (await r.images.data()) as Float32Array };
        } finally {
          r.dispose();
        }
      };
      const a = await run(7);
      expect(a.timesteps).toEqual([...sd.scheduler.timesteps]);
      expect(a.timesteps.length).toBe(3);
      expect(a.image.every(Number.isFinite)).toBe(true);
      if (schedulerClass === 'KDPM2AncestralDiscreteScheduler') {
        expect(Buffer.from((await run(7)).image.buffer).equals(Buffer.from(a.image.buffer))).toBe(true);
        expect(relError(a.image, (await run(8)).image)).toBeGreaterThan(1e-3);
      }
    }
  });
});

describe('fine-tuning a pipeline whose scheduler class difftune lacks', () => {
  test('trains with DDPMScheduler from its config, as diffusers training scripts do, and says so', async () => {
    const dir = pipelineWithScheduler('lcm-train', 'LCMScheduler');
    const shapes = path.join(__dirname, '..', '..', 'recipes', 'data', 'shapes', 'train');
    const lines: string[] = [];
    const output = path.join(tmp(), 'lcm-out');
    const result = await finetune(
      {
        model: { pretrained: dir },
        data: { path: shapes, resolution: 32, channels: 3 },
        train: { steps: 1, batchSize: 2, lr: 1e-4, seed: 0 },
        textToImage: { cacheDir: path.join(tmp(), 'lcm-cache') },
        output,
      },
      { onLog: (l) => lines.push(l) },
    );
    expect(result.status).toBe('completed');
    expect(lines.join('\n')).toContain('"_class_name" LCMScheduler is not a scheduler difftune samples with; training adds noise with DDPMScheduler');
    const saved = JSON.parse(fs.readFileSync(path.join(output, 'scheduler', 'scheduler_config.json'), 'utf8')) as Record<string, unknown>;
    expect(saved._class_name).toBe('DDPMScheduler');
  });
});
