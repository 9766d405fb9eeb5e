// Reading and writing tokenizer files: tokenizer.json(.gz), vocab.json + merges.txt, encoder.json + vocab.bpe.
#include <zlib.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/tokenizer/bpe_pretokenizer.h"
#include "core/tokenizer/tokenizer.h"

namespace r2rec {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Reads a whole file through zlib, which passes plain files through unchanged and inflates gzip ones.
std::string read_maybe_gzip(const std::string& path) {
  if (!fs::exists(path)) throw DataError(path + ": no such file");
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) throw DataError(path + ": cannot open");
  std::string out;
  char buffer[1 << 16];
  int n;
  while ((n = gzread(f, buffer, sizeof buffer)) > 0) out.append(buffer, static_cast<size_t>(n));
  int error = Z_OK;
  const char* message = gzerror(f, &error);
  std::string what = message ? message : "read error";
  if (what.rfind(path + ": ", 0) == 0) what.erase(0, path.size() + 2);  // zlib prefixes its message with the path
  gzclose(f);
  if (n < 0 || (error != Z_OK && error != Z_STREAM_END)) throw DataError(path + ": cannot read (" + what + ")");
  return out;
}

json parse_json(const std::string& text, const std::string& path) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw DataError(path + ": invalid JSON: " + e.what());
  }
}

std::pair<std::string, std::string> split_merge(const std::string& line, const std::string& where) {
  const size_t space = line.find(' ');
  if (space == std::string::npos || space == 0 || space + 1 == line.size() ||
      line.find(' ', space + 1) != std::string::npos) {
    throw DataError(where + ": merge \"" + line + "\" is not two tokens separated by one space");
  }
  return {line.substr(0, space), line.substr(space + 1)};
}

// Token ids must be small non-negative integers: the tokenizer indexes tables by id.
constexpr int64_t kMaxTokenId = int64_t{1} << 24;
TokenId checked_id(const json& value, const std::string& path, const std::string& what) {
  if (!value.is_number_integer()) throw DataError(path + ": " + what + " is not an integer");
  const int64_t id = value.get<int64_t>();
  if (id < 0 || id >= kMaxTokenId) {
    throw DataError(path + ": " + what + " = " + std::to_string(id) + " is outside [0, " + std::to_string(kMaxTokenId) +
                    ")");
  }
  return static_cast<TokenId>(id);
}

void read_vocab(const json& vocab, TokenizerSpec& spec, const std::string& path, const std::string& key) {
  if (!vocab.is_object()) throw DataError(path + ": " + key + " is not an object of token -> id");
  spec.vocab.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    spec.vocab.emplace_back(it.key(), checked_id(it.value(), path, key + ": id of a token"));
  }
}

void read_normalizer(const json& n, TokenizerSpec& spec, const std::string& path) {
  if (n.is_null()) return;
  const std::string type = n.value("type", "");
  if (type == "NFC") {
    spec.nfc = true;
  } else if (type == "Sequence" && n.contains("normalizers")) {
    for (const json& part : n["normalizers"]) read_normalizer(part, spec, path);
  } else {
    throw DataError(path + ": normalizer.type \"" + type + "\" is not supported (NFC, a Sequence of NFC, or null)");
  }
}

void read_pre_tokenizer(const json& p, TokenizerSpec& spec, const std::string& path) {
  if (p.is_null()) return;
  const std::string type = p.value("type", "");
  if (type == "Sequence") {
    for (const json& part : p.at("pretokenizers")) read_pre_tokenizer(part, spec, path);
  } else if (type == "Split") {
    const json& pattern = p.at("pattern");
    if (!pattern.contains("Regex") || p.value("behavior", "") != "Isolated" || p.value("invert", false)) {
      throw DataError(path +
                      ": pre_tokenizer Split: only {\"Regex\": ...} with behavior Isolated, invert false is supported");
    }
    if (!spec.pattern.empty())
      throw DataError(path + ": pre_tokenizer: more than one splitting regex is not supported");
    spec.pattern = pattern["Regex"].get<std::string>();
  } else if (type == "ByteLevel") {
    spec.add_prefix_space = p.value("add_prefix_space", false);
    if (p.value("use_regex", true)) {
      if (!spec.pattern.empty())
        throw DataError(path + ": pre_tokenizer: more than one splitting regex is not supported");
      spec.pattern = kGpt2Pattern;
    }
  } else {
    throw DataError(path + ": pre_tokenizer.type \"" + type + "\" is not supported (ByteLevel, Split, Sequence)");
  }
}

TokenizerSpec from_tokenizer_json(const json& j, const std::string& path) {
  TokenizerSpec spec;
  const json& model = j.at("model");
  if (!model.is_object()) throw DataError(path + ": \"model\" is not an object");
  if (model.contains("type") && model["type"] != "BPE") {
    throw DataError(path + ": model.type " + model["type"].dump() + " is not supported (byte-level BPE only)");
  }
  if (!model.contains("vocab")) throw DataError(path + ": model.vocab is missing");
  if (!model.contains("merges")) throw DataError(path + ": model.merges is missing");
  read_vocab(model["vocab"], spec, path, "model.vocab");
  const json& merges = model["merges"];
  spec.merges.reserve(merges.size());
  for (const json& m : merges) {
    if (m.is_string()) {
      spec.merges.push_back(split_merge(m.get<std::string>(), path));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      spec.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      throw DataError(path + ": model.merges: entry " + m.dump() + " is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }
  if (model.contains("ignore_merges") && model["ignore_merges"].is_boolean())
    spec.ignore_merges = model["ignore_merges"].get<bool>();
  if (j.contains("normalizer")) read_normalizer(j["normalizer"], spec, path);
  if (j.contains("pre_tokenizer")) read_pre_tokenizer(j["pre_tokenizer"], spec, path);
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& t : j["added_tokens"]) {
      spec.added_tokens.push_back({checked_id(t.at("id"), path, "added_tokens: id"), t.at("content").get<std::string>(),
                                   t.value("special", true)});
    }
  }
  return spec;
}

TokenizerSpec from_vocab_and_merges(const json& vocab, const std::string& vocab_path, const std::string& merges_path) {
  TokenizerSpec spec;
  spec.pattern = kGpt2Pattern;
  read_vocab(vocab, spec, vocab_path, "vocab");
  const std::string text = read_maybe_gzip(merges_path);
  size_t line_no = 0;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    spec.merges.push_back(split_merge(line, merges_path + ":" + std::to_string(line_no)));
  }
  for (const auto& [token, id] : spec.vocab) {
    if (token == "<|endoftext|>") spec.added_tokens.push_back({id, token, true});
  }
  return spec;
}

TokenizerSpec read_file_form(const std::string& path) {
  const json j = parse_json(read_maybe_gzip(path), path);
  // GPT-2's vocab has a token "model" (an integer), so only an object-valued "model" means tokenizer.json.
  if (j.is_object() && j.contains("model") && !j["model"].is_number_integer()) return from_tokenizer_json(j, path);
  if (j.is_object() && !j.empty() && j.begin()->is_number_integer()) {
    const fs::path dir = fs::path(path).parent_path();
    for (const char* name : {"merges.txt", "vocab.bpe"}) {
      const fs::path merges = dir / name;
      if (fs::exists(merges)) return from_vocab_and_merges(j, path, merges.string());
    }
    throw DataError(path + ": a vocab.json needs merges.txt (or vocab.bpe) in the same folder");
  }
  throw DataError(path + ": neither a tokenizer.json (no \"model\" key) nor a vocab.json (token -> id)");
}

// gzip of `data` (level 9), for saving tokenizer.json.gz.
std::string gzip(const std::string& data, const std::string& path) {
  z_stream z{};
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw RuntimeFailure(path + ": deflateInit2 failed");
  std::string out(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw RuntimeFailure(path + ": gzip compression failed");
  return out;
}

}  // namespace

TokenizerSpec read_tokenizer_spec(const std::string& path) {
  try {
    if (fs::is_directory(path)) {
      const fs::path dir(path);
      for (const char* name : {"tokenizer.json", "tokenizer.json.gz", "vocab.json", "encoder.json"}) {
        if (fs::exists(dir / name)) return read_file_form((dir / name).string());
      }
      throw DataError(path +
                      ": folder holds no tokenizer.json(.gz), vocab.json + merges.txt or encoder.json + vocab.bpe");
    }
    return read_file_form(path);
  } catch (const json::exception& e) {  // a key of the wrong type deep inside the file
    throw DataError(path + ": " + e.what());
  } catch (const fs::filesystem_error& e) {
    throw DataError(path + ": " + e.what());
  }
}

std::string tokenizer_json(const TokenizerSpec& spec) {
  using ojson = nlohmann::ordered_json;
  ojson added = ojson::array();
  for (const AddedToken& t : spec.added_tokens) {
    added.push_back({{"id", t.id},
                     {"content", t.content},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", t.special}});
  }
  std::vector<std::pair<std::string, TokenId>> by_id = spec.vocab;
  std::stable_sort(by_id.begin(), by_id.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  // The vocab object is written by hand: ordered_json's object insert is a linear search (O(n^2) for 151k).
  std::string vocab = "{";
  for (const auto& [token, id] : by_id)
    vocab += (vocab.size() > 1 ? "," : "") + ojson(token).dump() + ":" + std::to_string(id);
  vocab += "}";
  ojson merges = ojson::array();
  for (const auto& [a, b] : spec.merges) merges.push_back(ojson::array({a, b}));
  const ojson byte_level = {{"type", "ByteLevel"},
                            {"add_prefix_space", spec.add_prefix_space},
                            {"trim_offsets", false},
                            {"use_regex", false}};
  ojson pre_tokenizer = byte_level;  // no regex split: each segment is one piece
  if (!spec.pattern.empty()) {
    pre_tokenizer = {
        {"type", "Sequence"},
        {"pretokenizers",
         ojson::array(
             {{{"type", "Split"}, {"pattern", {{"Regex", spec.pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
              byte_level})}};
  }
  const ojson model = {{"type", "BPE"},
                       {"dropout", nullptr},
                       {"unk_token", nullptr},
                       {"continuing_subword_prefix", nullptr},
                       {"end_of_word_suffix", nullptr},
                       {"fuse_unk", false},
                       {"byte_fallback", false},
                       {"ignore_merges", spec.ignore_merges}};
  std::string model_text = model.dump();
  model_text.pop_back();  // the closing brace: vocab and merges follow
  return "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":" + added.dump() +
         ",\"normalizer\":" + (spec.nfc ? ojson{{"type", "NFC"}} : ojson(nullptr)).dump() +
         ",\"pre_tokenizer\":" + pre_tokenizer.dump() + ",\"post_processor\":" + byte_level.dump() +
         ",\"decoder\":" + byte_level.dump() + ",\"model\":" + model_text + ",\"vocab\":" + vocab +
         ",\"merges\":" + merges.dump() + "}}\n";
}

void Tokenizer::save(const std::string& path) const {
  std::string text = tokenizer_json(spec());
  const bool gz = path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
  write_file_atomic(path, gz ? gzip(text, path) : text);
}

}  // namespace r2rec
