#include "trainers/eval/examples_file.h"

#include <glog/logging.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "core/error.h"
#include "core/files.h"

namespace r2rec {
namespace fs = std::filesystem;

namespace {
std::string hex(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// Every line of the file, keyed by (split, id), in file order within the map's order.
using Lines = std::map<std::pair<std::string, int64_t>, nlohmann::ordered_json>;

Lines load(const std::string& path) {
  Lines lines;
  if (!fs::exists(path)) return lines;
  std::istringstream in(read_file(path));
  std::string text;
  int64_t number = 0;
  while (std::getline(in, text)) {
    ++number;
    if (text.empty()) continue;
    try {
      nlohmann::ordered_json j = nlohmann::ordered_json::parse(text);
      const std::string split = j.at("split").get<std::string>();
      const int64_t id = j.at("id").get<int64_t>();
      const std::string list = j.at("list").get<std::string>();
      if (list.size() != 16 || list.find_first_not_of("0123456789abcdef") != std::string::npos) {
        throw DataError("list is not 16 hex digits");
      }
      if (!j.at("methods").is_object()) throw DataError("methods is not an object");
      for (const auto& [method, m] : j["methods"].items()) {
        if (!m.is_object() || !m.contains("hit") || !m["hit"].is_number()) {
          throw DataError("method " + method + " has no numeric hit");
        }
      }
      lines[{split, id}] = std::move(j);
    } catch (const std::exception& e) {
      throw DataError(path + ":" + std::to_string(number) + ": not an examples.jsonl line (" + e.what() +
                      "); move the file aside to start a new one");
    }
  }
  return lines;
}
}  // namespace

void update_examples(const std::string& path, const std::string& split, const std::string& method,
                     const std::vector<ExampleOutcome>& outcomes) {
  Lines lines = load(path);
  for (auto& [key, j] : lines) {
    if (key.first == split) j["methods"].erase(method);  // outcomes this write does not renew are not kept
  }
  int64_t relisted = 0;
  for (const ExampleOutcome& o : outcomes) {
    nlohmann::ordered_json& j = lines[{split, o.id}];
    const std::string list = hex(o.list_hash);
    if (j.is_null() || j.value("list", std::string()) != list) {
      if (!j.is_null() && !j["methods"].empty()) ++relisted;
      j = nlohmann::ordered_json{{"split", split},
                                 {"id", o.id},
                                 {"user", o.user},
                                 {"list", list},
                                 {"methods", nlohmann::ordered_json::object()}};
    }
    nlohmann::ordered_json m{{"hit", o.hit}};
    if (o.rank > 0) m["rank"] = o.rank;
    j["methods"][method] = std::move(m);
  }
  if (relisted > 0) {
    LOG(WARNING) << path << ": " << relisted << " examples of " << split << " have new candidate lists; the other "
                 << "methods' outcomes on them were dropped (they scored the old lists)";
  }
  std::string out;
  for (const auto& [key, j] : lines) {
    if (j["methods"].empty()) continue;
    out += j.dump() + "\n";
  }
  write_file_atomic(path, out);
}

std::map<std::string, std::map<int64_t, ExampleOutcome>> read_examples(const std::string& path,
                                                                       const std::string& split) {
  std::map<std::string, std::map<int64_t, ExampleOutcome>> table;
  for (const auto& [key, j] : load(path)) {
    if (key.first != split) continue;
    ExampleOutcome o;
    o.id = key.second;
    o.user = j.value("user", 0);
    o.list_hash = std::stoull(j["list"].get<std::string>(), nullptr, 16);
    for (const auto& [method, m] : j["methods"].items()) {
      ExampleOutcome om = o;
      om.hit = m.value("hit", 0.0);
      om.rank = m.value("rank", 0.0);
      table[method][o.id] = om;
    }
  }
  return table;
}

void paired_hits(const std::map<std::string, std::map<int64_t, ExampleOutcome>>& table, const std::string& a,
                 const std::string& b, std::vector<double>* hits_a, std::vector<double>* hits_b) {
  for (const std::string& m : {a, b}) {
    if (!table.count(m)) throw DataError("examples.jsonl: no outcomes of method '" + m + "'");
  }
  hits_a->clear();
  hits_b->clear();
  const auto& tb = table.at(b);
  for (const auto& [id, oa] : table.at(a)) {
    auto it = tb.find(id);
    if (it == tb.end() || it->second.list_hash != oa.list_hash) continue;
    hits_a->push_back(oa.hit);
    hits_b->push_back(it->second.hit);
  }
}

}  // namespace r2rec
