#include "distributed/buckets.h"

#include <glog/logging.h>
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <sstream>

#include "core/error.h"

namespace r2rec {

std::vector<Bucket> assign_buckets(const std::vector<size_t>& sizes_in_bytes, const std::vector<DType>& dtypes,
                                   size_t cap_bytes) {
  CHECK_EQ(sizes_in_bytes.size(), dtypes.size()) << "assign_buckets: one dtype per parameter";
  std::vector<Bucket> buckets;
  std::map<DType, size_t> open;  // dtype -> index of its open bucket in `buckets`
  for (size_t k = sizes_in_bytes.size(); k-- > 0;) {
    const DType dtype = dtypes[k];
    const size_t width = dtype_size(dtype);
    CHECK_EQ(sizes_in_bytes[k] % width, 0u) << "assign_buckets: parameter " << k << " has " << sizes_in_bytes[k]
                                            << " bytes, not a multiple of " << dtype_name(dtype) << "'s width";
    auto it = open.find(dtype);
    if (it == open.end() ||
        (!buckets[it->second].params.empty() && buckets[it->second].bytes() + sizes_in_bytes[k] > cap_bytes)) {
      buckets.emplace_back();
      buckets.back().dtype = dtype;
      open[dtype] = buckets.size() - 1;
      it = open.find(dtype);
    }
    Bucket& b = buckets[it->second];
    b.params.push_back(k);
    b.offsets.push_back(b.numel);
    b.numel += sizes_in_bytes[k] / width;
  }
  return buckets;
}

size_t bucket_cap_bytes(double bucket_mb) {
  return bucket_mb <= 0.0 ? 0 : static_cast<size_t>(bucket_mb * 1024.0 * 1024.0);
}

// ---- torch-side helpers --------------------------------------------------------------------------------

DType dtype_of(const at::Tensor& t, const std::string& who, size_t k) {
  return tensor_dtype(t, who + ": parameter " + std::to_string(k));
}

std::vector<Bucket> assign_buckets(const std::vector<at::Tensor>& tensors, size_t cap_bytes, const std::string& who) {
  std::vector<size_t> sizes;
  std::vector<DType> dtypes;
  for (size_t k = 0; k < tensors.size(); ++k) {
    dtypes.push_back(dtype_of(tensors[k], who, k));
    sizes.push_back(static_cast<size_t>(tensors[k].numel()) * dtype_size(dtypes.back()));
  }
  return assign_buckets(sizes, dtypes, cap_bytes);
}

namespace {

// Descriptor code = DType + 256 for a frozen tensor (only with check_requires_grad); "f32[4, 8] (frozen)".
constexpr int64_t kFrozen = 256;
std::string describe(const int64_t* d, size_t& pos) {
  const int64_t code = d[pos++];
  const int64_t ndim = d[pos++];
  std::ostringstream s;
  s << dtype_name(static_cast<DType>(code % kFrozen)) << "[";
  for (int64_t i = 0; i < ndim; ++i) s << (i ? ", " : "") << d[pos++];
  s << "]" << (code >= kFrozen ? " (frozen)" : "");
  return s.str();
}

}  // namespace

std::string shape_label(const at::Tensor& t) {
  std::ostringstream s;
  s << c10::toString(t.scalar_type()) << "[";
  for (int64_t i = 0; i < t.dim(); ++i) s << (i ? ", " : "") << t.size(i);
  s << "]";
  return s.str();
}

void check_same_parameters(const std::vector<at::Tensor>& tensors, Communicator& comm, const std::string& who,
                           bool check_requires_grad) {
  // Descriptor (int64): [count, then per tensor: dtype code, ndim, dims...].
  std::vector<int64_t> mine{static_cast<int64_t>(tensors.size())};
  for (size_t k = 0; k < tensors.size(); ++k) {
    mine.push_back(static_cast<int64_t>(dtype_of(tensors[k], who, k)) +
                   (check_requires_grad && !tensors[k].requires_grad() ? kFrozen : 0));
    mine.push_back(tensors[k].dim());
    for (int64_t i = 0; i < tensors[k].dim(); ++i) mine.push_back(tensors[k].size(i));
  }
  const int n = comm.size();
  if (n == 1) return;
  std::vector<int64_t> lengths(static_cast<size_t>(n));
  int64_t my_length = static_cast<int64_t>(mine.size());
  comm.all_gather(&my_length, lengths.data(), 1, DType::kI64)->wait();
  std::vector<size_t> counts(lengths.begin(), lengths.end());
  size_t total = 0;
  for (size_t c : counts) total += c;
  std::vector<int64_t> all(total);
  comm.all_gatherv(mine.data(), all.data(), counts, DType::kI64)->wait();

  // Compare every rank r > 0 with rank 0, tensor by tensor; the first difference (lowest tensor index,
  // then lowest rank) is reported, identically on every rank.
  std::vector<size_t> start(static_cast<size_t>(n), 0), pos(static_cast<size_t>(n));
  for (int r = 1; r < n; ++r) start[r] = start[r - 1] + counts[r - 1];
  std::vector<int64_t> count(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) {
    count[r] = all[start[r]];
    pos[r] = start[r] + 1;
  }
  for (int64_t k = 0;; ++k) {
    const bool zero_has = k < count[0];
    std::string zero_label = zero_has ? describe(all.data(), pos[0]) : "";
    for (int r = 1; r < n; ++r) {
      const bool has = k < count[r];
      if (!zero_has && !has) continue;
      if (zero_has != has) {
        size_t p = pos[r];
        std::ostringstream s;
        s << who << ": parameters differ across ranks: rank 0 has " << count[0] << " parameters, rank " << r << " has "
          << count[r] << " (parameter " << k << ": "
          << (zero_has ? zero_label + " on rank 0" : describe(all.data(), p) + " on rank " + std::to_string(r)) << ")";
        throw CommError(s.str());
      }
      const std::string label = describe(all.data(), pos[r]);
      if (label != zero_label)
        throw CommError(who + ": parameters differ across ranks: parameter " + std::to_string(k) + " is " + zero_label +
                        " on rank 0 but " + label + " on rank " + std::to_string(r));
    }
    bool any = zero_has;
    for (int r = 1; r < n; ++r) any = any || k < count[r];
    if (!any) break;
  }
}

void broadcast_parameters(const std::vector<at::Tensor>& tensors, Communicator& comm, int root, size_t cap_bytes,
                          double timeout_s, const std::string& who) {
  if (comm.size() == 1) return;
  torch::NoGradGuard no_grad;
  const std::vector<Bucket> buckets = assign_buckets(tensors, cap_bytes, who);
  std::vector<torch::Tensor> flats;
  std::vector<WorkPtr> works;
  for (const Bucket& b : buckets) {
    const at::Tensor& first = tensors[b.params[0]];
    torch::Tensor flat = torch::empty({static_cast<int64_t>(b.numel)}, first.options().requires_grad(false));
    if (comm.rank() == root)
      for (size_t i = 0; i < b.params.size(); ++i) {
        const at::Tensor& p = tensors[b.params[i]];
        flat.narrow(0, static_cast<int64_t>(b.offsets[i]), p.numel()).view(p.sizes()).copy_(p);
      }
    works.push_back(comm.broadcast(flat, root));
    flats.push_back(flat);
  }
  for (auto& w : works) w->wait(timeout_s);
  if (comm.rank() == root) return;
  for (size_t j = 0; j < buckets.size(); ++j) {
    const Bucket& b = buckets[j];
    for (size_t i = 0; i < b.params.size(); ++i) {
      at::Tensor p = tensors[b.params[i]];
      p.copy_(flats[j].narrow(0, static_cast<int64_t>(b.offsets[i]), p.numel()).view(p.sizes()));
    }
  }
}

}  // namespace r2rec
