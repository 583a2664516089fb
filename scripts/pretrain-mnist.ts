/**
 * npm run pretrain:mnist [-- --set resume=latest]: trains the embedded base model (recipes/pretrain-mnist.json)
 * and packages it into models/mnist-ddpm. It checkpoints and resumes like any fine-tune.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { applyOverrides } from '../lib/config/recipe';
import { parseLenientJson } from '../lib/config/json';
import { formatCliError } from '../lib/errors';
import { packageBaseModel } from '../lib/demo/base-model';
import { packageRoot } from '../lib/native/load';
import { finetune } from '../lib/train/finetune';
import { progressLine } from '../lib/train/cli';
import { defineCli, formatHelp, parseCli, usageHint } from '../lib/util/cli-args';
import { handleStopSignals, STOP_EXIT_CODES } from '../lib/util/exit-codes';

export const cli = defineCli({
  name: 'pretrain:mnist',
  summary:
    'Trains the embedded base model (recipes/pretrain-mnist.json) and packages it into models/mnist-ddpm. It checkpoints and resumes like any fine-tune.',
  flags: {
    set: { type: 'string', value: '<key.path=value>', multiple: true, description: 'override one field of recipes/pretrain-mnist.json, e.g. resume=latest' },
    out: {
      type: 'string',
      value: '<folder>',
      description: 'where the finished model is packaged (default models/mnist-ddpm): elsewhere, to compare it with the shipped one first',
    },
  },
  examples: ['npm run pretrain:mnist -- --set resume=latest'],
});

async function main(argv: readonly string[]): Promise<void> {
  const args = parseCli(cli, argv);
  if (args.help) {
    process.stdout.write(formatHelp(cli));
    return;
  }
  const root = packageRoot();
  const recipeFile = path.join(root, 'recipes', 'pretrain-mnist.json');
  const sets = args.values.set;
  const raw = applyOverrides(parseLenientJson(await fs.readFile(recipeFile, 'utf8'), recipeFile), sets);
  // The run takes hours on a small CPU and is stopped and resumed: a signal stops it at the next step
  // with a checkpoint, as npm run finetune does (a second one exits at once).
  let result;
  {
    using stop = handleStopSignals((signal) => console.error(`${signal}: stopping after this step and writing a checkpoint (again to force)`));
    result = await finetune(raw, {
      recipeFile,
      signal: stop.signal,
      onLog: (l) => console.log(l),
      onProgress: (p) => p.step % 50 === 0 && console.log(progressLine(p, 0).trim()),
    });
    if (result.status !== 'completed') {
      // A stop, not a failure: exit 130 or 143 as npm run finetune does.
      console.error(`pretrain:mnist: stopped at step ${result.steps} with a checkpoint; run again with --set resume=latest`);
      process.exitCode = STOP_EXIT_CODES[stop.stoppedBy ?? 'SIGINT'];
      return;
    }
  }
  const target = args.values.out === undefined ? path.join(root, 'models', 'mnist-ddpm') : path.resolve(args.values.out);
  await packageBaseModel(result, target, recipeFile);
  console.log(`base model written to ${target}`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(`${formatCliError('pretrain:mnist', error)}\n${usageHint(cli, error)}`.trimEnd());
    process.exit(1);
  });
}
