#include "trainers/eval/report.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "trainers/eval/examples_file.h"

namespace r2rec {
namespace fs = std::filesystem;

namespace {
nlohmann::ordered_json load(const std::string& path) {
  if (!fs::exists(path)) return nlohmann::ordered_json::object();
  try {
    return nlohmann::ordered_json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(path + ": not valid JSON (" + std::string(e.what()) + "); move it aside to start a new report");
  }
}
}  // namespace

void update_report(const std::string& path, const std::string& dataset, int64_t num_candidates, const MethodResult& r) {
  nlohmann::ordered_json j = load(path);
  j["dataset"] = dataset;
  j["num_candidates"] = num_candidates;
  auto& split = j["splits"][r.split];
  split["examples"] = r.examples;
  nlohmann::ordered_json m = nlohmann::ordered_json::object();
  for (const auto& [k, v] : r.metrics) m[k] = v;
  m["examples"] = r.examples;
  m["seconds"] = r.seconds;
  if (!r.fingerprint.empty()) m["fingerprint"] = r.fingerprint;
  if (!r.settings.empty()) {
    nlohmann::ordered_json settings = nlohmann::ordered_json::object();
    for (const auto& [key, text] : r.settings) {  // numbers and booleans as JSON values, the rest as text
      nlohmann::ordered_json v = nlohmann::ordered_json::parse(text, nullptr, false);
      settings[key] = v.is_discarded() ? nlohmann::ordered_json(text) : v;
    }
    m["settings"] = settings;
  }
  if (!r.valid_curve.empty()) {
    m["best_epoch"] = r.best_epoch;
    m["valid_curve"] = r.valid_curve;  // [[epoch, validation NDCG@10], ...]
  }
  split["methods"][r.method] = m;
  write_file_atomic(path, j.dump(2) + "\n");
}

std::string report_fingerprint(const std::string& path, const std::string& split, const std::string& method) {
  const nlohmann::ordered_json j = load(path);
  if (!j.contains("splits") || !j["splits"].contains(split) || !j["splits"][split].contains("methods") ||
      !j["splits"][split]["methods"].contains(method)) {
    return "";
  }
  return j["splits"][split]["methods"][method].value("fingerprint", std::string());
}

// Columns of a split's table: HR@k then NDCG@k in increasing k, as found in the first method, then the
// generation rows' "valid", "forced", "grounded", "true_votes", "consistent", "cf_cited" and "cf_uncited" when a
// method has them.
std::vector<std::string> columns(const nlohmann::ordered_json& methods) {
  std::vector<std::string> cols;
  for (const char* family : {"HR@", "NDCG@"}) {
    std::vector<std::pair<int, std::string>> ks;
    for (const auto& [method, values] : methods.items()) {
      for (const auto& [key, value] : values.items()) {
        if (key.rfind(family, 0) == 0) ks.emplace_back(std::stoi(key.substr(std::string(family).size())), key);
      }
      break;
    }
    std::sort(ks.begin(), ks.end());
    for (const auto& k : ks) cols.push_back(k.second);
  }
  for (const char* extra : {"valid", "forced", "grounded", "true_votes", "consistent", "cf_cited", "cf_uncited"}) {
    for (const auto& [method, values] : methods.items()) {
      if (values.contains(extra)) {
        cols.push_back(extra);
        break;
      }
    }
  }
  return cols;
}

std::string report_table(const std::string& path, const std::string& split_name) {
  const nlohmann::ordered_json j = load(path);
  if (!j.contains("splits") || !j["splits"].contains(split_name)) return "";
  const auto& methods = j["splits"][split_name]["methods"];
  const std::vector<std::string> cols = columns(methods);
  std::ostringstream out;
  char buf[64];
  out << "report (" << split_name << ", " << j["splits"][split_name]["examples"] << " examples, "
      << j.value("num_candidates", 0) << " candidates):\n";
  std::snprintf(buf, sizeof(buf), "  %-12s", "method");
  out << buf;
  const auto width = [](const std::string& col) { return std::max<int>(9, static_cast<int>(col.size()) + 1); };
  for (const auto& c : cols) {
    std::snprintf(buf, sizeof(buf), "%*s", width(c), c.c_str());
    out << buf;
  }
  out << "\n";
  for (const auto& [method, values] : methods.items()) {
    std::snprintf(buf, sizeof(buf), "  %-12s", method.c_str());
    out << buf;
    for (const auto& c : cols) {  // a metric the method does not have (HR@3 of generation) shows as "-"
      if (values.contains(c)) {
        std::snprintf(buf, sizeof(buf), "%*.4f", width(c), values[c].get<double>());
      } else {
        std::snprintf(buf, sizeof(buf), "%*s", width(c), "-");
      }
      out << buf;
    }
    out << "\n";
  }
  return out.str();
}

std::vector<Comparison> compare_with_best_baseline(const std::string& report_path, const std::string& examples_path,
                                                   const std::string& split, int64_t resamples, uint64_t seed) {
  std::vector<Comparison> out;
  const nlohmann::ordered_json j = load(report_path);
  if (!j.contains("splits") || !j["splits"].contains(split) || !fs::exists(examples_path)) return out;
  const auto table = read_examples(examples_path, split);
  const auto& methods = j["splits"][split]["methods"];
  auto is_lm = [](const std::string& m) { return m == "llm" || m.rfind("llm-", 0) == 0; };
  std::string best;
  double best_hr1 = -1;
  for (const auto& [method, values] : methods.items()) {
    if (is_lm(method) || method == "random" || !values.contains("HR@1") || !table.count(method)) continue;
    if (values["HR@1"].get<double>() > best_hr1) {
      best_hr1 = values["HR@1"].get<double>();
      best = method;
    }
  }
  if (best.empty()) return out;
  for (const auto& [method, values] : methods.items()) {
    if (!is_lm(method) || !table.count(method)) continue;
    std::vector<double> a, b;
    paired_hits(table, method, best, &a, &b);
    if (a.empty()) continue;
    Comparison c;
    c.method = method;
    c.baseline = best;
    c.difference = paired_bootstrap(a, b, resamples, seed);
    double sa = 0, sb = 0;
    for (size_t i = 0; i < a.size(); ++i) sa += a[i], sb += b[i];
    c.method_hr1 = sa / static_cast<double>(a.size());
    c.baseline_hr1 = sb / static_cast<double>(b.size());
    out.push_back(c);
  }
  return out;
}

std::map<std::string, std::vector<Comparison>> compare_every_split(const std::string& report_path,
                                                                   const std::string& examples_path, uint64_t seed) {
  std::map<std::string, std::vector<Comparison>> out;
  const nlohmann::ordered_json j = load(report_path);
  if (!j.contains("splits")) return out;
  for (const auto& [split, body] : j["splits"].items()) {
    std::vector<Comparison> cs = compare_with_best_baseline(report_path, examples_path, split, 10000, seed);
    if (!cs.empty()) out[split] = std::move(cs);
  }
  return out;
}

std::string report_markdown(const std::string& path, const std::string& protocol,
                            const std::map<std::string, std::vector<Comparison>>& comparisons) {
  if (!fs::exists(path)) return "";
  const nlohmann::ordered_json j = load(path);
  std::ostringstream out;
  out << "# r2rec report: " << j.value("dataset", std::string("?")) << "\n\n## Protocol\n\n" << protocol << "\n";
  if (!j.contains("splits")) return out.str();
  char buf[32];
  for (const auto& [split, body] : j["splits"].items()) {
    const auto& methods = body["methods"];
    const std::vector<std::string> cols = columns(methods);
    out << "\n## " << split << " (" << body.value("examples", int64_t{0}) << " examples, "
        << j.value("num_candidates", 0) << " candidates)\n\n| method |";
    for (const auto& c : cols) out << " " << c << " |";
    out << "\n|---|";
    for (size_t i = 0; i < cols.size(); ++i) out << "---:|";
    out << "\n";
    for (const auto& [method, values] : methods.items()) {
      out << "| " << method << " |";
      for (const auto& c : cols) {
        if (values.contains(c)) {
          std::snprintf(buf, sizeof(buf), " %.4f |", values[c].get<double>());
          out << buf;
        } else {
          out << " - |";
        }
      }
      out << "\n";
    }
    bool trained_header = false;  // each trained baseline's settings and validation curve
    for (const auto& [method, values] : methods.items()) {
      if (!values.contains("settings")) continue;
      if (!trained_header)
        out << "\nTrained baselines: their settings, and the validation NDCG@10 that early stopping read "
               "(the best epoch's weights are the ones scored).\n\n";
      trained_header = true;
      out << "- `" << method << "`:";
      for (const auto& [key, value] : values["settings"].items())
        out << " " << key.substr(key.rfind('.') + 1) << " " << value.dump() << ";";
      if (values.contains("valid_curve") && !values["valid_curve"].empty()) {
        out << " validation NDCG@10 by epoch:";
        for (const auto& point : values["valid_curve"]) {
          std::snprintf(buf, sizeof(buf), " %lld %.4f,", static_cast<long long>(point[0].get<int64_t>()),
                        point[1].get<double>());
          out << buf;
        }
        out << " best at epoch " << values.value("best_epoch", int64_t{0});
      } else {
        out << " no training";
      }
      out << "\n";
    }
    auto found = comparisons.find(split);
    if (found == comparisons.end() || found->second.empty()) continue;
    const std::vector<Comparison>& cs = found->second;
    out << "\nPaired against the best classical baseline of this table (`" << cs.front().baseline
        << "`): the difference in HR@1 over the same examples, with its 95% paired bootstrap interval (10,000 "
           "resamples of the examples, examples.jsonl; trainers/eval/stats.h). An interval that excludes 0 is "
           "marked *.\n\n| method | HR@1 | "
        << cs.front().baseline << " | difference [95% interval] | examples |\n"
        << "|---|---:|---:|---:|---:|\n";
    for (const Comparison& c : cs) {
      std::snprintf(buf, sizeof(buf), "| %.4f | %.4f | ", c.method_hr1, c.baseline_hr1);
      out << "| " << c.method << " " << buf << format_interval(c.difference, true)
          << (c.difference.excludes_zero() ? " *" : "") << " | " << c.difference.n << " |\n";
    }
  }
  out << "\nMethods: `random`, `popularity`, `chainvote`, `itemknn`, `bpr`, `lightgcn`, `sasrec` are the classical "
         "baselines "
         "(docs/baselines.md). `llm-*` rank the candidates by the answer token's likelihood after the direct prompt; "
         "`llm-*-gen` is HR@1 of the model's own greedy reasoning with the answer constrained to the candidates, and "
         "`valid` the share of unconstrained answers naming a candidate (docs/training.md), `forced` the share that "
         "needed `<answer>` appended, `grounded` the share of the chains its reasoning cites that are grounded in the "
         "prompt (every step a hop of the cited chain; trainers/task/citations.h; `r2rec explain` shows one), "
         "`true_votes` the share of its count claims (votes lines, \"No chain reaches it\" or the grouped layout's "
         "\"Candidate <item_98> 3\" about the candidate it names) that are true to the prompt, `consistent` the share "
         "of answers "
         "its own stated evidence favours, `cf_cited` / `cf_uncited` the share of answers that change when the "
         "chains a completion cites / as many uncited chains are removed from its prompt (the counterfactual test, "
         "over the completions that cite prompt chains). HR@k = [rank <= k], "
         "NDCG@k = 1/log2(rank + 1) when rank <= k, ties split evenly (trainers/eval/metrics.h).\n";
  return out.str();
}

}  // namespace r2rec
