# LOWBIT_SANITIZE: build every target (kernels, engine, server, tests, tools)
# under gcc's sanitizers, with assertions on.
#
#   -DLOWBIT_SANITIZE=address,undefined   ASan + UBSan (UBSan aborts on the
#                                         first finding: -fno-sanitize-recover)
#   -DLOWBIT_SANITIZE=thread              TSan
#
# Whatever CMAKE_BUILD_TYPE says, objects are built with frame pointers,
# line tables (-g1: stacks with file:line; full -g costs 45% more compile time
# under ASan+UBSan) and -UNDEBUG, so every precondition assert() in kernels/
# and engine/ runs. The code the tests spend their time in (the kernels, their
# reference and the runtime's ops) is built -O1; everything else -O0, which
# compiles in half the time (measured on engine/src/import/onnx_importer.cc,
# gcc 12: 13.0 s at -O1 -g, 9.0 s at -O1 -g1, 4.9 s at -O0 -g1). System libraries (gRPC,
# protobuf, XNNPACK, OpenCV) are not rebuilt: they run uninstrumented, which
# the suppression files in tests/sanitizers/ account for.
# tests/sanitize.sh builds and runs both configurations; docs/testing.md.
set(LOWBIT_SANITIZE "" CACHE STRING
  "Sanitizers for every target: empty (off), address,undefined, address, undefined or thread")
if(LOWBIT_SANITIZE)
  set(_lowbit_known address undefined thread)
  string(REPLACE "," ";" _lowbit_sanitizers "${LOWBIT_SANITIZE}")
  foreach(s IN LISTS _lowbit_sanitizers)
    if(NOT s IN_LIST _lowbit_known)
      message(FATAL_ERROR "LOWBIT_SANITIZE: unknown sanitizer '${s}' (known: ${_lowbit_known})")
    endif()
  endforeach()
  if("thread" IN_LIST _lowbit_sanitizers AND "address" IN_LIST _lowbit_sanitizers)
    message(FATAL_ERROR "LOWBIT_SANITIZE: thread and address cannot be combined")
  endif()
  set(_lowbit_flags -fsanitize=${LOWBIT_SANITIZE})
  if("undefined" IN_LIST _lowbit_sanitizers)
    list(APPEND _lowbit_flags -fno-sanitize-recover=undefined)
  endif()
  # After CMAKE_CXX_FLAGS_<CONFIG> on the command line, so these win over its
  # -O3/-O2 and -DNDEBUG.
  set(LOWBIT_SANITIZE_O1_TARGETS lowbit_kernels lowbit_kernels_ref lowbit_runtime CACHE STRING
    "Targets built -O1 in sanitizer builds (the rest -O0)")
  set(_lowbit_fast "")
  foreach(t IN LISTS LOWBIT_SANITIZE_O1_TARGETS)
    list(APPEND _lowbit_fast "$<STREQUAL:$<TARGET_PROPERTY:NAME>,${t}>")
  endforeach()
  string(JOIN "," _lowbit_fast ${_lowbit_fast})
  add_compile_options(${_lowbit_flags} -g1 -fno-omit-frame-pointer -UNDEBUG
    "$<IF:$<OR:${_lowbit_fast}>,-O1,-O0>")
  add_link_options(${_lowbit_flags})
  add_compile_definitions(LOWBIT_SANITIZE_BUILD=1)
  message(STATUS "lowbit: sanitizers ${LOWBIT_SANITIZE}, -g1, -O1 for ${LOWBIT_SANITIZE_O1_TARGETS} (else -O0), assertions on")
endif()
