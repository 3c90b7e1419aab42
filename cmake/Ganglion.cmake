# Helpers shared by every part.

set(GANGLION_WARNINGS -Wall -Wextra -Wpedantic -Wno-missing-field-initializers)

if(GANGLION_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# ganglion_library(<part> SOURCES ... DEPS ...): one CMake library per part, target ganglion_<part>.
function(ganglion_library part)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(ganglion_${part} STATIC ${ARG_SOURCES})
  add_library(ganglion::${part} ALIAS ganglion_${part})
  target_include_directories(ganglion_${part} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(ganglion_${part} PRIVATE ${GANGLION_WARNINGS})
  target_link_libraries(ganglion_${part} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
endfunction()

# ganglion_test(<name> SOURCES ... DEPS ...): a GoogleTest binary registered with ctest.
function(ganglion_test name)
  if(NOT GANGLION_TESTS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${GANGLION_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main)
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  gtest_discover_tests(${name} PROPERTIES LABELS "${ARG_LABELS}" DISCOVERY_TIMEOUT 60)
endfunction()
