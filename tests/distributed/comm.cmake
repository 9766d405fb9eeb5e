# Communicator tests (included from tests/CMakeLists.txt; paths relative to tests/).
#  test_collectives_np{1,2,3,4}: every op × dtype × odd sizes on the MPI backend (label unit, mpi).
#  test_collectives_gpu: the same suite on the NCCL backend at world size 1 (label gpu; skips without a GPU).
#  test_watchdog: launches `mpirun -np 3 watchdog_helper` where rank 1 dies (SIGKILL) or hangs (SIGSTOP)
#                 and asserts the job ends non-zero in time, naming the phase and the rank (label mpi).
r2rec_add_test(test_collectives SOURCES distributed/test_collectives.cpp LIBS r2rec_comm NP 1 2 3 4 LABELS unit
               TIMEOUT 180)
if(R2REC_NCCL_ENABLED)
  r2rec_add_test(test_collectives_gpu SOURCES distributed/test_collectives.cpp LIBS r2rec_comm NP 1 LABELS gpu)
  target_compile_definitions(test_collectives_gpu PRIVATE R2REC_TEST_NCCL=1)
endif()

add_executable(watchdog_helper distributed/test_watchdog_helper.cpp)
target_link_libraries(watchdog_helper PRIVATE r2rec_comm)
target_include_directories(watchdog_helper PRIVATE "${PROJECT_SOURCE_DIR}")
set_target_properties(watchdog_helper PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/tests")
r2rec_target_warnings(watchdog_helper)
r2rec_add_test(test_watchdog SOURCES distributed/test_watchdog.cpp LABELS mpi TIMEOUT 240)
add_dependencies(test_watchdog watchdog_helper)
