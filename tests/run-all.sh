#!/usr/bin/env bash
# Runs every lowbit test on a Debian 12 machine, setting up and building first
# (deploy/build.sh): the C++ tests through ctest (kernels, engine, server,
# including end-to-end runs on the real models), the kernel tests again for
# ARM64 (cross-compiled, under qemu-aarch64) and the Python tests through
# pytest (the converted models against ONNX Runtime, engine parity with ONNX
# Runtime, and the client SDK against a real lowbitd).
#
#   tests/run-all.sh                 everything
#   CTEST_ARGS="-L unit" tests/run-all.sh   a subset of the C++ tests
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/deploy/build.sh"

export LOWBIT_MODEL_REPO="$repo/models"
export LOWBIT_IMAGES="$repo/data/images"
export LOWBIT_BIN="$repo/build/engine/lowbit"
export LOWBIT_SERVER_BIN="$repo/build/server/lowbitd"

status=0
echo "== C++ tests (ctest)"
(cd "$repo/build" && ctest --output-on-failure -j 2 ${CTEST_ARGS:-}) || status=1

echo "== ARM64 kernel tests (cross-compiled, run under qemu-aarch64)"
arm64_dir="$repo/build-arm64"
if cmake -S "$repo" -B "$arm64_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
     -DCMAKE_TOOLCHAIN_FILE="$repo/cmake/aarch64-linux-gnu.cmake" \
     -DLOWBIT_KERNELS_ONLY=ON -DLOWBIT_BUILD_BENCHMARKS=OFF >/dev/null &&
   cmake --build "$arm64_dir" -j "$(nproc)"; then
  (cd "$arm64_dir" && ctest --output-on-failure -j 2 -L kernels) || status=1
else
  echo "ARM64 cross build failed" >&2
  status=1
fi

echo "== Python tests (pytest)"
python_tests=()
for d in tests/models tests/engine tests/bench clients/python/tests; do
  [ -d "$repo/$d" ] && python_tests+=("$repo/$d")
done
(cd "$repo" && .venv/bin/python -m pytest -q "${python_tests[@]}") || status=1

exit $status
