# cmake -DFILES="a.cc;b.h;..." -P check_runtime_layering.cmake
# Fails when a file of lowbit_runtime includes a header of the compiler
# (import/, passes/, compiler/) or the ONNX protobuf: the runtime library
# must build and link without them.
if(NOT FILES)
  message(FATAL_ERROR "no FILES given")
endif()
set(violations "")
foreach(file ${FILES})
  file(STRINGS ${file} lines REGEX "^[ \t]*#[ \t]*include[ \t]*[\"<](import|passes|compiler|lowbit_onnx)/")
  foreach(line ${lines})
    string(APPEND violations "\n  ${file}: ${line}")
  endforeach()
endforeach()
if(violations)
  message(FATAL_ERROR "lowbit_runtime includes compiler headers:${violations}")
endif()
list(LENGTH FILES count)
message(STATUS "${count} runtime files include no compiler header")
