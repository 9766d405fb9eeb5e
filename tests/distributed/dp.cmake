# Data-parallel tests (included from tests/CMakeLists.txt; paths relative to tests/).
#  test_buckets: the pure bucket assignment (caps, oversize parameters, mixed dtypes, order).
#  test_gradient_sync_np{1,2,3}: W-rank step with accumulation == 1-process step on the union batch, shape
#                                 mismatch -> CommError on every rank, launch order, no_sync, overlap.
#  test_param_broadcast_np{2,3}, test_trajectory_np{2,3}: weight broadcast and trajectory channel.
r2rec_add_test(test_buckets SOURCES distributed/test_buckets.cpp LIBS r2rec_dp LABELS unit)
r2rec_add_test(test_gradient_sync SOURCES distributed/test_gradient_sync.cpp LIBS r2rec_dp NP 1 2 3 LABELS unit
               TIMEOUT 180)
r2rec_torch_pch(test_gradient_sync)
r2rec_add_test(test_param_broadcast SOURCES distributed/test_param_broadcast.cpp LIBS r2rec_dp NP 2 3 LABELS unit)
r2rec_torch_pch(test_param_broadcast)
r2rec_add_test(test_trajectory SOURCES distributed/test_trajectory.cpp LIBS r2rec_dp NP 2 3 LABELS unit)
