# Proves that an installed ringcache is usable with find_package(ringcache): installs the
# build tree into a fresh prefix, then configures, builds and runs examples/embedded as a
# standalone project against that prefix only.
#
#   cmake -DBUILD_DIR=<ringcache build> -DSOURCE_DIR=<ringcache source> -DWORK_DIR=<scratch>
#         [-DGENERATOR=Ninja] [-DBUILD_TYPE=RelWithDebInfo] [-DCXX_COMPILER=/usr/bin/g++]
#         [-DCXX_FLAGS=...] [-DRINGCACHED=<ringcached binary>]
#         -P tests/install/check_install.cmake
#
# With RINGCACHED, also builds examples/cluster_client against the prefix with
# find_package(ringcache COMPONENTS client) and runs it against a fresh 3-node cluster
# (examples/cluster_client/with_cluster.sh).
#
# Registered in tests/CMakeLists.txt as "install: find_package(ringcache) builds
# examples/embedded" (label "install"; not in sanitizer builds).
cmake_minimum_required(VERSION 3.22)

foreach(var BUILD_DIR SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "check_install.cmake: -D${var}=... is required")
  endif()
endforeach()

set(prefix "${WORK_DIR}/prefix")
set(example_build "${WORK_DIR}/embedded-build")

# Runs a command, echoing it; fails the test with its output if it fails.
function(run step)
  string(REPLACE ";" " " command_line "${ARGN}")
  message(STATUS "[install test] ${step}: ${command_line}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "[install test] ${step} failed (exit ${rc}):\n${out}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# 1. Install the already-built tree into an empty prefix.
set(config_args "")
if(BUILD_TYPE)
  set(config_args --config "${BUILD_TYPE}")
endif()
run("install" "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}" ${config_args})

foreach(f include/ringcache/cache.h include/ringcache/hash_ring.h)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "[install test] ${prefix}/${f} was not installed")
  endif()
endforeach()
file(GLOB_RECURSE config_files "${prefix}/*/ringcacheConfig.cmake")
if(NOT config_files)
  message(FATAL_ERROR "[install test] no ringcacheConfig.cmake under ${prefix}")
endif()

# 2. Configure an example standalone against that prefix only (no package registry, no
#    system-wide ringcache), and check that the package came from the prefix.
function(configure_example name build_dir)
  set(configure_args
    -S "${SOURCE_DIR}/examples/${name}" -B "${build_dir}"
    "-DCMAKE_PREFIX_PATH=${prefix}"
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
    -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
  if(GENERATOR)
    list(APPEND configure_args -G "${GENERATOR}")
  endif()
  if(BUILD_TYPE)
    list(APPEND configure_args "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
  endif()
  if(CXX_COMPILER)
    list(APPEND configure_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
  endif()
  if(DEFINED CXX_FLAGS)
    list(APPEND configure_args "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}")
  endif()
  run("configure examples/${name}" "${CMAKE_COMMAND}" ${configure_args})

  file(STRINGS "${build_dir}/CMakeCache.txt" found_dir REGEX "^ringcache_DIR:")
  string(REGEX REPLACE "^ringcache_DIR:[A-Z]+=" "" found_dir "${found_dir}")
  file(REAL_PATH "${prefix}" real_prefix)
  file(REAL_PATH "${found_dir}" real_found_dir)
  string(FIND "${real_found_dir}" "${real_prefix}/" at)
  if(NOT at EQUAL 0)
    message(FATAL_ERROR "[install test] find_package(ringcache) used ${found_dir}, not ${prefix}")
  endif()
endfunction()
configure_example(embedded "${example_build}")

# 3. Build it and run it.
run("build examples/embedded" "${CMAKE_COMMAND}" --build "${example_build}" ${config_args})
find_program(example embedded_example PATHS "${example_build}" "${example_build}/${BUILD_TYPE}"
             NO_DEFAULT_PATH REQUIRED)
run("run embedded_example" "${example}")
message(STATUS "[install test] embedded_example built against ${prefix} and ran:\n${last_output}")

# 4. The cluster client: ringcache::client from the same prefix, run against 3 nodes.
if(RINGCACHED)
  if(NOT EXISTS "${prefix}/include/ringcache/client/client.h")
    message(FATAL_ERROR "[install test] ${prefix}/include/ringcache/client/client.h was not installed")
  endif()
  set(client_build "${WORK_DIR}/cluster-client-build")
  configure_example(cluster_client "${client_build}")
  run("build examples/cluster_client" "${CMAKE_COMMAND}" --build "${client_build}" ${config_args})
  find_program(client_example cluster_client_example
               PATHS "${client_build}" "${client_build}/${BUILD_TYPE}" NO_DEFAULT_PATH REQUIRED)
  find_program(bash bash REQUIRED)
  run("run cluster_client_example against 3 nodes" "${bash}"
      "${SOURCE_DIR}/examples/cluster_client/with_cluster.sh" "${RINGCACHED}" "${client_example}"
      --seeds "{seeds}")
  message(STATUS "[install test] cluster_client_example built against ${prefix} and ran:\n"
                 "${last_output}")
endif()
