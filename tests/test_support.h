// Helpers shared by r2rec's tests: where things are, temporary folders, running the r2rec binary.
#pragma once

#include <string>
#include <vector>

namespace r2rec::testing {

// The repository root, ../shared/data, and the built r2rec binary (set by CTest's environment, with
// fallbacks relative to the working directory for running a test binary by hand).
std::string source_dir();
std::string data_dir();
std::string r2rec_binary();
std::string mpiexec();

// A fresh empty folder under the system temp dir, removed when the object goes out of scope.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "r2rec-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Writes `contents` to <path>/<name> and returns the full path.
  std::string write(const std::string& name, const std::string& contents) const;

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;  // the process's exit status, or 128 + signal when it was killed
  std::string out;     // stdout
  std::string err;     // stderr
};

// Runs `argv` (no shell) with stdin from /dev/null (or `input` when non-empty), capturing both streams.
CommandResult run_command(const std::vector<std::string>& argv, const std::string& input = "");

// Non-empty lines of `text`.
std::vector<std::string> lines_of(const std::string& text);

// The lines of `err` that r2rec itself printed ("r2rec <command>: ..."), leaving out progress lines and mpirun's
// banners.
std::vector<std::string> r2rec_lines(const std::string& err);

}  // namespace r2rec::testing
