# LOWBIT_FUZZ: build the libFuzzer targets in fuzz/ (clang only; see
# docs/fuzzing.md). Every object of the build (kernels, engine, the server
# sources the targets use) then carries libFuzzer's coverage instrumentation
# and ASan + UBSan, -O1 -g with assertions on, whatever CMAKE_BUILD_TYPE
# says. System libraries (protobuf, OpenCV, libjpeg, libpng, XNNPACK) run
# uninstrumented. Without LOWBIT_FUZZ, fuzz/ builds plain replay drivers
# that feed the regressions and seed corpus to the same entry points (ctest).
option(LOWBIT_FUZZ "Build the libFuzzer targets in fuzz/ (needs clang)" OFF)
if(LOWBIT_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "LOWBIT_FUZZ needs clang (-DCMAKE_CXX_COMPILER=clang++-19 "
                        "-DCMAKE_C_COMPILER=clang-19; apt-get install clang-19 libclang-rt-19-dev)")
  endif()
  set(LOWBIT_FUZZ_SANITIZERS -fsanitize=address,undefined -fno-sanitize-recover=undefined)
  # A target with the property LOWBIT_FUZZ_UNINSTRUMENTED (fuzz/ sets it on
  # lowbit_kernels: no parser there, and no fuzz target runs a kernel) gets
  # UBSan only: ASan makes the AVX-512 kernels' files 20-70x slower to
  # compile. After CMAKE_CXX_FLAGS_<CONFIG>, so -O1 and -UNDEBUG win over
  # its -O3 and -DNDEBUG.
  set(_lowbit_fuzz_instrumented "$<NOT:$<BOOL:$<TARGET_PROPERTY:LOWBIT_FUZZ_UNINSTRUMENTED>>>")
  add_compile_options(-fsanitize=undefined -fno-sanitize-recover=undefined
                      "$<${_lowbit_fuzz_instrumented}:-fsanitize=address>"
                      "$<${_lowbit_fuzz_instrumented}:-fsanitize=fuzzer-no-link>"
                      -O1 -g -fno-omit-frame-pointer -UNDEBUG)
  add_link_options(${LOWBIT_FUZZ_SANITIZERS})
  add_compile_definitions(LOWBIT_FUZZ_BUILD=1)
  message(STATUS "lowbit: libFuzzer targets, ASan + UBSan, -O1 -g, assertions on")
endif()
