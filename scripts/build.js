#!/usr/bin/env node
'use strict';
// Builds the native addon: `node scripts/build.js cmake` (cmake-js → build-cmake/Release/difftune.node)
// or `node scripts/build.js gyp` (node-gyp → build/Release/difftune.node). Separate output folders
// because each tool wipes its own. libtorch is resolved once here and handed to both tools.
const fs = require('fs');
const path = require('path');
const os = require('os');
const { spawnSync } = require('child_process');
const { resolveLibtorch } = require('./libtorch');

const ROOT = path.resolve(__dirname, '..');

function log(message) {
  process.stderr.write(`[difftune/build] ${message}\n`);
}

// Builds take both cores; two at once (two shells, two agents) would thrash. flock queues them.
function hasFlock() {
  return spawnSync('flock', ['--version'], { stdio: 'ignore' }).status === 0;
}

function run(command, args, env) {
  log(`${command} ${args.join(' ')}`);
  const lock = path.join(os.tmpdir(), 'difftune-build.lock');
  const [cmd, argv] = hasFlock() ? ['flock', [lock, command, ...args]] : [command, args];
  const result = spawnSync(cmd, argv, { cwd: ROOT, stdio: 'inherit', env });
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`${path.basename(command)} exited with ${result.status}`);
}

function hasCcache() {
  return spawnSync('ccache', ['--version'], { stdio: 'ignore' }).status === 0;
}

// Node's own headers next to the running binary (Debian: /usr/include/node): nothing to download.
function localNodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

function build(tool, { install = false } = {}) {
  const torch = resolveLibtorch({ install });
  log(`libtorch ${torch.version} (${torch.cuda ? 'CUDA' : 'CPU'}) from ${torch.source}`);
  const jobs = String(Math.max(1, Math.min(os.cpus().length, 8)));
  const env = { ...process.env, DIFFTUNE_LIBTORCH_JSON: JSON.stringify(torch), CMAKE_BUILD_PARALLEL_LEVEL: jobs };
  const bin = (name) => {
    const local = path.join(ROOT, 'node_modules', '.bin', name);
    return fs.existsSync(local) ? local : name;
  };
  if (tool === 'cmake') {
    run(bin('cmake-js'), ['build', '--out', 'build-cmake', `--CDTorch_DIR=${torch.torchDir}`, `--CDCMAKE_PREFIX_PATH=${torch.root}`, '--parallel', jobs], env);
    return path.join(ROOT, 'build-cmake', 'Release', 'difftune.node');
  }
  if (tool === 'gyp') {
    if (hasCcache() && !env.CXX) {
      env.CXX = 'ccache g++';
      env.CC = 'ccache gcc';
    }
    const args = ['rebuild', '--jobs', jobs];
    const nodedir = localNodeDir();
    if (nodedir) args.push(`--nodedir=${nodedir}`);
    run(bin('node-gyp'), args, env);
    return path.join(ROOT, 'build', 'Release', 'difftune.node');
  }
  throw new Error(`unknown build tool "${tool}": expected cmake or gyp`);
}

module.exports = { build };

if (require.main === module) {
  const tool = process.argv[2] || 'cmake';
  try {
    const out = build(tool, { install: process.argv.includes('--install') });
    log(`built ${path.relative(ROOT, out)}`);
  } catch (error) {
    log(`build failed: ${error.message}`);
    process.exit(1);
  }
}
