'use strict';
// clang-format over native/ (`npm run format` rewrites, `npm run lint` checks with --check). clang-format
// is optional for users (the README's set-up never needs it): when it is missing this says so and skips,
// unless DIFFTUNE_REQUIRE_CLANG_FORMAT=1 (CI installs Debian 12's clang-format 14, whose output the
// tree is formatted with; other major versions may format a few lines differently).
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const check = process.argv.includes('--check');
const binary = process.env.CLANG_FORMAT || 'clang-format';

function sources(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) return sources(p);
    return /\.(cc|h)$/.test(entry.name) ? [path.relative(ROOT, p)] : [];
  });
}

const probe = spawnSync(binary, ['--version'], { encoding: 'utf8' });
if (probe.error || probe.status !== 0) {
  const message = `clang-format not found (tried "${binary}"; install it with \`apt-get install clang-format\` or set CLANG_FORMAT)`;
  if (process.env.DIFFTUNE_REQUIRE_CLANG_FORMAT === '1') {
    console.error(`${message}: DIFFTUNE_REQUIRE_CLANG_FORMAT=1 requires it`);
    process.exit(1);
  }
  console.warn(`${message}: skipping native/ formatting`);
  process.exit(0);
}

const files = sources(path.join(ROOT, 'native')).sort();
const args = check ? ['--dry-run', '-Werror', ...files] : ['-i', ...files];
const result = spawnSync(binary, args, { cwd: ROOT, stdio: 'inherit' });
if (result.status !== 0) {
  if (check) console.error('native/ is not clang-formatted: run `npm run format`');
  process.exit(result.status ?? 1);
}
