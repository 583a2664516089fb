/**
 * `npm run finetune -- --recipe <file.json> [--set key.path=value ...] [--dry-run] [--stack]
 * [--nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P] [--dist-timeout S] [--dist-backend B]]`:
 * argument parsing and printing around finetune(). A progress bar on a TTY, plain lines otherwise;
 * Ctrl-C (SIGINT) or SIGTERM stops at the next step boundary with a checkpoint and exits 130 or 143.
 */
import { promises as fs } from 'fs';
import type { Writable } from 'stream';
import { applyOverrides } from '../config/recipe';
import { formatCliError } from '../errors';
import { defineCli, formatHelp, parseCli, STACK_FLAG, usageHint } from '../util/cli-args';
import { parseLenientJson } from '../config/json';
import { formatPlan } from '../freeze/format';
import { formatBytes, formatMemoryPlan, type TrainingMemoryPlan } from './memory-plan';
import { formatDreamBoothPlan } from './dreambooth';
import { finetune, generateClassImages, planDreamBoothRecipe, planRecipe } from './finetune';
import { ProgressDisplay, type ProgressStream } from './progress';
import { LAUNCH_FLAGS, launchWorkers, parseLaunchArgs } from '../distributed/launch';
import { readDistEnv } from '../distributed/env';
import { STOP_EXIT_CODES, type StopSignal } from '../util/exit-codes';
import { withFileErrors } from '../util/fs-errors';

export const finetuneCli = defineCli({
  name: 'finetune',
  summary:
    "Fine-tunes a pretrained diffusers model on a recipe (lib/config/recipe.ts): a progress bar on a TTY, plain lines otherwise; checkpoints as the recipe says; <output>/report.html shows the run (curves, validation grids, checkpoints), rewritten at each validation. Ctrl-C (SIGINT) or SIGTERM stops at the next step with a checkpoint and exits 130 or 143. With --nproc-per-node this process launches data-parallel workers, which also run under torchrun's variables.",
  flags: {
    recipe: { type: 'string', value: '<file.json>', required: true, description: 'the training recipe; relative paths in it resolve against its folder' },
    set: {
      type: 'string',
      value: '<key.path=value>',
      multiple: true,
      description: 'override one recipe field (JSON value or plain text), e.g. train.steps=100 or resume=latest',
    },
    'dry-run': { type: 'boolean', description: 'print the plan (what trains, memory) and train nothing' },
    stack: STACK_FLAG,
    ...LAUNCH_FLAGS,
  },
  examples: [
    'npm run finetune -- --recipe recipes/mnist-classcond-tiny.json --set train.steps=100',
    'npm run finetune -- --recipe recipes/mnist-classcond-tiny.json --nproc-per-node 2',
  ],
});

/** One step's progress line (scripts/pretrain-mnist.ts prints it too). */
export { progressLine } from './progress';

/**
 * `out` gets the progress and the log: a progress line redrawn in place when `tty` (default: `out.isTTY`),
 * plain lines otherwise; `err` gets errors and the stop notice.
 */
/** "peak RSS 6.21 GB, the memory plan expected 6.05 GB (+3%)": the run's peak against its plan. */
export function memoryLine(memory: { plan: TrainingMemoryPlan; peakRssBytes: number }): string {
  const change = memory.peakRssBytes / memory.plan.total - 1;
  return `peak RSS ${formatBytes(memory.peakRssBytes)}, the memory plan expected ${formatBytes(memory.plan.total)} (${change >= 0 ? '+' : ''}${(100 * change).toFixed(0)}%)`;
}

export async function runFinetuneCli(
  argv: readonly string[],
  out: Writable,
  err: Writable,
  tty: boolean = (out as ProgressStream).isTTY === true,
): Promise<number> {
  const stack = argv.includes('--stack');
  try {
    // Every flag, the launcher's too, is checked here, before any worker starts.
    const args = parseCli(finetuneCli, argv);
    if (args.help) {
      out.write(formatHelp(finetuneCli));
      return 0;
    }
    const { values } = args;
    // --nproc-per-node N: this process becomes the launcher of N workers (lib/distributed/launch.ts).
    const { launch, rest } = parseLaunchArgs(argv);
    const file = values.recipe;
    const text = await withFileErrors(file, 'read', () => fs.readFile(file, 'utf8'), { field: '--recipe' });
    const raw = applyOverrides(parseLenientJson(text, file), values.set);
    if (launch && !values['dry-run']) {
      // DreamBooth: the launcher generates missing class images before the workers start; in the workers
      // rank 0 would, while the others wait at a barrier no longer than --dist-timeout.
      if (launch.nodeRank === 0) await generateClassImages(raw, file, (line) => out.write(`${line}\n`));
      return await launchWorkers(launch, rest, out, err);
    }
    if (values['dry-run']) {
      const plan = await planRecipe(raw, file);
      out.write(`${formatPlan(plan)}\n${formatMemoryPlan(plan.memoryPlan)}\n`);
      const dreambooth = await planDreamBoothRecipe(raw, file);
      if (dreambooth !== undefined) out.write(`${formatDreamBoothPlan(dreambooth)}\n`);
      return 0;
    }
    const controller = new AbortController();
    // The first signal stops at the next step with a checkpoint; a second one exits at once.
    let stoppedBy: StopSignal | undefined;
    const stop = (signal: StopSignal) => {
      if (controller.signal.aborted) process.exit(STOP_EXIT_CODES[signal]);
      stoppedBy = signal;
      err.write(`\n${signal}: stopping after this step and writing a checkpoint (again to force)\n`);
      controller.abort();
    };
    const onSigint = () => stop('SIGINT');
    const onSigterm = () => stop('SIGTERM');
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigterm);
    const display = new ProgressDisplay(out, tty);
    try {
      const result = await finetune(raw, {
        recipeFile: file,
        signal: controller.signal,
        onLog: (line) => display.log(line),
        onProgress: (p) => display.progress(p),
      });
      display.end();
      // A data-parallel rank may stop because another rank got the signal: that is SIGINT's code.
      const code = result.status === 'completed' ? 0 : STOP_EXIT_CODES[stoppedBy ?? 'SIGINT'];
      // Data-parallel: rank 0 reports for the run; the other ranks only fail loudly.
      if ((readDistEnv()?.rank ?? 0) > 0) return code;
      const v = result.validation;
      // NaN without a skipped (non-finite) step: no step ran (a resume at train.steps).
      const loss = Number.isNaN(result.finalLoss) && result.skippedSteps === 0 ? 'n/a (no step ran)' : result.finalLoss.toFixed(4);
      out.write(
        [
          `${result.status === 'completed' ? 'done' : 'stopped'}: ${result.steps} steps, final training loss ${loss}` +
            (v.length > 1 ? `, held-out loss ${v[0]!.loss.toFixed(4)} → ${v[v.length - 1]!.loss.toFixed(4)}` : ''),
          result.skippedSteps > 0 ? `skipped steps (non-finite): ${result.skippedSteps}` : '',
          result.status !== 'completed'
            ? `resume with --set resume=latest`
            : result.learnedEmbedsFile
              ? `textual inversion: ${result.learnedEmbedsFile} (npm run sample -- --textual-inversion <it> with the base pipeline), scheduler: ${result.schedulerDir}`
              : result.loraFile
                ? `LoRA: ${(result.loraFiles ?? [result.loraFile]).join(', ')}, scheduler: ${result.schedulerDir}`
                : `model: ${result.unetDir} (diffusers folder), scheduler: ${result.schedulerDir}`,
          `checkpoints: ${result.checkpoints.join(', ') || 'none'}`,
          `metrics: ${result.output}/metrics.jsonl`,
          `report: ${result.report}`,
          memoryLine(result.memory),
        ]
          .filter(Boolean)
          .join('\n') + '\n',
      );
      return code;
    } finally {
      // An error is printed on a line of its own, not after the progress line.
      display.end();
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigterm);
    }
  } catch (error) {
    err.write(`${formatCliError('finetune', error, stack)}\n${usageHint(finetuneCli, error)}`);
    return 1;
  }
}
