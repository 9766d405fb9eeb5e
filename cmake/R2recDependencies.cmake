# Every third-party dependency of r2rec, found once here. All come from Debian 12 packages
# (launch/install-deps.sh); a CUDA libtorch is picked up through Torch_DIR or CMAKE_PREFIX_PATH.

if(R2REC_USE_CCACHE)
  find_program(CCACHE_PROGRAM ccache)
  if(CCACHE_PROGRAM)
    # Precompiled headers are only cached with these sloppiness settings (ccache manual, "Precompiled headers").
    # CCACHE_BASEDIR makes the paths under the source tree relative, so that two clones (a working copy and CI's
    # clean clone) share cache entries.
    set(_launcher ${CMAKE_COMMAND} -E env CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
        CCACHE_BASEDIR=${CMAKE_SOURCE_DIR} ${CCACHE_PROGRAM})
    set(CMAKE_C_COMPILER_LAUNCHER ${_launcher} CACHE STRING "" FORCE)
    set(CMAKE_CXX_COMPILER_LAUNCHER ${_launcher} CACHE STRING "" FORCE)
    message(STATUS "r2rec: ccache ${CCACHE_PROGRAM}")
  endif()
endif()

find_package(Threads REQUIRED)
find_package(Torch REQUIRED)
find_package(MPI REQUIRED COMPONENTS CXX)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(yaml-cpp REQUIRED)
find_package(glog REQUIRED)
find_package(nlohmann_json 3.9 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(Boost 1.74 REQUIRED)  # Boost.Math (header-only): the t quantile of trainers/eval/stats.cpp
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
find_package(ZLIB REQUIRED)
if(R2REC_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(R2REC_BUILD_BENCHMARKS)
  find_package(benchmark REQUIRED)
endif()

# Torch's imported targets carry its flags; expose them through one interface target whose include
# directories are SYSTEM so torch's own warnings do not drown ours.
add_library(r2rec_torch INTERFACE)
target_link_libraries(r2rec_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(r2rec_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
message(STATUS "r2rec: Torch ${Torch_VERSION} (${TORCH_INSTALL_PREFIX})")

# HDF5 as one imported-style interface target.
add_library(r2rec_hdf5 INTERFACE)
target_include_directories(r2rec_hdf5 SYSTEM INTERFACE ${HDF5_C_INCLUDE_DIRS} ${HDF5_INCLUDE_DIRS})
target_link_libraries(r2rec_hdf5 INTERFACE ${HDF5_C_LIBRARIES} ${HDF5_LIBRARIES})
target_compile_definitions(r2rec_hdf5 INTERFACE ${HDF5_DEFINITIONS})

# NCCL: AUTO turns on when both the CUDA runtime and NCCL are found (e.g. /usr/local/cuda).
set(R2REC_NCCL_ENABLED OFF)
if(NOT R2REC_WITH_NCCL STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
  set(_nccl_hints $ENV{NCCL_HOME} ${NCCL_HOME} ${CUDAToolkit_LIBRARY_ROOT} /usr/local/cuda)
  find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${_nccl_hints} PATH_SUFFIXES include)
  find_library(NCCL_LIBRARY NAMES nccl libnccl.so.2 HINTS ${_nccl_hints} PATH_SUFFIXES lib lib64)
  if(CUDAToolkit_FOUND AND NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    set(R2REC_NCCL_ENABLED ON)
    add_library(r2rec_nccl INTERFACE)
    target_include_directories(r2rec_nccl SYSTEM INTERFACE ${NCCL_INCLUDE_DIR})
    target_link_libraries(r2rec_nccl INTERFACE ${NCCL_LIBRARY} CUDA::cudart)
    message(STATUS "r2rec: NCCL ${NCCL_LIBRARY} (CUDA ${CUDAToolkit_VERSION})")
  elseif(R2REC_WITH_NCCL STREQUAL "ON")
    message(FATAL_ERROR "R2REC_WITH_NCCL=ON but CUDA/NCCL were not found: set NCCL_HOME or CUDAToolkit_ROOT")
  else()
    message(STATUS "r2rec: NCCL not found, building without the NCCL communicator")
  endif()
endif()

# r2rec_torch_pch(<target>): precompile the torch headers once per target (ccache-friendly).
function(r2rec_torch_pch target)
  if(R2REC_USE_PCH)
    target_precompile_headers(${target} PRIVATE <torch/torch.h>)
  endif()
endfunction()
