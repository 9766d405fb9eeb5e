// watchdog_helper <kill|stop|block|throw|none> <timeout_s>: the job that test_watchdog runs under `mpirun -np 3`.
//
// Every rank runs a loop of 4 MB all-reduces in phase "helper loop" with a Watchdog. With `kill`, rank 1
// SIGKILLs itself at step 20; with `stop`, it SIGSTOPs itself (alive but silent). The survivors must
// leave within the deadline, printing one line that names the phase, the op and rank 1, and end the job
// with exit status 3 (MpiSession::abort_job), as launch/main.cpp does for any CommError. `block` is `stop`
// with the survivors inside a blocking MPI_Allreduce that nothing polls: only the watchdog's backstop
// thread can end that job (at deadline + grace). With `throw`, rank 1's stage fails on its own (a DataError
// inside run_agreed) while the others wait for it in an all-reduce: they must end at once, well before the
// deadline, naming rank 1 and its error (the watchdog record carries it).
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
        if (mode == "stop" || mode == "block") raise(SIGSTOP);
        if (mode == "throw") run_agreed([] { throw DataError("helper: shard 3 is truncated"); });
      }
      if (mode == "block") {
        dog.op_begin("raw MPI_Allreduce of 4.0 MB", timeout_s);
        MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(buf.size()), MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD);
        dog.op_end();
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
