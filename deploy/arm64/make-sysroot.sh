#!/usr/bin/env bash
# Makes an arm64 (aarch64) Debian 12 sysroot for cross-building the lowbit
# engine, the `lowbit` CLI, the engine tests and lowbitd
# (cmake/aarch64-linux-gnu.cmake with -DLOWBIT_ARM64_SYSROOT=<it>), and for
# running them under `qemu-aarch64 -L <it>`.
#
#   deploy/arm64/make-sysroot.sh            # prints the sysroot's path
#   LOWBIT_CACHE=/some/dir deploy/arm64/make-sysroot.sh
#
# How: a private apt configuration for arm64 only (its own lists, status and
# archive dirs under the cache; the host's dpkg is neither asked to add a
# foreign architecture nor touched) resolves the arm64 -dev packages below and
# their dependencies, downloads them from the mirror in
# /etc/apt/sources.list.d/debian.sources, and each .deb is unpacked with
# `dpkg-deb --fsys-tarfile | tar -x` into a merged-/usr tree. Nothing is
# configured or run, so no root chroot and none of the amd64/arm64 -dev
# co-install conflicts (OpenCV imgcodecs, protobuf) of a multiarch install.
#
# Afterwards: absolute symlinks under usr/ (libz.so -> /lib/...) are made
# relative so the cross linker does not follow them onto the host; the BLAS
# and LAPACK links of update-alternatives are made by hand; gRPC's
# CMake config names its code generators under usr/bin, which are linked to
# the host's x86 ones (protoc runs them on the build machine).
#
# Layout under ${LOWBIT_CACHE:-~/.cache/lowbit}/arm64-sysroot:
#   apt/     apt lists and the downloaded .debs (reused by a re-run)
#   root/    the sysroot
#   root/.lowbit-sysroot   stamp: the package list it was made from
# Idempotent: a re-run with the same package list and script only prints the
# path. Takes about 35 s on a fresh cache here (139 MB of .debs, 768 MB
# unpacked).
set -euo pipefail

cache="${LOWBIT_CACHE:-${HOME:-/tmp}/.cache/lowbit}/arm64-sysroot"
root="$cache/root"
apt_dir="$cache/apt"
script="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

# The engine: protobuf (ONNX, model config), OpenCV's core/imgproc/imgcodecs
# modules only (libopencv-dev would pull every module: VTK, Qt, GDAL, ...),
# XNNPACK, zlib, libjpeg-turbo and libpng (image decode links them directly);
# the tests: GoogleTest. lowbitd: gRPC, prometheus-cpp,
# spdlog/fmt, Boost (Asio headers).
packages=(
  libc6-dev libstdc++-12-dev zlib1g-dev
  libprotobuf-dev libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libxnnpack-dev libpthreadpool-dev libjpeg62-turbo-dev libpng-dev
  libgtest-dev libgmock-dev
  libgrpc++-dev prometheus-cpp-dev libspdlog-dev libfmt-dev libboost-dev
)

stamp_text="$(printf '%s\n' "${packages[@]}"; sha256sum <"$script")"
if [ -f "$root/.lowbit-sysroot" ] && [ "$(cat "$root/.lowbit-sysroot")" = "$stamp_text" ]; then
  echo "$root"
  exit 0
fi

sources=/etc/apt/sources.list.d/debian.sources
if [ ! -f "$sources" ]; then
  echo "make-sysroot: $sources not found (a Debian 12 host is expected)" >&2
  exit 1
fi

echo "make-sysroot: resolving and downloading ${#packages[@]} arm64 packages into $apt_dir" >&2
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/sources" "$apt_dir/preferences.d"
: >"$apt_dir/status"  # nothing installed: apt fetches the whole dependency closure
cp "$sources" "$apt_dir/sources/debian.sources"
cat >"$apt_dir/apt.conf" <<EOF
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
APT::Install-Recommends "false";
APT::Sandbox::User "$(id -un)";
Dir::State "$apt_dir";
Dir::State::Lists "$apt_dir/lists";
Dir::State::status "$apt_dir/status";
Dir::Cache "$apt_dir";
Dir::Cache::archives "$apt_dir/archives";
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$apt_dir/sources";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "$apt_dir/preferences.d";
EOF
export APT_CONFIG="$apt_dir/apt.conf"
apt-get update -qq
# The exact closure's file names, for unpacking only those (the archive dir
# keeps old versions after a mirror update). --print-uris leaves out what is
# already downloaded, so it looks at an empty archive dir.
mkdir -p "$apt_dir/empty/partial"
mapfile -t debs < <(apt-get install --download-only -y -qq --print-uris \
  -o Dir::Cache::archives="$apt_dir/empty" "${packages[@]}" |
  sed -n "s/^'[^']*' \([^ ]*\) .*/\1/p")
apt-get install --download-only -y -qq "${packages[@]}" >/dev/null
if [ ${#debs[@]} -eq 0 ]; then
  echo "make-sysroot: apt resolved no packages" >&2
  exit 1
fi

echo "make-sysroot: unpacking ${#debs[@]} packages into $root" >&2
rm -rf "$root.partial"
mkdir -p "$root.partial/usr/lib" "$root.partial/usr/bin" "$root.partial/usr/sbin"
for dir in bin lib sbin; do ln -s "usr/$dir" "$root.partial/$dir"; done  # merged /usr
for deb in "${debs[@]}"; do
  dpkg-deb --fsys-tarfile "$apt_dir/archives/$deb" | tar -x -C "$root.partial" --keep-directory-symlink
done

# Absolute symlinks -> relative ones inside the sysroot.
while IFS= read -r link; do
  target="$(readlink "$link")"
  ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$root.partial$target")" "$link"
done < <(find "$root.partial/usr" -type l -lname '/*')

# The links Debian's maintainer scripts would make with update-alternatives
# (libblas3, liblapack3: OpenCV core -> armadillo/arpack needs them to link).
for alt in blas/libblas.so.3 lapack/liblapack.so.3; do
  lib="$root.partial/usr/lib/aarch64-linux-gnu"
  if [ -e "$lib/$alt" ]; then ln -sfn "$alt" "$lib/$(basename "$alt")"; fi
done

# gRPC's CMake config checks that its plugins exist under usr/bin; the
# generated code is architecture-neutral, so the host's plugins serve.
for plugin in grpc_cpp_plugin grpc_php_plugin grpc_python_plugin grpc_ruby_plugin; do
  if [ ! -e "$root.partial/usr/bin/$plugin" ] && [ -x "/usr/bin/$plugin" ]; then
    ln -s "/usr/bin/$plugin" "$root.partial/usr/bin/$plugin"
  fi
done

printf '%s' "$stamp_text" >"$root.partial/.lowbit-sysroot"
rm -rf "$root"
mv "$root.partial" "$root"
echo "$root"
