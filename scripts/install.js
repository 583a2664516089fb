#!/usr/bin/env node
'use strict';
// `npm install` runs this: resolve libtorch (apt-installing it on Debian as root when missing),
// build the addon with cmake-js, compile the TypeScript. Nothing is downloaded by us.
const { build } = require('./build');
const { compileTypeScript } = require('./typescript');

try {
  if (process.env.DIFFTUNE_SKIP_NATIVE_BUILD === '1') {
    process.stderr.write('[difftune] DIFFTUNE_SKIP_NATIVE_BUILD=1: not building the native addon\n');
  } else {
    build('cmake', { install: true });
  }
  compileTypeScript();
} catch (error) {
  process.stderr.write(`[difftune] install failed: ${error.message}\n`);
  process.exit(1);
}
