# lowbit_add_test(NAME name SOURCES a.cc b.cc LIBS libs... LABELS labels...)
# A GoogleTest executable whose tests ctest discovers one by one, run from the
# repository root (so relative paths like models/ and data/images/ resolve).
include(GoogleTest)

function(lowbit_add_test)
  cmake_parse_arguments(T "" "NAME" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main GTest::gmock)
  # Discovery runs the binary; under qemu (cross builds) that takes a while.
  gtest_discover_tests(${T_NAME} PROPERTIES LABELS "${T_LABELS}"
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} DISCOVERY_TIMEOUT 120)
endfunction()
