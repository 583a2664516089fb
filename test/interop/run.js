#!/usr/bin/env node
'use strict';
// `npm run test:interop [-- jest args]`: the interop tier. Checks its prerequisites first; when the
// reference harness, a Python with torch or the diffusers/transformers/peft exports are missing it says
// so in one line and exits 0 (skipped), otherwise it runs jest's interop project, which jest.config.js
// defines only under DIFFTUNE_INTEROP_TESTS=1.
const { spawnSync } = require('node:child_process');
const { ENV_VAR, checkPrerequisites } = require('./helpers/prerequisites');

const env = checkPrerequisites();
if (!env.available) {
  process.stdout.write(`test:interop skipped: ${env.reason}\n`);
  process.exit(0);
}
process.stdout.write(
  `test:interop: diffusers ${env.diffusers}, transformers ${env.transformers}, peft ${env.peft}, torch ${env.torch} (${env.python}; harness ${env.reference})\n`,
);
const jest = require.resolve('jest/bin/jest');
// --selectProjects last: it takes a list, and would swallow the test paths that follow it as project names.
const run = spawnSync(process.execPath, [jest, ...process.argv.slice(2), '--selectProjects', 'interop'], {
  stdio: 'inherit',
  env: { ...process.env, DIFFTUNE_INTEROP_TESTS: '1', [ENV_VAR]: JSON.stringify(env) },
});
process.exit(run.status ?? 1);
