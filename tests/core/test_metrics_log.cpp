// The metrics stream's pieces: CRC-32C against its published check value and RFC 3720's test vectors, the
// TFRecord framing of an event file, metrics.jsonl dropping a resumed stage's redone steps only, and the progress
// lines of a batch job's log.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "core/files.h"
#include "core/metrics_log.h"
#include "core/progress.h"
#include "core/tfevents.h"
#include "tests/test_support.h"

namespace r2rec {
namespace {

TEST(Crc32c, CheckValueAndRfc3720Vectors) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  const std::string zeros(32, '\0'), ones(32, '\xff');
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);  // RFC 3720 B.4: 32 bytes of zeros
  EXPECT_EQ(crc32c(ones.data(), ones.size()), 0x62A8AB43u);    // ... of 0xff
  std::string inc(32, '\0');
  for (int i = 0; i < 32; ++i) inc[static_cast<size_t>(i)] = static_cast<char>(i);
  EXPECT_EQ(crc32c(inc.data(), inc.size()), 0x46DD794Eu);  // ... incrementing 0..31
}

TEST(EventWriter, RecordsAreFramedWithMaskedCrcs) {
  testing::TempDir d;
  std::string path;
  {
    EventWriter w(d.path());
    w.scalars(7, 1.5, {{"sft/loss", 2.25}});
    path = w.path();
  }
  EXPECT_NE(path.find("/events.out.tfevents."), std::string::npos);
  const std::string bytes = read_file(path);
  size_t at = 0, records = 0;
  while (at < bytes.size()) {
    ASSERT_LE(at + 12, bytes.size());
    uint64_t n = 0;
    uint32_t hc = 0, pc = 0;
    std::memcpy(&n, bytes.data() + at, 8);
    std::memcpy(&hc, bytes.data() + at + 8, 4);
    EXPECT_EQ(hc, masked_crc32c(bytes.data() + at, 8));
    ASSERT_LE(at + 16 + n, bytes.size());
    std::memcpy(&pc, bytes.data() + at + 12 + n, 4);
    EXPECT_EQ(pc, masked_crc32c(bytes.data() + at + 12, n));
    at += 16 + n;
    ++records;
  }
  EXPECT_EQ(records, 2u);  // file_version, then the scalar event
  EXPECT_NE(bytes.find("brain.Event:2"), std::string::npos);
  EXPECT_NE(bytes.find("sft/loss"), std::string::npos);
}

std::vector<nlohmann::json> lines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::istringstream in(read_file(path));
  for (std::string l; std::getline(in, l);) out.push_back(nlohmann::json::parse(l));
  return out;
}

TEST(MetricsLog, AResumedStageDropsOnlyItsRedoneSteps) {
  testing::TempDir d;
  {
    MetricsLog pre(d.path() + "/metrics.jsonl", d.path() + "/tensorboard", "pretrain", 0, true);
    for (int s = 1; s <= 3; ++s) pre.log(s, {{"loss", 1.0 / s}});
    MetricsLog sft(d.path() + "/metrics.jsonl", d.path() + "/tensorboard", "sft", 0, true);
    for (int s = 1; s <= 5; ++s) sft.log(s, {{"loss", 2.0 / s}, {"bad", std::nan("")}});
  }
  {
    MetricsLog resumed(d.path() + "/metrics.jsonl", d.path() + "/tensorboard", "sft", 2,
                       true);  // resumed from checkpoint 2: steps 3..5 are redone
    resumed.log(3, {{"loss", 9.0}});
    MetricsLog off(d.path() + "/metrics.jsonl", d.path() + "/tensorboard", "sft", 0,
                   false);  // another rank: writes nothing, drops nothing
    off.log(4, {{"loss", 1.0}});
    EXPECT_EQ(off.event_file(), "");
  }
  const auto l = lines(d.file("metrics.jsonl"));
  ASSERT_EQ(l.size(), 3u + 2u + 1u);
  EXPECT_EQ(l[3]["stage"], "sft");
  EXPECT_EQ(l[4]["step"], 2);
  EXPECT_TRUE(l[4]["bad"].is_null());
  EXPECT_EQ(l[5]["step"], 3);
  EXPECT_EQ(l[5]["loss"], 9.0);
  EXPECT_EQ(
      std::distance(std::filesystem::directory_iterator(d.file("tensorboard")), std::filesystem::directory_iterator()),
      3);  // one event file per stage run (the disabled log made none)
}

TEST(Progress, PlainLinesWithRateAndEtaWhenNotATerminal) {
  ::testing::internal::CaptureStderr();
  {
    Progress p("sft", 10, "steps", true, /*done0=*/2, /*log_every_s=*/0.0);
    p.update(5);
    p.update(10);
    p.finish();  // the last update drew the final line already
    Progress off("rl", 10, "steps", false);
    off.update(3);
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  if (isatty(2)) GTEST_SKIP() << "stderr is a terminal here";
  const auto lines = testing::lines_of(err);
  ASSERT_EQ(lines.size(), 2u) << err;
  EXPECT_EQ(lines[0].rfind("sft: 5/10 steps (50%), ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find("steps/s, ETA "), std::string::npos) << lines[0];
  EXPECT_EQ(lines[1].rfind("sft: 10/10 steps (100%)", 0), 0u) << lines[1];
  EXPECT_EQ(lines[1].find("ETA"), std::string::npos) << lines[1];
}

}  // namespace
}  // namespace r2rec
