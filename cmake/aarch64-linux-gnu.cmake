# Cross toolchain for ARM64 (Debian: g++-aarch64-linux-gnu, qemu-user).
#
# Kernels only (no sysroot: the cross toolchain's own libc and libstdc++ in
# /usr/aarch64-linux-gnu; the engine's arm64 dependencies are not installable
# beside the amd64 -dev packages):
#   cmake -S . -B build-arm64 -G Ninja \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DLOWBIT_KERNELS_ONLY=ON
#   ninja -C build-arm64 && ctest --test-dir build-arm64
#
# The engine, the lowbit CLI, the engine tests and lowbitd: against an arm64
# Debian 12 sysroot made by deploy/arm64/make-sysroot.sh (the -dev packages'
# headers, libraries and CMake configs unpacked into one tree):
#   sysroot=$(deploy/arm64/make-sysroot.sh)
#   cmake -S . -B build-arm64-engine -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#     -DLOWBIT_ARM64_SYSROOT=$sysroot -DLOWBIT_WITH_QUANTIZER=OFF [-DLOWBIT_BUILD_SERVER=OFF]
#   ninja -C build-arm64-engine engine/all tests/arm64/all tests/kernels/all
#   ctest --test-dir build-arm64-engine -L 'kernels|arm64-engine'     (tests/arm64)
# (the quantizer needs OpenCV videoio, which the sysroot leaves out). Code
# generators (protoc, grpc_cpp_plugin) are the host's x86 ones.
#
# Tests (and gtest discovery) run through qemu-aarch64 via
# CMAKE_CROSSCOMPILING_EMULATOR, with -L pointing at the sysroot (or at
# /usr/aarch64-linux-gnu); QEMU_CPU (default "max") picks the emulated core.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# GCC's note that std::pair<float, float> arguments are passed as GCC >= 10
# does: informational, and hundreds of lines of build log.
# -ffp-contract=off: gcc for AArch64 fuses a float multiply and add into one
# fmadd (one rounding) by default, x86-64's baseline has no FMA to fuse into;
# the engine's float stages (requantize, residual add on codes) must round
# the same on both, as the tests compare them bit for bit. Explicit
# vfmaq_f32 intrinsics are unaffected. (INIT flags: a build dir configured
# before this keeps its cached CMAKE_CXX_FLAGS.)
set(CMAKE_C_FLAGS_INIT "-ffp-contract=off")
set(CMAKE_CXX_FLAGS_INIT "-Wno-psabi -ffp-contract=off")

# A cache entry, or the environment when try_compile re-reads this file.
set(LOWBIT_ARM64_SYSROOT "$ENV{LOWBIT_ARM64_SYSROOT}" CACHE PATH
  "arm64 sysroot from deploy/arm64/make-sysroot.sh (empty: kernels-only build)")
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES LOWBIT_ARM64_SYSROOT)

if(LOWBIT_ARM64_SYSROOT)
  if(NOT EXISTS "${LOWBIT_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/libc.so")
    message(FATAL_ERROR "LOWBIT_ARM64_SYSROOT=${LOWBIT_ARM64_SYSROOT} is not an arm64 sysroot "
                        "(run deploy/arm64/make-sysroot.sh)")
  endif()
  # Library and include paths found before stay in the cache: another sysroot
  # needs another build dir.
  if(DEFINED CACHE{LOWBIT_ARM64_SYSROOT_CONFIGURED} AND
     NOT LOWBIT_ARM64_SYSROOT_CONFIGURED STREQUAL LOWBIT_ARM64_SYSROOT)
    message(FATAL_ERROR "this build dir was configured with LOWBIT_ARM64_SYSROOT=${LOWBIT_ARM64_SYSROOT_CONFIGURED}; "
                        "use a new build dir for ${LOWBIT_ARM64_SYSROOT}")
  endif()
  set(LOWBIT_ARM64_SYSROOT_CONFIGURED "${LOWBIT_ARM64_SYSROOT}" CACHE INTERNAL "")
  set(CMAKE_SYSROOT "${LOWBIT_ARM64_SYSROOT}")
  set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
  set(CMAKE_FIND_ROOT_PATH "${LOWBIT_ARM64_SYSROOT}")
  set(lowbit_qemu_root "${LOWBIT_ARM64_SYSROOT}")
  # OpenCV's own config comes with libopencv-dev, which the sysroot leaves
  # out (cmake/aarch64-sysroot/OpenCVConfig.cmake says why).
  set(OpenCV_DIR "${CMAKE_CURRENT_LIST_DIR}/aarch64-sysroot" CACHE PATH "")
  # pkg-config (FindCURL under prometheus-cpp's config) reads the sysroot's
  # .pc files, not the host's.
  set(ENV{PKG_CONFIG_SYSROOT_DIR} "${LOWBIT_ARM64_SYSROOT}")
  set(ENV{PKG_CONFIG_LIBDIR}
      "${LOWBIT_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${LOWBIT_ARM64_SYSROOT}/usr/share/pkgconfig")
else()
  set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
  set(lowbit_qemu_root /usr/aarch64-linux-gnu)
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# A plain variable (not a cache entry), so a build dir configured before with
# another sysroot follows this one.
find_program(LOWBIT_QEMU_AARCH64 qemu-aarch64)
if(LOWBIT_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${LOWBIT_QEMU_AARCH64};-L;${lowbit_qemu_root}")
endif()
