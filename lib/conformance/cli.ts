/**
 * `npm run conformance -- <set-dir | folder-with-index.json | folder-of-sets>... [--verbose]`: runs
 * fixture sets against difftune and prints, per case, its worst relative error against its bound.
 * Exit code 1 when any case fails, cannot be run, or has no runner; 2 on bad arguments.
 */
import type { Writable } from 'node:stream';
import { formatCliError } from '../errors';
import { defaultRegistry } from './default-registry';
import type { CaseRegistry } from './registry';
import { findFixtureSets, runFixtureSet, type CaseReport } from './run';

const USAGE = 'usage: npm run conformance -- <set-dir | folder-with-index.json | folder-of-sets>... [--verbose]';

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
  const verbose = args.includes('--verbose');
  const paths = args.filter((a) => a !== '--verbose');
  const unknownFlag = paths.find((a) => a.startsWith('--'));
  if (paths.length === 0 || unknownFlag !== undefined) {
    err.write(`${unknownFlag ? `unknown option ${unknownFlag}\n` : ''}${USAGE}\n`);
    return 2;
  }
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
          if (verbose) for (const c of r.checks) out.write(`    ${c.pass ? 'ok  ' : 'FAIL'} ${c.name}: ${fmt(c.rel)} (bound ${fmt(c.bound)})${c.note ? ` ${c.note}` : ''}\n`);
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
