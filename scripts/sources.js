#!/usr/bin/env node
'use strict';
// The native sources, listed once for both build files (CMakeLists.txt globs the same folder).
const fs = require('fs');
const path = require('path');

function nativeSources(root = path.resolve(__dirname, '..')) {
  const out = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.cc')) out.push(path.relative(root, full).split(path.sep).join('/'));
    }
  };
  walk(path.join(root, 'native'));
  return out;
}

module.exports = { nativeSources };

if (require.main === module) process.stdout.write(nativeSources().join(' '));
