#include "distributed/watchdog.h"

#include <fcntl.h>
#include <mpi.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "distributed/mpi_check.h"

namespace r2rec {
namespace {

std::mutex g_phase_mutex;
std::string g_phase;
std::atomic<Watchdog*> g_active{nullptr};
// Set by the SIGTERM handler on whichever thread takes the signal, read by the heartbeat thread: an atomic, since a
// volatile sig_atomic_t only orders a handler against its own thread (ThreadSanitizer: a data race). Lock-free, so
// async-signal-safe.
std::atomic<int> g_sigterm{0};
static_assert(std::atomic<int>::is_always_lock_free, "the SIGTERM flag must be async-signal-safe");
struct sigaction g_previous_sigterm;

void on_sigterm_signal(int) { g_sigterm.store(1); }  // the heartbeat thread acts on it

double wall_now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

// One heartbeat record: a fixed-size text block, rewritten in place (pwrite at offset 0).
//   "r2rec-hb1 <time> <pid> <host> <role>\n<phase>\n<op>\n<failure>\n"   (op "" = not waiting in any op; role
//   may be empty; failure "" = this rank's stage has not failed)
constexpr size_t kRecordBytes = 1024;

struct Record {
  bool ok = false;
  double time = 0;
  long pid = 0;
  std::string host, role, phase, op, failure;
};

Record read_record(const std::string& path) {
  Record rec;
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return rec;
  char buf[kRecordBytes + 1] = {0};
  const ssize_t n = ::pread(fd, buf, kRecordBytes, 0);
  ::close(fd);
  if (n <= 0) return rec;
  std::istringstream in(std::string(buf, static_cast<size_t>(n)));
  std::string magic;
  in >> magic >> rec.time >> rec.pid >> rec.host;
  if (magic != "r2rec-hb1") return rec;
  std::getline(in, rec.role);
  while (!rec.role.empty() && rec.role.front() == ' ') rec.role.erase(0, 1);
  std::getline(in, rec.phase);
  std::getline(in, rec.op);
  while (!rec.op.empty() && rec.op.back() == ' ') rec.op.pop_back();
  std::getline(in, rec.failure);
  while (!rec.failure.empty() && rec.failure.back() == ' ') rec.failure.pop_back();
  rec.ok = true;
  return rec;
}

std::string host_name() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return host;
}

std::string fmt1(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", x);
  return buf;
}

}  // namespace

std::string current_phase() {
  std::lock_guard<std::mutex> lock(g_phase_mutex);
  return g_phase;
}

void set_phase(const std::string& phase) {
  std::lock_guard<std::mutex> lock(g_phase_mutex);
  g_phase = phase;
}

struct Watchdog::OpState {
  std::mutex mutex;
  std::string op;                                  // "" = not waiting
  std::chrono::steady_clock::time_point deadline;  // of the op being waited on
  double timeout_s = 0;
  std::string failure;  // note_failure's text, "" = none
  bool shown = false;   // the record on disk names an op
};

Watchdog* Watchdog::active() { return g_active.load(); }

Watchdog::Watchdog(const WatchdogOptions& options) : options_(options), op_(std::make_unique<OpState>()) {
  if (g_active.load()) throw CommError("watchdog: one is already running in this process");
  R2REC_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  R2REC_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_));
  // Rank 0 picks the folder; everyone learns its path.
  std::string dir;
  int ok = 1;
  if (rank_ == 0) {
    if (!options_.dir.empty()) {
      dir = options_.dir;
      if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) ok = 0;
    } else {
      const char* tmp = std::getenv("TMPDIR");
      std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/r2rec-watchdog-XXXXXX";
      std::vector<char> buf(pattern.begin(), pattern.end());
      buf.push_back('\0');
      if (::mkdtemp(buf.data()))
        dir = buf.data();
      else
        ok = 0;
    }
  }
  own_dir_ = options_.dir.empty();  // a folder we made is removed by whichever rank leaves it empty
  int len = static_cast<int>(dir.size());
  R2REC_MPI_CHECK(MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD));
  if (!ok)
    throw CommError("watchdog: cannot create the heartbeat folder '" + options_.dir + "': " + std::strerror(errno));
  R2REC_MPI_CHECK(MPI_Bcast(&len, 1, MPI_INT, 0, MPI_COMM_WORLD));
  dir.resize(static_cast<size_t>(len));
  R2REC_MPI_CHECK(MPI_Bcast(&dir[0], len, MPI_CHAR, 0, MPI_COMM_WORLD));
  dir_ = dir;

  const std::string path = dir_ + "/rank-" + std::to_string(rank_) + ".hb";
  fd_ = ::open(path.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0644);
  ok = fd_ >= 0 ? 1 : 0;
  int all_ok = 0;
  R2REC_MPI_CHECK(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  if (!all_ok)
    throw CommError("watchdog: some rank cannot write its heartbeat under '" + dir_ +
                    "' (the folder must be shared by all ranks)");
  write_record();
  R2REC_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));  // every record exists before anyone may read one

  if (options_.handle_sigterm) {
    g_sigterm.store(0);
    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigterm_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &g_previous_sigterm);
  }
  g_active.store(this);
  thread_ = std::thread([this] { loop(); });
}

Watchdog::~Watchdog() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (options_.handle_sigterm) sigaction(SIGTERM, &g_previous_sigterm, nullptr);
  Watchdog* self = this;
  g_active.compare_exchange_strong(self, nullptr);
  if (fd_ >= 0) ::close(fd_);
  ::unlink((dir_ + "/rank-" + std::to_string(rank_) + ".hb").c_str());
  if (own_dir_) ::rmdir(dir_.c_str());  // fails harmlessly while another rank's file is still there
  // A job that ended by MPI_Abort leaves its folder behind (<TMPDIR>/r2rec-watchdog-*, a few KB).
}

void Watchdog::op_begin(const std::string& op, double timeout_s, bool publish) {
  {
    std::lock_guard<std::mutex> lock(op_->mutex);
    op_->op = op;
    op_->timeout_s = timeout_s;
    op_->deadline = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                           std::chrono::duration<double>(timeout_s));
  }
  if (publish) write_record();  // peers diagnosing right now see which op this rank waits in
}

void Watchdog::publish() { write_record(); }

void Watchdog::op_end() {
  bool shown = false;
  {
    std::lock_guard<std::mutex> lock(op_->mutex);
    op_->op.clear();
    shown = op_->shown;
  }
  if (shown) write_record();  // ~2 µs (one pwrite); keeps "in <op>" of a rank that stops between ops truthful
}

void Watchdog::note_failure(const std::string& what) {
  std::string line = what.substr(0, what.find('\n')).substr(0, 480);  // the record holds 1 KB in all
  if (line.empty()) line = "(no message)";
  {
    std::lock_guard<std::mutex> lock(op_->mutex);
    op_->failure = line;
  }
  write_record();
}

void Watchdog::clear_failure() {
  {
    std::lock_guard<std::mutex> lock(op_->mutex);
    op_->failure.clear();
  }
  write_record();
}

std::string Watchdog::failed_peers() const {
  std::string out;
  for (int r = 0; r < world_; ++r) {
    if (r == rank_) continue;
    const Record rec = read_record(dir_ + "/rank-" + std::to_string(r) + ".hb");
    if (rec.ok && !rec.failure.empty())
      out += (out.empty() ? "" : "; ") + ("rank " + std::to_string(r) + " failed: ") + rec.failure;
  }
  return out;
}

void Watchdog::write_record() {
  static const std::string host = host_name();
  std::string op, failure;
  {
    std::lock_guard<std::mutex> lock(op_->mutex);
    op = op_->op;
    failure = op_->failure;
    op_->shown = !op.empty();
  }
  char buf[kRecordBytes];
  std::memset(buf, ' ', sizeof(buf));
  const std::string phase = current_phase().substr(0, 200);
  const int n = std::snprintf(buf, sizeof(buf), "r2rec-hb1 %.3f %ld %s %s\n%s\n%s\n%s\n", wall_now(),
                              static_cast<long>(::getpid()), host.c_str(), options_.role.c_str(), phase.c_str(),
                              op.c_str(), failure.c_str());
  if (n > 0 && static_cast<size_t>(n) < sizeof(buf)) buf[n] = ' ';
  if (::pwrite(fd_, buf, sizeof(buf), 0) < 0) { /* a full disk must not kill the job; the record just ages */
  }
}

std::string Watchdog::diagnose(const std::string& op) const {
  const double now = wall_now();
  const double stale_after = 3.0 * options_.interval_s;
  const std::string me = host_name();
  std::vector<std::string> gone, left, stale, elsewhere;
  for (int r = 0; r < world_; ++r) {
    if (r == rank_) continue;
    const Record rec = read_record(dir_ + "/rank-" + std::to_string(r) + ".hb");
    const std::string name = "rank " + std::to_string(r);
    const std::string role = rec.role.empty() ? "" : rec.role + ", ";
    if (!rec.ok) {
      left.push_back(name);
    } else if (rec.host == me && rec.pid > 0 && ::kill(static_cast<pid_t>(rec.pid), 0) != 0 && errno == ESRCH) {
      gone.push_back(name + " (" + role + "pid " + std::to_string(rec.pid) + " has exited, last in phase '" +
                     rec.phase + "'" + (rec.op.empty() ? "" : ", in " + rec.op) + ")");
    } else if (now - rec.time > stale_after) {
      stale.push_back(name + " (" + role + "last heartbeat " + fmt1(now - rec.time) + " s ago, phase '" + rec.phase +
                      "'" + (rec.op.empty() ? "" : ", in " + rec.op) + ")");
    } else if (op.empty() || rec.op.rfind(op, 0) != 0) {
      elsewhere.push_back(name + " (" + role + "phase '" + rec.phase + "', " +
                          (rec.op.empty() ? "not waiting" : "in " + rec.op) + ")");
    }
  }
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
    return s;
  };
  std::string out;
  if (!gone.empty()) out += join(gone) + " died";
  if (!left.empty()) out += (out.empty() ? "" : "; ") + join(left) + " left (no heartbeat record)";
  if (!stale.empty()) out += (out.empty() ? "" : "; ") + join(stale) + " did not answer (hung or stopped)";
  if (out.empty() && !elsewhere.empty())
    out = join(elsewhere) + (elsewhere.size() == 1 ? " is" : " are") + " alive but not in " +
          (op.empty() ? "this op" : op);
  if (out.empty()) out = "every rank is alive and waiting in " + (op.empty() ? std::string("this op") : op);
  return out;
}

void Watchdog::on_sigterm() {
  std::string op;
  {
    std::lock_guard<std::mutex> lock(op_->mutex);
    op = op_->op;
  }
  const std::string phase = current_phase().empty() ? "(no phase)" : current_phase();
  const std::string bare_op = op.substr(0, op.find(" of "));
  std::fprintf(stderr, "r2rec watchdog: rank %d: %s: terminated by the launcher (SIGTERM) %s; %s\n", rank_,
               phase.c_str(), op.empty() ? "outside any communication op" : ("while waiting in " + op).c_str(),
               diagnose(bare_op).c_str());
  std::fflush(stderr);
  std::_Exit(kExitRuntime);
}

void Watchdog::loop() {
  using Clock = std::chrono::steady_clock;
  auto next_beat = Clock::now();
  while (!stop_) {
    if (g_sigterm.load()) on_sigterm();
    const auto now = Clock::now();
    if (now >= next_beat) {
      write_record();
      next_beat = now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options_.interval_s));
    }
    // Backstop: an op waited on well past its deadline means the waiting thread is stuck where nothing
    // polls; end the job from here.
    std::string op;
    double timeout_s = 0;
    bool overdue = false;
    {
      std::lock_guard<std::mutex> lock(op_->mutex);
      if (!op_->op.empty()) {
        op = op_->op;
        timeout_s = op_->timeout_s;
        overdue = now > op_->deadline + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(options_.grace_s));
      }
    }
    if (overdue) {
      const std::string phase = current_phase().empty() ? "(no phase)" : current_phase();
      std::fprintf(stderr, "r2rec watchdog: rank %d: %s: %s timed out after %g s (backstop); %s\n", rank_,
                   phase.c_str(), op.c_str(), timeout_s, diagnose(op.substr(0, op.find(" of "))).c_str());
      std::fflush(stderr);
      int level = 0;
      MPI_Query_thread(&level);
      if (level == MPI_THREAD_MULTIPLE) MPI_Abort(MPI_COMM_WORLD, kExitRuntime);
      std::_Exit(kExitRuntime);  // mpirun tears the job down when a rank exits without MPI_Finalize
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace r2rec
