// The watchdog end to end: `mpirun -np 3 watchdog_helper <mode> 5` where rank 1 dies (SIGKILL) or hangs
// (SIGSTOP) in the middle of a loop of all-reduces. The whole job must end non-zero well within the
// deadline + slack (5 s + 25 s), and its output must name the phase and rank 1. The command runs under
// `timeout -k 5 60`, so this test can never hang even if the watchdog failed completely.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "tests/test_support.h"

namespace r2rec {
namespace {

std::string helper_path() {
  char self[4096] = {0};
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  std::string dir = n > 0 ? std::string(self, static_cast<size_t>(n)) : std::string("./x");
  return dir.substr(0, dir.rfind('/')) + "/watchdog_helper";
}

struct JobResult {
  testing::CommandResult result;
  double seconds = 0;         // the whole mpirun, start-up included
  double after_failure = -1;  // from rank 1's failure to the end of mpirun (-1: no failure line)
};

double wall_now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

JobResult run_job(const std::string& mode, const std::string& timeout_s = "5") {
  const auto start = std::chrono::steady_clock::now();
  JobResult job;
  testing::TempDir tmp("r2rec-wd");  // the heartbeat folder (and Open MPI's session dir) go here
  job.result = testing::run_command({"timeout", "-k", "5", "60", "env", "TMPDIR=" + tmp.path(), testing::mpiexec(),
                                     "--oversubscribe", "-np", "3", helper_path(), mode, timeout_s});
  job.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string tag = "helper: rank 1 fails (" + mode + ") at ";
  const size_t at = job.result.err.find(tag);
  if (at != std::string::npos) job.after_failure = wall_now() - std::atof(job.result.err.c_str() + at + tag.size());
  return job;
}

TEST(Watchdog, HealthyJobEndsZero) {
  JobResult job = run_job("none");
  EXPECT_EQ(job.result.exit_code, 0) << job.result.out << job.result.err;
  EXPECT_NE(job.result.out.find("helper: all steps done"), std::string::npos) << job.result.out;
}

TEST(Watchdog, KilledRankEndsTheJobNamingPhaseAndRank) {
  JobResult job = run_job("kill");
  const std::string all = job.result.out + job.result.err;
  std::printf("[kill] exit %d after %.2f s (%.2f s after the failure)\n%s\n", job.result.exit_code, job.seconds,
              job.after_failure, job.result.err.c_str());
  EXPECT_NE(job.result.exit_code, 0) << all;
  EXPECT_NE(job.result.exit_code, 124) << "timeout(1) had to stop the job: " << all;
  EXPECT_LT(job.seconds, 30.0) << all;
  EXPECT_GE(job.after_failure, 0.0) << all;
  EXPECT_LT(job.after_failure, 15.0) << all;
  EXPECT_NE(all.find("helper loop"), std::string::npos) << "phase not named: " << all;
  EXPECT_NE(all.find("rank 1"), std::string::npos) << "dead rank not named: " << all;
}

TEST(Watchdog, StoppedRankEndsTheJobNamingPhaseOpAndRank) {
  JobResult job = run_job("stop");
  const std::string all = job.result.out + job.result.err;
  std::printf("[stop] exit %d after %.2f s (%.2f s after the failure)\n%s\n", job.result.exit_code, job.seconds,
              job.after_failure, job.result.err.c_str());
  EXPECT_EQ(job.result.exit_code, 3) << all;
  EXPECT_LT(job.seconds, 30.0) << all;
  EXPECT_GT(job.after_failure, 4.5) << "gave up before the 5 s deadline: " << all;
  EXPECT_LT(job.after_failure, 15.0) << all;
  EXPECT_NE(all.find("helper loop: all_reduce(max) of 4.0 MB timed out after 5 s; rank 1"), std::string::npos) << all;
  EXPECT_NE(all.find("did not answer"), std::string::npos) << all;
}

// Rank 1 SIGSTOPs itself while the survivors are stuck where nothing polls: only the watchdog's backstop thread can
// end the job, at the 5 s deadline + 2 s grace, with exit 3 and one line naming the op (`backstop_line`) and rank 1.
void expect_backstop(const std::string& mode, const std::string& backstop_line) {
  JobResult job = run_job(mode);
  const std::string all = job.result.out + job.result.err;
  std::printf("[%s] exit %d after %.2f s (%.2f s after the failure)\n%s\n", mode.c_str(), job.result.exit_code,
              job.seconds, job.after_failure, job.result.err.c_str());
  EXPECT_EQ(job.result.exit_code, 3) << all;
  EXPECT_LT(job.seconds, 30.0) << all;
  EXPECT_GT(job.after_failure, 4.5) << "gave up before the 5 s deadline: " << all;
  EXPECT_LT(job.after_failure, 15.0) << all;
  EXPECT_NE(all.find(backstop_line), std::string::npos) << all;
}

// The survivors inside a blocking MPI_Allreduce.
TEST(Watchdog, BackstopEndsAJobStuckInABlockingCall) {
  expect_backstop("block", "helper loop: raw MPI_Allreduce of 4.0 MB timed out after 5 s (backstop); rank 1");
}

// The survivors inside the first poll of a Work (a progress call that does not return): the op is the watchdog's
// before that poll. Before it was, such a rank hung outside any op until timeout(1).
TEST(Watchdog, BackstopEndsAJobStuckInTheFirstPollOfAnOp) {
  expect_backstop("first-poll", "helper loop: blocking all_reduce of 4.0 MB timed out after 5 s (backstop); rank 1");
}

// A rank whose stage fails on its own (not a dead rank: an error, caught and waiting to be agreed on) while the
// others wait for it in a collective: they end at once with its error, not at their 30 s timeout.
TEST(Watchdog, PeerThatFailedOnItsOwnEndsTheWaitAtOnceWithItsError) {
  JobResult job = run_job("throw", "30");
  const std::string all = job.result.out + job.result.err;
  std::printf("[throw] exit %d after %.2f s (%.2f s after the failure)\n%s\n", job.result.exit_code, job.seconds,
              job.after_failure, job.result.err.c_str());
  EXPECT_EQ(job.result.exit_code, 3) << all;
  EXPECT_GE(job.after_failure, 0.0) << all;
  EXPECT_LT(job.after_failure, 10.0) << "waited for the timeout: " << all;
  EXPECT_NE(all.find("helper loop: all_reduce(max) of 4.0 MB abandoned: rank 1 failed: helper: shard 3 is truncated"),
            std::string::npos)
      << all;
}

}  // namespace
}  // namespace r2rec
