'use strict';
// Compiles lib/ and scripts/ to dist/ and stamps the time, so ensure-built knows when it is stale.
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { ROOT } = require('./freshness');

function compileTypeScript() {
  let tsc;
  try {
    tsc = require.resolve('typescript/bin/tsc', { paths: [ROOT] });
  } catch {
    if (fs.existsSync(path.join(ROOT, 'dist', 'lib', 'index.js'))) return; // installed package: dist ships
    throw new Error('TypeScript is not installed and dist/ is missing: run npm install in the difftune folder');
  }
  const started = Date.now();
  process.stderr.write('[difftune] compiling TypeScript (tsc)\n');
  const result = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.json')], { cwd: ROOT, stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`tsc failed (exit ${result.status})`);
  fs.mkdirSync(path.join(ROOT, 'dist'), { recursive: true });
  fs.writeFileSync(path.join(ROOT, 'dist', '.build-stamp'), `${new Date(started).toISOString()}\n`);
  // Stamp with the start time: a source edited during the compile still counts as newer.
  fs.utimesSync(path.join(ROOT, 'dist', '.build-stamp'), started / 1000, started / 1000);
}

module.exports = { compileTypeScript };
