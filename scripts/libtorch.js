#!/usr/bin/env node
'use strict';
// The one libtorch resolver, shared by CMakeLists.txt (via scripts/build.js) and binding.gyp.
// Plain JavaScript because binding.gyp runs it before any TypeScript is compiled.
//
// Order: LIBTORCH / Torch_DIR from the environment → an installed Python torch
// (torch.utils.cmake_prefix_path: how CUDA users bring a GPU build) → the system install
// (Debian's libtorch-dev). When none is found on Debian as root, it installs libtorch-dev and
// OpenBLAS with apt; otherwise it stops with a message naming what to install or set.
//
// CLI:  node scripts/libtorch.js [--install] --json | --torch-dir | --gyp include_dirs|libraries|cflags|ldflags|defines

const fs = require('fs');
const path = require('path');
const { execFileSync, spawnSync } = require('child_process');

const PREFIX = '[difftune/libtorch]';

function log(message) {
  process.stderr.write(`${PREFIX} ${message}\n`);
}

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** The folder holding TorchConfig.cmake, from a libtorch root, a cmake prefix, or the folder itself. */
function torchDirFrom(candidate) {
  if (!candidate) return undefined;
  const options = [candidate, path.join(candidate, 'share', 'cmake', 'Torch'), path.join(candidate, 'Torch'), path.join(candidate, 'lib', 'cmake', 'Torch')];
  return options.find((dir) => isFile(path.join(dir, 'TorchConfig.cmake')));
}

/** Everything binding.gyp needs, read from the files of the install that TorchConfig.cmake belongs to. */
function describeInstall(torchDir, source) {
  const config = fs.readFileSync(path.join(torchDir, 'TorchConfig.cmake'), 'utf8');
  // A libtorch or pip layout keeps the cmake files at <root>/share/cmake/Torch; Debian at
  // /usr/lib/<multiarch>/cmake/Torch with headers in /usr/include.
  const prefixes = [path.resolve(torchDir, '../../..'), path.resolve(torchDir, '../../../..')];
  const includeRoot = prefixes
    .map((p) => path.join(p, 'include'))
    .find((inc) => isFile(path.join(inc, 'torch', 'csrc', 'api', 'include', 'torch', 'version.h')));
  if (!includeRoot) {
    throw new Error(
      `found ${path.join(torchDir, 'TorchConfig.cmake')} but no torch headers next to it ` +
        `(looked for include/torch/csrc/api/include/torch/version.h under ${prefixes.join(' and ')})`,
    );
  }
  const libCandidates = [path.resolve(torchDir, '../..'), ...prefixes.map((p) => path.join(p, 'lib'))];
  const libDir = libCandidates.find((dir) => isFile(path.join(dir, 'libtorch.so')) || isFile(path.join(dir, 'libtorch.dylib')));
  if (!libDir) throw new Error(`found ${torchDir} but no libtorch.so in ${libCandidates.join(', ')}`);

  // torch >= 2.8 keeps the numbers in torch/headeronly/version.h, included from the old place.
  const versionFiles = [
    path.join(includeRoot, 'torch', 'headeronly', 'version.h'),
    path.join(includeRoot, 'torch', 'csrc', 'api', 'include', 'torch', 'version.h'),
  ];
  const versionText = versionFiles
    .filter(isFile)
    .map((f) => fs.readFileSync(f, 'utf8'))
    .join('\n');
  const num = (name) => {
    const m = new RegExp(`#define\\s+TORCH_VERSION_${name}\\s+(\\d+)`).exec(versionText);
    return m ? Number(m[1]) : 0;
  };
  const version = { major: num('MAJOR'), minor: num('MINOR'), patch: num('PATCH') };
  const abiMatch = /_GLIBCXX_USE_CXX11_ABI=(\d)/.exec(config);
  const abi = abiMatch ? Number(abiMatch[1]) : 1;
  const cuda = isFile(path.join(libDir, 'libtorch_cuda.so')) || isFile(path.join(libDir, 'libc10_cuda.so'));
  // libtorch 2.x headers use C++17 features; C++20 only where the headers demand it.
  const cxxStd = process.env.DIFFTUNE_CXX_STD || (version.major >= 3 || (version.major === 2 && version.minor >= 10) ? '20' : '17');
  return {
    source,
    torchDir,
    // The install prefix: CMake gets it as CMAKE_PREFIX_PATH, so it searches this install first.
    root: path.dirname(includeRoot),
    includeDirs: [includeRoot, path.join(includeRoot, 'torch', 'csrc', 'api', 'include')],
    libDir,
    libraries: cuda ? ['c10', 'torch', 'torch_cpu', 'c10_cuda', 'torch_cuda'] : ['c10', 'torch', 'torch_cpu'],
    abi,
    cuda,
    cxxStd,
    version: `${version.major}.${version.minor}.${version.patch}`,
  };
}

function fromEnvironment() {
  for (const name of ['LIBTORCH', 'Torch_DIR', 'TORCH_DIR']) {
    const value = process.env[name];
    if (!value) continue;
    const dir = torchDirFrom(value);
    if (!dir) {
      throw new Error(
        `${name}=${value} does not contain TorchConfig.cmake (looked in ${value}, ` +
          `${path.join(value, 'share/cmake/Torch')}). Point LIBTORCH at an unpacked libtorch folder or ` +
          'Torch_DIR at the folder holding TorchConfig.cmake.',
      );
    }
    return describeInstall(dir, `environment variable ${name}`);
  }
  return undefined;
}

function fromPython() {
  if (process.env.DIFFTUNE_SKIP_PYTHON_TORCH === '1') return undefined;
  const pythons = [process.env.PYTHON, 'python3', 'python'].filter(Boolean);
  const code = 'import json, torch, torch.utils; print(json.dumps({"prefix": torch.utils.cmake_prefix_path, "version": torch.__version__}))';
  for (const python of pythons) {
    const result = spawnSync(python, ['-c', code], { encoding: 'utf8', timeout: 60000, stdio: ['ignore', 'pipe', 'ignore'] });
    if (result.status !== 0 || !result.stdout) continue;
    try {
      const info = JSON.parse(result.stdout.trim().split('\n').pop());
      const dir = torchDirFrom(info.prefix);
      if (dir) return describeInstall(dir, `Python torch ${info.version} (${python})`);
    } catch {
      // not a usable torch: keep looking
    }
  }
  return undefined;
}

function multiarch() {
  try {
    return execFileSync('gcc', ['-print-multiarch'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'x86_64-linux-gnu';
  }
}

function fromSystem() {
  const candidates = [
    `/usr/lib/${multiarch()}/cmake/Torch`,
    '/usr/lib/cmake/Torch',
    '/usr/local/lib/cmake/Torch',
    '/usr/local/libtorch/share/cmake/Torch',
    '/opt/libtorch/share/cmake/Torch',
    '/usr/local/share/cmake/Torch',
  ];
  const dir = candidates.find((c) => isFile(path.join(c, 'TorchConfig.cmake')));
  return dir ? describeInstall(dir, `system install (${dir})`) : undefined;
}

function isDebian() {
  return isFile('/etc/debian_version');
}

function isRoot() {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function aptInstall(packages, why = 'libtorch not found') {
  log(`${why}: installing ${packages.join(' ')} with apt-get (Debian, running as root)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const update = spawnSync('apt-get', ['update'], { stdio: ['ignore', 2, 2], env });
  if (update.status !== 0) log('apt-get update failed; trying the install with the package lists already here');
  const install = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { stdio: ['ignore', 2, 2], env });
  if (install.status !== 0) throw new Error(`apt-get install ${packages.join(' ')} failed (exit ${install.status})`);
  preferOpenmpBlas();
}

// libtorch runs its intra-op threads on OpenMP; Debian's alternatives may pick the pthread OpenBLAS
// (pulled in by other packages), whose own thread pool then competes with OpenMP's. Pick OpenMP's.
function preferOpenmpBlas() {
  const arch = multiarch();
  for (const lib of ['libblas.so.3', 'liblapack.so.3']) {
    const target = `/usr/lib/${arch}/openblas-openmp/${lib}`;
    if (!isFile(target)) continue;
    const r = spawnSync('update-alternatives', ['--set', `${lib}-${arch}`, target], { stdio: ['ignore', 2, 2] });
    if (r.status === 0) log(`using the OpenMP OpenBLAS for ${lib}`);
  }
}

const HOW_TO_FIX = [
  'difftune needs libtorch (the C++ distribution of PyTorch), 1.13 or 2.x. Any one of these works:',
  '  - Debian/Ubuntu:   sudo apt-get install libtorch-dev libopenblas0-openmp   (then npm install again)',
  '  - a libtorch zip:  unpack it and set LIBTORCH=/path/to/libtorch',
  '  - a CMake config:  set Torch_DIR=/path/containing/TorchConfig.cmake',
  '  - a Python torch:  pip install torch (CPU or CUDA build) in the python3 on PATH, or set PYTHON=/path/to/python',
].join('\n');

/** The BLAS libtorch will use through libblas.so.3 (Debian's alternatives), and whether it is the slow reference one. */
function blasInfo() {
  const link = `/usr/lib/${multiarch()}/libblas.so.3`;
  let target;
  try {
    target = fs.realpathSync(link);
  } catch {
    return { library: 'unknown', reference: false };
  }
  const reference = /\/blas\/libblas\.so/.test(target) && !/openblas|blis|mkl|atlas/.test(target);
  return { library: target, reference };
}

function warnAboutBlas() {
  const blas = blasInfo();
  if (blas.reference) {
    log(
      `warning: BLAS is Debian's reference implementation (${blas.library}); matrix multiplies run ~40x slower. ` +
        'Install OpenBLAS: sudo apt-get install libopenblas0-openmp',
    );
  }
  return blas;
}

/** Resolves libtorch; with install=true, may apt-install it on Debian as root. Throws with instructions. */
function resolveLibtorch({ install = false } = {}) {
  const tried = [];
  const attempts = [
    ['LIBTORCH / Torch_DIR environment variables', fromEnvironment],
    ['a Python torch (python3 -c "import torch")', fromPython],
    ['the system install (Debian libtorch-dev, /usr/local, /opt/libtorch)', fromSystem],
  ];
  for (const [what, attempt] of attempts) {
    const found = attempt();
    if (found) {
      if (found.source.startsWith('system') && isDebian() && isRoot() && install && blasInfo().reference) {
        aptInstall(['libopenblas0-openmp']);
      }
      // Data-parallel training (native/dist) compiles against Gloo's headers, which Debian's libtorch-dev
      // does not pull in; without them the addon builds with no distributed backend.
      if (
        found.source.startsWith('system') &&
        isDebian() &&
        isRoot() &&
        install &&
        !isFile('/usr/include/gloo/config.h') &&
        process.env.DIFFTUNE_NO_APT !== '1'
      ) {
        aptInstall(['libgloo-dev'], 'Gloo headers not found (data-parallel training)');
      }
      found.blas = warnAboutBlas();
      return found;
    }
    tried.push(what);
  }
  if (install && isDebian() && isRoot() && process.env.DIFFTUNE_NO_APT !== '1') {
    aptInstall(['libtorch-dev', 'libopenblas0-openmp', 'libgloo-dev']);
    const found = fromSystem();
    if (found) {
      found.blas = warnAboutBlas();
      return found;
    }
    tried.push('apt-get install libtorch-dev (installed, but TorchConfig.cmake was still not found)');
  }
  const err = new Error(`libtorch was not found. Tried: ${tried.join('; ')}.\n${HOW_TO_FIX}`);
  err.code = 'ERR_LIBTORCH_NOT_FOUND';
  throw err;
}

function gypValue(info, what) {
  switch (what) {
    case 'include_dirs':
      return info.includeDirs.join(' ');
    case 'libraries':
      return [...info.libraries.map((l) => `-l${l}`)].join(' ');
    case 'ldflags':
      // rpath: the .node finds libtorch without LD_LIBRARY_PATH. no-as-needed: torch_cuda registers
      // its kernels from static initialisers and must stay linked although no symbol is referenced.
      return `-L${info.libDir} -Wl,-rpath,${info.libDir} -Wl,--no-as-needed`;
    case 'cflags':
      return `-std=c++${info.cxxStd}`;
    case 'defines':
      // DIFFTUNE_WITH_NCCL: native/dist may use NCCL where libtorch is a CUDA build (and nccl.h is found).
      return `_GLIBCXX_USE_CXX11_ABI=${info.abi}${info.cuda ? ' DIFFTUNE_WITH_NCCL' : ''}`;
    default:
      throw new Error(`unknown --gyp value ${what}`);
  }
}

module.exports = { resolveLibtorch, blasInfo, HOW_TO_FIX };

if (require.main === module) {
  const args = process.argv.slice(2);
  try {
    const cached = process.env.DIFFTUNE_LIBTORCH_JSON;
    const info = cached ? JSON.parse(cached) : resolveLibtorch({ install: args.includes('--install') });
    const gyp = args.indexOf('--gyp');
    if (gyp >= 0) process.stdout.write(gypValue(info, args[gyp + 1]));
    else if (args.includes('--torch-dir')) process.stdout.write(info.torchDir);
    else process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
  } catch (error) {
    process.stderr.write(`${PREFIX} ${error.message}\n`);
    process.exit(1);
  }
}
