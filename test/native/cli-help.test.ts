// `npm run <x> -- --help` for every script, as npm runs it: node dist/scripts/<x>.js (built by
// `node scripts/ensure-built.js --ts-only`, which npm test runs first). Help exits 0 before anything loads.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatHelp, type CliSpec } from '../../lib/util/cli-args';

const ROOT = path.join(__dirname, '..', '..');
const scripts = Object.entries(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts as Record<string, string>).flatMap(
  ([name, command]) => {
    const script = /node dist\/scripts\/([\w-]+)\.js/.exec(command)?.[1];
    return script === undefined ? [] : [[name, script] as const];
  },
);

test.each(scripts)('npm run %s -- --help prints the usage generated from its spec and exits 0', async (_name, script) => {
  const { cli } = (await import(path.join(ROOT, 'scripts', `${script}.ts`))) as { cli: CliSpec };
  const stdout = execFileSync(process.execPath, [path.join(ROOT, 'dist', 'scripts', `${script}.js`), '--help'], { encoding: 'utf8', timeout: 60_000 });
  expect(stdout).toBe(formatHelp(cli));
});
