/**
 * npm run pretrain:t2i [-- --set resume=latest]: pretrains the text-to-image base pipeline
 * (recipes/pretrain-t2i.json: the VAE, then the U-Net with the text encoder) and packages it into
 * models/t2i-base. A signal stops it at the next step with a checkpoint; resume=latest continues.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { applyOverrides } from '../lib/config/recipe';
import { parseLenientJson } from '../lib/config/json';
import { pretrainT2i } from '../lib/demo/t2i-base';
import { packageT2iBase } from '../lib/demo/t2i-base-card';
import { formatCliError } from '../lib/errors';
import { packageRoot } from '../lib/native/load';
import { progressLine } from '../lib/train/cli';
import { defineCli, formatHelp, integerValue, parseCli, usageHint } from '../lib/util/cli-args';
import { handleStopSignals, STOP_EXIT_CODES } from '../lib/util/exit-codes';

export const cli = defineCli({
  name: 'pretrain:t2i',
  summary:
    'Pretrains the text-to-image base pipeline (recipes/pretrain-t2i.json): captioned MNIST and Fashion-MNIST images, the VAE, then the U-Net with the text encoder; packages it into models/t2i-base with a model card. It checkpoints, and resumes with --set resume=latest.',
  flags: {
    set: {
      type: 'string',
      value: '<key.path=value>',
      multiple: true,
      description: 'override one field of recipes/pretrain-t2i.json, e.g. resume=latest or unet.train.batchSize=16',
    },
    steps: { type: 'string', value: '<N>', ...integerValue(1), description: "the U-Net phase's optimizer steps (unet.train.steps)" },
    'vae-steps': { type: 'string', value: '<N>', ...integerValue(1), description: "the VAE phase's steps (vae.steps)" },
    out: {
      type: 'string',
      value: '<folder>',
      description: 'where the finished pipeline is packaged (default models/t2i-base): elsewhere, to compare it with the shipped one first',
    },
  },
  examples: [
    'npm run pretrain:t2i',
    'npm run pretrain:t2i -- --set resume=latest',
    'npm run pretrain:t2i -- --steps 200 --vae-steps 100 --set output=../runs/t2i-short --out runs/t2i-short-model',
  ],
});

async function main(argv: readonly string[]): Promise<void> {
  const args = parseCli(cli, argv);
  if (args.help) {
    process.stdout.write(formatHelp(cli));
    return;
  }
  const a = args.values;
  const root = packageRoot();
  const recipeFile = path.join(root, 'recipes', 'pretrain-t2i.json');
  const sets = [
    ...a.set,
    ...(a.steps === undefined ? [] : [`unet.train.steps=${a.steps}`]),
    ...(a['vae-steps'] === undefined ? [] : [`vae.steps=${a['vae-steps']}`]),
  ];
  const raw = applyOverrides(parseLenientJson(await fs.readFile(recipeFile, 'utf8'), recipeFile), sets);
  // Hours on a small CPU, stopped and resumed: a signal stops it at the next step with a checkpoint.
  let result;
  {
    using stop = handleStopSignals((signal) => console.error(`${signal}: stopping after this step and writing a checkpoint (again to force)`));
    result = await pretrainT2i(raw, {
      recipeFile,
      signal: stop.signal,
      onLog: (l) => console.log(l),
      onProgress: (p) => p.step % 50 === 0 && console.log(progressLine(p, 0).trim()),
    });
    if (result.status !== 'completed') {
      console.error(
        `pretrain:t2i: stopped in the ${result.stoppedIn === 'vae' ? 'VAE phase (it starts again on resume)' : 'U-Net phase with a checkpoint'}; run again with --set resume=latest`,
      );
      process.exitCode = STOP_EXIT_CODES[stop.stoppedBy ?? 'SIGINT'];
      return;
    }
  }
  const target = a.out === undefined ? path.join(root, 'models', 't2i-base') : path.resolve(a.out);
  const summary = await packageT2iBase(result, target, raw);
  const h = summary.unet.heldOut;
  console.log(
    `base pipeline written to ${target} (${(summary.pipelineBytes / 1e6).toFixed(1)} MB${h.length > 0 ? `, held-out loss ${h[0]!.loss.toFixed(4)} → ${h[h.length - 1]!.loss.toFixed(4)}` : ''})`,
  );
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(`${formatCliError('pretrain:t2i', error)}\n${usageHint(cli, error)}`.trimEnd());
    process.exit(1);
  });
}
