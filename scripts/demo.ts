/**
 * npm run demo [-- --out <folder>] [--steps N] [--images N]: the transfer demo (lib/demo/transfer-demo.ts).
 * The MNIST base model shipped in models/mnist-ddpm is fine-tuned on a little Fashion-MNIST and compared
 * with the same architecture trained from scratch; writes report.html, summary.json, grids and curves.
 * With --t2i, the text-to-image demo (lib/demo/t2i-transfer.ts, recipes/demo-t2i.json): models/t2i-base
 * fine-tuned on classes and words it never saw, against scratch and LoRA, with the captions' effect measured.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { replaceReadmeBlock } from '../lib/bench/report';
import { applyOverrides } from '../lib/config/recipe';
import { parseLenientJson } from '../lib/config/json';
import { runT2iTransferDemo } from '../lib/demo/t2i-transfer';
import { lossText, matchSentence, percentText, steerVerdict } from '../lib/demo/t2i-transfer-report';
import type { T2iDemoSummary } from '../lib/demo/t2i-transfer-summary';
import { runTransferDemo } from '../lib/demo/transfer-demo';
import { formatCliError, InvalidArgumentError } from '../lib/errors';
import { packageRoot } from '../lib/native/load';
import { defineCli, formatHelp, integerValue, parseCli, usageHint, type CliValues } from '../lib/util/cli-args';

export const cli = defineCli({
  name: 'demo',
  summary:
    'The transfer demo: the MNIST base model in models/mnist-ddpm is fine-tuned on a little Fashion-MNIST and compared with the same architecture trained from scratch on the same images, order, seed and step budget. Writes finetuned/, sample grids, held-out loss curves, report.html and summary.json.',
  flags: {
    t2i: {
      type: 'boolean',
      description:
        'the text-to-image demo instead (recipes/demo-t2i.json): models/t2i-base (npm run pretrain:t2i) fine-tuned on 4 classes it never saw, text encoder and VAE frozen, against the same U-Net from scratch and LoRA; held-out loss with right vs wrong captions, per-prompt grids, a guidance sweep',
    },
    out: { type: 'string', value: '<folder>', description: 'where everything is written (default runs/demo, with --t2i runs/demo-t2i)' },
    steps: { type: 'string', value: '<N>', ...integerValue(1), description: "training steps of each run (default 150; with --t2i the recipe's steps)" },
    images: {
      type: 'string',
      value: '<N>',
      ...integerValue(1),
      description: "Fashion-MNIST training images (default 512; with --t2i per target class, the recipe's data.trainPerClass)",
    },
    base: { type: 'string', value: '<folder>', description: 'with --t2i: the pretrained pipeline (default models/t2i-base)' },
    set: {
      type: 'string',
      value: '<key.path=value>',
      multiple: true,
      description: 'with --t2i: override one field of recipes/demo-t2i.json, e.g. batchSize=16 or finetune.lr=1e-4',
    },
    readme: { type: 'boolean', description: "replace README.md's demo table (with --t2i its text-to-image table) with the one just measured" },
  },
  examples: ['npm run demo -- --out runs/demo --steps 150 --images 512', 'npm run demo -- --t2i', 'npm run demo -- --t2i --steps 100 --set batchSize=16'],
});

async function main(argv: readonly string[]): Promise<void> {
  const args = parseCli(cli, argv);
  if (args.help) {
    process.stdout.write(formatHelp(cli));
    return;
  }
  const { values } = args;
  const root = packageRoot();
  if (values.t2i) return t2iDemo(values, root);
  if (values.base !== undefined)
    throw new InvalidArgumentError(`--base: expected only with --t2i (the pixel demo's base is models/mnist-ddpm) but found ${values.base}`);
  if (values.set.length > 0)
    throw new InvalidArgumentError(`--set: expected only with --t2i (it overrides recipes/demo-t2i.json) but found ${values.set.join(' ')}`);
  const out = path.resolve(values.out ?? path.join(root, 'runs', 'demo'));
  const steps = values.steps;
  const trainImages = values.images;
  const summary = await runTransferDemo({ out, base: path.join(root, 'models', 'mnist-ddpm'), steps, trainImages, onLog: (l) => console.log(l) });
  const h = summary.heldOutLoss;
  console.log(
    `\nheld-out loss after ${summary.steps} steps on ${summary.trainImages} images: fine-tuned ${h.finetuned.toFixed(4)}, from scratch ${h.scratch.toFixed(4)} (base ${h.base.toFixed(4)})`,
  );
  console.log(
    summary.stepsToMatchScratch === null
      ? 'the fine-tuned model did not reach the from-scratch final loss'
      : `the fine-tuned model matched the from-scratch final loss after ${summary.stepsToMatchScratch} steps`,
  );
  console.log(`report: ${path.join(out, 'report.html')} (${summary.seconds.toFixed(0)} s)`);
  if (values.readme) {
    // The README's numbers come from a run, never typed in.
    const readme = path.join(root, 'README.md');
    const text = await fs.readFile(readme, 'utf8');
    const lines = [
      `Measured by \`npm run demo -- --readme\` on ${new Date().toISOString().slice(0, 10)} (2-core CPU, ${summary.seconds.toFixed(0)} s):`,
      '',
      '| | held-out loss |',
      '|---|---:|',
      `| MNIST base model, before any training on clothes | ${h.base.toFixed(4)} |`,
      `| fine-tuned, ${summary.steps} steps on ${summary.trainImages} images | **${h.finetuned.toFixed(4)}** |`,
      `| from scratch, same architecture, data and steps | ${h.scratch.toFixed(4)} |`,
      '',
      summary.stepsToMatchScratch === null
        ? 'The fine-tuned model did not reach the from-scratch final loss within the budget.'
        : `The fine-tuned model reached the from-scratch model's final held-out loss after ${summary.stepsToMatchScratch} of ${summary.steps} steps.`,
    ];
    await fs.writeFile(readme, replaceReadmeBlock(text, lines.join('\n'), 'demo'));
    console.log('README.md updated');
  }
}

/** --t2i: recipes/demo-t2i.json with --steps, --images, --base and --set applied. */
async function t2iDemo(values: CliValues<typeof cli>, root: string): Promise<void> {
  const recipeFile = path.join(root, 'recipes', 'demo-t2i.json');
  const sets = [
    ...values.set,
    ...(values.steps === undefined ? [] : [`steps=${values.steps}`]),
    ...(values.images === undefined ? [] : [`data.trainPerClass=${values.images}`]),
    ...(values.base === undefined ? [] : [`base=${JSON.stringify(path.resolve(values.base))}`]),
  ];
  const raw = applyOverrides(parseLenientJson(await fs.readFile(recipeFile, 'utf8'), recipeFile), sets);
  const out = path.resolve(values.out ?? path.join(root, 'runs', 'demo-t2i'));
  const s = await runT2iTransferDemo(raw, { recipeFile, out, onLog: (l) => console.log(l) });
  console.log('');
  for (const r of s.runs)
    console.log(
      `${r.name}: held-out loss ${lossText(r.heldOutLoss)}, with another class's captions ${lossText(r.captionsSteer.wrong)} (${percentText(r.captionsSteer.relativeGap)}), ${r.secondsPerStep.toFixed(3)} s/step`,
    );
  console.log(matchSentence(s));
  console.log(`report: ${path.join(out, 'report.html')} (${s.seconds.total.toFixed(0)} s)`);
  if (values.readme) {
    const readme = path.join(root, 'README.md');
    const text = await fs.readFile(readme, 'utf8');
    await fs.writeFile(readme, replaceReadmeBlock(text, t2iReadmeBlock(s), 'demo-t2i'));
    console.log('README.md updated');
  }
}

/** The README's numbers come from a run, never typed in. */
function t2iReadmeBlock(s: T2iDemoSummary): string {
  const ft = s.runs[0];
  return [
    `Measured by \`npm run demo -- --t2i --readme\` on ${s.date.slice(0, 10)} (${s.machine}, ${s.seconds.total.toFixed(0)} s):`,
    '',
    `| ${s.steps} steps of batch ${s.batchSize}, ${s.target.trainImages} images | trainable | held-out loss | another class's captions | gap | s / step |`,
    '|---|---:|---:|---:|---:|---:|',
    `| base, before training | — | ${lossText(s.baseHeldOut.right)} | ${lossText(s.baseHeldOut.wrong)} | ${percentText(s.baseHeldOut.relativeGap)} | — |`,
    ...s.runs.map(
      (r) =>
        `| ${r.name} | ${r.trainableParams.toLocaleString('en-US')} (${r.trainablePercent.toFixed(1)}%) | ${r.name === 'fine-tuned' ? `**${lossText(r.heldOutLoss)}**` : lossText(r.heldOutLoss)} | ${lossText(r.captionsSteer.wrong)} | ${percentText(r.captionsSteer.relativeGap)} | ${r.secondsPerStep.toFixed(3)} |`,
    ),
    '',
    matchSentence(s),
    `The fine-tuned run with another class's captions ("gap"): ${steerVerdict(ft.captionsSteer.relativeGap)}.`,
  ].join('\n');
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(`${formatCliError('demo', error)}\n${usageHint(cli, error)}`.trimEnd());
    process.exit(1);
  });
}
