#!/usr/bin/env bash
# Sets up a Debian 12 machine for lowbit and builds everything:
#   1. system packages and the Python environment (deploy/install-deps.sh)
#   2. the C++ build in build/ (Release): lowbitd, the lowbit CLI, the tests
#   3. the real test images in data/images/, the model repository in models/
#      and the ONNX quantization node tests in data/onnx-node-tests/
# Every step is idempotent and cached: a second run does only what changed.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${LOWBIT_BUILD_DIR:-$repo/build}"

"$repo/deploy/install-deps.sh"

echo "build: configuring and compiling in $build_dir"
cmake -S "$repo" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j "$(nproc)"

"$repo/deploy/fetch-images.sh" "$repo/data/images"
LOWBIT_PYTHON="$repo/.venv/bin/python" "$repo/deploy/models/fetch-models.sh" "$repo/models"
# ONNX's QuantizeLinear/DequantizeLinear node tests (tests/engine/test_quant_semantics.py).
LOWBIT_PYTHON="$repo/.venv/bin/python" "$repo/deploy/models/fetch-onnx-node-tests.sh" \
  "$repo/data/onnx-node-tests"
echo "build: done"
