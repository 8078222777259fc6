# Cross toolchain for ARM64 (Debian: g++-aarch64-linux-gnu, qemu-user).
# Use with -DLOWBIT_KERNELS_ONLY=ON (kernels + kernel tests; the engine's
# OpenCV/ONNX arm64 dev packages are not installable beside the amd64 ones):
#   cmake -S . -B build-arm64 -G Ninja \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DLOWBIT_KERNELS_ONLY=ON
#   ninja -C build-arm64 && ctest --test-dir build-arm64
# Tests (and gtest discovery) run through qemu-aarch64 via
# CMAKE_CROSSCOMPILING_EMULATOR; QEMU_CPU (default "max") picks the emulated core.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

find_program(LOWBIT_QEMU_AARCH64 qemu-aarch64)
if(LOWBIT_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${LOWBIT_QEMU_AARCH64};-L;/usr/aarch64-linux-gnu" CACHE STRING "")
endif()
