# bench_allreduce: raw MPI_Allreduce vs r2rec's MPI communicator (run under mpirun -np 2).
add_executable(bench_allreduce bench_allreduce.cpp)
target_link_libraries(bench_allreduce PRIVATE r2rec_comm)
set_target_properties(bench_allreduce PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/benchmarks")
r2rec_target_warnings(bench_allreduce)
