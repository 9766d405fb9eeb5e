# bench_gradient_sync: GradientSynchronizer's bucketed all-reduce vs one raw MPI_Allreduce, and step time
# with vs without overlap (run under mpirun -np 2).
add_executable(bench_gradient_sync bench_gradient_sync.cpp)
target_link_libraries(bench_gradient_sync PRIVATE r2rec_dp)
set_target_properties(bench_gradient_sync PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/benchmarks")
r2rec_torch_pch(bench_gradient_sync)
r2rec_target_warnings(bench_gradient_sync)
