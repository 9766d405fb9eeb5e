#include "core/run_layout.h"

#include <filesystem>

namespace r2rec {
namespace {
std::string join(const std::string& a, const std::string& b) { return (std::filesystem::path(a) / b).string(); }
}  // namespace

RunLayout::RunLayout(const Config& config)
    : root_(config.run.dir),
      data_(config.sampler.output_dir.empty() ? join(config.run.dir, "data") : config.sampler.output_dir) {}

std::string RunLayout::config_yaml() const { return join(root_, "config.yaml"); }
std::string RunLayout::logs() const { return join(root_, "logs"); }
std::string RunLayout::heartbeats() const { return join(root_, "heartbeats"); }
std::string RunLayout::data() const { return data_; }
std::string RunLayout::traces() const { return join(root_, "traces"); }
std::string RunLayout::traces_h5() const { return join(traces(), "traces.h5"); }
std::string RunLayout::traces_json() const { return join(traces(), "traces.json"); }
std::string RunLayout::tokenizer_dir() const { return join(root_, "tokenizer"); }
std::string RunLayout::tokenizer_json() const { return join(tokenizer_dir(), "tokenizer.json"); }
std::string RunLayout::tokenizer_source() const { return join(tokenizer_dir(), "source.json"); }
std::string RunLayout::stage_dir(const std::string& stage) const { return join(root_, stage); }
std::string RunLayout::stage_model(const std::string& stage) const { return join(stage_dir(stage), "model"); }
std::string RunLayout::stage_json(const std::string& stage) const { return join(stage_dir(stage), stage + ".json"); }
std::string RunLayout::stage_checkpoints(const std::string& stage) const {
  return join(stage_dir(stage), "checkpoints");
}
std::string RunLayout::report_json() const { return report_json_of(root_); }
std::string RunLayout::report_json_of(const std::string& dir) { return join(dir, "report.json"); }
std::string RunLayout::report_md() const { return join(root_, "report.md"); }
std::string RunLayout::examples_jsonl() const { return examples_jsonl_of(root_); }
std::string RunLayout::examples_jsonl_of(const std::string& dir) { return join(dir, "examples.jsonl"); }
std::string RunLayout::metrics_jsonl() const { return join(root_, "metrics.jsonl"); }
std::string RunLayout::tensorboard() const { return join(root_, "tensorboard"); }
std::string RunLayout::done_marker() const { return join(root_, "DONE"); }
std::string RunLayout::scratch(const std::string& name) const { return join(root_, name); }
std::string RunLayout::config_yaml_of(const std::string& dir) { return join(dir, "config.yaml"); }
std::string RunLayout::baseline_factors(const std::string& method) const {
  return join(join(join(root_, "baselines"), method), "item_factors.safetensors");
}

}  // namespace r2rec
