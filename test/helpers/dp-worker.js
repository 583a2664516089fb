// A data-parallel training worker for test/native/data-parallel.test.ts, on the compiled library
// (dist/): K optimizer steps of decoder-only training on MNIST, then this rank's trainable weights
// Adam's first moments and the process group's counters into
// <out>/rank-<RANK>.{safetensors,moments.safetensors,json}. Alone (no WORLD_SIZE)
// it is the single-process reference. argv[2]: a JSON config { out, steps, batchSize, lr?, dieAt?, hangAt? }.
'use strict';
const fs = require('fs');
const path = require('path');

const DIST = path.join(__dirname, '..', '..', 'dist', 'lib');
const lib = (p) => require(path.join(DIST, p));
const { loadUNet } = lib('models/unet');
const { Trainer } = lib('train/trainer');
const { joinDataParallel } = lib('distributed/data-parallel');
const { createDataset } = lib('data/dataset');
const { DataLoader } = lib('data/loader');
const { Scheduler } = lib('schedulers/scheduler');
const { planFreeze } = lib('freeze/plan');
const { saveStateDict } = lib('checkpoint/state-dict');
const { Tensor } = lib('native/tensor');

const BASE = path.join(__dirname, '..', 'fixtures', 'diffusers', 'unet2d-classcond');

async function main() {
  const config = JSON.parse(process.argv[2]);
  const dp = await joinDataParallel();
  const unet = await loadUNet(BASE);
  const plan = planFreeze(await unet.parameters(), { preset: 'decoder-only' });
  const trainable = plan.trainable.map((p) => ({ name: p.name, lrMultiplier: 1, weightDecay: p.weightDecay }));
  const scheduler = await Scheduler.fromConfig({ _class_name: 'DDPMScheduler' }, { source: 'test' });
  const alphasCumprod = await scheduler.alphasCumprod();
  const trainer = await Trainer.create(unet, {
    trainable,
    alphasCumprod,
    predictionType: 'epsilon',
    seed: 11,
    ema: false,
    mixedPrecision: 'no',
    maxGradNorm: 1,
  });
  await dp.attach(trainer);
  const dataset = await createDataset({ source: 'mnist', resolution: 16, channels: 1, limit: 64, randomFlip: true, seed: 5 });
  const loader = new DataLoader(dataset, { batchSize: config.batchSize, shard: dp.shard, torchThreads: 1, onWarning: () => undefined });
  const gradNorms = [];
  for (let step = 0; step < config.steps; step++) {
    if (config.dieAt === step && dp.rank === 1) process.kill(process.pid, 'SIGKILL');
    if (config.hangAt === step && dp.rank === 1) process.kill(process.pid, 'SIGSTOP');
    const batch = await loader.next();
    const labels = Tensor.from(BigInt64Array.from(batch.labels.map(BigInt)), [batch.labels.length]);
    await trainer.accumulate({ pixels: batch.pixels, classLabels: labels, sampleIndices: batch.indices, step, totalSamples: batch.indices.length });
    gradNorms.push((await trainer.step(config.lr ?? 1e-5)).gradNorm);
    await dp.stepTotals({ lossSum: 0, samples: batch.indices.length, stop: false });
    labels.dispose();
    batch.dispose();
  }
  const counters = dp.group ? await dp.group.counters() : null;
  await dp.finish();
  await loader.close();
  const state = await unet.stateDict();
  const names = new Set(trainable.map((t) => t.name));
  const weights = new Map([...state].filter(([n]) => names.has(n)));
  const rank = dp.rank;
  await saveStateDict(path.join(config.out, `rank-${rank}.safetensors`), weights);
  // Adam's first moments: the gradients before the optimizer, which runs can be compared on.
  const moments = new Map([...(await trainer.optimizerState())].filter(([n]) => n.startsWith('exp_avg.')));
  await saveStateDict(path.join(config.out, `rank-${rank}.moments.safetensors`), moments);
  const trainableNumel = plan.trainable.reduce((n, p) => n + p.numel, 0);
  const totalNumel = plan.totals.numel;
  fs.writeFileSync(
    path.join(config.out, `rank-${rank}.json`),
    JSON.stringify({ counters, gradNorms, trainableNumel, totalNumel, threads: process.env.OMP_NUM_THREADS ?? null }),
  );
  trainer.dispose();
  unet.dispose();
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`worker: ${error.message}\n`);
    process.exit(1);
  },
);
