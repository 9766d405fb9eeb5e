// The schema behind core/config.h: one Field per config key, with its type, range, default and meaning.
// Internal to core/ (config.cpp, its tests and the reference generator).
#pragma once

#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/config.h"

namespace r2rec::config_detail {

enum class Kind { kBool, kInt, kFloat, kString, kPath, kEnum, kStringList, kIntList };

struct Field {
  std::string key;  // dotted path, e.g. "sft.learning_rate"
  Kind kind = Kind::kString;
  std::string doc;                    // meaning (one sentence or two), shown in docs and templates
  std::function<void*(Config&)> ref;  // address of the member inside a Config
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_exclusive = false;        // range is (min, max] instead of [min, max]
  std::vector<std::string> choices;  // kEnum values, or allowed kStringList elements
  bool must_exist = false;           // kPath: a non-empty value must name an existing file or folder
};

// Every field, in documentation order (sections in the order of Config's members).
const std::vector<Field>& schema();

// The section names, in order, with one line describing each.
const std::vector<std::pair<std::string, std::string>>& sections();

// "an integer in [1, 64]", "one of auto, mpi, nccl", ...: what a field accepts, for errors and docs.
std::string expectation(const Field& field);

// A field's current value in `config` rendered as YAML flow text ("20", "[1, 3, 5]", "\"ml-100k\"").
std::string value_text(const Field& field, const Config& config);

// Closest key to `wrong` among `candidates` when close enough to be a likely typo, else "".
std::string suggest(const std::string& wrong, const std::vector<std::string>& candidates);

}  // namespace r2rec::config_detail
