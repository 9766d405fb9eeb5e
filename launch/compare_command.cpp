// `r2rec compare [A B] --run-dir D [--run-dir D2 ...]` (docs/evaluation.md). One run directory per seed.
//   without methods: every method of the runs' report.json, each metric's mean over the runs with Student's t 95%
//                    interval (one table);
//   with A and B:    A against B on the same examples, from the runs' examples.jsonl
//                    (trainers/eval/examples_file.h): each run's HR@1 of A, B and A - B; over several runs, their
//                    means with t intervals; and the paired bootstrap over examples of A - B, each example's
//                    difference averaged over the runs that scored it on both sides (trainers/eval/stats.h).
//                    With --against-run-dir (one per --run-dir), B is read from those runs: two configurations
//                    of one seed each pair up, and an example counts only where both scored the same list.
// No MPI, no config: it only reads files.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/run_layout.h"
#include "launch/commands.h"
#include "trainers/eval/examples_file.h"
#include "trainers/eval/stats.h"

namespace r2rec {

namespace {

// Every method's metrics over the runs: mean and t interval per (method, metric), methods in first-seen order.
int method_table(const CompareOptions& o) {
  std::vector<std::string> methods, metrics;
  std::map<std::pair<std::string, std::string>, std::vector<double>> values;
  std::map<std::string, int64_t> examples;
  for (const std::string& dir : o.run_dirs) {
    const std::string path = RunLayout::report_json_of(dir);
    nlohmann::ordered_json j;
    try {
      j = nlohmann::ordered_json::parse(read_file(path));
    } catch (const nlohmann::json::exception& e) {
      throw DataError(path + ": not valid JSON (" + std::string(e.what()) + ")");
    }
    if (!j.contains("splits") || !j["splits"].contains(o.split)) {
      throw DataError(path + ": no " + o.split + " split (was the run evaluated with eval.split=" + o.split + "?)");
    }
    for (const auto& [method, m] : j["splits"][o.split]["methods"].items()) {
      if (std::find(methods.begin(), methods.end(), method) == methods.end()) methods.push_back(method);
      examples[method] = m.value("examples", int64_t{0});
      for (const auto& [key, v] : m.items()) {
        if (key.rfind("HR@", 0) != 0 && key.rfind("NDCG@", 0) != 0) continue;
        if (std::find(metrics.begin(), metrics.end(), key) == metrics.end()) metrics.push_back(key);
        values[{method, key}].push_back(v.get<double>());
      }
    }
  }
  const std::vector<std::string> shown = {"HR@1", "NDCG@10"};
  if (o.json) {
    nlohmann::ordered_json out{{"split", o.split}, {"runs", o.run_dirs}, {"methods", nlohmann::ordered_json::object()}};
    for (const auto& method : methods) {
      for (const auto& metric : metrics) {
        auto it = values.find({method, metric});
        if (it == values.end()) continue;
        const Interval i = t_interval(it->second);
        out["methods"][method][metric] = {{"mean", i.mean}, {"lo", i.lo}, {"hi", i.hi}, {"runs", i.n}};
      }
    }
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("compare: every method on %s over %zu run(s): mean ± half-width of the 95%% t interval over the runs\n",
              o.split.c_str(), o.run_dirs.size());
  std::printf("  %-14s %20s %20s %6s %9s\n", "method", "HR@1", "NDCG@10", "runs", "examples");
  for (const auto& method : methods) {
    std::printf("  %-14s", method.c_str());
    int64_t runs = 0;
    for (const auto& metric : shown) {
      auto it = values.find({method, metric});
      if (it == values.end()) {
        std::printf(" %20s", "-");
        continue;
      }
      const Interval i = t_interval(it->second);
      runs = i.n;
      std::printf(" %20s", format_interval(i).c_str());
    }
    std::printf(" %6lld %9lld\n", static_cast<long long>(runs), static_cast<long long>(examples[method]));
  }
  return 0;
}

}  // namespace

int command_compare(const CompareOptions& o) {
  if (o.run_dirs.empty()) throw ConfigError("compare: pass --run-dir DIR (repeat it for one run per seed)");
  const bool against = !o.against_run_dirs.empty();
  if (o.methods.empty() && against) throw ConfigError("compare: --against-run-dir needs two methods, A and B");
  if (o.methods.empty()) return method_table(o);
  if (o.methods.size() != 2) throw ConfigError("compare: name two methods, A and B (e.g. llm-rl-gen bpr), or none");
  if (against && o.against_run_dirs.size() != o.run_dirs.size()) {
    throw ConfigError("compare: --against-run-dir: " + std::to_string(o.against_run_dirs.size()) + " given for " +
                      std::to_string(o.run_dirs.size()) + " --run-dir; pass one per run, in the same seed order");
  }
  const std::string& a = o.methods[0];
  const std::string& b = o.methods[1];
  std::vector<double> hr_a, hr_b, diff;
  std::map<int64_t, std::pair<double, int64_t>> per_example;  // id -> (sum of A - B over runs, runs)
  nlohmann::ordered_json runs = nlohmann::ordered_json::array();
  using Table = std::map<std::string, std::map<int64_t, ExampleOutcome>>;
  const auto table_of = [&](const std::string& dir) {
    const std::string path = RunLayout::examples_jsonl_of(dir);
    if (!std::filesystem::exists(path)) {
      throw DataError(path + ": not found (runs write it from this version on; eval and baseline fill it in)");
    }
    return read_examples(path, o.split);
  };
  const auto outcomes_of = [&](const Table& table, const std::string& dir, const std::string& method) -> const auto& {
    auto it = table.find(method);
    if (it == table.end()) {
      throw DataError(RunLayout::examples_jsonl_of(dir) + ": no outcomes of '" + method + "' on the " + o.split +
                      " split");
    }
    return it->second;
  };
  for (size_t r = 0; r < o.run_dirs.size(); ++r) {
    const std::string& dir = o.run_dirs[r];
    const std::string& dir_b = against ? o.against_run_dirs[r] : dir;
    const std::string path = RunLayout::examples_jsonl_of(dir);
    const Table table = table_of(dir), against_table = against ? table_of(dir_b) : Table{};
    const auto& ta = outcomes_of(table, dir, a);
    const auto& tb = outcomes_of(against ? against_table : table, dir_b, b);
    double sa = 0, sb = 0;
    int64_t n = 0;
    for (const auto& [id, oa] : ta) {
      auto it = tb.find(id);
      if (it == tb.end() || it->second.list_hash != oa.list_hash) continue;
      sa += oa.hit;
      sb += it->second.hit;
      auto& e = per_example[id];
      e.first += oa.hit - it->second.hit;
      e.second += 1;
      ++n;
    }
    if (n == 0) {
      throw DataError(path + ": '" + a + "' and '" + b + "'" + (against ? " of " + dir_b : "") +
                      " share no example scored on the same list");
    }
    hr_a.push_back(sa / n);
    hr_b.push_back(sb / n);
    diff.push_back((sa - sb) / n);
    runs.push_back(
        {{"run_dir", dir}, {"examples", n}, {"a", hr_a.back()}, {"b", hr_b.back()}, {"difference", diff.back()}});
    if (against) runs.back()["against_run_dir"] = dir_b;
  }
  std::vector<double> mean_diff, zeros;
  for (const auto& [id, e] : per_example) {
    mean_diff.push_back(e.first / static_cast<double>(e.second));
    zeros.push_back(0.0);
  }
  const Interval boot = paired_bootstrap(mean_diff, zeros, o.resamples, o.seed);
  const Interval ta = t_interval(hr_a), tb = t_interval(hr_b), td = t_interval(diff);
  if (o.json) {
    auto iv = [](const Interval& i) { return nlohmann::ordered_json{{"mean", i.mean}, {"lo", i.lo}, {"hi", i.hi}}; };
    nlohmann::ordered_json j{{"a", a},
                             {"b", b},
                             {"split", o.split},
                             {"runs", runs},
                             {"mean_a", iv(ta)},
                             {"mean_b", iv(tb)},
                             {"mean_difference", iv(td)},
                             {"bootstrap", iv(boot)},
                             {"bootstrap_examples", boot.n},
                             {"resamples", o.resamples}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("compare: %s against %s on %s, HR@1, %zu run(s)\n", a.c_str(), b.c_str(), o.split.c_str(),
              o.run_dirs.size());
  std::printf("  %-40s %10s %10s %11s %9s\n", "run", a.c_str(), b.c_str(), "difference", "examples");
  for (const auto& r : runs) {
    std::printf("  %-40s %10.4f %10.4f %+11.4f %9lld%s\n", r["run_dir"].get<std::string>().c_str(),
                r["a"].get<double>(), r["b"].get<double>(), r["difference"].get<double>(),
                static_cast<long long>(r["examples"].get<int64_t>()),
                against ? ("  (B: " + r["against_run_dir"].get<std::string>() + ")").c_str() : "");
  }
  if (o.run_dirs.size() > 1) {
    std::printf("  mean over runs, 95%% t interval: %s %s, %s %s, difference %s\n", a.c_str(),
                format_interval(ta).c_str(), b.c_str(), format_interval(tb).c_str(), format_interval(td, true).c_str());
  }
  std::printf(
      "  paired bootstrap over %lld examples (%lld resamples; each example's difference averaged over the "
      "runs): %s%s\n",
      static_cast<long long>(boot.n), static_cast<long long>(o.resamples), format_interval(boot, true).c_str(),
      boot.excludes_zero() ? "  (excludes 0)" : "  (includes 0)");
  return 0;
}

}  // namespace r2rec
