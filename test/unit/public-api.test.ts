// lib/index.ts is the public API: what the README's examples import from 'difftune', and no internals.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as difftune from '../../lib/index';

const ROOT = path.join(__dirname, '..', '..');

test("every name the README imports from 'difftune' is exported", () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const imports = [...readme.matchAll(/import \{([^}]+)\} from 'difftune'/g)].flatMap((m) =>
    m[1]!
      .split(',')
      .map((n) => n.trim())
      .filter(Boolean),
  );
  expect(imports.length).toBeGreaterThanOrEqual(15);
  expect(imports.filter((name) => !(name in difftune))).toEqual([]);
});

test('the API re-exports no conformance, demo, benchmark, report or data-parallel internals', () => {
  const index = fs.readFileSync(path.join(ROOT, 'lib', 'index.ts'), 'utf8');
  const from = [...index.matchAll(/from '\.\/([^']+)'/g)].map((m) => m[1]!);
  expect(from.filter((p) => /^(conformance|demo|bench|report|distributed|util)\//.test(p))).toEqual([]);
  for (const internal of [
    'runFixtureSet',
    'defaultRegistry',
    'runTransferDemo',
    'runTransferStudy',
    'benchDataParallel',
    'joinDataParallel',
    'launchWorkers',
    'parseLaunchArgs',
    'ProcessGroup',
    'gemmBenchmark',
    'Trainer',
    'concat',
    'parseLenientJson',
    // the pipelines' shared pieces and the bucketing internals: img2img() and data.buckets are the API
    'denoise',
    'promptBatch',
    'preprocessImage',
    'img2imgTimesteps',
    'planBuckets',
    'bucketSettings',
  ]) {
    expect(internal in difftune).toBe(false);
  }
});

test('the pipelines are public: txt2img, img2img, sample', () => {
  for (const name of ['txt2img', 'img2img', 'sample', 'loadStableDiffusion']) expect(typeof (difftune as Record<string, unknown>)[name]).toBe('function');
});

test('every error class is public', () => {
  const errors = fs.readFileSync(path.join(ROOT, 'lib', 'errors.ts'), 'utf8');
  const classes = [...errors.matchAll(/^export class (\w+)/gm)].map((m) => m[1]!);
  expect(classes).toContain('DifftuneError');
  expect(classes.filter((name) => !(name in difftune))).toEqual([]);
});
