# Private build settings for our own targets: warnings and sanitizers. They are
# linked by the library's own build, the tests and the demos, never exported.
add_library(actors_hygiene INTERFACE)
target_compile_options(actors_hygiene INTERFACE -Wall -Wextra -pedantic
  $<$<BOOL:${ACTORS_WERROR}>:-Werror>)

if(ACTORS_SANITIZE AND ACTORS_TSAN)
  message(FATAL_ERROR "ACTORS_SANITIZE and ACTORS_TSAN are exclusive")
endif()
if(ACTORS_FUZZ AND (ACTORS_SANITIZE OR ACTORS_TSAN))
  message(FATAL_ERROR "ACTORS_FUZZ brings its own sanitizers (ASan+UBSan): "
                      "leave ACTORS_SANITIZE and ACTORS_TSAN off")
endif()
# The sanitizer builds compile at -O1 with line tables only (-g1), as the
# sanitizers' own documentation advises: a CAF-heavy file takes 15 s
# instead of 50 s at RelWithDebInfo's -O2 -g under ASan (src/actor/
# supervisor.cpp on this 2-vCPU VM), and reports still name file and line.
# These options come after the build type's on the command line.
set(_san_opt -O1 -g1)
if(ACTORS_FUZZ)
  # libFuzzer comes with clang (Debian: libclang-rt-14-dev). Everything is
  # instrumented for coverage; only the fuzz targets link libFuzzer's main
  # (-fsanitize=fuzzer, in fuzz/CMakeLists.txt). UBSan is recoverable here
  # too; .ci/fuzz runs with halt_on_error=1.
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "ACTORS_FUZZ needs clang: configure with "
                        "-DCMAKE_CXX_COMPILER=clang++-14 (see .ci/fuzz)")
  endif()
  set(_san -fsanitize=address,undefined -fno-omit-frame-pointer)
  add_compile_options(${_san} ${_san_opt} -fsanitize=fuzzer-no-link)
  add_link_options(${_san})
endif()
if(ACTORS_SANITIZE)
  # UBSan stays recoverable so that its suppression file works; CI runs
  # with halt_on_error=1 (see .ci/sanitizers).
  set(_san -fsanitize=address,undefined -fno-omit-frame-pointer)
  add_compile_options(${_san} ${_san_opt})
  add_link_options(${_san})
endif()
if(ACTORS_TSAN)
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer ${_san_opt})
  add_link_options(-fsanitize=thread)
endif()
