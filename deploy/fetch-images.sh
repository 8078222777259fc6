#!/usr/bin/env bash
# Copies real test photos and a real video out of Debian packages.
#
#   deploy/fetch-images.sh [DEST]      # default: <repo>/data/images
#
# Packages are fetched with `apt-get download` (no root, nothing installed)
# into ${LOWBIT_CACHE:-$HOME/.cache/lowbit}/debs and unpacked with `dpkg -x`
# into a temporary directory; only the files listed below are kept. A second
# run finds the files in DEST (or the .debs in the cache) and needs no network.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
dest="${1:-$repo/data/images}"
debs="${LOWBIT_CACHE:-$HOME/.cache/lowbit}/debs"

log() { echo "fetch-images: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Per package: the directory inside the package, then the files wanted from it.
# A file may be shipped gzip-compressed (name.gz); it is decompressed on copy.
declare -A package_dir=(
  [darknet]=usr/share/darknet/data
  [opencv-doc]=usr/share/doc/opencv-doc/examples/data
  [python3-skimage]=usr/lib/python3/dist-packages/skimage/data
)
declare -A package_files=(
  [darknet]="dog.jpg horses.jpg person.jpg giraffe.jpg kite.jpg eagle.jpg"
  [opencv-doc]="messi5.jpg fruits.jpg vtest.avi"
  [python3-skimage]="astronaut.png chelsea.png coffee.png motorcycle_left.png"
)

# cached_deb PACKAGE -> prints the path of the package's .deb in the cache,
# downloading it first if needed (apt-get update only when the download fails).
cached_deb() {
  local package="$1" deb
  deb="$(ls -t "$debs/${package}"_*.deb 2>/dev/null | head -n1 || true)"
  if [ -z "$deb" ]; then
    mkdir -p "$debs"
    log "apt-get download $package"
    if ! (cd "$debs" && apt-get download -q "$package" >&2); then
      log "apt-get download failed; running apt-get update and retrying"
      apt-get update -q >&2 || die "apt-get update failed (needs root or sudo)"
      (cd "$debs" && apt-get download -q "$package" >&2) || die "apt-get download $package failed"
    fi
    deb="$(ls -t "$debs/${package}"_*.deb | head -n1)"
  fi
  echo "$deb"
}

mkdir -p "$dest"
for package in darknet opencv-doc python3-skimage; do
  missing=()
  for file in ${package_files[$package]}; do
    [ -s "$dest/$file" ] || missing+=("$file")
  done
  [ ${#missing[@]} -eq 0 ] && continue

  deb="$(cached_deb "$package")"
  unpacked="$(mktemp -d)"
  trap 'rm -rf "$unpacked"' EXIT
  dpkg -x "$deb" "$unpacked" || die "dpkg -x $deb failed"
  source_dir="$unpacked/${package_dir[$package]}"
  for file in "${missing[@]}"; do
    if [ -f "$source_dir/$file" ]; then
      cp "$source_dir/$file" "$dest/$file.tmp"
    elif [ -f "$source_dir/$file.gz" ]; then
      gzip -dc "$source_dir/$file.gz" >"$dest/$file.tmp"
    else
      die "$file not found in $(basename "$deb") under /${package_dir[$package]}"
    fi
    mv -f "$dest/$file.tmp" "$dest/$file"
    log "$file <- $(basename "$deb")"
  done
  rm -rf "$unpacked"
  trap - EXIT
done
log "images ready in $dest"
