'use strict';
// Which build outputs are older than their sources (mtime), for ensure-built and the loader's advice.
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const ADDON_CANDIDATES = ['build-cmake/Release/difftune.node', 'build/Release/difftune.node'];

function newestMtime(entries) {
  let newest = 0;
  const visit = (p) => {
    let stat;
    try {
      stat = fs.statSync(p);
    } catch {
      return;
    }
    if (stat.isDirectory()) {
      for (const name of fs.readdirSync(p)) visit(path.join(p, name));
    } else if (/\.(cc|h|ts|json|gyp)$|CMakeLists\.txt$/.test(p) && !p.endsWith('.d.ts')) {
      newest = Math.max(newest, stat.mtimeMs);
    }
  };
  for (const e of entries) visit(path.join(ROOT, e));
  return newest;
}

function mtime(rel) {
  try {
    return fs.statSync(path.join(ROOT, rel)).mtimeMs;
  } catch {
    return 0;
  }
}

/** The addon the loader prefers: the most recently built of the cmake-js and node-gyp outputs. */
function newestAddon() {
  const built = ADDON_CANDIDATES.map((rel) => ({ rel, mtime: mtime(rel) })).filter((c) => c.mtime > 0);
  built.sort((a, b) => b.mtime - a.mtime);
  return built[0];
}

function nativeIsStale() {
  const addon = newestAddon();
  if (!addon) return true;
  return newestMtime(['native', 'CMakeLists.txt', 'binding.gyp']) > addon.mtime;
}

function typescriptIsStale() {
  const stamp = mtime('dist/.build-stamp');
  if (stamp === 0) return true;
  return newestMtime(['lib', 'scripts', 'tsconfig.json']) > stamp;
}

module.exports = { ROOT, ADDON_CANDIDATES, newestAddon, nativeIsStale, typescriptIsStale };
