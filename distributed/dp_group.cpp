#include "distributed/dp_group.h"

#include "core/error.h"

namespace r2rec {

namespace {

CommOptions comm_options(const DataParallelOptions& o) {
  CommOptions c;
  c.timeout_s = o.timeout_s;
  c.local_rank = o.local_rank;
  return c;
}

// The device communicator over the ranks of `host`: the host itself for MPI ("auto" picks MPI while the
// trainers keep their models on the CPU), else a communicator of that backend over the same ranks.
std::shared_ptr<Communicator> device_over(const std::shared_ptr<Communicator>& host, const DataParallelOptions& o,
                                          bool world) {
  if (o.backend == "mpi" || o.backend == "auto") return host;
  if (!world) {
    throw CommError("distributed.backend=" + o.backend +
                    ": a device communicator over a sub-group is not supported yet; use distributed.backend=mpi");
  }
  return std::shared_ptr<Communicator>(make_communicator(o.backend, comm_options(o)));
}

}  // namespace

DataParallelGroup DataParallelGroup::world(const DataParallelOptions& options) {
  return make(std::shared_ptr<Communicator>(make_communicator("mpi", comm_options(options))), options, true);
}

DataParallelGroup DataParallelGroup::over(std::shared_ptr<Communicator> host, const DataParallelOptions& options) {
  return make(std::move(host), options, false);
}

DataParallelGroup DataParallelGroup::make(std::shared_ptr<Communicator> host, const DataParallelOptions& options,
                                          bool world) {
  DataParallelGroup g;
  g.options_ = options;
  if (!host) return g;
  g.rank_ = host->rank();
  g.size_ = host->size();
  g.host_ = std::move(host);
  g.device_ = device_over(g.host_, options, world);
  return g;
}

void DataParallelGroup::sum(float* data, int64_t count) const {
  if (size_ <= 1 || count == 0) return;
  host_->all_reduce(data, static_cast<size_t>(count), ReduceOp::kSum)->wait();
}

void DataParallelGroup::sum(double* data, int64_t count) const {
  if (size_ <= 1 || count == 0) return;
  host_->all_reduce(data, static_cast<size_t>(count), ReduceOp::kSum)->wait();
}

}  // namespace r2rec
