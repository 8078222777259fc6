#!/usr/bin/env bash
# Runs every lowbit test on a Debian 12 machine, setting up and building first
# (deploy/build.sh): the C++ tests through ctest (kernels, engine, server,
# including end-to-end runs on the real models), the kernel and engine tests
# again for ARM64 (cross-compiled, under qemu-aarch64) and the Python tests through
# pytest (the converted models against ONNX Runtime, engine parity with ONNX
# Runtime, and the client SDK against a real lowbitd), then the sanitizer
# builds (tests/sanitize.sh), the container image built with podman and
# checked from the host (deploy/image/verify.sh) and a bounded run of every
# fuzz target (fuzz/run.sh --ci).
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

echo "== ARM64 kernel and engine tests (cross-compiled against an arm64 sysroot, run under qemu-aarch64)"
# The sysroot: deploy/arm64/make-sysroot.sh (cached under ~/.cache/lowbit).
# Built: the kernels' tests, the engine and the lowbit CLI, tests/arm64's
# reference_check (not the engine's gtest binaries: minutes to compile, and
# the x86 run has them). Run: label kernels (QEMU_CPU=max: dotprod, i8mm) and
# label arm64-engine (NanoDet FP32, W2A2, W1A1 and ORT-INT8 against ONNX
# Runtime's outputs saved by tests/arm64/make_references.py, on the emulated
# cores max and cortex-a72; the arm64 lowbit CLI on dog.jpg). About 35 s for
# the sysroot, 1 min for the arm64-engine tests.
arm64_dir="$repo/build-arm64"
arm64_start=$SECONDS
if arm64_sysroot="$("$repo/deploy/arm64/make-sysroot.sh")" &&
   echo "arm64 sysroot $arm64_sysroot ready after $((SECONDS - arm64_start)) s" &&
   cmake -S "$repo" -B "$arm64_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
     -DCMAKE_TOOLCHAIN_FILE="$repo/cmake/aarch64-linux-gnu.cmake" -DLOWBIT_ARM64_SYSROOT="$arm64_sysroot" \
     -DLOWBIT_KERNELS_ONLY=OFF -DLOWBIT_BUILD_SERVER=OFF -DLOWBIT_WITH_QUANTIZER=OFF \
     -DLOWBIT_BUILD_BENCHMARKS=OFF >/dev/null &&
   cmake --build "$arm64_dir" -j "$(nproc)" --target tests/kernels/all engine/all tests/arm64/all; then
  echo "arm64 cross build done after $((SECONDS - arm64_start)) s"
  (cd "$arm64_dir" && ctest --output-on-failure -j 2 -L kernels) || status=1
  (cd "$arm64_dir" && ctest --output-on-failure -j 2 -L arm64-engine) || status=1
  echo "arm64 tests done after $((SECONDS - arm64_start)) s"
else
  echo "ARM64 sysroot or cross build failed" >&2
  status=1
fi

echo "== Python tests (pytest)"
python_tests=()
for d in tests/models tests/engine tests/bench clients/python/tests; do
  [ -d "$repo/$d" ] && python_tests+=("$repo/$d")
done
(cd "$repo" && .venv/bin/python -m pytest -q "${python_tests[@]}") || status=1

echo "== Sanitizers (tests/sanitize.sh: ASan+UBSan and TSan builds, a 2-minute soak; docs/testing.md)"
"$repo/tests/sanitize.sh" || status=1

echo "== Container image (deploy/image/verify.sh: podman build of the Dockerfile, HEALTHCHECK, Detect from the host; docs/deploy.md)"
"$repo/deploy/image/verify.sh" || status=1

echo "== Fuzz targets (fuzz/run.sh --ci: clang ASan+UBSan libFuzzer builds, 30 s per target; docs/fuzzing.md)"
"$repo/fuzz/run.sh" --ci || status=1

exit $status
