#include "distributed/nccl_info.h"

#if R2REC_HAVE_NCCL
#include <nccl.h>
#endif

namespace r2rec {

bool nccl_compiled() { return R2REC_HAVE_NCCL != 0; }

std::string nccl_version() {
#if R2REC_HAVE_NCCL
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess) return "error";
  // NCCL >= 2.9 encodes major*10000 + minor*100 + patch.
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
#else
  return "";
#endif
}

}  // namespace r2rec
