// A run holds its peak resident memory against its memory plan: every metrics line carries the peak so
// far, the result and the CLI's summary compare it with the plan, and a text-to-image plan counts the
// frozen VAE and text encoder from their weight files.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PassThrough } from 'stream';
import { SafetensorsFile } from '../../lib/checkpoint/safetensors';
import { runFinetuneCli } from '../../lib/train/cli';
import { planRecipe } from '../../lib/train/finetune';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'diffusers');
const RECIPES = path.join(__dirname, '..', '..', 'recipes');

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'difftune-memory-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('metrics.jsonl and the summary report the peak RSS against the plan (a LoRA run counts its adapters)', async () => {
  const recipe = {
    model: { pretrained: path.join(FIXTURES, 'unet2d-classcond') },
    lora: { rank: 4 },
    data: { source: 'mnist', resolution: 16, channels: 1, limit: 8 },
    train: { steps: 2, batchSize: 4, lr: 1e-4 },
    validation: { every: 0 },
    checkpoint: { every: 0 },
    output: path.join(tmp, 'out'),
  };
  const file = path.join(tmp, 'r.json');
  fs.writeFileSync(file, JSON.stringify(recipe));
  const out = new PassThrough();
  let text = '';
  out.on('data', (c) => (text += String(c)));
  expect(await runFinetuneCli(['--recipe', file], out, new PassThrough(), false)).toBe(0);
  // Logged before training: the plan as --dry-run prints it.
  expect(text).toMatch(/Memory plan: about \d+ MB at the peak/);
  // The adapters are not among the U-Net's own parameters: the plan sizes them from the recipe's targets.
  expect(text).toMatch(/\n {2}LoRA weights +\d+ MB {2}[1-9][\d,]* parameters, fp32/);
  expect(text).toMatch(/AdamW's 2 moments of [1-9][\d,]* trainable parameters/);
  // The peak is the whole process's (a jest worker that ran other tests first may be past 1 GB): MB or GB.
  const m = /peak RSS ([\d.]+) (MB|GB), the memory plan expected ([\d.]+) (MB|GB) \(([+-]\d+)%\)/.exec(text);
  expect(m).not.toBeNull();
  expect(Number(m![1]) * (m![2] === 'GB' ? 1000 : 1)).toBeGreaterThan(100);
  const lines = fs
    .readFileSync(path.join(tmp, 'out', 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => typeof l.step === 'number' && typeof l.loss === 'number');
  expect(lines.length).toBe(2);
  for (const l of lines) expect(l.peakRssMb).toBeGreaterThan(100);
});

test('a text-to-image plan counts the frozen VAE and text encoder from their weight files', async () => {
  const pipeline = path.join(FIXTURES, 'sd-pipeline-tiny');
  const numel = async (file: string): Promise<number> => {
    await using f = await SafetensorsFile.open(file);
    return [...f.tensors.values()].reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
  };
  const frozen =
    (await numel(path.join(pipeline, 'vae', 'diffusion_pytorch_model.safetensors'))) + (await numel(path.join(pipeline, 'text_encoder', 'model.safetensors')));
  const recipe = JSON.parse(fs.readFileSync(path.join(RECIPES, 'sd-tiny-shapes.json'), 'utf8')) as Record<string, unknown>;
  const plan = await planRecipe(
    { ...recipe, lora: { rank: 4 }, train: { steps: 1, batchSize: 2, lr: 1e-4, gradientCheckpointing: true } },
    path.join(RECIPES, 'sd-tiny-shapes.json'),
  );
  const line = (label: string) => plan.memoryPlan.lines.find((l) => l.label === label);
  expect(line('frozen VAE + text encoder')?.bytes).toBe(4 * frozen);
  expect(line('LoRA weights')?.bytes).toBeGreaterThan(0);
  // The U-Net's input is the latents: 32 px images through a VAE that halves them.
  expect(line('step: activations + gradients')?.detail).toMatch(/^batch 2 at 16×16 latents, fp32 activations and gradients: .* with it \(on\)/);
});
