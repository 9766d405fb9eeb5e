// The run's metrics stream: <run.dir>/metrics.jsonl and TensorBoard event files in <run.dir>/tensorboard/
// (core/tfevents.h), written by rank 0 as each training step ends (docs/formats.md "metrics.jsonl").
//
// metrics.jsonl: one JSON object per line, {"stage": "sft", "step": 12, "time": <unix seconds>, <scalar>: <value>,
// ...}; `step` counts the stage's optimizer steps done (1 = after the first), the numbering of its checkpoints.
// The event files hold the same scalars, tagged "<stage>/<scalar>". A stage resumed at step N first drops the
// lines of that stage past N which the interrupted run left (it redoes those steps); the other stages' lines
// stay.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace r2rec {

class EventWriter;

using Scalars = std::vector<std::pair<std::string, double>>;

class MetricsLog {
 public:
  // Lines go to `jsonl` and events into the folder `events_dir` (RunLayout::metrics_jsonl, tensorboard).
  // `enabled` false (ranks other than 0): every call does nothing.
  MetricsLog(const std::string& jsonl, const std::string& events_dir, const std::string& stage, int64_t first_step,
             bool enabled);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // One line and one event. Non-finite values are written as null (JSON has no NaN) and left out of the event.
  // An I/O failure (here or opening) never throws: one warning, and the log is off for the rest of the stage
  // (only rank 0 writes, so an exception would leave the other ranks in their next collective).
  void log(int64_t step, const Scalars& scalars);
  // The event file ("" when disabled).
  std::string event_file() const;

 private:
  void open(const std::string& events_dir, int64_t first_step);
  void write(int64_t step, const Scalars& scalars);
  std::string path_, stage_;
  std::unique_ptr<EventWriter> events_;
};

}  // namespace r2rec
