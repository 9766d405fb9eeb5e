// Gradient / weight buckets, the c10d way: parameters are grouped into a few flat buffers ("buckets") so that
// one collective moves many small tensors, and every rank groups them identically.
//
// assign_buckets() is PURE (no communication, no torch): the same inputs give the same buckets on every
// rank, which is what keeps the ranks' collectives in the same order with the same counts.
//
//   * Parameters are taken in REVERSE registration order (index n-1 first): backward produces gradients
//     roughly from the last layer to the first, so bucket 0 fills up first and can be reduced while the
//     rest of backward still runs.
//   * One dtype per bucket (a collective has one dtype). Each dtype has its own open bucket.
//   * A parameter joins the open bucket of its dtype unless that would take the bucket above cap_bytes;
//     then the open bucket is closed and a new one started. A parameter larger than the cap therefore gets
//     a bucket of its own. cap_bytes = 0: one bucket per parameter (zero-size parameters share).
//   * Buckets are numbered in the order they were opened, i.e. by the readiness of their first parameter.
//
// The torch-side helpers below (dtype_of, check_same_parameters, broadcast_parameters) are shared by
// GradientSynchronizer and ParameterBroadcaster.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "distributed/communicator.h"

namespace at {
class Tensor;
}

namespace r2rec {

struct Bucket {
  DType dtype = DType::kF32;
  std::vector<size_t> params;   // parameter indices, in bucket order (descending: reverse registration)
  std::vector<size_t> offsets;  // offsets[i]: first element of params[i] inside the flat bucket
  size_t numel = 0;             // total elements; params[i] occupies [offsets[i], offsets[i] + its numel)
  size_t bytes() const { return numel * dtype_size(dtype); }
};

// sizes_in_bytes[k], dtypes[k]: parameter k (sizes must be multiples of the dtype's width; CHECKed).
// Returns the buckets (see the rules above). Every parameter is in exactly one bucket.
std::vector<Bucket> assign_buckets(const std::vector<size_t>& sizes_in_bytes, const std::vector<DType>& dtypes,
                                   size_t cap_bytes);

// bucket_mb (DistributedConfig::bucket_mb) in bytes: 25.0 -> 26214400. Negative -> 0.
size_t bucket_cap_bytes(double bucket_mb);

// ---- torch-side helpers --------------------------------------------------------------------------------

// The DType of a tensor's scalar type; CommError "<who>: parameter <k>: tensors of dtype <t> are not supported".
DType dtype_of(const at::Tensor& t, const std::string& who, size_t k);

// assign_buckets over tensors (numel * element size, their dtypes).
std::vector<Bucket> assign_buckets(const std::vector<at::Tensor>& tensors, size_t cap_bytes, const std::string& who);

// "f32[4, 8]".
std::string shape_label(const at::Tensor& t);

// Collective over `comm`: every rank must hold the same number of tensors with the same shapes and dtypes
// (and, with check_requires_grad, the same requires_grad flags). All ranks gather every rank's descriptor
// (count, then per tensor dtype, ndim, dims) and compare them to rank 0's, so on a mismatch EVERY rank
// throws the same CommError:
//   "<who>: parameters differ across ranks: parameter 3 is f32[4, 8] on rank 0 but f32[4, 9] on rank 1"
//   "<who>: parameters differ across ranks: rank 0 has 4 parameters, rank 2 has 5 (parameter 4: f32[3] on
//    rank 2)"
//   "... parameter 1 is f32[2] on rank 0 but f32[2] (frozen) on rank 1"        (check_requires_grad)
void check_same_parameters(const std::vector<at::Tensor>& tensors, Communicator& comm, const std::string& who,
                           bool check_requires_grad = false);

// Collective over `comm`: overwrites every tensor with root's values through flat buckets of at most
// cap_bytes (all buckets in flight at once, then waited with timeout_s). Tensors need not be contiguous.
void broadcast_parameters(const std::vector<at::Tensor>& tensors, Communicator& comm, int root, size_t cap_bytes,
                          double timeout_s, const std::string& who);

}  // namespace r2rec
