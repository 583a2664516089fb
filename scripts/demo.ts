/**
 * npm run demo [-- --out <folder>] [--steps N] [--images N]: the transfer demo (lib/demo/transfer-demo.ts).
 * The MNIST base model shipped in models/mnist-ddpm is fine-tuned on a little Fashion-MNIST and compared
 * with the same architecture trained from scratch; writes report.html, summary.json, grids and curves.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { replaceReadmeBlock } from '../lib/bench/report';
import { runTransferDemo } from '../lib/demo/transfer-demo';
import { formatCliError } from '../lib/errors';
import { packageRoot } from '../lib/native/load';
import { defineCli, formatHelp, integerValue, parseCli, usageHint } from '../lib/util/cli-args';

export const cli = defineCli({
  name: 'demo',
  summary:
    'The transfer demo: the MNIST base model in models/mnist-ddpm is fine-tuned on a little Fashion-MNIST and compared with the same architecture trained from scratch on the same images, order, seed and step budget. Writes finetuned/, sample grids, held-out loss curves, report.html and summary.json.',
  flags: {
    out: { type: 'string', value: '<folder>', description: 'where everything is written (default runs/demo)' },
    steps: { type: 'string', value: '<N>', ...integerValue(1), description: 'training steps of each run (default 150)' },
    images: { type: 'string', value: '<N>', ...integerValue(1), description: 'Fashion-MNIST training images (default 512)' },
    readme: { type: 'boolean', description: "replace README.md's demo table with the one just measured" },
  },
  examples: ['npm run demo -- --out runs/demo --steps 150 --images 512'],
});

async function main(argv: readonly string[]): Promise<void> {
  const args = parseCli(cli, argv);
  if (args.help) {
    process.stdout.write(formatHelp(cli));
    return;
  }
  const { values } = args;
  const root = packageRoot();
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

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(`${formatCliError('demo', error)}\n${usageHint(cli, error)}`.trimEnd());
    process.exit(1);
  });
}
