# LOWBIT_SANITIZE: build every target (kernels, engine, server, tests, tools)
# under gcc's sanitizers, with assertions on.
#
#   -DLOWBIT_SANITIZE=address,undefined   ASan + UBSan (UBSan aborts on the
#                                         first finding: -fno-sanitize-recover)
#   -DLOWBIT_SANITIZE=thread              TSan
#
# Whatever CMAKE_BUILD_TYPE says, objects are built -O1 -g with frame
# pointers (usable stacks, sanitizer speed) and -UNDEBUG, so every
# precondition assert() in kernels/ and engine/ runs. System libraries (gRPC,
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
  add_compile_options(${_lowbit_flags} -O1 -g -fno-omit-frame-pointer -UNDEBUG)
  add_link_options(${_lowbit_flags})
  add_compile_definitions(LOWBIT_SANITIZE_BUILD=1)
  message(STATUS "lowbit: sanitizers ${LOWBIT_SANITIZE}, -O1 -g, assertions on")
endif()
