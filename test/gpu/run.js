#!/usr/bin/env node
'use strict';
// `npm run test:gpu [-- jest args]`: the GPU tier. Where this addon's libtorch reports no CUDA device it
// says so in one line and exits 0 (skipped); otherwise it runs jest's gpu project with TF32 off, so the
// float32 comparisons in test/gpu measure float32 (test/gpu/gpu.ts states the tolerances).
const path = require('node:path');
const { spawnSync } = require('node:child_process');

// The compiled library (npm run test:gpu builds it first): the same loader the tests use.
const { loadNative } = require(path.join(__dirname, '..', '..', 'dist', 'lib', 'native', 'load.js'));
const info = loadNative().runtimeInfo();
if (!info.cudaAvailable || info.cudaDeviceCount === 0) {
  process.stdout.write(
    `test:gpu skipped: runtimeInfo() reports backend "cpu", ${info.cudaDeviceCount} CUDA device(s) (libtorch ${info.torchVersion}); the GPU tier needs a CUDA libtorch and a visible GPU\n`,
  );
  process.exit(0);
}
process.stdout.write(`test:gpu: libtorch ${info.torchVersion}, ${info.cudaDeviceCount} CUDA device(s)\n`);
const jest = require.resolve('jest/bin/jest');
// --selectProjects last: it takes a list, and would swallow the test paths that follow it as project names.
const run = spawnSync(process.execPath, [jest, ...process.argv.slice(2), '--selectProjects', 'gpu'], {
  stdio: 'inherit',
  env: { NVIDIA_TF32_OVERRIDE: '0', ...process.env, DIFFTUNE_GPU_TESTS: '1' },
});
process.exit(run.status ?? 1);
