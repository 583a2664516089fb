// Every error a user can meet is a DifftuneError with a code: no plain Error is thrown from lib/ or
// scripts/, and the CLIs print an error as one line ending in its code, then exit 1.
import * as fs from 'fs';
import * as path from 'path';
import { PassThrough } from 'stream';
import { ConfigError, DifftuneError, formatCliError, InternalError, ProcessError } from '../../lib/errors';
import { parseLaunchArgs } from '../../lib/distributed/launch';
import { runFinetuneCli } from '../../lib/train/cli';

const ROOT = path.join(__dirname, '..', '..');

function sources(dir: string, recursive: boolean): string[] {
  return fs
    .readdirSync(path.join(ROOT, dir), { recursive })
    .map(String)
    .filter((name) => name.endsWith('.ts') && !name.endsWith('.d.ts'))
    .map((name) => path.join(dir, name).split(path.sep).join('/'))
    .sort();
}

const files = [...sources('lib', true), ...sources('scripts', false)];

/** The file's lines without whole-line comments (doc comments may mention `new Error(` freely). */
function codeLines(file: string): Array<{ line: number; text: string }> {
  return fs
    .readFileSync(path.join(ROOT, file), 'utf8')
    .split('\n')
    .map((text, i) => ({ line: i + 1, text }))
    .filter(({ text }) => !/^\s*(\/\/|\/\*|\*)/.test(text));
}

test('the scan sees lib/ and scripts/', () => {
  expect(files).toContain('lib/errors.ts');
  expect(files).toContain('lib/distributed/launch.ts');
  expect(files).toContain('scripts/transfer-study.ts');
});

test('no plain Error (or TypeError, RangeError, ...) is created in lib/ or scripts/', () => {
  const found = files.flatMap((file) =>
    codeLines(file)
      .filter(({ text }) => /\bnew\s+(Type|Range|Syntax|Reference|Eval|URI|Aggregate)?Error\s*\(/.test(text))
      .map(({ line, text }) => `${file}:${line}: ${text.trim()}`),
  );
  expect(found).toEqual([]);
});

test('every error class derives from DifftuneError', () => {
  const found = files.flatMap((file) =>
    codeLines(file)
      .filter(({ text }) => /\bclass\s+\w+\s+extends\s+(Type|Range|Syntax|Reference)?Error\b/.test(text))
      .filter(({ text }) => !(file === 'lib/errors.ts' && /class DifftuneError extends Error\b/.test(text)))
      .map(({ line, text }) => `${file}:${line}: ${text.trim()}`),
  );
  expect(found).toEqual([]);
});

test('every script prints a failure through formatCliError, itself or in the lib CLI it hands its arguments to', () => {
  const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');
  const printer = (script: string): string => {
    const text = read(script);
    if (/formatCliError\(/.test(text)) return script;
    // `void runXCli(process.argv.slice(2), ...)`: the lib file behind runXCli prints.
    const name = /void (run\w+)\(process\.argv/.exec(text)?.[1];
    const from = name === undefined ? undefined : new RegExp(`import \\{[^}]*\\b${name}\\b[^}]*\\} from '\\.\\./(lib/[^']+)'`).exec(text)?.[1];
    return from !== undefined && /formatCliError\(/.test(read(`${from}.ts`)) ? `${from}.ts` : `${script}: none`;
  };
  const scripts = files.filter((f) => f.startsWith('scripts/'));
  expect(scripts.length).toBeGreaterThanOrEqual(12);
  expect(scripts.map(printer).filter((p) => p.endsWith(': none'))).toEqual([]);
});

describe('formatCliError', () => {
  test('one line: prefix, message, code', () => {
    expect(formatCliError('finetune', new ConfigError('train.lr: expected a number but found "x"'))).toBe(
      'finetune: train.lr: expected a number but found "x" (ERR_CONFIG)',
    );
    expect(formatCliError('bench', new ProcessError('bench_diffusers.py exited 1: boom'))).toBe('bench: bench_diffusers.py exited 1: boom (ERR_PROCESS)');
    expect(formatCliError('x', new InternalError('a bug')).endsWith('(an internal error: please report it) (ERR_INTERNAL)')).toBe(true);
  });

  test('a multi-line message keeps the code on its first line; --stack adds the frames only', () => {
    expect(formatCliError('load', new DifftuneError('ERR_NATIVE_LOAD', 'cannot load the addon\ntried: a\ntried: b'))).toBe(
      'load: cannot load the addon (ERR_NATIVE_LOAD)\ntried: a\ntried: b',
    );
    const withStack = formatCliError('sample', new ConfigError('bad'), true).split('\n');
    expect(withStack[0]).toBe('sample: bad (ERR_CONFIG)');
    expect(withStack.length).toBeGreaterThan(1);
    expect(withStack.slice(1).every((l) => /^\s+at /.test(l))).toBe(true);
  });

  test('anything else is printed as it is, without a code', () => {
    expect(formatCliError('demo', new Error('plain'))).toBe('demo: plain');
    expect(formatCliError('demo', 'a string')).toBe('demo: a string');
  });
});

test('bad launcher flags are ConfigErrors', () => {
  expect(() => parseLaunchArgs(['--nnodes', '2'])).toThrow(ConfigError);
  expect(() => parseLaunchArgs(['--nproc-per-node', '2', '--dist-backend', 'mpi'])).toThrow(ConfigError);
  expect(() => parseLaunchArgs(['--nproc-per-node'])).toThrow(/--nproc-per-node: expected a value after the flag but found the end of the arguments/);
});

test('npm run finetune with a bad flag: one line with the code, then the usage, exit 1', async () => {
  const out = new PassThrough();
  const err = new PassThrough();
  let text = '';
  err.on('data', (c) => (text += String(c)));
  const code = await runFinetuneCli(['--recipe', 'r.json', '--bogus'], out, err, false);
  expect(code).toBe(1);
  const [first, ...usage] = text.split('\n');
  expect(first).toBe(
    'finetune: unknown option "--bogus": expected one of --help, --recipe, --set, --dry-run, --stack, --nproc-per-node, --nnodes, --node-rank, --master-addr, --master-port, --dist-timeout, --dist-backend (ERR_CONFIG)',
  );
  // A usage error is followed by the usage, never by a stack.
  expect(usage.join('\n')).toBe('usage: npm run finetune -- --recipe <file.json> [flags]\n(npm run finetune -- --help describes every flag)\n');
  let missing = '';
  err.removeAllListeners('data');
  err.on('data', (c) => (missing += String(c)));
  expect(await runFinetuneCli([], out, err, false)).toBe(1);
  expect(missing.split('\n')[0]).toBe('finetune: --recipe <file.json> is required but was not given (ERR_CONFIG)');
});

// A missing recipe printed Node's own `ENOENT: no such file or directory, open 'nope.json'`, without a code.
test('npm run finetune with a recipe that is not there: a FileSystemError naming --recipe and the file', async () => {
  const err = new PassThrough();
  let text = '';
  err.on('data', (c) => (text += String(c)));
  const file = path.join(ROOT, 'no-such-recipe.json');
  expect(await runFinetuneCli(['--recipe', file], new PassThrough(), err, false)).toBe(1);
  expect(text).toBe(`finetune: --recipe: cannot read ${file}: no such file or folder (ENOENT) (ERR_FILE_SYSTEM)\n`);
});
