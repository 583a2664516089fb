#!/usr/bin/env bash
# The GPU check, run on the device machine (CUDA PyTorch 2.x at python3, CMake, ninja, nvcc; no Node, no
# network) from the repository root, in one or more calls on a warm machine (scripts/gpu/README.md):
#   stage  keep the carried part(s) of .cache/gpu/p*/ (made by scripts/gpu/pack.sh) in /tmp for the next call
#   run    the same, then: unpack Node and node_modules, build the addon with plain CMake against python3's
#          torch, compile the TypeScript, run the GPU tier (test/gpu) and a short device benchmark.
# Everything it learns goes to $OUT (at most 8 files): env.txt, build.log, test-gpu.log, test-gpu.json,
# bench.json, summary.txt. Phases have their own time limits so that a hang in one still returns the rest.
set -uo pipefail
MODE=${1:-run}
ROOT=$(pwd)
OUT=${OUT:-$ROOT/.cache/gpu/out}
mkdir -p "$OUT"
KEEP=/tmp/difftune-gpu
mkdir -p "$KEEP/parts"
SUMMARY="$OUT/summary.txt"
note() { echo "$*" | tee -a "$SUMMARY"; }

# 1. The carried parts (each folder .cache/gpu/pN holds one part and the MANIFEST).
for d in .cache/gpu/p[0-9]*; do
  [ -d "$d" ] || continue
  cp -f "$d"/part-* "$KEEP/parts/" && cp -f "$d/MANIFEST" "$KEEP/MANIFEST"
done
if [ ! -f "$KEEP/MANIFEST" ]; then
  note "no carried parts: run scripts/gpu/pack.sh on the CPU machine and carry .cache/gpu/pN"
  exit 2
fi
PARTS=$(sed -n 's/^parts=//p' "$KEEP/MANIFEST")
SUM=$(sed -n 's/^sha256=//p' "$KEEP/MANIFEST")
HAVE=$(ls "$KEEP"/parts/part-* 2>/dev/null | wc -l)
note "parts: $HAVE of $PARTS kept in $KEEP"
if [ "$MODE" = stage ]; then exit 0; fi
if [ "$HAVE" -ne "$PARTS" ]; then
  note "missing parts: $HAVE of $PARTS (each call that carries one must run on the same warm machine)"
  exit 2
fi

# 2. Node and node_modules.
if [ ! -x "$KEEP/root/node/bin/node" ]; then
  cat "$KEEP"/parts/part-* >"$KEEP/bundle.tar.xz"
  echo "$SUM  $KEEP/bundle.tar.xz" | sha256sum -c --quiet || { note "the joined parts do not match sha256 $SUM"; exit 2; }
  mkdir -p "$KEEP/root" && tar -xJf "$KEEP/bundle.tar.xz" -C "$KEEP/root" && rm -f "$KEEP/bundle.tar.xz"
fi
export PATH="$KEEP/root/node/bin:$PATH"
# node_modules is git-ignored: a link into the unpacked bundle (a real folder there is left alone).
[ -e node_modules ] || ln -s "$KEEP/root/node_modules" node_modules
{
  echo "node $(node --version)"
  python3 -c 'import torch,sys;print("python", sys.version.split()[0]);print("torch", torch.__version__, "cuda", torch.version.cuda, "cxx11abi", torch.compiled_with_cxx11_abi());print("gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)'
  cmake --version | head -1
  ninja --version
  nvcc --version 2>/dev/null | tail -1
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# 3. The addon: plain CMake against python3's torch (its TorchConfig sets the C++ ABI flag; CMakeLists.txt
# picks C++20 for torch >= 2.10). nccl.h comes from the nvidia-nccl wheel beside torch.
TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
NCCL_INC=$(python3 -c 'import os,nvidia.nccl as n;print(os.path.join(list(n.__path__)[0],"include"))' 2>/dev/null || true)
EXTRA_FLAGS=""
[ -n "$NCCL_INC" ] && [ -f "$NCCL_INC/nccl.h" ] && EXTRA_FLAGS="-I$NCCL_INC"
CUDA_ROOT=$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")")
START=$(date +%s)
timeout 420 bash -c "
  cmake -S . -B build-cmake -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH='$TORCH_PREFIX' \
    -DCUDAToolkit_ROOT='$CUDA_ROOT' -DTORCH_CUDA_ARCH_LIST=9.0 -DCMAKE_CXX_FLAGS='$EXTRA_FLAGS' &&
  cmake --build build-cmake -j \$(nproc)
" >"$OUT/build.log" 2>&1
BUILD=$?
note "addon build: exit $BUILD in $(($(date +%s) - START)) s (nccl.h: ${NCCL_INC:-not found})"
if [ "$BUILD" -ne 0 ]; then tail -40 "$OUT/build.log"; exit 1; fi
export DIFFTUNE_ADDON="$ROOT/build-cmake/Release/difftune.node"

# 4. The TypeScript (dist/, which test/gpu/run.js and the benchmark load).
# tsc emits despite type errors (someone's work in progress in the tree): those are noted, not fatal.
timeout 180 node node_modules/typescript/bin/tsc -p tsconfig.json >>"$OUT/build.log" 2>&1 || note "tsc reported errors (build.log); going on with what it emitted"
[ -f dist/lib/native/load.js ] || { note "tsc emitted no dist/"; exit 1; }

# 5. The GPU tier.
START=$(date +%s)
timeout 360 node test/gpu/run.js --ci --json --outputFile="$OUT/test-gpu.json" >"$OUT/test-gpu.log" 2>&1
TESTS=$?
note "test:gpu: exit $TESTS in $(($(date +%s) - START)) s"
grep -E '^(Tests|Test Suites):|✕' "$OUT/test-gpu.log" | head -40 | tee -a "$SUMMARY"

# 6. A short device benchmark: the bf16 and float32 GEMM peak through the addon, beside torch's own.
timeout 90 node -e '
  const { runtimeInfo, gemmBenchmark } = require("./dist/lib/native/runtime");
  (async () => {
    const info = await runtimeInfo();
    const rows = [];
    for (const dtype of ["bfloat16", "float32"]) rows.push({ dtype, ...(await gemmBenchmark({ n: 8192, reps: 10, device: "cuda", dtype })) });
    console.log(JSON.stringify({ info, gemm: rows }, null, 1));
  })().catch((e) => { console.error(e); process.exit(1); });
' >"$OUT/bench.json" 2>>"$OUT/test-gpu.log"
note "bench: exit $? ($(tr -d '\n' <"$OUT/bench.json" | head -c 300))"
exit "$TESTS"
