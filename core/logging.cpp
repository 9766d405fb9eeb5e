#include "core/logging.h"

#include <glog/logging.h>

#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <mutex>

#include "core/error.h"

namespace r2rec {
namespace {

struct State {
  std::mutex mu;
  bool initialised = false;
  std::string tag = "r0 -";  // "r<rank> <role>", read by the prefix callback
  std::string file;
};
State& state() {
  static State s;
  return s;
}

// "I1126 18:50:00.123456 r1 rollout config.cpp:42] message"
void prefix(std::ostream& s, const google::LogMessageInfo& l, void*) {
  s << l.severity[0] << std::setw(2) << std::setfill('0') << 1 + l.time.month() << std::setw(2) << l.time.day() << ' '
    << std::setw(2) << l.time.hour() << ':' << std::setw(2) << l.time.min() << ':' << std::setw(2) << l.time.sec()
    << '.' << std::setw(6) << l.time.usec() << std::setfill(' ') << ' ' << state().tag << ' ' << l.filename << ':'
    << l.line_number << ']';
}

int severity_of(const std::string& level) {
  if (level == "warning") return google::GLOG_WARNING;
  if (level == "error") return google::GLOG_ERROR;
  return google::GLOG_INFO;
}

}  // namespace

void init_logging(const char* argv0, const LogOptions& o) {
  State& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  st.tag = "r" + std::to_string(o.rank) + " " + o.role;
  if (!st.initialised) {
    FLAGS_logtostderr = false;
    FLAGS_logbufsecs = 0;  // a crash must not swallow the last lines
    FLAGS_timestamp_in_logfile_name = false;
    google::InitGoogleLogging(argv0, &prefix, nullptr);
    // One file per rank holding every severity, instead of glog's one file per severity.
    google::SetLogDestination(google::GLOG_INFO, "");
    google::SetLogDestination(google::GLOG_WARNING, "");
    google::SetLogDestination(google::GLOG_ERROR, "");
    google::SetLogDestination(google::GLOG_FATAL, "");
    st.initialised = true;
  }
  // Files always get everything from INFO up; `level` only sets what reaches the terminal.
  FLAGS_minloglevel = google::GLOG_INFO;
  const int echo = severity_of(o.level);
  FLAGS_stderrthreshold = (o.rank == 0 || o.echo_all) ? echo : std::max(echo, static_cast<int>(google::GLOG_WARNING));
  if (!o.log_dir.empty()) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path dir = o.log_dir;
    fs::create_directories(dir, ec);
    if (ec) throw WriteError(dir.string() + ": cannot create log folder: " + ec.message(), ec.value());
    st.file = (dir / ("rank" + std::to_string(o.rank) + ".log")).string();
    google::SetLogDestination(google::GLOG_INFO, st.file.c_str());
  }
}

std::string log_file_path() {
  std::lock_guard<std::mutex> lock(state().mu);
  return state().file;
}

}  // namespace r2rec
