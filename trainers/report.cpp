#include "trainers/report.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "core/files.h"

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
  split["methods"][r.method] = m;
  write_file_atomic(path, j.dump(2) + "\n");
}

std::string report_table(const std::string& path, const std::string& split_name) {
  const nlohmann::ordered_json j = load(path);
  if (!j.contains("splits") || !j["splits"].contains(split_name)) return "";
  const auto& methods = j["splits"][split_name]["methods"];
  // Columns: HR@k then NDCG@k in increasing k, as found in the first method.
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
  for (const auto& [method, values] : methods.items()) {  // the language model's valid-answer rate
    if (values.contains("valid")) {
      cols.push_back("valid");
      break;
    }
  }
  std::ostringstream out;
  char buf[64];
  out << "report (" << split_name << ", " << j["splits"][split_name]["examples"] << " examples, "
      << j.value("num_candidates", 0) << " candidates):\n";
  std::snprintf(buf, sizeof(buf), "  %-12s", "method");
  out << buf;
  for (const auto& c : cols) {
    std::snprintf(buf, sizeof(buf), "%9s", c.c_str());
    out << buf;
  }
  out << "\n";
  for (const auto& [method, values] : methods.items()) {
    std::snprintf(buf, sizeof(buf), "  %-12s", method.c_str());
    out << buf;
    for (const auto& c : cols) {  // a metric the method does not have (HR@3 of generation) shows as "-"
      if (values.contains(c)) {
        std::snprintf(buf, sizeof(buf), "%9.4f", values[c].get<double>());
      } else {
        std::snprintf(buf, sizeof(buf), "%9s", "-");
      }
      out << buf;
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace r2rec
