'use strict';
// What the interop tier needs, checked once: the reference harness (../shared/reference from the
// repository root, or $DIFFTUNE_REFERENCE), a Python with torch, and the diffusers, transformers and peft
// exports its set-up scripts make. Plain JavaScript so that test/interop/run.js can check before jest
// starts; the tests read the launcher's answer from DIFFTUNE_INTEROP_ENV (or check again when run alone).
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const ENV_VAR = 'DIFFTUNE_INTEROP_ENV';

function referenceDir() {
  return path.resolve(process.env.DIFFTUNE_REFERENCE || process.env.DIFFTUNE_REFERENCE_DIR || path.join(ROOT, '..', 'shared', 'reference'));
}

function python() {
  return process.env.PYTHON || '/usr/bin/python3';
}

/**
 * { available: true, python, reference, torch, diffusers, transformers, peft, scipy } or
 * { available: false, reason } where reason says what is missing and how to set it up, in one line.
 */
function checkPrerequisites() {
  const reference = referenceDir();
  const setUp = `see ${path.join(reference, 'README.md')} (Set-up: python3-torch, setup.sh, setup_peft.sh, setup_t2i.sh)`;
  if (!fs.existsSync(path.join(reference, '_bootstrap_t2i.py'))) {
    return {
      available: false,
      reason: `no reference harness at ${reference}: set DIFFTUNE_REFERENCE=<folder> to the diffusers reference harness (shared/reference beside the repository), whose README says how to set it up`,
    };
  }
  const py = python();
  const probe = spawnSync(py, [path.join(__dirname, '..', 'py', 'versions.py')], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, DIFFTUNE_REFERENCE: reference },
  });
  if (probe.error) {
    const what = probe.error.code === 'ENOENT' ? `no ${py}` : `${py} failed to start (${probe.error.message})`;
    return {
      available: false,
      reason: `${what}: install Debian's python3-torch (apt-get install -y python3-torch) or set PYTHON to a python3 with torch; ${setUp}`,
    };
  }
  if (probe.status !== 0) {
    const lines = `${probe.stderr}`
      .trim()
      .split('\n')
      .filter((l) => l.trim() !== '');
    return { available: false, reason: `${lines.pop() ?? `${py} exited with ${probe.status}`}; ${setUp}` };
  }
  let versions;
  try {
    versions = JSON.parse(probe.stdout.trim().split('\n').pop());
  } catch {
    return { available: false, reason: `${py} ${path.join('test', 'interop', 'py', 'versions.py')} printed no versions: ${probe.stdout.trim().slice(-200)}` };
  }
  if (versions.diffusers !== '0.31.0') {
    return { available: false, reason: `the diffusers export is ${versions.diffusers}, not 0.31.0: re-run setup.sh with DIFFUSERS_TAG=v0.31.0; ${setUp}` };
  }
  return { available: true, python: py, ...versions, reference };
}

/** The launcher's answer when it left one, else a fresh check. */
function prerequisites() {
  const passed = process.env[ENV_VAR];
  if (passed) return JSON.parse(passed);
  return checkPrerequisites();
}

module.exports = { ENV_VAR, checkPrerequisites, prerequisites, referenceDir };
