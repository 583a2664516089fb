/**
 * `npm run conformance -- <set-dir | folder-with-index.json | folder-of-sets>... [--verbose]`: runs
 * fixture sets against difftune and prints, per case, its worst relative error against its bound.
 * Exit code 1 when any case fails, cannot be run, or has no runner; 2 on bad arguments.
 */
import type { Writable } from 'node:stream';
import { formatCliError } from '../errors';
import { defineCli, formatHelp, parseCli, usageHint } from '../util/cli-args';
import { defaultRegistry } from './default-registry';
import type { CaseRegistry } from './registry';
import { findFixtureSets, runFixtureSet, type CaseReport } from './run';

export const conformanceCli = defineCli({
  name: 'conformance',
  summary:
    "Runs fixture sets that diffusers computed against difftune and prints each case's worst relative error against its bound. Exits 1 when any case fails, cannot run, or has a type without a runner; 2 on bad arguments or a set that cannot be read.",
  flags: {
    verbose: { type: 'boolean', description: 'print every check of every case, not only the worst' },
  },
  positionals: { value: '<set-dir | folder-with-index.json | folder-of-sets>...', description: 'the fixture sets to run', min: 1 },
  examples: ['npm run conformance -- test/fixtures/diffusers', 'npm run conformance -- test/fixtures/diffusers/schedulers --verbose'],
});

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toExponential(1) : String(x);
}

function caseLine(r: CaseReport): string {
  const label = { pass: 'PASS', fail: 'FAIL', error: 'ERROR', unsupported: 'NO RUNNER' }[r.status];
  const head = `${label.padEnd(9)} ${r.set}/${r.name} (${r.type})`;
  if (r.worst === undefined) return `${head}: ${r.message ?? ''}`;
  const w = r.worst;
  const cmp = w.pass ? '<=' : '>';
  return `${head}: max rel ${fmt(w.rel)} ${cmp} ${fmt(w.bound)} at ${w.name}${w.note ? ` (${w.note})` : ''}`;
}

export async function runConformanceCli(args: readonly string[], out: Writable, err: Writable, registry: CaseRegistry = defaultRegistry()): Promise<number> {
  let parsed;
  try {
    parsed = parseCli(conformanceCli, args);
  } catch (error) {
    err.write(`${formatCliError('conformance', error)}\n${usageHint(conformanceCli, error)}`);
    return 2;
  }
  if (parsed.help) {
    out.write(formatHelp(conformanceCli));
    return 0;
  }
  const verbose = parsed.values.verbose;
  const paths = parsed.positionals;
  const reports: CaseReport[] = [];
  for (const path of paths) {
    let sets: string[];
    try {
      sets = await findFixtureSets(path);
    } catch (error) {
      err.write(`${formatCliError('conformance', error)}\n`);
      return 2;
    }
    for (const dir of sets) {
      try {
        await runFixtureSet(dir, registry, (r) => {
          reports.push(r);
          out.write(`${caseLine(r)}\n`);
          if (verbose)
            for (const c of r.checks)
              out.write(`    ${c.pass ? 'ok  ' : 'FAIL'} ${c.name}: ${fmt(c.rel)} (bound ${fmt(c.bound)})${c.note ? ` ${c.note}` : ''}\n`);
        });
      } catch (error) {
        // The set itself could not be read: every case of it is unaccounted for.
        reports.push({ set: dir, name: '*', type: '*', status: 'error', checks: [], worst: undefined, message: (error as Error).message, seconds: 0 });
        out.write(`ERROR     ${dir}: ${(error as Error).message}\n`);
      }
    }
  }
  const count = (s: CaseReport['status']): number => reports.filter((r) => r.status === s).length;
  const failed = reports.length - count('pass');
  out.write(
    `\n${reports.length} cases: ${count('pass')} passed, ${count('fail')} failed, ${count('error')} could not run, ${count('unsupported')} without a runner\n`,
  );
  return failed === 0 ? 0 : 1;
}
