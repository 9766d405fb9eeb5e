// Error tiers and exit codes shared by every r2rec component.
//
//  - Broken internal invariants: glog CHECK with context (a bug in r2rec; aborts).
//  - Bad input at a boundary (config, dataset, shard, checkpoint, tokenizer file, world size): a typed
//    exception below, whose message is ONE line naming the file / key / line / rank and what was expected.
//  - Communication or runtime failure (dead peer, timeout, library error): CommError / RuntimeFailure.
// Library code never calls exit(); the top level (launch/main.cpp) catches, prints one line, and exits
// with the code below.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>

namespace r2rec {

enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 2,    // user error: config, command line, input data
  kExitRuntime = 3,  // runtime or communication failure
};

// Base of every error r2rec reports to a user. what() is the complete one-line message.
class Error : public std::runtime_error {
 public:
  Error(const std::string& message, ExitCode code) : std::runtime_error(message), code_(code) {}
  ExitCode exit_code() const { return code_; }

  // True once every rank of the job knows about this failure (launch's run_agreed), so each rank may end
  // normally; a failure that is not agreed ends the whole job (MPI_Abort) so no peer waits forever.
  bool agreed() const { return agreed_; }
  void set_agreed() { agreed_ = true; }

 private:
  ExitCode code_;
  bool agreed_ = false;
};

// A config file or command-line override is wrong. Message: "<source>: <key>: <what>".
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& message) : Error(message, kExitUsage) {}
};

// An input file (dataset, shard, checkpoint, tokenizer) is missing or malformed.
class DataError : public Error {
 public:
  explicit DataError(const std::string& message) : Error(message, kExitUsage) {}
};

// A peer died, hung past its deadline, or a communication library reported an error.
class CommError : public Error {
 public:
  explicit CommError(const std::string& message) : Error(message, kExitRuntime) {}
};

// Any other failure at run time that is not the user's input (out of memory, I/O error on write, ...).
class RuntimeFailure : public Error {
 public:
  explicit RuntimeFailure(const std::string& message) : Error(message, kExitRuntime) {}
};

// Writing output failed (a file, a folder, a rename) with errno `err`. What the user can fix - permission, a
// read-only file system, a full disk, a quota - exits 2 like bad input; any other errno (EIO, ...) is a runtime
// failure (exit 3). The message names the path.
class WriteError : public Error {
 public:
  WriteError(const std::string& message, int err) : Error(message, user_fixable(err) ? kExitUsage : kExitRuntime) {}
  static bool user_fixable(int err) {
    return err == EACCES || err == EPERM || err == EROFS || err == ENOSPC || err == EDQUOT;
  }
};

}  // namespace r2rec
