// Loading, overriding, validating and printing the config; the keys themselves live in config_schema.cpp.
#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "core/config_schema.h"
#include "core/error.h"

namespace fs = std::filesystem;

namespace r2rec {
using config_detail::Field;
using config_detail::Kind;

namespace {

// Where a value came from, for error messages: "configs/x.yaml:12" or "override 'sft.epochs=x'".
struct Origin {
  std::string where;
  fs::path base_dir;  // relative paths are resolved against this
};

[[noreturn]] void fail(const Origin& origin, const std::string& key, const std::string& what) {
  // No key is longer than ~40 characters: a longer one (garbage, a pasted line) is cut so the message stays a line.
  const std::string shown_key = key.size() > 80 ? key.substr(0, 80) + "..." : key;
  throw ConfigError(origin.where + ": " + shown_key + ": " + what);
}

std::string shown(const std::string& s) { return "'" + s + "'"; }

const Field* find_field(const std::string& key) {
  for (const auto& f : config_detail::schema()) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

bool is_section_prefix(const std::string& prefix) {
  for (const auto& f : config_detail::schema()) {
    if (f.key.compare(0, prefix.size() + 1, prefix + ".") == 0) return true;
  }
  return false;
}

[[noreturn]] void unknown_key(const Origin& origin, const std::string& key) {
  std::string hint = config_detail::suggest(key, config_keys());
  fail(origin, key,
       "unknown key" +
           (hint.empty() ? std::string(" (r2rec config-doc lists every key)") : " (did you mean '" + hint + "'?)"));
}

bool parse_int(const std::string& s, int64_t* out) {
  const char* b = s.data();
  const char* e = b + s.size();
  if (b != e && *b == '+') ++b;
  auto [p, ec] = std::from_chars(b, e, *out);
  return ec == std::errc() && p == e && b != e;
}

bool parse_float(const std::string& s, double* out) {
  if (s.empty()) return false;
  std::string t = s;
  // YAML spellings of infinities / NaN are not valid settings anywhere.
  char* end = nullptr;
  *out = std::strtod(t.c_str(), &end);
  return end == t.c_str() + t.size() && std::isfinite(*out);
}

void check_range(const Origin& origin, const Field& f, double v, const std::string& text) {
  const bool low = f.min_exclusive ? !(v > f.min) : !(v >= f.min);
  if (low || v > f.max) fail(origin, f.key, "expected " + config_detail::expectation(f) + ", got " + shown(text));
}

std::string scalar_text(const Origin& origin, const Field& f, const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull())
    fail(origin, f.key, "expected " + config_detail::expectation(f) + ", got nothing");
  if (!node.IsScalar())
    fail(origin, f.key, "expected " + config_detail::expectation(f) + ", got a " + (node.IsMap() ? "mapping" : "list"));
  return node.Scalar();
}

std::string resolve_path(const Origin& origin, const std::string& text) {
  if (text.empty()) return text;
  fs::path p(text);
  if (p.is_relative() && !origin.base_dir.empty()) p = origin.base_dir / p;
  return p.lexically_normal().string();
}

// Sets one field of `config` from a YAML node (a file's value or an override's parsed value).
void assign(Config& config, const Field& f, const YAML::Node& node, const Origin& origin) {
  void* p = f.ref(config);
  auto bad = [&](const std::string& got) {
    fail(origin, f.key, "expected " + config_detail::expectation(f) + ", got " + shown(got));
  };
  switch (f.kind) {
    case Kind::kBool: {
      std::string s = scalar_text(origin, f, node);
      if (s == "true" || s == "True" || s == "yes" || s == "on")
        *static_cast<bool*>(p) = true;
      else if (s == "false" || s == "False" || s == "no" || s == "off")
        *static_cast<bool*>(p) = false;
      else
        bad(s);
      return;
    }
    case Kind::kInt: {
      std::string s = scalar_text(origin, f, node);
      int64_t v = 0;
      if (!parse_int(s, &v)) bad(s);
      check_range(origin, f, static_cast<double>(v), s);
      *static_cast<int64_t*>(p) = v;
      return;
    }
    case Kind::kFloat: {
      std::string s = scalar_text(origin, f, node);
      double v = 0;
      if (!parse_float(s, &v)) bad(s);
      check_range(origin, f, v, s);
      *static_cast<double*>(p) = v;
      return;
    }
    case Kind::kString:
      *static_cast<std::string*>(p) = scalar_text(origin, f, node);
      return;
    case Kind::kPath:
      *static_cast<std::string*>(p) = resolve_path(origin, scalar_text(origin, f, node));
      return;
    case Kind::kEnum: {
      std::string s = scalar_text(origin, f, node);
      for (const auto& c : f.choices) {
        if (c == s) {
          *static_cast<std::string*>(p) = s;
          return;
        }
      }
      std::string hint = config_detail::suggest(s, f.choices);
      fail(origin, f.key,
           "expected " + config_detail::expectation(f) + ", got " + shown(s) +
               (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
    }
    case Kind::kStringList:
    case Kind::kIntList: {
      if (!node.IsSequence())
        bad(node.IsScalar() ? node.Scalar() : std::string(node.IsMap() ? "a mapping" : "nothing"));
      std::vector<std::string> strs;
      std::vector<int64_t> ints;
      for (const auto& item : node) {
        if (!item.IsScalar()) bad("a nested list or mapping");
        const std::string& s = item.Scalar();
        if (f.kind == Kind::kIntList) {
          int64_t v = 0;
          if (!parse_int(s, &v) || v < 1)
            fail(origin, f.key, "expected a list of positive integers, got element " + shown(s));
          ints.push_back(v);
        } else {
          if (!f.choices.empty() && std::find(f.choices.begin(), f.choices.end(), s) == f.choices.end()) {
            fail(origin, f.key, "expected " + config_detail::expectation(f) + ", got element " + shown(s));
          }
          strs.push_back(s);
        }
      }
      if (f.kind == Kind::kIntList)
        *static_cast<std::vector<int64_t>*>(p) = ints;
      else
        *static_cast<std::vector<std::string>*>(p) = strs;
      return;
    }
  }
}

// Walks a parsed YAML mapping, assigning every leaf; rejects unknown and duplicate keys.
void apply_mapping(Config& config, const YAML::Node& map, const std::string& prefix, const std::string& file,
                   const fs::path& base_dir, std::set<std::string>& seen) {
  for (const auto& kv : map) {
    const std::string name = kv.first.Scalar();
    const std::string key = prefix.empty() ? name : prefix + "." + name;
    Origin origin{file + ":" + std::to_string(kv.first.Mark().line + 1), base_dir};
    if (!seen.insert(key).second) fail(origin, key, "duplicate key");
    if (const Field* f = find_field(key)) {
      assign(config, *f, kv.second, origin);
    } else if (is_section_prefix(key)) {
      if (kv.second.IsNull()) continue;  // an empty section keeps its defaults
      if (!kv.second.IsMap()) fail(origin, key, "expected a mapping of " + key + ".* keys");
      apply_mapping(config, kv.second, key, file, base_dir, seen);
    } else {
      unknown_key(origin, key);
    }
  }
}

void apply_override(Config& config, const std::string& text) {
  Origin origin{"override " + shown(text), fs::path()};
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError(origin.where + ": expected key.sub=value");
  }
  const std::string key = text.substr(0, eq);
  const std::string value = text.substr(eq + 1);
  const Field* f = find_field(key);
  if (!f) unknown_key(origin, key);
  YAML::Node node;
  if (f->kind == Kind::kString || f->kind == Kind::kPath || f->kind == Kind::kEnum) {
    node = YAML::Node(value);  // taken verbatim: no YAML interpretation of ':' or '#'
  } else {
    try {
      node = YAML::Load(value);
    } catch (const YAML::Exception&) {
      fail(origin, key, "expected " + config_detail::expectation(*f) + ", got " + shown(value));
    }
    if (node.IsNull() && !value.empty()) node = YAML::Node(value);
  }
  assign(config, *f, node, origin);
}

// Rules that tie fields together. `where` names the config for the message.
void validate(const Config& c, const std::string& where) {
  auto conflict = [&](const std::string& key, const std::string& what) {
    throw ConfigError(where + ": " + key + ": " + what);
  };
  const auto& m = c.model;
  // item_text auto resolves to token for a from-scratch model (no model.path): trainers/task/task.h task_format.
  const bool token_items = c.task.item_text == "token" || (c.task.item_text == "auto" && m.path.empty());
  const bool compact = c.task.chain_layout == "compact" || c.task.chain_layout == "grouped";
  if (compact && (!token_items || !c.task.user_tokens)) {
    conflict("task.chain_layout", c.task.chain_layout +
                                      " writes entity tokens side by side and needs item tokens alone "
                                      "(task.item_text token, or auto without model.path) and task.user_tokens true");
  }
  if (c.task.chain_layout == "grouped" && c.annotate.teacher == "model") {
    conflict("task.chain_layout",
             "grouped lists a chain under the candidate it reaches, which would show the model teacher a chain "
             "node its masked prompt hides; use compact with annotate.teacher model");
  }
  if (c.task.candidate_order == "support" && !compact) {
    conflict("task.candidate_order",
             "support lists candidates by their chains' count, which only the compact and "
             "grouped layouts define; set task.chain_layout compact or grouped");
  }
  if (c.task.candidate_order == "support" && c.annotate.teacher == "model") {
    conflict("task.candidate_order",
             "support orders the candidates by chains whose nodes the model teacher's masked prompts hide; use "
             "given with annotate.teacher model");
  }
  if (m.smeared_keys && !m.path.empty()) {
    conflict("model.smeared_keys",
             "is for a model trained from scratch; a checkpoint at model.path keeps its own "
             "attention (its config.json says whether its keys are smeared)");
  }
  if (m.copy_lookup > 0 && !m.path.empty()) {
    conflict("model.copy_lookup",
             "is for a model trained from scratch; a checkpoint at model.path keeps its own head "
             "(its config.json says whether it has the look-up copy)");
  }
  if (c.annotate.teacher == "model" && c.annotate.teacher_model.empty()) {
    conflict("annotate.teacher_model", "is required with annotate.teacher model (the teacher's model folder)");
  }
  if (c.annotate.teacher != "model" && !c.annotate.teacher_model.empty()) {
    conflict("annotate.teacher_model", "is read only with annotate.teacher model (set that too, or drop this key)");
  }
  if (m.hidden_size % m.num_heads != 0) {
    conflict("model.num_heads", "must divide model.hidden_size (" + std::to_string(m.hidden_size) + "), got " +
                                    std::to_string(m.num_heads));
  }
  if ((m.hidden_size / m.num_heads) % 2 != 0) {
    conflict("model.hidden_size", "head size hidden_size / num_heads must be even for rotary positions, got " +
                                      std::to_string(m.hidden_size / m.num_heads));
  }
  if (m.num_heads % m.num_kv_heads != 0) {
    conflict("model.num_kv_heads", "must divide model.num_heads (" + std::to_string(m.num_heads) + "), got " +
                                       std::to_string(m.num_kv_heads));
  }
  if (c.sft.max_seq_len > m.max_position) {
    conflict("sft.max_seq_len", "must be at most model.max_position (" + std::to_string(m.max_position) + "), got " +
                                    std::to_string(c.sft.max_seq_len));
  }
  if (c.sft.batch_size % c.sft.micro_batch_size != 0) {
    conflict("sft.batch_size", "must be a multiple of sft.micro_batch_size (" + std::to_string(c.sft.micro_batch_size) +
                                   "), got " + std::to_string(c.sft.batch_size));
  }
  if (c.rl.max_new_tokens >= m.max_position) {
    conflict("rl.max_new_tokens", "must be below model.max_position (" + std::to_string(m.max_position) + ")");
  }
  for (int64_t k : c.eval.ks) {
    if (k > c.sampler.num_candidates) {
      conflict("eval.ks", "cut-off " + std::to_string(k) + " exceeds sampler.num_candidates (" +
                              std::to_string(c.sampler.num_candidates) + ")");
    }
  }
  if (c.eval.ks.empty()) conflict("eval.ks", "expected at least one cut-off");
  const auto& types = c.sampler.chain_types;
  auto has = [&](const char* t) { return std::find(types.begin(), types.end(), t) != types.end(); };
  if (has("closed") && c.sampler.max_hops < 4) {
    conflict("sampler.max_hops", "closed chains need 4 hops, got max_hops " + std::to_string(c.sampler.max_hops) +
                                     " (raise it or drop 'closed' from sampler.chain_types)");
  }
  if (has("bridge") && c.sampler.max_hops < 3) {
    conflict("sampler.max_hops", "bridge chains need 3 hops, got max_hops " + std::to_string(c.sampler.max_hops));
  }
  if (has("transition") && c.sampler.max_hops < 3) {
    conflict("sampler.max_hops", "transition chains need 3 hops, got max_hops " + std::to_string(c.sampler.max_hops));
  }
  if (has("neighbour") && c.sampler.max_hops < 3) {
    conflict("sampler.max_hops", "neighbour chains need 3 hops, got max_hops " + std::to_string(c.sampler.max_hops));
  }
  // A kind's own setting without the kind would have no effect: refused by name rather than silently ignored.
  const SamplerConfig sampler_defaults;
  for (const auto& [kind, key, value, fallback] :
       {std::tuple<const char*, const char*, int64_t, int64_t>{
            "closed", "sampler.min_shared_items", c.sampler.min_shared_items, sampler_defaults.min_shared_items},
        {"transition", "sampler.transition_window", c.sampler.transition_window, sampler_defaults.transition_window},
        {"neighbour", "sampler.neighbours", c.sampler.neighbours, sampler_defaults.neighbours}}) {
    if (!has(kind) && value != fallback)
      conflict(key, "is " + std::to_string(value) + " but sampler.chain_types draws no " + kind +
                        " chains, the only ones it shapes (add '" + kind + "' or leave it at " +
                        std::to_string(fallback) + ")");
  }
  if (c.sampler.chains_per_example > 0 && types.empty()) {
    conflict("sampler.chain_types",
             "is empty but sampler.chains_per_example is " + std::to_string(c.sampler.chains_per_example));
  }
  const auto& d = c.distributed;
  if (d.colocated && (d.learner_ranks != 0 || d.rollout_ranks != 0)) {
    conflict("distributed.learner_ranks",
             "must be 0 when distributed.colocated is true (every rank has both roles); "
             "set distributed.colocated=false to split roles");
  }
  if (!d.colocated && (d.learner_ranks < 1 || d.rollout_ranks < 1)) {
    conflict(d.learner_ranks < 1 ? "distributed.learner_ranks" : "distributed.rollout_ranks",
             "must be at least 1 when distributed.colocated is false");
  }
  if (c.baseline.sasrec.hidden % c.baseline.sasrec.heads != 0) {
    conflict("baseline.sasrec.heads", "must divide baseline.sasrec.hidden (" +
                                          std::to_string(c.baseline.sasrec.hidden) + "), got " +
                                          std::to_string(c.baseline.sasrec.heads));
  }
  if (m.lora.rank > 0 && m.lora.targets.empty()) conflict("model.lora.targets", "is empty but model.lora.rank > 0");
  // The trainers keep their models on the CPU in this version, so their collectives run over MPI; the NCCL
  // communicator is built and tested on its own (test_collectives_gpu) and is refused here rather than ignored.
  if (c.distributed.backend == "nccl")
    conflict("distributed.backend",
             "nccl: the trainers keep the model on the CPU in this version and sum over MPI; use auto or mpi");
  if (c.rl.rewards.empty()) conflict("rl.rewards", "is empty (list at least one reward, e.g. answer=1)");
  for (const std::string& r :
       c.rl.rewards) {  // the names are checked against the registry by rl (trainers/task/reward.h)
    const size_t eq = r.find('=');
    char* end = nullptr;
    const double w = eq == std::string::npos ? -1 : std::strtod(r.c_str() + eq + 1, &end);
    if (eq == std::string::npos || eq == 0 || end == r.c_str() + eq + 1 || *end != '\0' || !(w >= 0)) {
      conflict("rl.rewards", "'" + r + "': expected name=weight with a weight >= 0, e.g. answer=1");
    }
  }
}

}  // namespace

std::vector<std::string> config_keys() {
  std::vector<std::string> keys;
  for (const auto& f : config_detail::schema()) keys.push_back(f.key);
  return keys;
}

std::vector<std::pair<std::string, std::string>> config_values(const Config& config, const std::string& prefix) {
  std::vector<std::pair<std::string, std::string>> values;
  for (const auto& f : config_detail::schema())
    if (f.key.rfind(prefix, 0) == 0) values.emplace_back(f.key, config_detail::value_text(f, config));
  return values;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  Config config;
  if (!path.empty()) {
    std::ifstream in(path);
    if (!in) {
      throw ConfigError(path + ": cannot open config file (" + (fs::exists(path) ? "not readable" : "no such file") +
                        ")");
    }
    std::stringstream text;
    text << in.rdbuf();
    YAML::Node root;
    try {
      root = YAML::Load(text.str());
    } catch (const YAML::ParserException& e) {
      throw ConfigError(path + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                        ": YAML syntax error: " + e.msg);
    }
    if (!root.IsNull()) {
      if (!root.IsMap()) throw ConfigError(path + ": expected a mapping of sections (data:, sampler:, ...) at the top");
      std::set<std::string> seen;
      apply_mapping(config, root, "", path, fs::absolute(path).parent_path(), seen);
    }
    config.source = path;
  }
  for (const auto& o : overrides) apply_override(config, o);

  // Paths are stored absolute (so the saved config means the same from any folder); inputs must exist.
  // Checked after overrides, so an override can fix a bad path.
  for (const auto& f : config_detail::schema()) {
    if (f.kind != Kind::kPath) continue;
    auto& value = *static_cast<std::string*>(f.ref(config));
    if (!value.empty()) value = fs::absolute(value).lexically_normal().string();
    if (!f.must_exist) continue;
    if (!value.empty() && !fs::exists(value)) {
      throw ConfigError((path.empty() ? std::string("config") : path) + ": " + f.key + ": no such file or folder '" +
                        value + "'");
    }
  }
  validate(config, path.empty() ? "config" : path);
  return config;
}

void validate_for_world(const Config& c, int world_size, bool training) {
  const std::string where = c.source.empty() ? "config" : c.source;
  const auto& d = c.distributed;
  int64_t learners = world_size;
  if (!d.colocated) {
    if (d.learner_ranks + d.rollout_ranks != world_size) {
      throw ConfigError(where + ": distributed.learner_ranks: learner_ranks + rollout_ranks = " +
                        std::to_string(d.learner_ranks + d.rollout_ranks) + " must equal the world size " +
                        std::to_string(world_size));
    }
    learners = d.learner_ranks;
  }
  if (!training) return;
  if (c.sft.batch_size % (learners * c.sft.micro_batch_size) != 0) {
    throw ConfigError(where + ": sft.batch_size: must be a multiple of learner ranks x sft.micro_batch_size = " +
                      std::to_string(learners) + " x " + std::to_string(c.sft.micro_batch_size) + ", got " +
                      std::to_string(c.sft.batch_size));
  }
  const int64_t rollouts = c.rl.prompts_per_step * c.rl.group_size;
  if (rollouts % (learners * c.rl.micro_batch_size) != 0) {
    throw ConfigError(where + ": rl.prompts_per_step: prompts_per_step x group_size = " + std::to_string(rollouts) +
                      " must be a multiple of learner ranks x rl.micro_batch_size = " + std::to_string(learners) +
                      " x " + std::to_string(c.rl.micro_batch_size));
  }
}

namespace {
// Every field in schema order as nested YAML; with `docs`, each key is preceded by its meaning and range.
std::string emit_yaml(const Config& config, bool docs) {
  std::ostringstream out;
  std::string section, open_sub;  // current section, and nested block such as "model.lora"
  for (const auto& f : config_detail::schema()) {
    const std::string sec = f.key.substr(0, f.key.find('.'));
    if (sec != section) {
      if (docs) {
        for (const auto& [name, about] : config_detail::sections()) {
          if (name == sec) out << "\n# " << about << "\n";
        }
      }
      out << sec << ":\n";
      section = sec;
      open_sub.clear();
    }
    std::string rest = f.key.substr(sec.size() + 1);
    int depth = 1;
    const size_t dot = rest.find('.');
    if (dot != std::string::npos) {  // model.lora.rank -> "lora:" block under model
      const std::string sub = sec + "." + rest.substr(0, dot);
      if (open_sub != sub) {
        out << "  " << rest.substr(0, dot) << ":\n";
        open_sub = sub;
      }
      rest = rest.substr(dot + 1);
      depth = 2;
    } else {
      open_sub.clear();
    }
    const std::string indent(2 * depth, ' ');
    if (docs) out << indent << "# " << f.doc << " Accepts " << config_detail::expectation(f) << ".\n";
    out << indent << rest << ": " << config_detail::value_text(f, config) << "\n";
  }
  return out.str();
}
}  // namespace

std::string to_yaml(const Config& config) {
  return "# r2rec resolved config" + (config.source.empty() ? std::string() : " (from " + config.source + ")") + "\n" +
         emit_yaml(config, false);
}

std::vector<std::string> changed_keys(const Config& a, const Config& b) {
  std::vector<std::string> out;
  for (const config_detail::Field& f : config_detail::schema())
    if (config_detail::value_text(f, a) != config_detail::value_text(f, b)) out.push_back(f.key);
  return out;
}

std::string config_template_yaml() {
  return "# r2rec configuration: every key, its meaning, what it accepts, and its default.\n"
         "# Generated by `r2rec config-doc --yaml`; docs/config.md has the same as tables.\n"
         "# Copy the keys you change into your own file; the rest keep these defaults.\n" +
         emit_yaml(Config(), true);
}

std::string config_reference_markdown() {
  const Config defaults;
  std::ostringstream out;
  out << "# Configuration reference\n\n"
      << "<!-- Generated by `r2rec config-doc`; a test fails when this file and the schema differ. -->\n\n"
      << "Every r2rec command reads one YAML file (`--config FILE`) and then applies `key.sub=value` overrides "
         "given after it on the command line, in order. Unknown keys, wrong types, out-of-range values, missing "
         "input files and conflicting fields are rejected with one line naming the file, line and key, and exit "
         "status 2. Paths in a config file are relative to that file's folder; paths in overrides are relative to "
         "the current directory. The resolved config is printed by rank 0 and saved as `<run.dir>/config.yaml`.\n";
  for (const auto& [name, about] : config_detail::sections()) {
    out << "\n## `" << name << "`\n\n" << about << "\n\n| key | default | accepts | meaning |\n|---|---|---|---|\n";
    for (const auto& f : config_detail::schema()) {
      if (f.key.compare(0, name.size() + 1, name + ".") != 0) continue;
      out << "| `" << f.key << "` | `" << config_detail::value_text(f, defaults) << "` | "
          << config_detail::expectation(f) << " | " << f.doc << " |\n";
    }
  }
  return out.str();
}

}  // namespace r2rec
