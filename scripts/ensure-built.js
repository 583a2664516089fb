#!/usr/bin/env node
'use strict';
// Run before `npm test` and the recipes: rebuilds the addon (cmake-js) when native sources are newer
// than the binary, and compiles the TypeScript when lib/ or scripts/ are newer than dist/.
// `--ts-only` skips the native check (for recipes that never load the addon).
const { nativeIsStale, typescriptIsStale } = require('./freshness');
const { build } = require('./build');
const { compileTypeScript } = require('./typescript');

try {
  if (!process.argv.includes('--ts-only') && nativeIsStale()) {
    process.stderr.write('[difftune] native sources changed since the last build: rebuilding the addon\n');
    build('cmake');
  }
  if (typescriptIsStale()) compileTypeScript();
} catch (error) {
  process.stderr.write(`[difftune] ${error.message}\n`);
  process.exit(1);
}
