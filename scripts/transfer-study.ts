/**
 * npm run transfer-study -- --recipe <file> [--set key=value ...] [--data-sizes 64,256,...] [--readme]: the
 * base recipe run from scratch, fully fine-tuned, with each freezing preset and with LoRA — or, with
 * --data-sizes, fine-tuned and from scratch at each training-set size (lib/demo/transfer-study.ts). Writes
 * study.md, study.json, the plots and report.html into the recipe's output folder; --readme also replaces
 * the README's table between its transfer-study (or data-efficiency) markers with the one just measured.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { replaceReadmeBlock } from '../lib/bench/report';
import { parseLenientJson } from '../lib/config/json';
import { applyOverrides } from '../lib/config/recipe';
import { prepareRecipe } from '../lib/train/finetune';
import { formatCliError } from '../lib/errors';
import { dataEfficiencyTable, dataSizesValue, runDataEfficiencyStudy } from '../lib/demo/data-efficiency';
import { defaultVariants, runTransferStudy, studyTable } from '../lib/demo/transfer-study';
import { packageRoot } from '../lib/native/load';
import { defineCli, formatHelp, parseCli, usageHint } from '../lib/util/cli-args';
import { withFileErrors } from '../lib/util/fs-errors';

export const cli = defineCli({
  name: 'transfer-study',
  summary:
    "Runs one base recipe several ways: from scratch, full fine-tune, each freezing preset (encoder-frozen, decoder-only, attention-only, bias-norm) and LoRA; or, with --data-sizes, fine-tuned and from scratch at each training-set size. Writes study.md, study.json, the plots and report.html into the recipe's output folder.",
  flags: {
    recipe: { type: 'string', value: '<file.json>', required: true, description: 'the base recipe every variant starts from' },
    set: { type: 'string', value: '<key.path=value>', multiple: true, description: 'override one field of the base recipe' },
    'data-sizes': {
      type: 'string',
      value: '<n,n,...>',
      ...dataSizesValue,
      description:
        'the data-efficiency study instead: fine-tuned vs from scratch at each number of training images (data.limit), the same steps for all; held-out loss vs images, "N images match scratch with M", the transfer goals',
    },
    resume: {
      type: 'boolean',
      description: 'keep every run that finished before with the same recipe (its study-run.json) and train only the others: a long study stopped part-way goes on',
    },
    readme: { type: 'boolean', description: "replace README.md's transfer-study (or data-efficiency) table with the one just measured" },
  },
  examples: [
    'npm run transfer-study -- --recipe recipes/transfer-study-fashion.json --set train.steps=50',
    'npm run transfer-study -- --recipe recipes/data-efficiency-fashion.json --data-sizes 64,256,1024,4096 --readme',
    'npm run transfer-study -- --recipe recipes/data-efficiency-fashion.json --data-sizes 64,256,1024,4096 --readme --resume',
  ],
});

async function main(argv: readonly string[]): Promise<void> {
  const args = parseCli(cli, argv);
  if (args.help) {
    process.stdout.write(formatHelp(cli));
    return;
  }
  const file = args.values.recipe;
  const sets = args.values.set;
  const text = await withFileErrors(file, 'read', () => fs.readFile(file, 'utf8'), { field: '--recipe' });
  const raw = applyOverrides(parseLenientJson(text, file), sets);
  const recipe = prepareRecipe(raw, file); // validates up front; each run validates its variant again
  const sizes = args.values['data-sizes'];
  const log = (l: string) => console.log(l);
  const table =
    sizes === undefined
      ? studyTable(await runTransferStudy(raw, file, recipe.output, defaultVariants(recipe.train.lr), log, { resume: args.values.resume }))
      : dataEfficiencyTable(await runDataEfficiencyStudy(raw, file, recipe.output, sizes, log, { resume: args.values.resume }));
  console.log(`\n${table}\n\nreport: ${path.join(recipe.output, 'report.html')}`);
  if (args.values.readme) {
    const readme = path.join(packageRoot(), 'README.md');
    const text = await fs.readFile(readme, 'utf8');
    const command = `npm run transfer-study -- --recipe ${path.relative(packageRoot(), file)}${sizes === undefined ? '' : ` --data-sizes ${sizes.join(',')}`} --readme`;
    const stamp = `Measured by \`${command}\` on ${new Date().toISOString().slice(0, 10)}:`;
    await fs.writeFile(readme, replaceReadmeBlock(text, `${stamp}\n\n${table}`, sizes === undefined ? 'transfer-study' : 'data-efficiency'));
    console.log('README.md updated');
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(`${formatCliError('transfer-study', error)}\n${usageHint(cli, error)}`.trimEnd());
    process.exit(1);
  });
}
