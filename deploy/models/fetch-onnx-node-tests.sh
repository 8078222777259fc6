#!/usr/bin/env bash
# Extracts the ONNX backend node tests for QuantizeLinear / DequantizeLinear
# (plus QLinearConv and Clip on int8) from the onnx 1.22.0 wheel on PyPI into
# OUT_DIR. onnx 1.23 no longer ships this data and the project's venv keeps its
# newer onnx, so the wheel is only downloaded (never installed) and read as a
# zip archive. The data is platform independent; the script always fetches the
# same wheel (cp311, manylinux_2_28 x86_64) so its sha256 is checked on any host.
#
#   deploy/models/fetch-onnx-node-tests.sh [OUT_DIR]   # default data/onnx-node-tests
#
# Layout written: OUT_DIR/<test name>/model.onnx and
# OUT_DIR/<test name>/test_data_set_0/{input,output}_N.pb (TensorProto), exactly
# as in the wheel. Cached: the wheel lives in ${LOWBIT_CACHE:-~/.cache/lowbit};
# a stamp in OUT_DIR makes a second run a no-op.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${1:-$repo/data/onnx-node-tests}"
cache="${LOWBIT_CACHE:-$HOME/.cache/lowbit}/wheels"
python="${LOWBIT_PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"

version=1.22.0
wheel=onnx-1.22.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
sha256=1d0a2bdb15eb2b3cb65c438f3423d9620d14fdce32f92380e6bb1b2e09568ef5
stamp="$out/.fetched-onnx-$version-$sha256"

if [ -f "$stamp" ]; then
  echo "fetch-onnx-node-tests: $out already holds the onnx $version node tests"
  exit 0
fi

mkdir -p "$cache"
if [ ! -f "$cache/$wheel" ]; then
  echo "fetch-onnx-node-tests: downloading onnx==$version (wheel only, not installed)"
  "$python" -m pip download -q --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
    -d "$cache" "onnx==$version"
fi
got="$(sha256sum "$cache/$wheel" | cut -d' ' -f1)"
echo "fetch-onnx-node-tests: $wheel sha256 $got"
if [ "$got" != "$sha256" ]; then
  echo "fetch-onnx-node-tests: sha256 mismatch (expected $sha256); remove $cache/$wheel and retry" >&2
  exit 1
fi

mkdir -p "$out"
"$python" - "$cache/$wheel" "$out" <<'EOF'
import fnmatch, os, sys, zipfile

wheel, out = sys.argv[1], sys.argv[2]
prefix = "onnx/backend/test/data/node/"
# Test directory name patterns to extract.
patterns = ["test_quantizelinear*", "test_dequantizelinear*", "test_qlinearconv", "test_clip_default_int8_*"]
dirs = set()
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if not name.startswith(prefix) or name.endswith("/"):
            continue
        rel = name[len(prefix):]
        test = rel.split("/", 1)[0]
        if not any(fnmatch.fnmatchcase(test, p) for p in patterns):
            continue
        dest = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(name) as src, open(dest, "wb") as dst:
            dst.write(src.read())
        dirs.add(test)
print(f"fetch-onnx-node-tests: {len(dirs)} tests in {out}")
if not dirs:
    sys.exit("fetch-onnx-node-tests: no test directories found in the wheel")
EOF
touch "$stamp"
