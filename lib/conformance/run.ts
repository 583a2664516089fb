/**
 * Running fixture sets: every case of a set through the registry, with a report per case. A case
 * fails when any comparison exceeds its bound, when it throws (it could not be run), or when no
 * runner exists for its type: nothing is skipped.
 */
import { promises as fs } from 'node:fs';
import * as nodePath from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors';
import type { Check } from './compare';
import { CASES_FILE, FixtureSet } from './fixture-set';
import type { CaseRegistry } from './registry';

export type CaseStatus = 'pass' | 'fail' | 'error' | 'unsupported';

export interface CaseReport {
  set: string;
  name: string;
  type: string;
  status: CaseStatus;
  checks: Check[];
  /** The check with the largest rel / bound ratio (failing ones first). */
  worst: Check | undefined;
  /** For error and unsupported: what went wrong. */
  message?: string;
  seconds: number;
}

export interface SetReport {
  set: string;
  dir: string;
  cases: CaseReport[];
}

export const INDEX_FILE = 'index.json';

/** The check that matters most: a failure over a pass, then the largest rel relative to its bound. */
export function worstCheck(checks: readonly Check[]): Check | undefined {
  const score = (c: Check): number => (c.bound === 0 ? (c.rel === 0 ? 0 : Infinity) : c.rel / c.bound);
  let worst: Check | undefined;
  for (const c of checks) {
    if (worst === undefined || Number(!c.pass) > Number(!worst.pass) || (c.pass === worst.pass && score(c) > score(worst))) worst = c;
  }
  return worst;
}

export async function runCase(set: FixtureSet, name: string, registry: CaseRegistry): Promise<CaseReport> {
  const fixtureCase = set.cases.find((c) => c.name === name);
  if (fixtureCase === undefined) throw new ConfigError(`${set.resolve(CASES_FILE)}: no case named "${name}"`);
  const base = { set: set.name, name, type: fixtureCase.type };
  const runner = registry.get(fixtureCase.type);
  const started = process.hrtime.bigint();
  const seconds = (): number => Number(process.hrtime.bigint() - started) / 1e9;
  if (runner === undefined) {
    return { ...base, status: 'unsupported', checks: [], worst: undefined, message: `no runner for case type "${fixtureCase.type}"`, seconds: 0 };
  }
  try {
    const checks = await runner(set, fixtureCase);
    if (checks.length === 0) return { ...base, status: 'error', checks, worst: undefined, message: 'the runner compared nothing', seconds: seconds() };
    const status = checks.every((c) => c.pass) ? 'pass' : 'fail';
    return { ...base, status, checks, worst: worstCheck(checks), seconds: seconds() };
  } catch (error) {
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    return { ...base, status: 'error', checks: [], worst: undefined, message, seconds: seconds() };
  }
}

/** Runs every case of the set in `dir`; `options.device` places the models and case tensors (default "cpu"). */
export async function runFixtureSet(
  dir: string,
  registry: CaseRegistry,
  onCase?: (report: CaseReport) => void,
  options: { device?: string } = {},
): Promise<SetReport> {
  const set = await FixtureSet.open(dir, options);
  const cases: CaseReport[] = [];
  for (const c of set.cases) {
    const report = await runCase(set, c.name, registry);
    onCase?.(report);
    cases.push(report);
  }
  return { set: set.name, dir, cases };
}

const indexSchema = z.object({ sets: z.array(z.object({ path: z.string() }).passthrough()) }).passthrough();

async function isFile(path: string): Promise<boolean> {
  return (await fs.stat(path).catch(() => undefined))?.isFile() ?? false;
}

/**
 * The set folders a path names: a set folder (with cases.json); a folder with index.json (every set
 * it lists); or a folder whose subfolders are sets (e.g. fixtures/diffusers/schedulers).
 */
export async function findFixtureSets(path: string): Promise<string[]> {
  if (await isFile(nodePath.join(path, CASES_FILE))) return [path];
  const index = nodePath.join(path, INDEX_FILE);
  if (await isFile(index)) {
    let json: unknown;
    try {
      json = JSON.parse(await fs.readFile(index, 'utf8'));
    } catch (error) {
      throw new ConfigError(`${index}: invalid JSON: ${(error as Error).message}`, { cause: error });
    }
    const parsed = indexSchema.safeParse(json);
    if (!parsed.success) throw new ConfigError(`${index}: expected {"sets": [{"path": ...}, ...]}: ${parsed.error.issues[0]!.message}`);
    return parsed.data.sets.map((s) => nodePath.join(path, s.path));
  }
  const entries = await fs.readdir(path, { withFileTypes: true }).catch(() => undefined);
  if (entries === undefined) throw new ConfigError(`${path}: not a folder`);
  const sets: string[] = [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.isDirectory() && (await isFile(nodePath.join(path, e.name, CASES_FILE)))) sets.push(nodePath.join(path, e.name));
  }
  if (sets.length === 0) throw new ConfigError(`${path}: no ${CASES_FILE}, no ${INDEX_FILE}, and no subfolder holding a ${CASES_FILE}`);
  return sets;
}
