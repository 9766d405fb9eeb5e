// Progress of a long stage (prepare, annotate, pretrain, sft, rl, eval): on a terminal one line redrawn in place with a
// bar, the rate and the ETA (at most 5 times a second); when stderr is not a terminal (a batch job's log), one plain
// line every `log_every_s` seconds, so logs show progress without carriage returns.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace r2rec {

class Progress {
 public:
  // `enabled` false (ranks other than 0): silent. `done0` units were done before (a resumed stage): the rate
  // and ETA count only this run's.
  Progress(std::string what, int64_t total, std::string unit, bool enabled, int64_t done0 = 0,
           double log_every_s = 30.0);
  void update(int64_t done);
  void finish();  // the final line (terminal: ends it with a newline)

 private:
  void draw(int64_t done, bool final);
  std::string what_, unit_;
  int64_t total_, done0_;
  bool enabled_, tty_;
  double log_every_s_;
  std::chrono::steady_clock::time_point start_, last_;
  int64_t last_done_ = -1;
};

}  // namespace r2rec
