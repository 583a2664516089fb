/**
 * npm run transfer-study -- --recipe <file> [--set key=value ...] [--readme]: the base recipe run from
 * scratch, fully fine-tuned, with each freezing preset and with LoRA (lib/demo/transfer-study.ts). Writes
 * study.md, study.json, loss.png and report.html into the recipe's output folder; --readme also replaces
 * the README's table between its transfer-study markers with the one just measured.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { applyOverrides, prepareRecipe } from '../lib/index';
import { replaceReadmeBlock } from '../lib/bench/report';
import { parseLenientJson } from '../lib/config/json';
import { ConfigError, formatCliError } from '../lib/errors';
import { defaultVariants, runTransferStudy, studyTable } from '../lib/demo/transfer-study';
import { packageRoot } from '../lib/native/load';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const at = argv.indexOf('--recipe');
  if (at < 0 || !argv[at + 1]) throw new ConfigError('--recipe: expected a recipe file (--recipe <file.json>) but found none');
  const file = argv[at + 1]!;
  const sets: string[] = [];
  for (let i = 0; i < argv.length; i++) if (argv[i] === '--set') sets.push(argv[++i] ?? '');
  const raw = applyOverrides(parseLenientJson(await fs.readFile(file, 'utf8'), file), sets);
  const recipe = prepareRecipe(raw, file); // validates up front; each run validates its variant again
  const rows = await runTransferStudy(raw, file, recipe.output, defaultVariants(recipe.train.lr), (l) => console.log(l));
  const table = studyTable(rows);
  console.log(`\n${table}\n\nreport: ${path.join(recipe.output, 'report.html')}`);
  if (argv.includes('--readme')) {
    const readme = path.join(packageRoot(), 'README.md');
    const text = await fs.readFile(readme, 'utf8');
    const stamp = `Measured by \`npm run transfer-study -- --recipe ${path.relative(packageRoot(), file)} --readme\` on ${new Date().toISOString().slice(0, 10)}:`;
    await fs.writeFile(readme, replaceReadmeBlock(text, `${stamp}\n\n${table}`, 'transfer-study'));
    console.log('README.md updated');
  }
}

main().catch((error: unknown) => {
  console.error(formatCliError('transfer-study', error));
  process.exit(1);
});
