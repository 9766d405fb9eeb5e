#include "core/owned_dir.h"

#include <glog/logging.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "core/files.h"

namespace r2rec {

namespace fs = std::filesystem;

namespace {

constexpr const char* kMarkerHeader = "# written by r2rec: the entries below are its own; anything else here is not";
constexpr const char* kEverything = "*";  // the list of a folder still being built: everything in it

enum class Kind { kAbsent, kEmpty, kOwned, kForeign };

struct State {
  Kind kind = Kind::kAbsent;
  std::set<std::string> own;      // entries r2rec wrote (kOwned)
  std::vector<std::string> rest;  // entries it did not (kOwned: to keep; kForeign: the reason)
};

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name != kOwnedMarker) out.push_back(name);
  }
  if (ec) throw RuntimeFailure(dir + ": cannot list: " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

State inspect(const std::string& dir, const OwnName& own) {
  State s;
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(dir, ec);
  if (!fs::exists(st)) return s;
  if (!fs::is_directory(st)) {
    s.kind = Kind::kForeign;
    s.rest.push_back("(it is not a folder)");
    return s;
  }
  const std::vector<std::string> names = entries(dir);
  const std::string marker = (fs::path(dir) / kOwnedMarker).string();
  if (fs::exists(marker)) {
    std::istringstream in(read_file(marker));
    for (std::string line; std::getline(in, line);)
      if (!line.empty() && line[0] != '#') s.own.insert(line);
    s.kind = Kind::kOwned;
    const bool staging = s.own.count(kEverything) > 0;  // a folder being built: all of it is r2rec's
    for (const std::string& n : names) {
      if (staging) {
        s.own.insert(n);
      } else if (!s.own.count(n)) {
        s.rest.push_back(n);
      }
    }
    s.own.erase(kEverything);
    return s;
  }
  if (names.empty()) {
    s.kind = Kind::kEmpty;
    return s;
  }
  for (const std::string& n : names) {
    if (own && own(n)) {
      s.own.insert(n);
    } else {
      s.rest.push_back(n);
    }
  }
  // No marker: r2rec's only when everything in it is (a folder written before markers).
  s.kind = s.rest.empty() ? Kind::kOwned : Kind::kForeign;
  return s;
}

ConfigError refusal(const std::string& dir, const State& s) {
  if (s.rest.empty() || s.rest.front() == "(it is not a folder)")
    return ConfigError(dir +
                       ": is not a folder r2rec wrote, and r2rec will not replace it: move it away or choose "
                       "another folder");
  return ConfigError(dir + ": holds '" + s.rest.front() +
                     "', which r2rec did not write and will not delete: move it away or choose another folder");
}

// r2rec's entries of `dir` go; a sub-folder with its own marker is cleared by its own list (a user's file inside
// an r2rec folder inside an r2rec folder stays); `dir` goes when nothing else is left.
void remove_owned_entries(const std::string& dir, const State& s) {
  std::error_code ec;
  for (const std::string& n : s.own) {
    const fs::path p = fs::path(dir) / n;
    if (fs::is_directory(fs::symlink_status(p)) && fs::exists(p / kOwnedMarker)) {
      const State sub = inspect(p.string(), nullptr);
      remove_owned_entries(p.string(), sub);
    } else {
      fs::remove_all(p, ec);
    }
  }
  if (s.rest.empty()) {
    fs::remove(fs::path(dir) / kOwnedMarker, ec);
    fs::remove(dir, ec);
  } else {  // the folder stays r2rec's, holding only the user's entries
    write_file_atomic((fs::path(dir) / kOwnedMarker).string(), std::string(kMarkerHeader) + "\n");
  }
}

}  // namespace

bool model_dir_name(const std::string& n) {
  auto ends = [&](const char* suffix) {
    const std::string s(suffix);
    return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0;
  };
  return n == "config.json" || n == "tokenizer.json" || n == "generation_config.json" || n == "adapter_config.json" ||
         n == "model.safetensors.index.json" ||
         ((n.rfind("model", 0) == 0 || n.rfind("adapter_model", 0) == 0) && ends(".safetensors"));
}

void check_replaceable(const std::string& dir, const OwnName& own) {
  const State s = inspect(dir, own);
  if (s.kind == Kind::kForeign) throw refusal(dir, s);
}

void make_owned_dir(const std::string& dir, const OwnName& own, bool building) {
  const State s = inspect(dir, own);
  if (s.kind == Kind::kForeign || (s.kind == Kind::kOwned && !s.rest.empty())) throw refusal(dir, s);
  std::error_code ec;
  if (s.kind != Kind::kAbsent) fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  if (ec) throw WriteError(dir + ": cannot create: " + ec.message(), ec.value());
  write_file_atomic((fs::path(dir) / kOwnedMarker).string(),
                    std::string(kMarkerHeader) + "\n" + (building ? std::string(kEverything) + "\n" : ""));
}

void set_owned_entries(const std::string& dir, const std::vector<std::string>& add,
                       const std::vector<std::string>& drop) {
  const State s = inspect(dir, nullptr);
  std::set<std::string> names = s.kind == Kind::kOwned ? s.own : std::set<std::string>{};
  for (const std::string& n : drop) names.erase(n);
  for (const std::string& n : add) names.insert(n);
  std::string text = std::string(kMarkerHeader) + "\n";
  for (const std::string& n : names) text += n + "\n";
  write_file_atomic((fs::path(dir) / kOwnedMarker).string(), text);
}

void seal_owned_dir(const std::string& dir) {
  std::string text = std::string(kMarkerHeader) + "\n";
  for (const std::string& n : entries(dir)) text += n + "\n";
  write_file_atomic((fs::path(dir) / kOwnedMarker).string(), text);
}

void replace_owned_dir(const std::string& dir, const std::string& fresh, const OwnName& own) {
  const State s = inspect(dir, own);
  if (s.kind == Kind::kForeign) throw refusal(dir, s);
  std::error_code ec;
  if (s.kind == Kind::kEmpty) {
    fs::remove(dir, ec);
  } else if (s.kind == Kind::kOwned) {
    const std::string old = dir + ".old";
    remove_if_owned(old, own);
    if (fs::exists(fs::symlink_status(old))) throw refusal(old, inspect(old, own));
    // The user's entries move across into the new folder first (a name clash is refused, nothing moved yet).
    for (const std::string& n : s.rest) {
      if (fs::exists(fs::symlink_status(fs::path(fresh) / n)))
        throw ConfigError(dir + ": holds '" + n + "', which r2rec did not write, under a name the new " +
                          "output uses: move it away");
    }
    for (const std::string& n : s.rest) {
      fs::rename(fs::path(dir) / n, fs::path(fresh) / n, ec);
      if (ec)
        throw WriteError(dir + "/" + n + ": cannot move into the new output " + fresh + ": " + ec.message(),
                         ec.value());
    }
    fs::rename(dir, old, ec);
    if (ec) throw WriteError(dir + ": cannot move the previous output aside: " + ec.message(), ec.value());
    fs::rename(fresh, dir, ec);
    if (ec) throw WriteError(dir + ": cannot move the new output in from " + fresh + ": " + ec.message(), ec.value());
    remove_if_owned(old, own);
    return;
  }
  fs::rename(fresh, dir, ec);
  if (ec) throw WriteError(dir + ": cannot move the new output in from " + fresh + ": " + ec.message(), ec.value());
}

void remove_if_owned(const std::string& dir, const OwnName& own) {
  try {
    const State s = inspect(dir, own);
    if (s.kind == Kind::kOwned) remove_owned_entries(dir, s);
    if (s.kind == Kind::kEmpty) {
      std::error_code ec;
      fs::remove(dir, ec);
    }
    if (s.kind == Kind::kForeign) LOG(WARNING) << dir << ": left in place (it holds files r2rec did not write)";
  } catch (const std::exception& e) {
    LOG(WARNING) << dir << ": not removed: " << e.what();
  }
}

}  // namespace r2rec
