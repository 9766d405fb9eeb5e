// Watchdog: turns a dead or hung peer into a prompt, named, non-zero exit on every rank.
//
// Three pieces:
//  1. The phase: a process-wide label ("sft step 12", "rl rollout") set with PhaseScope, quoted in every
//     timeout message.
//  2. Heartbeats, a side channel that needs no cooperation from MPI: a background thread on every rank
//     rewrites a small fixed-size record (time, pid, host, role, phase, the op it is waiting in) in
//     <dir>/rank-<r>.hb every `interval_s`. A SIGKILLed or SIGSTOPped rank stops rewriting it. When a Work
//     times out, the survivor reads every record and names the ranks whose heartbeat is older than
//     3 × interval ("rank 1 did not answer: last heartbeat 5.2 s ago, in phase 'x'"), else the ranks that
//     are alive but not waiting in the same op. Files, not MPI: a one-sided MPI_Get or a ping to a stopped
//     process can itself block, and Open MPI 4.1 progresses only inside MPI calls; a file read never
//     waits for a peer. The folder must be visible to all ranks (the run dir on a shared file system, or
//     /tmp on one node).
//  3. A backstop: Work::wait throws at its deadline, but a rank stuck where nothing polls (a blocking
//     library call) would not. The thread therefore ends the job itself (one log line, then MPI_Abort
//     with kExitRuntime) when an op has been waited on for deadline + grace_s. It also turns SIGTERM from
//     the launcher (mpirun tears the job down when a rank dies) into the same one log line before exit 3.
//
// Work::wait reports to the active watchdog (if any) through op_begin/op_end; without one it still
// times out, with a message that cannot name the missing rank.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace r2rec {

struct WatchdogOptions {
  std::string dir;             // shared folder for heartbeats; "" = a fresh folder under $TMPDIR or /tmp
  double interval_s = 0.5;     // heartbeat period; a record older than 3 × this is stale
  double grace_s = 2.0;        // backstop: abort when an op overruns its deadline by this much
  bool handle_sigterm = true;  // log one line naming phase/op/stale ranks on SIGTERM, then _exit(3)
  std::string role;            // this rank's role ("learner", "rollout", "learner+rollout"), named in diagnoses
};

class Watchdog {
 public:
  // Collective over MPI_COMM_WORLD (rank 0 creates the folder and broadcasts its path). Becomes the
  // active watchdog of the process (at most one).
  explicit Watchdog(const WatchdogOptions& options = {});
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  const std::string& dir() const { return dir_; }

  // "rank 1 did not answer: last heartbeat 5.2 s ago (phase 'train', in all_reduce)" or
  // "ranks 2 are alive but not in all_reduce (rank 2: phase 'eval', idle)". Reads every record.
  std::string diagnose(const std::string& op) const;

  static Watchdog* active();

  // A rank whose stage failed on its own (run_agreed caught its error) says so in its record before it waits
  // for the others to agree, so that a peer waiting for it in a collective it will never join ends at once
  // with that error (Work::wait polls failed_peers) instead of at its timeout with the cause lost. One line,
  // at most 480 characters of it. clear_failure() once the ranks have agreed.
  void note_failure(const std::string& what);
  void clear_failure();
  // "rank 1 failed: <its line>" for every other rank whose record carries a failure ("; " between), else "".
  // Reads every record: call it at most every peer_check_interval_s() (250 ms, longer in large jobs so that a
  // shared file system sees at most ~50 record reads per rank per second).
  std::string failed_peers() const;
  double peer_check_interval_s() const { return world_ > 12 ? 0.02 * world_ : 0.25; }

  // Called by Work::wait around the whole wait, its first poll included. `op` is the full label ("all_reduce of
  // 4.0 MB"). The backstop watches the op from op_begin; peers see it in this rank's record once it is written:
  // at once (publish true), by publish() (Work::wait calls it when the first poll did not complete the op), or at
  // the next heartbeat. op_end rewrites the record only if it names the op, so an op that completes at its first
  // poll costs two lock round trips and no syscall.
  void op_begin(const std::string& op, double timeout_s, bool publish = true);
  void publish();
  void op_end();

 private:
  void loop();
  void write_record();
  void on_sigterm();

  WatchdogOptions options_;
  std::string dir_;
  bool own_dir_ = false;
  int rank_ = 0;
  int world_ = 1;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  // Current op, written by the waiting thread, read by the heartbeat thread.
  struct OpState;
  std::unique_ptr<OpState> op_;
};

// The process-wide phase label ("" before any PhaseScope).
std::string current_phase();
void set_phase(const std::string& phase);

// Sets the phase for its lifetime, restoring the previous one afterwards.
class PhaseScope {
 public:
  explicit PhaseScope(const std::string& phase) : previous_(current_phase()) { set_phase(phase); }
  ~PhaseScope() { set_phase(previous_); }

 private:
  std::string previous_;
};

}  // namespace r2rec
