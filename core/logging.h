// glog set-up, once per process. Every line carries the rank and role ("r1 rollout"); each rank writes
// <log_dir>/rank<R>.log with every line from INFO up; only rank 0 echoes INFO to the terminal unless
// `echo_all` (other ranks still echo warnings and errors); `level` raises the terminal's threshold.
#pragma once

#include <string>

namespace r2rec {

struct LogOptions {
  int rank = 0;
  std::string role = "-";
  std::string log_dir;         // folder of the per-rank files (RunLayout::logs()); "" = terminal only
  std::string level = "info";  // info | warning | error: least severe level echoed to the terminal
  bool echo_all = false;
};

// Safe to call more than once: the first call installs glog, later calls update rank/role/files/levels.
void init_logging(const char* argv0, const LogOptions& options);

// Path of this rank's log file ("" when logging to the terminal only).
std::string log_file_path();

}  // namespace r2rec
