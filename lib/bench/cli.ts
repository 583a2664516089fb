/**
 * npm run bench -- [--suite quick|full] [--config <json>] [--out <folder>]
 * npm run bench -- --compare <a/bench.json> <b/bench.json>
 * npm run bench -- --readme <bench.json>
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseLenientJson } from '../config/json';
import { ConfigError, formatCliError } from '../errors';
import { CliUsageError, defineCli, formatHelp, oneOfValue, parseCli, usageHint } from '../util/cli-args';
import { fileSystemError } from '../util/fs-errors';
import { benchConfigSchema, type BenchConfig } from './schema';
import { planBench, runBench } from './run';
import { SUITE_NAMES, type SuiteName } from './suites';
import { formatMarkdown, formatReadmeSummary, replaceReadmeBlock } from './report';
import { formatComparison, readBenchFile } from './compare';

export const benchCli = defineCli({
  name: 'bench',
  summary:
    "Times the benchmark workloads (U-Net forward, forward+backward, training steps, sampling, whole txt2img pipeline calls, the data loader, data-parallel throughput) in fp32 and bf16, next to PyTorch + diffusers where python3 imports them, and writes bench.json and bench.md; or compares two result files, or rewrites README.md's benchmark table from one.",
  usage: ['[--suite quick|full|sd21] [--config <file.json>] [--out <folder>]', '--compare <a/bench.json> <b/bench.json>', '--readme <bench.json>'],
  flags: {
    suite: {
      type: 'string',
      value: '<quick|full|sd21>',
      ...oneOfValue(SUITE_NAMES),
      default: 'quick',
      description: 'quick: ≤ 5 min on 2 cores; full: every model and workload; sd21: SD 2.1 768² txt2img against diffusers (tens of minutes)',
    },
    config: { type: 'string', value: '<file.json>', description: 'overrides models, workloads, dtypes, freezes, steps, warmup, threads, pytorch, ...' },
    out: { type: 'string', value: '<folder>', default: 'runs/bench', description: 'where bench.json and bench.md go' },
    compare: { type: 'string', value: '<a/bench.json>', description: 'print the per-workload ratio b ÷ a of two result files (the second follows the first)' },
    readme: { type: 'string', value: '<bench.json>', description: "rewrite README.md's benchmark block from a result file" },
    'dry-run': { type: 'boolean', description: 'print the rows the suite would time and the PyTorch commands it would run, and time nothing' },
  },
  positionals: { value: '<b/bench.json>', description: 'after --compare <a/bench.json>: the result file compared with it', max: 1 },
  examples: [
    'npm run bench -- --suite full --out runs/bench-full',
    'npm run bench -- --suite full --dry-run',
    'npm run bench -- --suite sd21 --out runs/bench-sd21',
    'npm run bench -- --compare runs/a/bench.json runs/b/bench.json',
  ],
});

interface Args {
  suite: SuiteName;
  config?: string;
  out: string;
  compare?: [string, string];
  readme?: string;
  dryRun?: boolean;
}

function parseBenchArgs(argv: readonly string[]): Args | 'help' {
  const parsed = parseCli(benchCli, argv);
  if (parsed.help) return 'help';
  const { values, positionals } = parsed;
  if (values.compare === undefined) {
    if (positionals.length > 0) throw new CliUsageError(`unexpected argument ${JSON.stringify(positionals[0])}: only --compare takes a second file`);
    return { suite: values.suite, config: values.config, out: values.out, readme: values.readme, dryRun: values['dry-run'] };
  }
  const [second] = positionals;
  if (second === undefined)
    throw new CliUsageError(
      `--compare: expected two result files (--compare <a/bench.json> <b/bench.json>) but received one, ${JSON.stringify(values.compare)}`,
    );
  return { suite: values.suite, config: values.config, out: values.out, compare: [values.compare, second], readme: values.readme };
}

function readConfig(file: string): BenchConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw fileSystemError(error, file, 'read', { field: '--config' });
  }
  const raw = parseLenientJson(text, file);
  const parsed = benchConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`${file}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

export async function runBenchCli(argv: readonly string[], root: string): Promise<number> {
  let args: Args;
  try {
    const parsed = parseBenchArgs(argv);
    if (parsed === 'help') {
      process.stdout.write(formatHelp(benchCli));
      return 0;
    }
    args = parsed;
    if (args.compare) {
      const [a, b] = args.compare;
      process.stdout.write(formatComparison(readBenchFile(a), readBenchFile(b), a, b));
      return 0;
    }
    if (args.readme) {
      const readme = path.join(root, 'README.md');
      const text = fs.readFileSync(readme, 'utf8');
      fs.writeFileSync(readme, replaceReadmeBlock(text, formatReadmeSummary(readBenchFile(args.readme), path.relative(root, path.resolve(args.readme)))));
      process.stdout.write(`README.md: benchmark block rewritten from ${args.readme}\n`);
      return 0;
    }
  } catch (error) {
    process.stderr.write(`${formatCliError('bench', error)}\n${usageHint(benchCli, error)}`);
    return 1;
  }
  try {
    const config = args.config ? readConfig(args.config) : undefined;
    if (args.dryRun === true) {
      process.stdout.write(`${planBench({ suite: args.suite, config, root }).join('\n')}\n`);
      return 0;
    }
    const file = await runBench({ suite: args.suite, config, root });
    fs.mkdirSync(args.out, { recursive: true });
    fs.writeFileSync(path.join(args.out, 'bench.json'), `${JSON.stringify(file, null, 2)}\n`);
    const md = formatMarkdown(file);
    fs.writeFileSync(path.join(args.out, 'bench.md'), md);
    process.stdout.write(`\n${md}\nwrote ${path.join(args.out, 'bench.json')} and bench.md (${file.durationS.toFixed(0)} s)\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`${formatCliError('bench', error)}\n`);
    return 1;
  }
}
