// lib/util/cli-args.ts, the one argument parser of every npm script, and each script's --help.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../../lib/errors';
import {
  CliUsageError,
  defineCli,
  extractFlags,
  formatHelp,
  integerValue,
  numberValue,
  oneOfValue,
  parseCli,
  usageHint,
  type CliSpec,
} from '../../lib/util/cli-args';

const ROOT = path.join(__dirname, '..', '..');

const spec = defineCli({
  name: 'thing',
  summary: 'Does a thing.',
  flags: {
    model: { type: 'string', value: '<folder>', required: true, description: 'the model' },
    steps: { type: 'string', value: '<N>', ...integerValue(1), description: 'steps' },
    seed: { type: 'string', value: '<S>', ...integerValue(0), default: 0, description: 'seed' },
    eta: { type: 'string', value: '<E>', ...numberValue(), description: 'eta' },
    kind: { type: 'string', value: '<a|b>', ...oneOfValue(['a', 'b']), description: 'kind' },
    prompt: { type: 'string', value: '<text>', multiple: true, description: 'prompts' },
    'dry-run': { type: 'boolean', description: 'plan only' },
  },
  examples: ['npm run thing -- --model m'],
});

function usageError(argv: string[]): string {
  try {
    parseCli(spec, argv);
  } catch (error) {
    expect(error).toBeInstanceOf(CliUsageError);
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error(`parseCli accepted ${JSON.stringify(argv)}`);
}

describe('parseCli', () => {
  test('typed values, defaults, repeats, --flag=value', () => {
    const r = parseCli(spec, ['--model', 'm', '--steps=3', '--eta', '-0.5', '--kind', 'b', '--prompt', 'x', '--prompt', '-y', '--dry-run']);
    expect(r).toEqual({ help: false, positionals: [], values: { model: 'm', steps: 3, seed: 0, eta: -0.5, kind: 'b', prompt: ['x', '-y'], 'dry-run': true } });
    if (r.help) throw new Error('unreachable');
    // The types follow the spec: a required flag is a string, a parsed one a number, a repeated one a list.
    const typed: { model: string; steps: number | undefined; seed: number; prompt: string[]; 'dry-run': boolean; kind: 'a' | 'b' | undefined } = r.values;
    expect(typed.seed).toBe(0);
    expect(parseCli(spec, ['--model', 'm'])).toMatchObject({ values: { steps: undefined, prompt: [], 'dry-run': false } });
  });

  test('--help or -h wins over every other check', () => {
    expect(parseCli(spec, ['--bogus', '--help'])).toEqual({ help: true });
    expect(parseCli(spec, ['-h'])).toEqual({ help: true });
  });

  test.each([
    [['--model', 'm', '--bogus'], 'unknown option "--bogus": expected one of --help, --model, --steps, --seed, --eta, --kind, --prompt, --dry-run'],
    [['--model', 'm', '-q'], 'unknown option "-q"'],
    [['--model'], '--model: expected a value after the flag but found the end of the arguments (usage: --model <folder>)'],
    [
      ['--model', '--dry-run'],
      '--model: expected a value after the flag (<folder>) but found the flag "--dry-run"; write --model=--dry-run if that is the value',
    ],
    [['--model', 'm', '--steps', '0'], '--steps: expected an integer ≥ 1 but received "0"'],
    [['--model', 'm', '--steps', '2.5'], '--steps: expected an integer ≥ 1 but received "2.5"'],
    [['--model', 'm', '--eta', 'x'], '--eta: expected a number but received "x"'],
    [['--model', 'm', '--kind', 'c'], '--kind: expected one of "a", "b" but received "c"'],
    [['--model', 'm', '--dry-run=yes'], '--dry-run: expected no value (it is a switch) but received "yes"'],
    [['--steps', '2'], '--model <folder> is required but was not given'],
    [['--model', 'm', 'extra'], 'unexpected argument "extra": npm run thing takes flags only'],
  ])('%j is refused naming the flag', (argv, message) => {
    expect(usageError(argv)).toContain(message);
  });

  test('positionals: counted, and after -- even when they look like flags', () => {
    const paths = defineCli({
      name: 'p',
      summary: 's',
      flags: { verbose: { type: 'boolean', description: 'v' } },
      positionals: { value: '<dir>...', description: 'd', min: 1, max: 2 },
      examples: ['npm run p -- a'],
    });
    expect(parseCli(paths, ['a', '--verbose', '--', '--b'])).toEqual({ help: false, positionals: ['a', '--b'], values: { verbose: true } });
    expect(() => parseCli(paths, [])).toThrow('expected 1 to 2 <dir>... but received none');
    expect(() => parseCli(paths, ['a', 'b', 'c'])).toThrow('expected 1 to 2 <dir>... but received "a", "b", "c"');
  });

  test('a schema without `expected` words its error from zod', () => {
    const s = defineCli({
      name: 'z',
      summary: 's',
      flags: { host: { type: 'string', value: '<h>', schema: z.string().min(1), description: 'h' } },
      examples: ['npm run z'],
    });
    expect(() => parseCli(s, ['--host='])).toThrow(/^--host: expected String must contain at least 1 character\(s\) but received ""$/);
  });

  test('extractFlags takes its flags and hands the rest on in order', () => {
    const flags = { n: { type: 'string', value: '<N>', ...integerValue(1), description: 'n' }, v: { type: 'boolean', description: 'v' } } as const;
    const r = extractFlags(flags, ['--recipe', 'r.json', '--n', '2', '--set=a=1', '--v', '--', '--n', '3']);
    expect(r).toEqual({ values: { n: 2, v: true }, rest: ['--recipe', 'r.json', '--set=a=1', '--', '--n', '3'] });
  });

  test('usageHint follows a usage error only', () => {
    expect(usageHint(spec, new CliUsageError('x'))).toBe('usage: npm run thing -- --model <folder> [flags]\n(npm run thing -- --help describes every flag)\n');
    expect(usageHint(spec, new ConfigError('x'))).toBe('');
  });
});

/** Splits an example command line as a shell would (double quotes only). */
function shellWords(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

// Every `npm run <x>` that runs dist/scripts/<x>.js: its script exports the spec it parses with.
const npmScripts = Object.entries(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts as Record<string, string>).flatMap(
  ([name, command]) => {
    const script = /node dist\/scripts\/([\w-]+)\.js/.exec(command)?.[1];
    return script === undefined ? [] : [[name, script] as const];
  },
);

test('the npm scripts with a TypeScript entry point are all here', () => {
  expect(npmScripts.map(([name]) => name).sort()).toEqual(
    [
      'bench',
      'bench:data',
      'conformance',
      'convert',
      'demo',
      'demo:unet',
      'finetune',
      'grow',
      'init-pipeline',
      'inspect',
      'pretrain:mnist',
      'pretrain:t2i',
      'sample',
      'transfer-study',
    ].sort(),
  );
});

describe.each(npmScripts)('npm run %s -- --help', (name, script) => {
  const load = async (): Promise<CliSpec> => ((await import(path.join(ROOT, 'scripts', `${script}.ts`))) as { cli: CliSpec }).cli;

  test('prints usage, every flag with its description, and an example that parses', async () => {
    const cli = await load();
    expect(cli.name).toBe(name);
    expect(parseCli(cli, ['--help'])).toEqual({ help: true });
    const help = formatHelp(cli);
    expect(help.startsWith(`usage: npm run ${name} --`)).toBe(true);
    for (const [flag, f] of Object.entries(cli.flags)) {
      expect(help).toMatch(new RegExp(`\\n  --${flag}\\b`));
      expect(help).toContain(f.description.split(' ').slice(0, 3).join(' '));
    }
    expect(help).toContain('--help');
    expect(help).toMatch(/\nexamples?:\n {2}npm run /);
    for (const example of cli.examples) {
      expect(example.startsWith(`npm run ${name}`)).toBe(true);
      const argv = shellWords(example)
        .slice(3)
        .filter((w, i) => i > 0 || w !== '--');
      expect(() => parseCli(cli, argv)).not.toThrow();
    }
  });
});

test('the lib CLIs print the help on stdout and exit 0', async () => {
  const { runGrowCli, growCli } = await import('../../lib/models/grow-cli');
  const { runInitPipelineCli, initPipelineCli } = await import('../../lib/models/init-pipeline-cli');
  const { runSampleCli, sampleCli } = await import('../../lib/sample/cli');
  const { runConvertCli, convertCli } = await import('../../lib/checkpoint/convert-cli');
  const { runFinetuneCli, finetuneCli } = await import('../../lib/train/cli');
  const { runConformanceCli, conformanceCli } = await import('../../lib/conformance/cli');
  const sink = () => {
    const s = { text: '', write: (t: string) => ((s.text += t), true) };
    return s;
  };
  const cases: Array<[CliSpec, (out: ReturnType<typeof sink>, err: ReturnType<typeof sink>) => Promise<number>]> = [
    [growCli, (o, e) => runGrowCli(['--help'], o as never, e as never)],
    [initPipelineCli, (o, e) => runInitPipelineCli(['--help'], o as never, e as never)],
    [sampleCli, (o, e) => runSampleCli(['--model', 'x', '-h'], o as never, e as never)],
    [convertCli, (o, e) => runConvertCli(['--help'], o as never, e as never)],
    [finetuneCli, (o, e) => runFinetuneCli(['--nproc-per-node', '2', '--help'], o as never, e as never, false)],
    [conformanceCli, (o, e) => runConformanceCli(['--help'], o as never, e as never)],
  ];
  for (const [cli, run] of cases) {
    const out = sink();
    const err = sink();
    expect(await run(out, err)).toBe(0);
    expect({ out: out.text, err: err.text }).toEqual({ out: formatHelp(cli), err: '' });
  }
});
