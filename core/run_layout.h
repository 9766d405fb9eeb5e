// Every path of a run directory, in one place. docs/formats.md ("The run directory") lists them with the
// stage that writes each and the file formats; nothing else in r2rec spells a run-directory path.
//
//   <run.dir>/config.yaml                  the resolved config of the last command (rank 0)
//   <run.dir>/logs/rank<R>.log             per-rank log files
//   <run.dir>/heartbeats/                  watchdog heartbeats of multi-rank commands
//   <run.dir>/data/                        prepare's shards, catalog and manifest (or sampler.output_dir)
//   <run.dir>/traces/traces.h5, .json      annotate's SFT traces
//   <run.dir>/tokenizer/tokenizer.json     the learnt tokenizer (+ source.json: what it was learnt from)
//   <run.dir>/<stage>/model/               a stage's model folder (stage: pretrain, sft, rl)
//   <run.dir>/<stage>/checkpoints/         its full-state checkpoints (step-N/)
//   <run.dir>/<stage>/<stage>.json         the stage's record (fingerprint, per-step losses, timings)
//   <run.dir>/baselines/<method>/          a trained baseline's item factors (item_factors.safetensors)
//   <run.dir>/report.json, report.md       every method's metrics on the stored candidate lists
//   <run.dir>/examples.jsonl               every method's outcome per example (trainers/eval/examples_file.h)
//   <run.dir>/metrics.jsonl, tensorboard/  the per-step metrics stream (core/metrics_log.h)
//   <run.dir>/DONE                         written when `r2rec run` finished every stage
#pragma once

#include <string>

#include "core/config.h"

namespace r2rec {

class RunLayout {
 public:
  explicit RunLayout(const Config& config);

  const std::string& root() const { return root_; }
  std::string config_yaml() const;
  std::string logs() const;
  std::string heartbeats() const;
  std::string data() const;  // sampler.output_dir when set
  std::string traces() const;
  std::string traces_h5() const;
  std::string traces_json() const;
  std::string tokenizer_dir() const;
  std::string tokenizer_json() const;
  std::string tokenizer_source() const;
  std::string stage_dir(const std::string& stage) const;
  std::string stage_model(const std::string& stage) const;
  std::string stage_json(const std::string& stage) const;
  std::string stage_checkpoints(const std::string& stage) const;
  std::string report_json() const;
  std::string report_md() const;
  std::string examples_jsonl() const;
  std::string metrics_jsonl() const;
  std::string tensorboard() const;
  std::string done_marker() const;
  // A scratch file name in the run directory (for a file written and removed at once).
  std::string scratch(const std::string& name) const;
  // <dir>/config.yaml: the resolved config a command saved in run directory `dir` (before any config is loaded).
  static std::string config_yaml_of(const std::string& dir);
  // <dir>/examples.jsonl and <dir>/report.json of run directory `dir` (r2rec compare reads runs without their
  // config).
  static std::string examples_jsonl_of(const std::string& dir);
  static std::string report_json_of(const std::string& dir);
  // <run.dir>/baselines/<method>/item_factors.safetensors: a trained baseline's item factors ("item_factors",
  // float32 [items, dim]), what pretrain.init_items reads.
  std::string baseline_factors(const std::string& method) const;

 private:
  std::string root_, data_;
};

}  // namespace r2rec
