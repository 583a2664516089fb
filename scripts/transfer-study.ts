/**
 * npm run transfer-study -- --recipe <file> [--set key=value ...] [--readme]: the base recipe run from
 * scratch, fully fine-tuned, with each freezing preset and with LoRA (lib/demo/transfer-study.ts). Writes
 * study.md, study.json, loss.png and report.html into the recipe's output folder; --readme also replaces
 * the README's table between its transfer-study markers with the one just measured.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { applyOverrides, prepareRecipe } from '../lib/index';
import { parseLenientJson } from '../lib/config/json';
import { defaultVariants, runTransferStudy, studyTable } from '../lib/demo/transfer-study';
import { packageRoot } from '../lib/native/load';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const at = argv.indexOf('--recipe');
  if (at < 0 || !argv[at + 1]) throw new Error('missing --recipe <file.json>');
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
    const begin = '<!-- transfer-study:begin -->';
    const end = '<!-- transfer-study:end -->';
    const i = text.indexOf(begin);
    const j = text.indexOf(end);
    if (i < 0 || j < i) throw new Error(`README.md has no ${begin} … ${end} section to update`);
    const stamp = `Measured by \`npm run transfer-study -- --recipe ${path.relative(packageRoot(), file)} --readme\` on ${new Date().toISOString().slice(0, 10)}:`;
    await fs.writeFile(readme, `${text.slice(0, i + begin.length)}\n${stamp}\n\n${table}\n${text.slice(j)}`);
    console.log('README.md updated');
  }
}

main().catch((error: unknown) => {
  console.error(`transfer-study: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
