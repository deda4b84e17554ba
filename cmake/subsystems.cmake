# actors_subsystem(NAME [USES FOLDER...]): builds libactors/src/NAME/*.cpp as
# the object library actors_NAME, after checking that every `#include "X/..."`
# in NAME's sources and headers names NAME itself, a folder in USES, or the
# public headers ("actors/..."); EXCEPT lists includes against the direction
# still to be removed ("node/runtime.cpp:queue/queue_hub.hpp"). The objects are collected in
# ACTORS_SUBSYSTEM_OBJECTS for the library.

set(ACTORS_SUBSYSTEM_OBJECTS "")
set(ACTORS_SUBSYSTEMS "")

function(actors_subsystem name)
  cmake_parse_arguments(arg "" "" "USES;EXCEPT" ${ARGN})
  set(dir ${CMAKE_CURRENT_SOURCE_DIR}/src/${name})
  file(GLOB sources CONFIGURE_DEPENDS ${dir}/*.cpp)
  file(GLOB headers CONFIGURE_DEPENDS ${dir}/*.hpp)
  foreach(file IN LISTS sources headers)
    file(STRINGS ${file} includes REGEX "^#include \"[a-z_]+/")
    foreach(line IN LISTS includes)
      string(REGEX REPLACE "^#include \"([a-z_]+)/.*" "\\1" used "${line}")
      if(NOT used STREQUAL "actors" AND NOT used STREQUAL name)
        list(FIND arg_USES ${used} at)
        file(RELATIVE_PATH shown ${CMAKE_CURRENT_SOURCE_DIR}/src ${file})
        string(REGEX REPLACE "^#include \"([^\"]+)\".*" "\\1" header
               "${line}")
        list(FIND arg_EXCEPT "${shown}:${header}" excepted)
        if(at EQUAL -1 AND excepted EQUAL -1)
          message(FATAL_ERROR
            "libactors/src/${shown}: ${line}: src/${name} may include only its own "
            "headers, the public ones and those of: ${arg_USES} "
            "(the layers in libactors/CMakeLists.txt)")
        endif()
      endif()
    endforeach()
  endforeach()
  add_library(actors_${name} OBJECT ${sources})
  target_include_directories(actors_${name} PRIVATE
    ${CMAKE_CURRENT_SOURCE_DIR}/include ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(actors_${name} PRIVATE CAF::core CAF::io
                        OpenSSL::SSL OpenSSL::Crypto actors_hygiene)
  target_compile_features(actors_${name} PRIVATE cxx_std_17)
  set_target_properties(actors_${name} PROPERTIES
                        POSITION_INDEPENDENT_CODE ON)
  set(ACTORS_SUBSYSTEM_OBJECTS ${ACTORS_SUBSYSTEM_OBJECTS}
      $<TARGET_OBJECTS:actors_${name}> PARENT_SCOPE)
endfunction()
