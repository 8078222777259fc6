#!/usr/bin/env bash
# Smoke test of lowbitd built for arm64, run under qemu-aarch64: health and
# one Detect of data/images/dog.jpg with NanoDet-g, whose detections must be
# the x86 lowbitd's (same labels in the same order, scores within 0.01, box
# corners within 2 px; deploy/arm64/smoke_compare.py).
#
#   deploy/arm64/smoke.sh
#
# Steps (each reused when done before): deploy/build.sh when the x86 lowbitd,
# the models or the images are missing (a clean clone); the arm64 sysroot
# (deploy/arm64/make-sysroot.sh); lowbitd cross-built in build-arm64-server/
# (LOWBIT_ARM64_SERVER_BUILD to change); both servers started on free
# 127.0.0.1 ports with a model repository holding nanodet-g only, one worker
# each; the comparison; both servers stopped. Prints how long each step took.
# Not part of CI (tests/run-all.sh): the cross build of lowbitd takes minutes.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build_dir="${LOWBIT_ARM64_SERVER_BUILD:-$repo/build-arm64-server}"
x86_server="${LOWBIT_SERVER_BIN:-$repo/build/server/lowbitd}"
python="$repo/.venv/bin/python"
image="$repo/data/images/dog.jpg"

step_start=$SECONDS
step() {  # step NAME: announces NAME and starts its clock (took prints it)
  echo "smoke: $1"
  step_start=$SECONDS
}
took() { echo "smoke:   took $((SECONDS - step_start)) s"; }

if [ ! -x "$x86_server" ] || [ ! -f "$repo/models/nanodet-g/model.onnx" ] || [ ! -f "$image" ] ||
   [ ! -x "$python" ]; then
  step "x86 build, models and images (deploy/build.sh)"
  "$repo/deploy/build.sh"
  took
fi

step "arm64 sysroot"
sysroot="$("$repo/deploy/arm64/make-sysroot.sh")"
took

step "cross-building lowbitd for arm64 in $build_dir"
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$repo" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$repo/cmake/aarch64-linux-gnu.cmake" -DLOWBIT_ARM64_SYSROOT="$sysroot" \
  -DLOWBIT_BUILD_SERVER=ON -DLOWBIT_BUILD_TESTS=OFF -DLOWBIT_BUILD_BENCHMARKS=OFF \
  -DLOWBIT_WITH_QUANTIZER=OFF "${launcher[@]}" >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target lowbitd
arm64_server="$build_dir/server/lowbitd"
# ELF e_machine (bytes 18-19, little endian) 0xb7 = EM_AARCH64.
if [ "$(od -An -tx1 -j18 -N2 "$arm64_server" | tr -d ' ')" != "b700" ]; then
  echo "smoke: $arm64_server is not an arm64 binary" >&2
  exit 1
fi
took

work="$(mktemp -d)"
pids=()
stop_servers() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_servers
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/models"
cp -r "$repo/models/nanodet-g" "$work/models/"

free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
x86_port="$(free_port)"
arm64_port="$(free_port)"
# --max-batch 1: lowbitd warms every batch size up to it at load, about 20 s
# a frame under qemu (4 would be 14 warm-up frames).
flags=(--model-repo "$work/models" --metrics-address "" --workers 1 --threads-per-worker 1 --max-batch 1)

step "starting the x86 lowbitd (127.0.0.1:$x86_port) and the arm64 one under qemu-aarch64 (127.0.0.1:$arm64_port)"
"$x86_server" "${flags[@]}" --address "127.0.0.1:$x86_port" >"$work/x86.log" 2>&1 &
pids+=($!)
QEMU_CPU="${QEMU_CPU:-max}" qemu-aarch64 -L "$sysroot" "$arm64_server" "${flags[@]}" \
  --address "127.0.0.1:$arm64_port" >"$work/arm64.log" 2>&1 &
pids+=($!)

status=0
"$python" "$repo/deploy/arm64/smoke_compare.py" --x86 "127.0.0.1:$x86_port" \
  --arm64 "127.0.0.1:$arm64_port" --image "$image" || status=$?
took
stop_servers  # their logs are complete once they have exited
if [ $status -ne 0 ]; then
  echo "smoke: FAILED (status $status); the servers' logs:" >&2
  tail -n 20 "$work/x86.log" "$work/arm64.log" >&2
  exit $status
fi
echo "smoke: the arm64 lowbitd's log:"
head -n 3 "$work/arm64.log"
echo "smoke: PASS in $SECONDS s"
