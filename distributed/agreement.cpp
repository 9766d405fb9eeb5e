#include "distributed/agreement.h"

#include <exception>

#include "core/error.h"
#include "distributed/mpi_check.h"
#include "distributed/watchdog.h"

namespace r2rec {

void run_agreed(const std::function<void()>& step) {
  int rank = 0, world = 1;
  R2REC_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  R2REC_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world));
  std::exception_ptr error;
  std::string message;  // this rank's error, for the watchdog record below
  int code = kExitOk;
  try {
    step();
  } catch (const CommError&) {
    throw;  // a peer is gone or a request is still pending: no clean agreement is possible, main aborts
  } catch (Error& e) {
    e.set_agreed();
    error = std::current_exception();
    message = e.what();
    code = e.exit_code();
  } catch (const std::exception& e) {
    const std::string what = e.what();
    RuntimeFailure wrapped(what.substr(0, what.find('\n')));
    wrapped.set_agreed();
    message = wrapped.what();
    error = std::make_exception_ptr(wrapped);
    code = kExitRuntime;
  }
  // A peer may be waiting for this rank in a collective it will never join now: the watchdog's record tells it
  // why (distributed/watchdog.h note_failure), so it ends at once with this error instead of at its timeout.
  Watchdog* dog = world > 1 ? Watchdog::active() : nullptr;
  if (dog && code != kExitOk) dog->note_failure(message);
  int failing = code == kExitOk ? world : rank;
  int first = failing;
  R2REC_MPI_CHECK(MPI_Allreduce(&failing, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  if (dog && code != kExitOk) dog->clear_failure();  // every rank got here: the agreement carries it on
  if (first == world) return;
  int agreed = code;
  R2REC_MPI_CHECK(MPI_Bcast(&agreed, 1, MPI_INT, first, MPI_COMM_WORLD));
  if (rank == first) std::rethrow_exception(error);
  Error quiet("", static_cast<ExitCode>(agreed));
  quiet.set_agreed();
  throw quiet;
}

bool agree_on_rank0(bool value) {
  int v = value ? 1 : 0;
  R2REC_MPI_CHECK(MPI_Bcast(&v, 1, MPI_INT, 0, MPI_COMM_WORLD));
  return v != 0;
}

std::string broadcast_from_rank0(const std::string& text) {
  long long n = static_cast<long long>(text.size());
  R2REC_MPI_CHECK(MPI_Bcast(&n, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD));
  std::string out = text;
  out.resize(static_cast<size_t>(n));
  if (n > 0) R2REC_MPI_CHECK(MPI_Bcast(&out[0], static_cast<int>(n), MPI_CHAR, 0, MPI_COMM_WORLD));
  return out;
}

std::vector<std::string> gather_to_rank0(const std::string& text) {
  int rank = 0, world = 1;
  R2REC_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  R2REC_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world));
  int len = static_cast<int>(text.size());
  std::vector<int> lens(static_cast<size_t>(world)), displs(static_cast<size_t>(world));
  R2REC_MPI_CHECK(MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, MPI_COMM_WORLD));
  std::string all;
  if (rank == 0) {
    int total = 0;
    for (int r = 0; r < world; ++r) {
      displs[static_cast<size_t>(r)] = total;
      total += lens[static_cast<size_t>(r)];
    }
    all.resize(static_cast<size_t>(total));
  }
  R2REC_MPI_CHECK(
      MPI_Gatherv(text.data(), len, MPI_CHAR, all.data(), lens.data(), displs.data(), MPI_CHAR, 0, MPI_COMM_WORLD));
  std::vector<std::string> out;
  if (rank == 0) {
    for (int r = 0; r < world; ++r)
      out.push_back(all.substr(static_cast<size_t>(displs[static_cast<size_t>(r)]),
                               static_cast<size_t>(lens[static_cast<size_t>(r)])));
  }
  return out;
}

}  // namespace r2rec
