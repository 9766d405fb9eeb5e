// libFuzzer entry point of one fuzz target (R2REC_FUZZ_TARGET, set per executable by tests/fuzz/CMakeLists.txt).
#include <cstdio>
#include <cstdlib>

#include "tests/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const r2rec::fuzz::Target* target = [] {
    const r2rec::fuzz::Target* t = r2rec::fuzz::find_target(R2REC_FUZZ_TARGET);
    if (!t) {
      std::fprintf(stderr, "no fuzz target '%s'\n", R2REC_FUZZ_TARGET);
      std::abort();
    }
    return t;
  }();
  target->run(data, size);
  return 0;
}
