// watchdog_helper <kill|stop|block|first-poll|throw|none> <timeout_s>: the job that test_watchdog runs under `mpirun
// -np 3`.
//
// Every rank runs a loop of 4 MB all-reduces in phase "helper loop" with a Watchdog. With `kill`, rank 1
// SIGKILLs itself at step 20; with `stop`, it SIGSTOPs itself (alive but silent). The survivors must
// leave within the deadline, printing one line that names the phase, the op and rank 1, and end the job
// with exit status 3 (MpiSession::abort_job), as launch/main.cpp does for any CommError. `block` is `stop`
// with the survivors inside a blocking MPI_Allreduce that nothing polls: only the watchdog's backstop
// thread can end that job (at deadline + grace). `first-poll` is `stop` with the survivors in a Work whose first
// poll does not return (a blocking all-reduce inside poll(), as an Open MPI progress call stuck on a stopped peer):
// Work::wait hands the op to the watchdog before that poll, so the backstop ends it too. With `throw`, rank 1's stage
// fails on its own (a DataError inside run_agreed) while the others wait for it in an all-reduce: they must end at
// once, well before the deadline, naming rank 1 and its error (the watchdog record carries it).
#include <mpi.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"
#include "distributed/agreement.h"
#include "distributed/communicator.h"
#include "distributed/process.h"
#include "distributed/watchdog.h"

namespace {
// A Work whose poll() blocks in MPI until every rank has joined.
class BlockingPollWork : public r2rec::Work {
 public:
  BlockingPollWork(std::vector<float>* buf, double timeout_s)
      : Work("blocking all_reduce", buf->size(), r2rec::DType::kF32, timeout_s), buf_(buf) {}

 protected:
  bool poll() override {
    MPI_Allreduce(MPI_IN_PLACE, buf_->data(), static_cast<int>(buf_->size()), MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD);
    return true;
  }

 private:
  std::vector<float>* buf_;
};
}  // namespace

int main(int argc, char** argv) {
  using namespace r2rec;
  MpiSession session(&argc, &argv);
  const std::string mode = argc > 1 ? argv[1] : "none";
  const double timeout_s = argc > 2 ? std::atof(argv[2]) : 5.0;
  const int rank = session.info().rank;
  try {
    WatchdogOptions wo;
    wo.interval_s = 0.25;
    Watchdog dog(wo);
    CommOptions options;
    options.timeout_s = timeout_s;
    std::unique_ptr<Communicator> comm = make_communicator("mpi", options);
    PhaseScope phase("helper loop");
    std::vector<float> buf(1 << 20, 1.0f);  // 4 MB
    for (int step = 0; step < 60; ++step) {
      if (rank == 1 && step == 20 && mode != "none") {
        const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
        std::fprintf(stderr, "helper: rank 1 fails (%s) at %.3f\n", mode.c_str(), now);
        std::fflush(stderr);
        if (mode == "kill") raise(SIGKILL);
        if (mode == "stop" || mode == "block" || mode == "first-poll") raise(SIGSTOP);
        if (mode == "throw") run_agreed([] { throw DataError("helper: shard 3 is truncated"); });
      }
      if (mode == "block") {
        dog.op_begin("raw MPI_Allreduce of 4.0 MB", timeout_s);
        MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(buf.size()), MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD);
        dog.op_end();
        continue;
      }
      if (mode == "first-poll") {
        BlockingPollWork(&buf, timeout_s).wait();
        continue;
      }
      comm->all_reduce(buf.data(), buf.size(), ReduceOp::kMax)->wait();
    }
    if (rank == 0) std::printf("helper: all steps done\n");
  } catch (const Error& e) {
    std::fprintf(stderr, "r2rec: rank %d: %s\n", rank, e.what());
    std::fflush(stderr);
    MpiSession::abort_job(e.exit_code());
  }
  return 0;
}
