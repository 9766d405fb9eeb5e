#include "core/metrics_log.h"

#include <glog/logging.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/tfevents.h"

namespace r2rec {

MetricsLog::MetricsLog(const std::string& jsonl, const std::string& events_dir, const std::string& stage,
                       int64_t first_step, bool enabled)
    : path_(jsonl), stage_(stage) {
  if (!enabled) return;
  try {
    open(events_dir, first_step);
  } catch (const std::exception& e) {
    // Rank 0 alone writes: throwing here would leave the other ranks waiting in their next collective.
    LOG(WARNING) << "metrics: " << e.what() << "; metrics.jsonl and TensorBoard are off for this stage";
    events_.reset();
  }
}

void MetricsLog::open(const std::string& events_dir, int64_t first_step) {
  if (std::filesystem::exists(path_)) {  // drop this stage's lines past first_step (redone after a resume)
    std::istringstream in(read_file(path_));
    std::string kept;
    bool dropped = false;
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      bool keep = true;
      try {
        const nlohmann::json j = nlohmann::json::parse(line);
        keep = j.value("stage", "") != stage_ || j.value("step", int64_t{0}) <= first_step;
      } catch (const nlohmann::json::exception&) {
        keep = false;  // a line cut short by a kill
      }
      if (keep) {
        kept += line + "\n";
      } else {
        dropped = true;
      }
    }
    if (dropped) write_file_atomic(path_, kept);
  }
  events_ = std::make_unique<EventWriter>(events_dir);
}

MetricsLog::~MetricsLog() = default;

void MetricsLog::log(int64_t step, const Scalars& scalars) {
  if (!events_) return;
  try {
    write(step, scalars);
  } catch (const std::exception& e) {  // as in the constructor: warn once and stop, never throw on rank 0 alone
    LOG(WARNING) << "metrics: " << e.what() << "; metrics.jsonl and TensorBoard are off for the rest of " << stage_;
    events_.reset();
  }
}

void MetricsLog::write(int64_t step, const Scalars& scalars) {
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  nlohmann::ordered_json j;
  j["stage"] = stage_;
  j["step"] = step;
  j["time"] = now;
  Scalars tagged;
  for (const auto& [name, v] : scalars) {
    if (std::isfinite(v)) {
      j[name] = v;
      tagged.emplace_back(stage_ + "/" + name, v);
    } else {
      j[name] = nullptr;
    }
  }
  errno = 0;
  std::ofstream out(path_, std::ios::app);
  out << j.dump() << "\n";
  out.flush();
  if (!out) {
    const int err = errno;
    throw WriteError(path_ + ": write failed" + (err ? std::string(": ") + std::strerror(err) : ""), err);
  }
  events_->scalars(step, now, tagged);
  events_->flush();
}

std::string MetricsLog::event_file() const { return events_ ? events_->path() : ""; }

}  // namespace r2rec
