#!/usr/bin/env bash
# Builds the root Dockerfile with podman and checks the image end to end:
# the container becomes healthy (its HEALTHCHECK, lowbit-health: a gRPC
# grpc.health.v1 Check), and a Detect of data/images/dog.jpg sent from the host
# finds the bicycle, the dog and the truck (or car). Prints the build time and
# the image size. Exits nonzero with a message on any failure.
#
#   deploy/image/verify.sh                 amd64 (native)
#   deploy/image/verify.sh --arch arm64    arm64 under qemu-user emulation (about 4x slower)
#
# Needs root (apt-get, podman), the apt mirror of /etc/apt/sources.list.d, the
# npm and PyPI access the model download in the build stage needs, and, from
# deploy/build.sh, .venv (the SDK) and data/images/dog.jpg. No registry: the
# debian:bookworm base is made with debootstrap from the apt mirror and kept
# (localhost/debian:bookworm, localhost/debian:bookworm-arm64). Podman's
# configuration and storage live in LOWBIT_IMAGE_WORK (default
# ~/.cache/lowbit/image), so layers stay cached between runs.
# Time limits (seconds): LOWBIT_IMAGE_BUILD_TIMEOUT (build; default 3600 for
# amd64, 10800 for arm64), LOWBIT_IMAGE_HEALTH_TIMEOUT (until healthy; 120,
# 600 for arm64), LOWBIT_IMAGE_DETECT_TIMEOUT (the Detect; 60, 300 for arm64).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
arch=amd64
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="${2:-}"; shift 2 ;;
    --arch=*) arch="${1#--arch=}"; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "verify.sh: unknown argument $1 (--arch amd64|arm64)" >&2; exit 64 ;;
  esac
done
case "$arch" in
  amd64) slow=1 ;;
  arm64) slow=4 ;;
  *) echo "verify.sh: --arch takes amd64 or arm64, not '$arch'" >&2; exit 64 ;;
esac

log() { echo "verify[$arch]: $*"; }
die() { echo "verify[$arch]: FAILED: $*" >&2; exit 1; }

build_timeout="${LOWBIT_IMAGE_BUILD_TIMEOUT:-$((slow == 1 ? 3600 : 10800))}"
health_timeout="${LOWBIT_IMAGE_HEALTH_TIMEOUT:-$((slow == 1 ? 120 : 600))}"
detect_timeout="${LOWBIT_IMAGE_DETECT_TIMEOUT:-$((slow == 1 ? 60 : 300))}"
work="${LOWBIT_IMAGE_WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/lowbit/image}"
client="$repo/.venv/bin/lowbit-client"
dog="$repo/data/images/dog.jpg"

[ "$(id -u)" = 0 ] || die "run as root (apt-get and podman's storage)"
[ -x "$client" ] || die "$client is missing: run deploy/build.sh first"
[ -f "$dog" ] || die "$dog is missing: run deploy/build.sh first"

# --- tools --------------------------------------------------------------------
packages=(podman runc uidmap fuse-overlayfs slirp4netns debootstrap)
[ "$arch" = arm64 ] && packages+=(qemu-user-static binfmt-support)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null ||
    die "apt-get install ${missing[*]} failed"
fi

# --- podman configuration: this machine's limits ------------------------------
# Podman's default of 1048576 open files is refused here (the hard limit is
# lower), and crun rejects the hybrid cgroup layout: runc instead.
mkdir -p "$work"
nofile="$(ulimit -Hn)"
[ "$nofile" = unlimited ] && nofile=1048576
cat >"$work/containers-$arch.conf.tmp" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]

[engine]
runtime = "runc"
EOF
cat >"$work/storage-$arch.conf.tmp" <<EOF
[storage]
driver = "overlay"
graphroot = "$work/storage"
runroot = "$work/run"
EOF
# One file per arch, replaced by a rename: an amd64 and an arm64 run may share the work folder.
mv -f "$work/containers-$arch.conf.tmp" "$work/containers-$arch.conf"
mv -f "$work/storage-$arch.conf.tmp" "$work/storage-$arch.conf"
export CONTAINERS_CONF="$work/containers-$arch.conf"
export CONTAINERS_STORAGE_CONF="$work/storage-$arch.conf"

# --- the debian:bookworm base from the apt mirror (cached) --------------------
mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
mirror="${mirror:-http://deb.debian.org/debian}"
security_mirror="$(awk '/^URIs:/ {u=$2} /^Suites:.*security/ {print u; exit}' \
  /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
security_mirror="${security_mirror:-http://deb.debian.org/debian-security}"
if [ "$arch" = amd64 ]; then base=localhost/debian:bookworm; else base=localhost/debian:bookworm-arm64; fi

if [ "$arch" = arm64 ]; then
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc || die "cannot mount binfmt_misc"
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  fi
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] ||
    die "qemu-aarch64 is not registered in binfmt_misc (qemu-user-static, binfmt-support)"
fi

if podman image exists "$base"; then
  log "base $base exists (cached)"
else
  log "making $base with debootstrap from $mirror"
  rootfs="$work/rootfs-$arch"
  rm -rf "$rootfs"
  start=$SECONDS
  if [ "$arch" = amd64 ]; then
    timeout 900 debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap-$arch.log" 2>&1 ||
      die "debootstrap failed (log: $work/debootstrap-$arch.log)"
  else
    { timeout 900 debootstrap --arch=arm64 --foreign --variant=minbase bookworm "$rootfs" "$mirror" &&
      cp /usr/bin/qemu-aarch64-static "$rootfs/usr/bin/" &&
      timeout 1800 chroot "$rootfs" /debootstrap/debootstrap --second-stage &&
      rm -f "$rootfs/usr/bin/qemu-aarch64-static"; } >"$work/debootstrap-$arch.log" 2>&1 ||
      die "debootstrap (arm64, foreign + second stage) failed (log: $work/debootstrap-$arch.log)"
  fi
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security_mirror bookworm-security main
EOF
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*
  mkdir -p "$rootfs/var/lib/apt/lists/partial"
  tar -C "$rootfs" -c . | podman import --quiet --arch "$arch" --change 'CMD ["/bin/bash"]' - "$base" >/dev/null ||
    die "podman import of the base failed"
  rm -rf "$rootfs"
  log "base $base made in $((SECONDS - start)) s"
fi

# --- build --------------------------------------------------------------------
image="localhost/lowbit:verify-$arch"
build_args=(--pull=never --network=host --format docker --platform "linux/$arch"
            --build-arg "BASE=$base" -t "$image" -f "$repo/Dockerfile")
# Behind a TLS-intercepting proxy the model download in the build stage needs
# the host's CA bundle (a build secret: not kept in any layer).
if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
  build_args+=(--secret "id=ca-bundle,src=$PIP_CERT")
fi
log "podman build $image (limit ${build_timeout} s; log: $work/build-$arch.log)"
start=$SECONDS
if ! timeout "$build_timeout" nice -n 10 podman build "${build_args[@]}" "$repo" \
     >"$work/build-$arch.log" 2>&1 </dev/null; then
  tail -n 30 "$work/build-$arch.log" >&2
  die "podman build failed or took over $build_timeout s (log: $work/build-$arch.log)"
fi
build_seconds=$((SECONDS - start))
size_bytes="$(podman image inspect --format '{{.Size}}' "$image")"
image_arch="$(podman image inspect --format '{{.Architecture}}' "$image")"
[ "$image_arch" = "$arch" ] || die "the image is $image_arch, not $arch"
healthcheck="$(podman image inspect --format '{{json .Config.Healthcheck}}' "$image" 2>/dev/null || true)"
case "$healthcheck" in
  *lowbit-health*) ;;
  *) die "the image has no lowbit-health HEALTHCHECK (got: $healthcheck)" ;;
esac
log "built in ${build_seconds} s; image size $((size_bytes / 1000000)) MB ($size_bytes bytes)"

# --- run, wait for healthy, Detect from the host ------------------------------
free_port() {
  "$repo/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
grpc_port="$(free_port)"
metrics_port="$(free_port)"
container=""
cleanup() {
  if [ -n "$container" ]; then podman rm -f -t 0 "$container" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

container="$(podman run -d --network=host --platform "linux/$arch" \
  -e "LOWBIT_HEALTH_ADDRESS=127.0.0.1:$grpc_port" "$image" \
  --address "127.0.0.1:$grpc_port" --metrics-address "127.0.0.1:$metrics_port" </dev/null)" ||
  die "podman run failed"
log "container ${container:0:12} on gRPC port $grpc_port, metrics $metrics_port"

start=$SECONDS
while true; do
  if [ "$(podman inspect --format '{{.State.Running}}' "$container")" != true ]; then
    podman logs "$container" 2>&1 | tail -n 30 >&2
    die "the container exited before it was healthy"
  fi
  if probe="$(podman healthcheck run "$container" 2>&1)"; then break; fi
  if [ $((SECONDS - start)) -ge "$health_timeout" ]; then
    podman logs "$container" 2>&1 | tail -n 30 >&2
    die "not healthy after $health_timeout s (last probe: $probe)"
  fi
  sleep 2
done
health_seconds=$((SECONDS - start))
log "healthy after ${health_seconds} s (podman healthcheck run)"

start=$SECONDS
result="$(timeout "$detect_timeout" "$client" detect --address "127.0.0.1:$grpc_port" \
  --timeout "$detect_timeout" --model nanodet-g --json "$dog" </dev/null)" || die "Detect of dog.jpg failed"
detect_ms=$(( (SECONDS - start) * 1000 ))
classes="$(printf '%s' "$result" | "$repo/.venv/bin/python" -c '
import json, sys
result = json.load(sys.stdin)
detections = result["detections"] if isinstance(result, dict) else result
labels = sorted({d["label"] for d in detections})
print(" ".join(labels))
missing = [need for need in ("bicycle", "dog") if need not in labels]
if "truck" not in labels and "car" not in labels:
    missing.append("truck or car")
if missing:
    print("missing: " + ", ".join(missing), file=sys.stderr)
    sys.exit(1)
')" || die "dog.jpg detections lack expected classes; got: $result"
log "Detect dog.jpg from the host: $classes (within $((detect_ms / 1000 + 1)) s)"

podman rm -f -t 0 "$container" >/dev/null
container=""
log "OK: build ${build_seconds} s, image $((size_bytes / 1000000)) MB, healthy after ${health_seconds} s, Detect found: $classes"
