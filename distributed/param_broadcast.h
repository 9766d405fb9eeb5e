// ParameterBroadcaster: learner rank 0 -> every rollout rank, after each update (docs/design.md §3).
//
// Collective over the sync group (learner 0 followed by the rollout ranks, Topology::sync), root = rank 0 of
// that group. The parameters travel through the flat buckets of assign_buckets (the same grouping as the
// gradient buckets, cap bucket_mb), all buckets in flight at once. One broadcast is:
//   1. header  int64[2 + nb]: {version, nb, checksum_0 .. checksum_{nb-1}}   (broadcast from root)
//   2. bucket j: flat_j[numel_j] of its dtype                                  (broadcast from root)
//   3. receivers verify nb, the version (strictly greater than the last one received) and, when checksums
//      are on, checksum(flat_j bytes) == checksum_j, then copy the slices into their parameters.
// checksum = core/hash.h fnv1a_lanes (4 interleaved FNV-1a 64 lanes over 8-byte little-endian words, folded;
// tail words and bytes one by one); 0 in the header = not sent.
// Any failed check throws CommError on that receiver, naming the bucket, its size, and both values.
//
// Constructor: check_same_parameters over the group (same count/shapes/dtypes, else CommError everywhere).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "distributed/buckets.h"
#include "distributed/communicator.h"

namespace r2rec {

struct BroadcastOptions {
  double bucket_mb = 25.0;   // DistributedConfig::bucket_mb: bucket cap
  double timeout_s = 300.0;  // deadline of each wait
  bool checksum = true;      // 4-lane FNV-1a per bucket (core/hash.h fnv1a_lanes), verified on receivers
  // Zero-copy: the constructor moves every parameter into its bucket's flat buffer (Tensor::set_data: the
  // module's parameters become views of the buckets, values unchanged), so a broadcast sends from and
  // receives into the parameters themselves, without the pack and unpack copies. A receiver that then fails
  // a check (version, checksum) throws with its parameters already overwritten. Parameters must be
  // contiguous; an optimizer built after this object sees the moved tensors (same TensorImpl).
  bool alias = false;
};

// fnv1a_lanes from the FNV offset basis (see the header comment). Never returns 0.
uint64_t bucket_checksum(const void* data, size_t bytes);

// A receiver's checks of one broadcast as it arrived (step 3 above): `header` is the int64[2 + buckets.size()] it
// received, data[j] the bytes of bucket j (buckets[j].bytes() of them); `last` the last version received (-1 before
// the first). Returns the received version; CommError naming `rank` and the failed check otherwise, and
// std::invalid_argument when `header` or `data` does not have the buckets' length (a caller's error). `hook` (may
// be empty) sees each bucket before its checksum is verified (ParameterBroadcaster's test seam).
int64_t check_received_broadcast(const std::vector<int64_t>& header, const std::vector<void*>& data,
                                 const std::vector<Bucket>& buckets, int64_t last, int rank,
                                 const std::function<void(size_t, void*, size_t)>& hook = {});

class ParameterBroadcaster {
 public:
  // Collective over `sync_group`, which must outlive this object. On the root, `params` are the learner's
  // parameters (read); on receivers, the rollout model's (overwritten).
  ParameterBroadcaster(std::vector<torch::Tensor> params, Communicator& sync_group,
                       const BroadcastOptions& options = {});

  bool is_root() const { return comm_.rank() == 0; }

  // Collective. Root: sends its parameters tagged `version`, which must exceed the last one sent
  // (std::invalid_argument otherwise). Receivers: `version` is ignored; the parameters are overwritten and
  // the received version returned (and kept in version()). Returns the version on every rank.
  int64_t broadcast(int64_t version);

  // The last version sent (root) or received; -1 before the first broadcast.
  int64_t version() const { return version_; }
  const std::vector<Bucket>& buckets() const { return buckets_; }

  // Test seam: called on receivers with (bucket, bytes pointer, size) after the data arrived and before the
  // checksum check, e.g. to flip a byte.
  void set_receive_hook_for_testing(std::function<void(size_t, void*, size_t)> hook) { hook_ = std::move(hook); }

 private:
  std::vector<torch::Tensor> params_;
  Communicator& comm_;
  BroadcastOptions options_;
  std::vector<Bucket> buckets_;
  std::vector<torch::Tensor> flats_;
  int64_t version_ = -1;
  std::function<void(size_t, void*, size_t)> hook_;
};

}  // namespace r2rec
