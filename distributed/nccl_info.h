// Whether this build has the NCCL communicator, and the NCCL library's version.
#pragma once

#include <string>

namespace r2rec {

bool nccl_compiled();
// "2.28.3" from ncclGetVersion, or "" when not compiled in.
std::string nccl_version();

}  // namespace r2rec
