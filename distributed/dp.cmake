# r2rec_dp: the data-parallel pieces on top of the Communicator (included from distributed/CMakeLists.txt):
#   buckets.cpp        pure bucket assignment + shape check / bucketed broadcast of tensors
#   gradient_sync.cpp  GradientSynchronizer: bucketed, overlapped gradient all-reduce (autograd hooks)
#   param_broadcast.cpp ParameterBroadcaster: learner 0 -> rollout ranks, versioned, checksummed
#   trajectory.cpp     TrajectoryBatch wire format and TrajectoryChannel (rollout -> learner)
add_library(r2rec_dp STATIC
  buckets.cpp
  gradient_sync.cpp
  param_broadcast.cpp
  trajectory.cpp
)
target_link_libraries(r2rec_dp PUBLIC r2rec_comm r2rec_torch)
r2rec_target_warnings(r2rec_dp)
r2rec_torch_pch(r2rec_dp)
