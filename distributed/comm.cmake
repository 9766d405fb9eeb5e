# r2rec_comm: the Communicator interface, its MPI and NCCL backends, and the watchdog.
# Included from distributed/CMakeLists.txt. Every CUDA/NCCL call is in nccl_communicator.cpp, compiled
# only when R2REC_NCCL_ENABLED (cmake/R2recDependencies.cmake).
add_library(r2rec_comm STATIC
  communicator.cpp
  mpi_communicator.cpp
  watchdog.cpp
)
target_link_libraries(r2rec_comm PUBLIC r2rec_distributed r2rec_torch MPI::MPI_CXX Threads::Threads)
if(R2REC_NCCL_ENABLED)
  target_sources(r2rec_comm PRIVATE nccl_communicator.cpp)
  target_link_libraries(r2rec_comm PUBLIC r2rec_nccl)
endif()
r2rec_target_warnings(r2rec_comm)
# communicator.cpp is the only torch TU and needs just <ATen/core/Tensor.h>: no precompiled torch header.
