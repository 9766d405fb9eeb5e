# r2rec_add_test(<name> SOURCES ... [LIBS ...] [NP n ...] [LABELS ...] [TIMEOUT s] [MPI_MAIN] [BINARY])
#
# Builds build/tests/<name> and registers it with CTest:
#  - without NP: one test <name>, run directly;
#  - with NP n1 n2 ...: one test <name>_np<n> per n, each run as `mpirun -np n build/tests/<name>`, labelled
#    "mpi"; such executables use tests/mpi_gtest_main.cpp so every rank agrees on pass/fail;
#  - BINARY: the test starts the r2rec binary (it is built first; the environment is R2REC_BINARY_TEST_ENV).
# Every test gets a TIMEOUT (default 120 s; 3x in sanitizer builds, whose code runs 3-10x slower) so a hang fails
# instead of stalling CI, and the labels given so `ctest -L unit` or `ctest -LE slow` select them:
#  unit, mpi  what CI's main run selects (all of it);
#  gpu        needs a GPU (built with R2REC_GPU_TESTS);
#  format     the clang-format check (tests/CMakeLists.txt);
#  slow       >= 60 s in the main run on 2 cores, or minutes of CPU instrumented: left out of the AddressSanitizer
#             run with gpu and format (tests/sanitizers/run.sh, docs/hardening.md).
set(R2REC_TEST_ENV
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1   # CI and dev boxes run as root
  OMPI_MCA_rmaps_base_oversubscribe=1                         # more ranks than cores on 2-core machines
  OMPI_MCA_btl_vader_single_copy_mechanism=none               # containers forbid the CMA ptrace path
  R2REC_SOURCE_DIR=${PROJECT_SOURCE_DIR}
  R2REC_DATA_DIR=${PROJECT_SOURCE_DIR}/../shared/data
  R2REC_BINARY=$<TARGET_FILE:r2rec>
  R2REC_MPIEXEC=${MPIEXEC_EXECUTABLE})
if(R2REC_SANITIZE)
  # The sanitizer build (docs/hardening.md): a finding fails the test that met it, in test binaries and in the r2rec
  # processes they start; Open MPI's own exit-time allocations are suppressed with their reason in lsan.supp.
  set(asan_options detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1)
  list(APPEND R2REC_TEST_ENV
    # fast_unwind_on_malloc=0: full stacks through the uninstrumented Open MPI libraries, so that suppressions match
    ASAN_OPTIONS=detect_leaks=1:${asan_options}:fast_unwind_on_malloc=0
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/sanitizers/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0
    OMPI_MCA_mca_base_component_disable_dlclose=1  # keep MCA components loaded so leak stacks name them
    TSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/sanitizers/tsan.supp:halt_on_error=1:second_deadlock_stack=1)
endif()
# Tests that start the r2rec binary. In the AddressSanitizer build its processes run without leak checking: the
# suppressions of Open MPI's exit-time allocations match only with the slow unwinder (above), which costs every
# start of the binary ~7 s of libtorch's start-up mallocs (8.6 s against 1.8 s for `r2rec --help` instrumented), and
# these tests start it dozens of times. Out-of-bounds accesses, use after free and undefined behaviour still stop
# them. The libraries' leaks are checked by the in-process tests; the code compiled into the binary alone
# (launch/: the commands, the stage drivers, the report) is not checked for leaks.
set(R2REC_BINARY_TEST_ENV ${R2REC_TEST_ENV})
if(R2REC_SANITIZE MATCHES "address")
  list(FILTER R2REC_BINARY_TEST_ENV EXCLUDE REGEX "^(ASAN|LSAN)_OPTIONS=")
  list(APPEND R2REC_BINARY_TEST_ENV ASAN_OPTIONS=detect_leaks=0:${asan_options})
endif()
if(R2REC_SANITIZE)
  set(R2REC_TIMEOUT_SCALE 3)
else()
  set(R2REC_TIMEOUT_SCALE 1)
endif()

# r2rec_script_test(<name> SCRIPT file [TIMEOUT s] [LABELS ...]): a bash script run with the repository root and the
# r2rec binary as its arguments, in R2REC_BINARY_TEST_ENV.
function(r2rec_script_test name)
  cmake_parse_arguments(T "" "SCRIPT;TIMEOUT" "LABELS" ${ARGN})
  if(T_UNPARSED_ARGUMENTS OR NOT T_SCRIPT)
    message(FATAL_ERROR "r2rec_script_test(${name}): expected SCRIPT file [TIMEOUT s] [LABELS ...], got ${ARGN}")
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  math(EXPR timeout "${T_TIMEOUT} * ${R2REC_TIMEOUT_SCALE}")
  add_test(NAME ${name} COMMAND bash "${T_SCRIPT}" "${PROJECT_SOURCE_DIR}" $<TARGET_FILE:r2rec>)
  set_tests_properties(${name} PROPERTIES TIMEOUT ${timeout} LABELS "${T_LABELS}"
                       ENVIRONMENT "${R2REC_BINARY_TEST_ENV}")
endfunction()

function(r2rec_add_test name)
  cmake_parse_arguments(T "MPI_MAIN;BINARY" "TIMEOUT" "SOURCES;LIBS;NP;LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  math(EXPR T_TIMEOUT "${T_TIMEOUT} * ${R2REC_TIMEOUT_SCALE}")
  set(env ${R2REC_TEST_ENV})
  if(T_BINARY)
    set(env ${R2REC_BINARY_TEST_ENV})
  endif()
  add_executable(${name} ${T_SOURCES})
  if(T_NP OR T_MPI_MAIN)
    target_sources(${name} PRIVATE "${PROJECT_SOURCE_DIR}/tests/mpi_gtest_main.cpp")
    target_link_libraries(${name} PRIVATE GTest::gtest GTest::gmock MPI::MPI_CXX)
  else()
    target_link_libraries(${name} PRIVATE GTest::gtest GTest::gmock GTest::gtest_main)
  endif()
  target_link_libraries(${name} PRIVATE ${T_LIBS} r2rec_test_support)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/tests")
  r2rec_target_warnings(${name})
  if(T_NP)
    foreach(np IN LISTS T_NP)
      add_test(NAME ${name}_np${np}
               COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} ${MPIEXEC_PREFLAGS}
                       $<TARGET_FILE:${name}> ${MPIEXEC_POSTFLAGS})
      set_tests_properties(${name}_np${np} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "mpi;${T_LABELS}"
                           ENVIRONMENT "${env}" PROCESSORS ${np})
    endforeach()
  else()
    add_test(NAME ${name} COMMAND $<TARGET_FILE:${name}>)
    set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}"
                         ENVIRONMENT "${env}")
  endif()
  if(T_BINARY)
    add_dependencies(${name} r2rec)
  endif()
endfunction()
