// Typed fields of JSON files r2rec reads (config.json, adapter_config.json, the shard manifest): one-line
// DataErrors naming the file and the key. nlohmann's own type_error names neither, and its get<int64_t>() of a
// float is a static_cast (undefined behaviour past int64's range, silently truncated below it; found by the
// manifest fuzzer, docs/hardening.md).
//
// `where` prefixes every message: "path: " for a top-level key, "path: field." for a nested one.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "core/error.h"

namespace r2rec::json_field {

// A required integer within int64.
inline int64_t integer(const nlohmann::json& parent, const char* key, const std::string& where) {
  if (!parent.is_object() || !parent.contains(key)) throw DataError(where + key + ": missing");
  const nlohmann::json& v = parent[key];
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX}))
    throw DataError(where + key + ": expected an integer, got " + v.dump().substr(0, 40));
  return v.get<int64_t>();
}

// A required count (examples, bytes, users, ...): an integer in [0, 2^40], so that sums of counts cannot overflow.
inline int64_t count(const nlohmann::json& parent, const char* key, const std::string& where) {
  const int64_t v = integer(parent, key, where);
  if (v < 0 || v > (int64_t{1} << 40))
    throw DataError(where + key + ": " + std::to_string(v) + " is outside [0, 2^40]");
  return v;
}

// An optional field of the fallback's type (bool, std::string, an integer or a floating type): absent or null gives
// the fallback; present with another type is refused by name.
template <class T>
T optional(const nlohmann::json& parent, const char* key, T fallback, const std::string& where) {
  if (!parent.is_object() || !parent.contains(key) || parent[key].is_null()) return fallback;
  const nlohmann::json& v = parent[key];
  bool ok = false;
  if constexpr (std::is_same_v<T, bool>) {
    ok = v.is_boolean();
  } else if constexpr (std::is_same_v<T, std::string>) {
    ok = v.is_string();
  } else if constexpr (std::is_integral_v<T>) {
    ok = v.is_number_integer() && !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX});
  } else {
    static_assert(std::is_floating_point_v<T>, "json_field::optional: bool, std::string, integers or floats");
    ok = v.is_number();
  }
  if (!ok) throw DataError(where + key + ": has the wrong type (" + v.type_name() + ")");
  return v.get<T>();
}

}  // namespace r2rec::json_field
