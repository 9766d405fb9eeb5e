// Readers of the four dataset formats into one RawLog. Files are read whole and parsed in place (string_view
// fields, std::from_chars numbers): ML-100K's 2 MB u.data parses in ~10 ms.
#include "sampler/raw_log.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <string_view>

#include "core/error.h"
#include "core/files.h"
#include "core/hash.h"
#include "core/rng.h"
#include "sampler/dataset.h"

namespace fs = std::filesystem;

namespace r2rec {
namespace {

// One input file: its bytes, split into lines on demand; reports problems as "<file>:<line>: <what>".
class TextFile {
 public:
  TextFile(std::string path, bool skip_malformed, int64_t* malformed)
      : path_(std::move(path)), skip_(skip_malformed), malformed_(malformed) {
    if (!fs::exists(path_)) throw DataError(path_ + ": missing file");
    text_ = read_file(path_);
  }

  // Next non-blank line without its line end; false at the end of the file.
  bool next_line(std::string_view* line) {
    while (pos_ < text_.size()) {
      size_t end = text_.find('\n', pos_);
      if (end == std::string::npos) end = text_.size();
      std::string_view l(text_.data() + pos_, end - pos_);
      pos_ = end + 1;
      ++line_no_;
      if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
      if (l.find_first_not_of(" \t") == std::string_view::npos) continue;
      *line = l;
      return true;
    }
    return false;
  }

  int64_t line_no() const { return line_no_; }
  const std::string& path() const { return path_; }

  // A malformed line: throws, or counts it when skipping.
  void malformed(const std::string& what) {
    if (!skip_) throw DataError(path_ + ":" + std::to_string(line_no_) + ": " + what);
    ++*malformed_;
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw DataError(path_ + ":" + std::to_string(line_no_) + ": " + what);
  }

 private:
  std::string path_;
  bool skip_;
  int64_t* malformed_;
  std::string text_;
  size_t pos_ = 0;
  int64_t line_no_ = 0;
};

// Splits `line` on `sep` into `fields` (reused storage).
void split(std::string_view line, char sep, std::vector<std::string_view>* fields) {
  fields->clear();
  size_t start = 0;
  while (true) {
    size_t end = line.find(sep, start);
    if (end == std::string_view::npos) {
      fields->push_back(line.substr(start));
      return;
    }
    fields->push_back(line.substr(start, end - start));
    start = end + 1;
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool parse_double(std::string_view s, double* out) {
  s = trim(s);
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && std::isfinite(*out);  // "nan", "inf" are no number
}

std::string quoted(std::string_view s) { return "'" + std::string(s.substr(0, 40)) + "'"; }

// Interns user and item tokens of one log; keys point into file buffers that outlive the interner.
class Interner {
 public:
  explicit Interner(RawLog* log) : log_(log) {}
  int32_t user(std::string_view t) { return intern(t, &users_, &log_->user_tokens); }
  int32_t item(std::string_view t) { return intern(t, &items_, &log_->item_tokens); }

 private:
  static int32_t intern(std::string_view t, std::unordered_map<std::string_view, int32_t>* map,
                        std::vector<std::string>* tokens) {
    auto [it, inserted] = map->try_emplace(t, static_cast<int32_t>(tokens->size()));
    if (inserted) tokens->emplace_back(t);
    return it->second;
  }
  RawLog* log_;
  std::unordered_map<std::string_view, int32_t> users_, items_;
};

// Column positions of named fields in a RecBole header ("name:type" cells).
struct Header {
  std::vector<std::string> names;
  int find(const std::string& name) const {
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == name) return static_cast<int>(i);
    return -1;
  }
  int require(const std::string& name, const TextFile& f) const {
    int i = find(name);
    if (i < 0) {
      std::string have;
      for (const auto& n : names) have += (have.empty() ? "" : ", ") + n;
      f.fail("header lacks field '" + name + "' (has: " + have + ")");
    }
    return i;
  }
};

Header read_header(TextFile& f, std::vector<std::string_view>* fields) {
  std::string_view line;
  if (!f.next_line(&line)) throw DataError(f.path() + ": empty file (expected a header line)");
  split(line, '\t', fields);
  Header h;
  for (auto cell : *fields) {
    cell = trim(cell);
    h.names.emplace_back(cell.substr(0, cell.find(':')));
  }
  return h;
}

// Reads "<id> <sep> <title> ..." lines (titles at column `title_col`) into log->titles.
void read_titles(TextFile& f, char sep, int id_col, int title_col, bool latin1, RawLog* log) {
  std::vector<std::string_view> fields;
  std::string_view line;
  const size_t need = static_cast<size_t>(std::max(id_col, title_col)) + 1;
  while (f.next_line(&line)) {
    split(line, sep, &fields);
    if (fields.size() < need) {
      f.malformed("expected at least " + std::to_string(need) + " fields, got " + std::to_string(fields.size()));
      continue;
    }
    std::string_view id = trim(fields[id_col]);
    if (id.empty()) {
      f.malformed("empty item id");
      continue;
    }
    std::string title(trim(fields[title_col]));
    log->titles[std::string(id)] = latin1 ? latin1_to_utf8(title) : std::move(title);
  }
  // Titles keyed by ids that no interaction uses (another dataset's file, random bytes with a separator in them)
  // would all be lost without a word.
  if (log->item_tokens.empty()) return;
  if (log->titles.empty())
    throw DataError(f.path() + ": holds no item line (expected one line per item: id, then its title)");
  for (const std::string& item : log->item_tokens)
    if (log->titles.count(item)) return;
  const auto printable = [](std::string s) {
    for (char& c : s)
      if (!std::isprint(static_cast<unsigned char>(c))) c = '?';
    return s;
  };
  const std::string example = printable(log->titles.begin()->first), item = printable(log->item_tokens.front());
  throw DataError(f.path() + ": none of its " + std::to_string(log->titles.size()) +
                  " item ids is an item of the interactions (e.g. " + quoted(std::string_view(example)) + " against " +
                  quoted(std::string_view(item)) + "): not this dataset's item file");
}

void read_ml100k(const DataConfig& data, RawLog* log) {
  Interner intern(log);
  TextFile f(data.path + "/u.data", data.skip_malformed, &log->malformed_lines);
  std::vector<std::string_view> fields;
  std::string_view line;
  log->has_ratings = true;
  while (f.next_line(&line)) {
    split(line, '\t', &fields);
    double rating, time;
    if (fields.size() != 4) {
      f.malformed("expected 4 tab-separated fields (user item rating timestamp), got " + std::to_string(fields.size()));
    } else if (trim(fields[0]).empty() || trim(fields[1]).empty()) {
      f.malformed("empty user or item id");
    } else if (!parse_double(fields[2], &rating)) {
      f.malformed("rating " + quoted(fields[2]) + " is not a number");
    } else if (!parse_double(fields[3], &time)) {
      f.malformed("timestamp " + quoted(fields[3]) + " is not a number");
    } else {
      const int64_t order = static_cast<int64_t>(log->interactions.size());
      log->interactions.push_back(
          {intern.user(trim(fields[0])), intern.item(trim(fields[1])), time, order, static_cast<float>(rating)});
    }
  }
  TextFile titles(data.path + "/u.item", data.skip_malformed, &log->malformed_lines);
  read_titles(titles, '|', 0, 1, /*latin1=*/true, log);
}

void read_lastfm(const DataConfig& data, uint64_t seed, RawLog* log) {
  Interner intern(log);
  TextFile f(data.path + "/user_artists.dat", data.skip_malformed, &log->malformed_lines);
  std::vector<std::string_view> fields;
  std::string_view line;
  if (!f.next_line(&line)) throw DataError(f.path() + ": empty file (expected header 'userID artistID weight')");
  while (f.next_line(&line)) {
    split(line, '\t', &fields);
    double weight;
    if (fields.size() != 3) {
      f.malformed("expected 3 tab-separated fields (userID artistID weight), got " + std::to_string(fields.size()));
    } else if (trim(fields[0]).empty() || trim(fields[1]).empty()) {
      f.malformed("empty user or artist id");
    } else if (!parse_double(fields[2], &weight)) {
      f.malformed("weight " + quoted(fields[2]) + " is not a number");
    } else {
      std::string_view u = trim(fields[0]), i = trim(fields[1]);
      // Seeded order key: a hash of (seed, user token, artist token), 53 bits so a double holds it exactly.
      const uint64_t key = stream_key(seed, static_cast<uint64_t>(Stream::kLastfmOrder), fnv1a(u), fnv1a(i));
      const int64_t order = static_cast<int64_t>(log->interactions.size());
      log->interactions.push_back({intern.user(u), intern.item(i), static_cast<double>(key >> 11), order, 0.f});
    }
  }
  TextFile names(data.path + "/artists.dat", data.skip_malformed, &log->malformed_lines);
  if (!names.next_line(&line)) throw DataError(names.path() + ": empty file (expected header 'id name url ...')");
  read_titles(names, '\t', 0, 1, /*latin1=*/false, log);
}

// RecBole .item file: item_id + the title field.
void read_recbole_items(const std::string& path, const DataConfig& data, RawLog* log) {
  TextFile f(path, data.skip_malformed, &log->malformed_lines);
  std::vector<std::string_view> fields;
  Header h = read_header(f, &fields);
  const int id_col = h.require("item_id", f);
  const int title_col = h.require(data.title_field, f);
  read_titles(f, '\t', id_col, title_col, /*latin1=*/false, log);
}

std::string folder_name(const std::string& path) {
  fs::path p(path);
  if (p.filename().empty()) p = p.parent_path();  // "dir/"
  return p.filename().string();
}

void read_recbole(const DataConfig& data, RawLog* log) {
  const std::string prefix = data.prefix.empty() ? folder_name(data.path) : data.prefix;
  Interner intern(log);
  TextFile f(data.path + "/" + prefix + ".inter", data.skip_malformed, &log->malformed_lines);
  std::vector<std::string_view> fields;
  Header h = read_header(f, &fields);
  const int u_col = h.require("user_id", f), i_col = h.require("item_id", f);
  const int r_col = h.find("rating"), t_col = h.find("timestamp");
  log->has_ratings = r_col >= 0;
  std::string_view line;
  while (f.next_line(&line)) {
    split(line, '\t', &fields);
    double rating = 0, time = 0;
    if (fields.size() != h.names.size()) {
      f.malformed("expected " + std::to_string(h.names.size()) + " tab-separated fields as in the header, got " +
                  std::to_string(fields.size()));
    } else if (trim(fields[u_col]).empty() || trim(fields[i_col]).empty()) {
      f.malformed("empty user_id or item_id");
    } else if (r_col >= 0 && !parse_double(fields[r_col], &rating)) {
      f.malformed("rating " + quoted(fields[r_col]) + " is not a number");
    } else if (t_col >= 0 && !parse_double(fields[t_col], &time)) {
      f.malformed("timestamp " + quoted(fields[t_col]) + " is not a number");
    } else {
      const int64_t order = static_cast<int64_t>(log->interactions.size());
      log->interactions.push_back({intern.user(trim(fields[u_col])), intern.item(trim(fields[i_col])), time, order,
                                   static_cast<float>(rating)});
    }
  }
  read_recbole_items(data.path + "/" + prefix + ".item", data, log);
}

std::string llmrank_prefix(const DataConfig& data) {
  if (!data.prefix.empty()) return data.prefix;
  if (!fs::is_directory(data.path)) throw DataError(data.path + ": missing dataset folder");
  std::vector<std::string> stems;
  for (const auto& e : fs::directory_iterator(data.path))
    if (e.is_regular_file() && e.path().extension() == ".item") stems.push_back(e.path().stem().string());
  if (stems.size() != 1)
    throw DataError(data.path + ": expected exactly one *.item file to name the prefix, found " +
                    std::to_string(stems.size()) + " (set data.prefix)");
  return stems[0];
}

void read_llmrank(const DataConfig& data, RawLog* log) {
  const std::string prefix = llmrank_prefix(data);
  Interner intern(log);
  TextFile f(data.path + "/" + prefix + ".test.inter", data.skip_malformed, &log->malformed_lines);
  std::vector<std::string_view> fields, items;
  Header h = read_header(f, &fields);
  const int u_col = h.require("user_id", f), list_col = h.require("item_id_list", f);
  const int i_col = h.require("item_id", f);
  std::string_view line;
  while (f.next_line(&line)) {
    split(line, '\t', &fields);
    if (fields.size() != h.names.size()) {
      f.malformed("expected " + std::to_string(h.names.size()) + " tab-separated fields as in the header, got " +
                  std::to_string(fields.size()));
      continue;
    }
    std::string_view u = trim(fields[u_col]), last = trim(fields[i_col]);
    if (u.empty() || last.empty()) {
      f.malformed("empty user_id or item_id");
      continue;
    }
    split(trim(fields[list_col]), ' ', &items);
    const int32_t user = intern.user(u);
    // The sequence position is the time; the running count the order.
    double pos = 0;
    for (std::string_view it : items) {
      if (it.empty()) continue;
      const int64_t order = static_cast<int64_t>(log->interactions.size());
      log->interactions.push_back({user, intern.item(it), pos, order, 0.f});
      pos += 1;
    }
    const int64_t order = static_cast<int64_t>(log->interactions.size());
    log->interactions.push_back({user, intern.item(last), pos, order, 0.f});
  }
  read_recbole_items(data.path + "/" + prefix + ".item", data, log);
}

}  // namespace

RawLog read_raw_log(const DataConfig& data, uint64_t seed) {
  RawLog log;
  if (data.format == "ml-100k") {
    read_ml100k(data, &log);
  } else if (data.format == "lastfm-hetrec") {
    read_lastfm(data, seed, &log);
  } else if (data.format == "recbole") {
    read_recbole(data, &log);
  } else if (data.format == "recbole-llmrank") {
    read_llmrank(data, &log);
  } else {
    throw ConfigError("data.format: unknown format '" + data.format +
                      "' (expected ml-100k, lastfm-hetrec, recbole or recbole-llmrank)");
  }
  return log;
}

std::string latin1_to_utf8(const std::string& latin1) {
  std::string out;
  out.reserve(latin1.size() + 8);
  for (unsigned char c : latin1) {
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

}  // namespace r2rec
