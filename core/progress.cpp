#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace r2rec {

namespace {
std::string duration_text(double s) {
  char buf[32];
  if (s < 100) {
    std::snprintf(buf, sizeof(buf), "%.0f s", s);
  } else if (s < 6000) {
    std::snprintf(buf, sizeof(buf), "%.1f min", s / 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f h", s / 3600);
  }
  return buf;
}
}  // namespace

Progress::Progress(std::string what, int64_t total, std::string unit, bool enabled, int64_t done0, double log_every_s)
    : what_(std::move(what)),
      unit_(std::move(unit)),
      total_(total),
      done0_(done0),
      enabled_(enabled && total > 0),
      tty_(::isatty(2) != 0),
      log_every_s_(log_every_s),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

void Progress::update(int64_t done) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  if (since < (tty_ ? 0.2 : log_every_s_) && done < total_) return;
  last_ = now;
  draw(done, false);
}

void Progress::finish() {
  if (!enabled_ || last_done_ == total_) return;
  draw(total_, true);
}

void Progress::draw(int64_t done, bool final) {
  last_done_ = done;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = s > 0 ? static_cast<double>(done - done0_) / s : 0.0;
  const double f = std::min(1.0, static_cast<double>(done) / static_cast<double>(total_));
  const std::string eta = rate > 0 && done < total_ ? ", ETA " + duration_text((total_ - done) / rate) : "";
  char rate_text[48];
  std::snprintf(rate_text, sizeof(rate_text), rate >= 10 ? "%.0f %s/s" : "%.2f %s/s", rate, unit_.c_str());
  if (tty_) {
    const int width = 30, fill = static_cast<int>(f * width);
    std::fprintf(stderr, "\r%s [%s%s] %3d%% %lld/%lld %s, %s, %s%s\033[K%s", what_.c_str(),
                 std::string(fill, '#').c_str(), std::string(width - fill, '.').c_str(), static_cast<int>(f * 100),
                 static_cast<long long>(done), static_cast<long long>(total_), unit_.c_str(), duration_text(s).c_str(),
                 rate_text, eta.c_str(), final || done >= total_ ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s: %lld/%lld %s (%d%%), %s, %s%s\n", what_.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total_), unit_.c_str(), static_cast<int>(f * 100), duration_text(s).c_str(),
                 rate_text, eta.c_str());
  }
  std::fflush(stderr);
}

}  // namespace r2rec
