/**
 * npm run bench -- [--suite quick|full] [--config <json>] [--out <folder>]
 * npm run bench -- --compare <a/bench.json> <b/bench.json>
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseLenientJson } from '../config/json';
import { ConfigError, formatCliError } from '../errors';
import { benchConfigSchema, type BenchConfig } from './schema';
import { runBench } from './run';
import { formatMarkdown, formatReadmeSummary, replaceReadmeBlock } from './report';
import { formatComparison, readBenchFile } from './compare';

const USAGE = `usage: npm run bench -- [--suite quick|full] [--config <file.json>] [--out <folder>]
       npm run bench -- --compare <a/bench.json> <b/bench.json>
       npm run bench -- --readme <bench.json>    (rewrites README.md's benchmark block from a result file)`;

interface Args {
  suite: 'quick' | 'full';
  config?: string;
  out: string;
  compare?: [string, string];
  readme?: string;
}

/** A bad flag: printed with the usage after it. */
class UsageError extends ConfigError {}

function parseArgs(argv: readonly string[]): Args | 'help' {
  const args: Args = { suite: 'quick', out: 'runs/bench' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a}: expected a value after the flag but found the end of the arguments`);
      return v;
    };
    if (a === '--suite') {
      const v = value();
      if (v !== 'quick' && v !== 'full') throw new UsageError(`--suite: expected "quick" or "full" but received "${v}"`);
      args.suite = v;
    } else if (a === '--config') args.config = value();
    else if (a === '--out') args.out = value();
    else if (a === '--compare') args.compare = [value(), value()];
    else if (a === '--readme') args.readme = value();
    else if (a === '--help' || a === '-h') return 'help';
    else throw new UsageError(`unknown argument "${a}": expected one of --suite, --config, --out, --compare, --readme, --help`);
  }
  return args;
}

function readConfig(file: string): BenchConfig {
  const raw = parseLenientJson(fs.readFileSync(file, 'utf8'), file);
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
    const parsed = parseArgs(argv);
    if (parsed === 'help') {
      process.stdout.write(`${USAGE}\n`);
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
    process.stderr.write(`${formatCliError('bench', error)}\n${error instanceof UsageError ? `${USAGE}\n` : ''}`);
    return 1;
  }
  try {
    const config = args.config ? readConfig(args.config) : undefined;
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
