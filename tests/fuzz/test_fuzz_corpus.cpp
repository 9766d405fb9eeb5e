// Every stored fuzz input - the seeds and each crash a fuzzer found - replayed through its target
// (tests/fuzz/fuzz_targets.h) in every build: accepted or refused with an r2rec::Error, never a crash, a sanitizer
// report or another exception type.
#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>

#include "core/files.h"
#include "tests/fuzz/fuzz_targets.h"
#include "tests/test_support.h"

namespace r2rec {
namespace {
namespace fs = std::filesystem;

class FuzzCorpus : public ::testing::TestWithParam<std::string> {};

TEST_P(FuzzCorpus, EveryStoredInputIsAcceptedOrRefusedByName) {
  const fuzz::Target* target = fuzz::find_target(GetParam());
  ASSERT_NE(target, nullptr);
  const fs::path dir = fs::path(testing::source_dir()) / "tests/fuzz/corpus" / GetParam();
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  int inputs = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string bytes = read_file(entry.path().string());
    try {
      target->run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    } catch (const std::exception& e) {
      ADD_FAILURE() << entry.path() << ": " << e.what();
    }
    ++inputs;
  }
  EXPECT_GT(inputs, 0) << "no stored input in " << dir;
}

std::vector<std::string> names() {
  std::vector<std::string> out;
  for (const auto& t : fuzz::targets()) out.push_back(t.name);
  return out;
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzCorpus, ::testing::ValuesIn(names()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace r2rec
