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
import { dataEfficiencyTable, dataSizesValue, runDataEfficiencyStudy } from '../lib/demo/data-efficiency';
import { defaultVariants, runTransferStudy, studyTable, studyVariantsFileSchema, type StudyVariantsFile } from '../lib/demo/transfer-study';
import { expectConfigObject, parseConfigObject } from '../lib/config/schema-object';
import { ConfigError, formatCliError } from '../lib/errors';
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
    variants: {
      type: 'string',
      value: '<file.json>',
      description:
        'the ways to run instead of the default ones: { "variants": [{ "name", "overrides" }], "readmeBlock" } (e.g. recipes/lora-preset-search.json, a search over learning rates and LoRA shapes)',
    },
    resume: {
      type: 'boolean',
      description:
        'keep every run that finished before with the same recipe (its study-run.json) and train only the others: a long study stopped part-way goes on',
    },
    readme: { type: 'boolean', description: "replace README.md's transfer-study (or data-efficiency) table with the one just measured" },
  },
  examples: [
    'npm run transfer-study -- --recipe recipes/transfer-study-fashion.json --set train.steps=50',
    'npm run transfer-study -- --recipe recipes/data-efficiency-fashion.json --data-sizes 64,256,1024,4096 --readme',
    'npm run transfer-study -- --recipe recipes/data-efficiency-fashion.json --data-sizes 64,256,1024,4096 --readme --resume',
  ],
});

async function readVariantsFile(file: string): Promise<StudyVariantsFile> {
  const text = await withFileErrors(file, 'read', () => fs.readFile(file, 'utf8'), { field: '--variants' });
  return parseConfigObject(studyVariantsFileSchema, expectConfigObject(parseLenientJson(text, file), file), file);
}

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
  const variantsFile = args.values.variants;
  if (variantsFile !== undefined && sizes !== undefined)
    throw new ConfigError(
      '--variants: the data-efficiency study (--data-sizes) runs fine-tuned and from scratch at each size; expected one of --variants and --data-sizes but found both',
    );
  const custom = variantsFile === undefined ? undefined : await readVariantsFile(variantsFile);
  const log = (l: string) => console.log(l);
  const options = { resume: args.values.resume };
  const table =
    sizes === undefined
      ? studyTable(await runTransferStudy(raw, file, recipe.output, custom?.variants ?? defaultVariants(recipe.train.lr), log, options))
      : dataEfficiencyTable(await runDataEfficiencyStudy(raw, file, recipe.output, sizes, log, options));
  console.log(`\n${table}\n\nreport: ${path.join(recipe.output, 'report.html')}`);
  if (args.values.readme) {
    const readme = path.join(packageRoot(), 'README.md');
    const text = await fs.readFile(readme, 'utf8');
    const rel = (f: string) => path.relative(packageRoot(), path.resolve(f));
    const command = `npm run transfer-study -- --recipe ${rel(file)}${sizes === undefined ? '' : ` --data-sizes ${sizes.join(',')}`}${variantsFile === undefined ? '' : ` --variants ${rel(variantsFile)}`}${sets.map((x) => ` --set ${x}`).join('')} --readme`;
    const stamp = `Measured by \`${command}\` on ${new Date().toISOString().slice(0, 10)}:`;
    const block = sizes !== undefined ? 'data-efficiency' : (custom?.readmeBlock ?? 'transfer-study');
    await fs.writeFile(readme, replaceReadmeBlock(text, `${stamp}\n\n${table}`, block));
    console.log('README.md updated');
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(`${formatCliError('transfer-study', error)}\n${usageHint(cli, error)}`.trimEnd());
    process.exit(1);
  });
}
