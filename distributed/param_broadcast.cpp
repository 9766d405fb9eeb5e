#include "distributed/param_broadcast.h"

#include <cstring>
#include <sstream>
#include <stdexcept>

#include "core/error.h"
#include "core/hash.h"

namespace r2rec {

namespace {
constexpr const char* kWho = "parameter broadcast";
}  // namespace

uint64_t bucket_checksum(const void* data, size_t bytes) {
  const uint64_t h = fnv1a_lanes(kFnvOffset, data, bytes);
  return h == 0 ? 1 : h;
}

int64_t check_received_broadcast(const std::vector<int64_t>& header, const std::vector<void*>& data,
                                 const std::vector<Bucket>& buckets, int64_t last, int rank,
                                 const std::function<void(size_t, void*, size_t)>& hook) {
  const size_t nb = buckets.size();
  const std::string who = std::string(kWho) + ": rank " + std::to_string(rank);
  if (header.size() != 2 + nb || data.size() != nb)
    throw std::invalid_argument(who + ": a header of " + std::to_string(header.size()) + " words and " +
                                std::to_string(data.size()) + " bucket(s) for " + std::to_string(nb) + " bucket(s)");
  const int64_t received = header[0];
  if (header[1] != static_cast<int64_t>(nb))
    throw CommError(who + " expected " + std::to_string(nb) + " buckets, the header says " + std::to_string(header[1]));
  if (received <= last)
    throw CommError(who + " received version " + std::to_string(received) + " after version " + std::to_string(last) +
                    " (versions must increase)");
  for (size_t j = 0; j < nb; ++j) {
    if (hook) hook(j, data[j], buckets[j].bytes());
    if (header[2 + j] == 0) continue;
    const uint64_t got = bucket_checksum(data[j], buckets[j].bytes());
    if (got != static_cast<uint64_t>(header[2 + j])) {
      std::ostringstream s;
      s << who << ": checksum mismatch in bucket " << j << " (" << bytes_label(buckets[j].numel, buckets[j].dtype)
        << ") of version " << received << ": sent " << std::hex << static_cast<uint64_t>(header[2 + j]) << ", received "
        << got;
      throw CommError(s.str());
    }
  }
  return received;
}

ParameterBroadcaster::ParameterBroadcaster(std::vector<torch::Tensor> params, Communicator& sync_group,
                                           const BroadcastOptions& options)
    : params_(std::move(params)), comm_(sync_group), options_(options) {
  check_same_parameters(params_, comm_, kWho);
  buckets_ = assign_buckets(params_, bucket_cap_bytes(options_.bucket_mb), kWho);
  for (const Bucket& b : buckets_)
    flats_.push_back(
        torch::empty({static_cast<int64_t>(b.numel)}, params_[b.params[0]].options().requires_grad(false)));
  if (!options_.alias) return;
  for (const torch::Tensor& p : params_)
    if (!p.is_contiguous()) throw std::invalid_argument(std::string(kWho) + ": alias needs contiguous parameters");
  torch::NoGradGuard no_grad;
  for (size_t j = 0; j < buckets_.size(); ++j) {
    const Bucket& b = buckets_[j];
    for (size_t i = 0; i < b.params.size(); ++i) {
      torch::Tensor& p = params_[b.params[i]];
      torch::Tensor view = flats_[j].narrow(0, static_cast<int64_t>(b.offsets[i]), p.numel()).view(p.sizes());
      view.copy_(p);
      p.set_data(view);  // the module's parameter (same TensorImpl) now lives inside the flat bucket
    }
  }
}

int64_t ParameterBroadcaster::broadcast(int64_t version) {
  torch::NoGradGuard no_grad;
  const size_t nb = buckets_.size();
  std::vector<int64_t> header(2 + nb, 0);
  if (is_root()) {
    if (version <= version_)
      throw std::invalid_argument(std::string(kWho) + ": version " + std::to_string(version) +
                                  " does not exceed the last one sent (" + std::to_string(version_) + ")");
    for (size_t j = 0; j < nb; ++j) {
      const Bucket& b = buckets_[j];
      for (size_t i = 0; i < b.params.size() && !options_.alias; ++i) {
        const torch::Tensor& p = params_[b.params[i]];
        flats_[j].narrow(0, static_cast<int64_t>(b.offsets[i]), p.numel()).view(p.sizes()).copy_(p);
      }
      if (options_.checksum) header[2 + j] = static_cast<int64_t>(bucket_checksum(flats_[j].data_ptr(), b.bytes()));
    }
    header[0] = version;
    header[1] = static_cast<int64_t>(nb);
  }
  // Header first (blocking), then every bucket in flight at once.
  comm_.broadcast(header.data(), header.size(), DType::kI64, 0)->wait(options_.timeout_s);
  std::vector<WorkPtr> works;
  for (size_t j = 0; j < nb; ++j) works.push_back(comm_.broadcast(flats_[j], 0));
  for (auto& w : works) w->wait(options_.timeout_s);
  if (is_root()) return version_ = version;

  std::vector<void*> data;
  for (const torch::Tensor& f : flats_) data.push_back(f.data_ptr());
  const int64_t received = check_received_broadcast(header, data, buckets_, version_, comm_.rank(), hook_);
  for (size_t j = 0; j < nb && !options_.alias; ++j) {
    const Bucket& b = buckets_[j];
    for (size_t i = 0; i < b.params.size(); ++i) {
      torch::Tensor p = params_[b.params[i]];
      p.copy_(flats_[j].narrow(0, static_cast<int64_t>(b.offsets[i]), p.numel()).view(p.sizes()));
    }
  }
  return version_ = received;
}

}  // namespace r2rec
