/**
 * Command-line flags for every npm script, from one declarative spec: node:util's parseArgs splits the
 * arguments, zod checks the values, every mistake is a CliUsageError (a ConfigError) naming the flag, and
 * `--help` prints usage generated from the same spec, so the help cannot drift from what is parsed.
 *
 * parseArgs runs non-strict and the checks are done here: its strict mode throws plain TypeErrors with
 * its own wording, and refuses any value that starts with "-" (a `--negative-prompt "-x"`), where the
 * hand-rolled parsers took the next argument as the value.
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { ConfigError, InternalError } from '../errors';

/** A flag that takes a value: `--steps 50`, `--steps=50`. */
export interface ValueFlag {
  readonly type: 'string';
  /** How usage shows the value: `<file.json>`. */
  readonly value: string;
  readonly description: string;
  /** Repeatable: every occurrence is kept, in order (`--set a=1 --set b=2`). */
  readonly multiple?: boolean;
  readonly required?: boolean;
  /** Parses and checks the text; the parsed value is what the caller gets. */
  readonly schema?: z.ZodType<unknown, z.ZodTypeDef, string>;
  /** What the schema wants, in words, for the error: `an integer ≥ 1`. */
  readonly expected?: string;
  /** The value when the flag is absent (already parsed; shown in the help). */
  readonly default?: unknown;
}

/** A flag without a value: present or not (`--dry-run`). */
export interface SwitchFlag {
  readonly type: 'boolean';
  readonly description: string;
}

export type CliFlag = ValueFlag | SwitchFlag;

export interface CliSpec {
  /** The npm script: usage reads `npm run <name> -- ...`. */
  readonly name: string;
  /** What the command does, one or two sentences. */
  readonly summary: string;
  /** Synopsis lines after `npm run <name> -- `; by default the required flags, the positionals and `[flags]`. */
  readonly usage?: readonly string[];
  /** Keyed by the flag's name without the dashes: `'dry-run'` is `--dry-run`. */
  readonly flags: { readonly [name: string]: CliFlag };
  /** Arguments that are not flags (paths); without this entry none are accepted. */
  readonly positionals?: { readonly value: string; readonly description: string; readonly min?: number; readonly max?: number };
  readonly examples: readonly [string, ...string[]];
}

/** A mistake in how a command was called; CLIs print their usage after it (usageHint). */
export class CliUsageError extends ConfigError {}

type Parsed<F> = F extends { readonly schema: infer S extends z.ZodTypeAny } ? z.output<S> : string;
type FlagValue<F> = F extends { readonly type: 'boolean' }
  ? boolean
  : F extends { readonly multiple: true }
    ? Parsed<F>[]
    : F extends { readonly required: true }
      ? Parsed<F>
      : F extends { readonly default: unknown }
        ? Parsed<F>
        : Parsed<F> | undefined;

export type FlagValues<F extends CliSpec['flags']> = { -readonly [K in keyof F]: FlagValue<F[K]> };
export type CliValues<S extends CliSpec> = FlagValues<S['flags']>;

export type CliArgs<S extends CliSpec> = { readonly help: true } | { readonly help: false; readonly values: CliValues<S>; readonly positionals: string[] };

/** Declares a CLI; the identity function, there so the flags' literal types reach CliValues. */
export function defineCli<const S extends CliSpec>(spec: S): S {
  for (const name of Object.keys(spec.flags)) {
    if (name === 'help' || !/^[a-z][a-z0-9-]*$/.test(name))
      throw new InternalError(`npm run ${spec.name}: flag name "${name}" is reserved or not lower-case kebab-case`);
  }
  return spec;
}

const MAX_INT = Number.MAX_SAFE_INTEGER;

/** A decimal integer in [min, max]. */
export function integerValue(min: number, max = MAX_INT): { readonly schema: z.ZodType<number, z.ZodTypeDef, string>; readonly expected: string } {
  return {
    schema: z
      .string()
      .regex(/^-?\d+$/)
      .transform(Number)
      .pipe(z.number().int().min(min).max(max)),
    expected: max === MAX_INT ? `an integer ≥ ${min}` : `an integer in [${min}, ${max}]`,
  };
}

/** A finite number; with `positive`, above 0. */
export function numberValue(positive = false): { readonly schema: z.ZodType<number, z.ZodTypeDef, string>; readonly expected: string } {
  const n = z.number().finite();
  return {
    schema: z
      .string()
      .regex(/^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i)
      .transform(Number)
      .pipe(positive ? n.positive() : n),
    expected: positive ? 'a positive number' : 'a number',
  };
}

/** One of a fixed list of words. */
export function oneOfValue<const T extends readonly [string, ...string[]]>(
  values: T,
): { readonly schema: z.ZodType<T[number], z.ZodTypeDef, string>; readonly expected: string } {
  const allowed = new Set<string>(values);
  return {
    schema: z.string().refine((v) => allowed.has(v)),
    expected: `one of ${values.map((v) => `"${v}"`).join(', ')}`,
  };
}

/** `--stack`: every CLI prints the stack trace of a failure with it. */
export const STACK_FLAG = { type: 'boolean', description: 'print the stack trace with an error' } as const;

function flagText(name: string, flag: CliFlag): string {
  return flag.type === 'boolean' ? `--${name}` : `--${name} ${flag.value}`;
}

function describeFlags(spec: CliSpec): string {
  return ['help', ...Object.keys(spec.flags)].map((n) => `--${n}`).join(', ');
}

/** One occurrence of an option, as parseArgs' tokens give it. */
interface OptionToken {
  readonly index: number;
  readonly name: string;
  readonly value?: string | undefined;
  readonly inlineValue?: boolean | undefined;
}

function tokenize(flags: CliSpec['flags'], argv: readonly string[]): NonNullable<ReturnType<typeof parseArgs>['tokens']> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, flag] of Object.entries(flags)) options[name] = { type: flag.type };
  return parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true }).tokens;
}

/** The value of one occurrence of a known flag, checked. */
function readToken(name: string, flag: CliFlag, token: OptionToken): unknown {
  const flagName = `--${name}`;
  if (flag.type === 'boolean') {
    if (token.value !== undefined) throw new CliUsageError(`${flagName}: expected no value (it is a switch) but received ${JSON.stringify(token.value)}`);
    return true;
  }
  const raw = token.value;
  if (raw === undefined)
    throw new CliUsageError(`${flagName}: expected a value after the flag but found the end of the arguments (usage: ${flagText(name, flag)})`);
  // parseArgs takes the next argument whatever it is; a flag there is a forgotten value.
  if (!token.inlineValue && /^--./.test(raw)) {
    throw new CliUsageError(
      `${flagName}: expected a value after the flag (${flag.value}) but found the flag ${JSON.stringify(raw)}; write ${flagName}=${raw} if that is the value`,
    );
  }
  if (flag.schema === undefined) return raw;
  const parsed = flag.schema.safeParse(raw);
  if (!parsed.success)
    throw new CliUsageError(`${flagName}: expected ${flag.expected ?? parsed.error.issues[0]?.message ?? 'a valid value'} but received ${JSON.stringify(raw)}`);
  return parsed.data;
}

function store(values: Record<string, unknown>, name: string, flag: CliFlag, value: unknown): void {
  if (flag.type === 'string' && flag.multiple) ((values[name] ??= []) as unknown[]).push(value);
  else values[name] = value;
}

/** Absent flags: false, [], the default or undefined; a missing required flag is an error when `required`. */
function fillAbsent(flags: CliSpec['flags'], values: Record<string, unknown>, seen: ReadonlySet<string>, required: boolean): void {
  for (const [name, flag] of Object.entries(flags)) {
    if (seen.has(name)) continue;
    if (flag.type === 'boolean') values[name] = false;
    else if (flag.multiple) values[name] = [];
    else if (flag.required && required) throw new CliUsageError(`${flagText(name, flag)} is required but was not given`);
    else values[name] = flag.default;
  }
}

/**
 * Parses `argv` (without node and the script) against the spec. `--help` / `-h` anywhere before `--`
 * wins over every other check. Throws a CliUsageError naming the flag for an unknown flag, a missing or
 * bad value, a value given to a switch, a missing required flag, or positionals the spec does not take.
 */
export function parseCli<const S extends CliSpec>(spec: S, argv: readonly string[]): CliArgs<S> {
  const tokens = tokenize(spec.flags, argv);
  if (tokens.some((t) => t.kind === 'option' && t.name === 'help')) return { help: true };

  const values: Record<string, unknown> = {};
  const positionals: string[] = [];
  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind === 'option-terminator') continue;
    if (token.kind === 'positional') {
      if (spec.positionals === undefined)
        throw new CliUsageError(`unexpected argument ${JSON.stringify(token.value)}: npm run ${spec.name} takes flags only (${describeFlags(spec)})`);
      positionals.push(token.value);
      continue;
    }
    const flag = Object.hasOwn(spec.flags, token.name) ? spec.flags[token.name] : undefined;
    if (flag === undefined) throw new CliUsageError(`unknown option ${JSON.stringify(token.rawName)}: expected one of ${describeFlags(spec)}`);
    seen.add(token.name);
    store(values, token.name, flag, readToken(token.name, flag, token));
  }
  fillAbsent(spec.flags, values, seen, true);
  const { min = 0, max = Infinity } = spec.positionals ?? {};
  if (positionals.length < min || positionals.length > max) {
    const wanted = max === Infinity ? `at least ${min}` : min === max ? `${min}` : `${min} to ${max}`;
    throw new CliUsageError(
      `expected ${wanted} ${spec.positionals!.value} but received ${positionals.length === 0 ? 'none' : positionals.map((p) => JSON.stringify(p)).join(', ')}`,
    );
  }
  return { help: false, values: values as CliValues<S>, positionals };
}

/**
 * Takes `flags` out of `argv` and leaves every other argument, in order, in `rest`: for a command that
 * handles some flags and hands the others on (the data-parallel launcher passes the rest to its workers).
 * The taken flags are checked as parseCli checks them; `required` is not enforced here.
 */
export function extractFlags<const F extends CliSpec['flags']>(flags: F, argv: readonly string[]): { values: FlagValues<F>; rest: string[] } {
  const values: Record<string, unknown> = {};
  const seen = new Set<string>();
  const taken = new Set<number>();
  for (const token of tokenize(flags, argv)) {
    if (token.kind === 'option-terminator') break;
    if (token.kind !== 'option' || token.name === 'help' || !Object.hasOwn(flags, token.name)) continue;
    const flag = flags[token.name]!;
    seen.add(token.name);
    store(values, token.name, flag, readToken(token.name, flag, token));
    taken.add(token.index);
    if (token.value !== undefined && !token.inlineValue) taken.add(token.index + 1);
  }
  fillAbsent(flags, values, seen, false);
  return { values: values as FlagValues<F>, rest: argv.filter((_, i) => !taken.has(i)) };
}

function usageLines(spec: CliSpec): string[] {
  const head = `npm run ${spec.name} --`;
  if (spec.usage !== undefined) return spec.usage.map((u) => `${head} ${u}`.trimEnd());
  const parts = Object.entries(spec.flags)
    .filter(([, f]) => f.type === 'string' && f.required)
    .map(([n, f]) => flagText(n, f));
  if (spec.positionals !== undefined) parts.push(spec.positionals.value);
  parts.push('[flags]');
  return [`${head} ${parts.join(' ')}`];
}

const WIDTH = 100;

/** Words of `text` in lines of at most WIDTH columns, the first after `first`, the rest after `indent` spaces. */
function wrap(first: string, text: string, indent: number): string {
  const lines: string[] = [];
  let line = first;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line.length + 1 + word.length > WIDTH && line.trim() !== '') {
      lines.push(line.trimEnd());
      line = ' '.repeat(indent);
    }
    line += line.length === 0 || line.endsWith(' ') ? word : ` ${word}`;
  }
  lines.push(line.trimEnd());
  return lines.join('\n');
}

function formatDefault(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** The `--help` text: usage, summary, every flag with what it does, and the examples. */
export function formatHelp(spec: CliSpec): string {
  const args: Array<[string, string]> = spec.positionals === undefined ? [] : [[spec.positionals.value, spec.positionals.description]];
  const flags: Array<[string, string]> = [];
  for (const [name, flag] of Object.entries(spec.flags)) {
    const notes: string[] = [];
    if (flag.type === 'string') {
      if (flag.required) notes.push('required');
      if (flag.multiple) notes.push('repeatable');
      if (flag.default !== undefined) notes.push(`default ${formatDefault(flag.default)}`);
    }
    flags.push([flagText(name, flag), `${flag.description}${notes.length ? ` (${notes.join('; ')})` : ''}`]);
  }
  flags.push(['-h, --help', 'print this help and exit']);
  const column = Math.min(32, Math.max(...[...args, ...flags].map(([left]) => left.length)) + 2);
  const row = ([left, right]: [string, string]): string =>
    left.length + 2 > column ? `  ${left}\n${wrap(' '.repeat(column + 2), right, column + 2)}` : wrap(`  ${left.padEnd(column)}`, right, column + 2);
  const usage = usageLines(spec);
  return [
    `usage: ${usage[0]}`,
    ...usage.slice(1).map((u) => `       ${u}`),
    '',
    wrap('', spec.summary, 0),
    '',
    ...(args.length > 0 ? ['arguments:', ...args.map(row), ''] : []),
    'flags:',
    ...flags.map(row),
    '',
    spec.examples.length === 1 ? 'example:' : 'examples:',
    ...spec.examples.map((e) => `  ${e}`),
    '',
  ].join('\n');
}

/** After a CliUsageError: the usage lines and where the rest is; '' for any other error. */
export function usageHint(spec: CliSpec, error: unknown): string {
  if (!(error instanceof CliUsageError)) return '';
  const usage = usageLines(spec);
  return `usage: ${usage[0]}\n${usage
    .slice(1)
    .map((u) => `       ${u}\n`)
    .join('')}(npm run ${spec.name} -- --help describes every flag)\n`;
}
