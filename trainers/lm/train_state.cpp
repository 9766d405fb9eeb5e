#include "trainers/lm/train_state.h"

#include <glog/logging.h>
#include <torch/torch.h>

#include <algorithm>
#include <csignal>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "core/hash.h"
#include "core/model/lora.h"
#include "core/model/safetensors.h"
#include "core/owned_dir.h"
#include "distributed/agreement.h"
#include "trainers/lm/model_folder.h"

namespace r2rec {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPrefix = "step-";

// "step-<N>" -> N; -1 for any other name (step-<N>.tmp included).
int64_t step_of(const std::string& name) {
  if (name.rfind(kPrefix, 0) != 0 || name.size() == std::string(kPrefix).size()) return -1;
  int64_t n = 0;
  for (size_t i = std::string(kPrefix).size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || n > (int64_t{1} << 50)) return -1;
    n = n * 10 + (name[i] - '0');
  }
  return n;
}

// Entries of a checkpoints folder and of one checkpoint folder that r2rec writes (folders from before markers).
bool checkpoints_name(const std::string& n) { return n.rfind(kPrefix, 0) == 0; }
bool checkpoint_name(const std::string& n) {
  return n == "model" || n == "adapter" || n == "trainable.safetensors" || n == "optimizer.pt" || n == "rng.json" ||
         n == "settings.yaml" || n == "state.json";
}

std::string to_hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) s[2 * i] = d[p[i] >> 4], s[2 * i + 1] = d[p[i] & 15];
  return s;
}

std::vector<uint8_t> from_hex(const std::string& s, const std::string& where) {
  auto v = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw DataError(where + ": not a hex string");
  };
  if (s.size() % 2) throw DataError(where + ": odd hex length");
  std::vector<uint8_t> out(s.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(v(s[2 * i]) * 16 + v(s[2 * i + 1]));
  return out;
}

std::string generator_state() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  const at::Tensor st = gen.get_state().contiguous();
  return to_hex(st.data_ptr<uint8_t>(), static_cast<size_t>(st.numel()));
}

void set_generator_state(const std::string& hex, const std::string& where) {
  const std::vector<uint8_t> bytes = from_hex(hex, where);
  at::Tensor st = torch::empty({static_cast<int64_t>(bytes.size())}, torch::kUInt8);
  std::copy(bytes.begin(), bytes.end(), st.data_ptr<uint8_t>());
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(st);
}

// Every file under `dir` (relative paths, sorted) but state.json and the ownership markers.
std::vector<std::string> files_under(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = fs::relative(e.path(), dir).string();
    if (rel == "state.json" || e.path().filename() == kOwnedMarker) continue;
    out.push_back(rel);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string file_hash(const std::string& path) {
  const std::string bytes = read_file(path);
  return hex64(fnv1a_lanes(kFnvOffset, bytes.data(), bytes.size()));
}

// Why checkpoint folder `dir` is not whole ("" when it is).
std::string damage(const std::string& dir, nlohmann::json* state) {
  const std::string sp = dir + "/state.json";
  if (!fs::exists(sp)) return "no state.json: it was not finished";
  try {
    *state = nlohmann::json::parse(read_file(sp));
    if (!state->is_object() || !state->at("files").is_object()) return "state.json: files is not an object";
    // Only the folder's own files: a listed "../x" or "/x" would be read (and hashed) from outside it.
    const std::vector<std::string> present = files_under(dir);
    for (const auto& [rel, f] : state->at("files").items()) {
      const std::string p = dir + "/" + rel;
      if (!std::binary_search(present.begin(), present.end(), rel)) {
        const fs::path r(rel);
        const bool inside = !r.is_absolute() && r.lexically_normal() == r && rel.rfind("..", 0) != 0;
        return inside ? rel + " is missing" : "state.json: files: '" + rel + "' is not a file of this checkpoint";
      }
      if (!f.at("bytes").is_number_integer()) return "state.json: files." + rel + ".bytes is not an integer";
      if (static_cast<int64_t>(fs::file_size(p)) != f.at("bytes").get<int64_t>()) return rel + " has the wrong size";
      if (file_hash(p) != f.at("fnv1a").get<std::string>()) return rel + " does not match its hash";
    }
    // Type-checked: get<int64_t>() of a float is a static_cast, not an exception.
    if (!state->at("step").is_number_integer()) return "state.json: step is not an integer";
    if (!state->at("world_size").is_number_unsigned()) return "state.json: world_size is not a count";
    state->at("fingerprint").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    return std::string("state.json is malformed (") + e.what() + ")";
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

bool fault_is(const std::string& fault, const char* what, int64_t step) {
  return fault == std::string(what) + "=" + std::to_string(step);
}

}  // namespace

std::optional<CheckpointInfo> newest_checkpoint(const std::string& dir) {
  if (!fs::is_directory(dir)) return std::nullopt;
  std::vector<std::pair<int64_t, std::string>> found;
  for (const auto& e : fs::directory_iterator(dir)) {
    const int64_t n = step_of(e.path().filename().string());
    if (n >= 0 && e.is_directory()) found.emplace_back(n, e.path().string());
  }
  std::sort(found.rbegin(), found.rend());
  for (const auto& [n, path] : found) {
    nlohmann::json state;
    const std::string why = damage(path, &state);
    if (!why.empty()) {
      LOG(WARNING) << path << ": damaged checkpoint skipped (" << why << ")";
      continue;
    }
    CheckpointInfo info;
    info.path = path;
    info.step = state.at("step").get<int64_t>();
    info.fingerprint = state.at("fingerprint").get<std::string>();
    const std::string settings = path + "/settings.yaml";
    if (fs::exists(settings)) info.settings_yaml = read_file(settings);
    info.state = std::move(state);
    return info;
  }
  return std::nullopt;
}

void clear_checkpoints(const std::string& dir) {
  if (!fs::is_directory(dir)) return;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(kPrefix, 0) == 0) remove_if_owned(e.path().string(), checkpoint_name);
  remove_if_owned(dir, checkpoints_name);
}

void save_train_state(const CheckpointPlan& plan, int64_t step, TransformerImpl& model,
                      const torch::optim::Optimizer* optimizer, const nlohmann::json& record, int rank) {
  const std::vector<std::string> generators = gather_to_rank0(generator_state());
  run_agreed([&] {
    if (rank != 0) return;
    CHECK(plan.tokenizer != nullptr) << "save_train_state: the plan has no tokenizer";
    CHECK(optimizer != nullptr) << "save_train_state: rank 0 has no optimizer";
    if (!fs::exists(plan.dir)) make_owned_dir(plan.dir, checkpoints_name, /*building=*/false);
    check_replaceable(plan.dir, checkpoints_name);
    const std::string name = kPrefix + std::to_string(step);
    const std::string final_dir = plan.dir + "/" + name, tmp = final_dir + ".tmp";
    set_owned_entries(plan.dir, {name + ".tmp"}, {});  // listed first: a kill while writing leaves an r2rec leftover
    make_owned_dir(tmp, checkpoint_name);
    save_model_folder(model, *plan.tokenizer, tmp + "/model");
    bool lora = false;
    for (const auto& p : model.parameters()) lora = lora || !p.requires_grad();
    if (lora) {  // the adapters unmerged (model/ has them merged)
      std::vector<std::pair<std::string, at::Tensor>> t;
      for (auto& [n, p] : trainable_parameters(model)) t.emplace_back(n, p.detach().contiguous());
      write_safetensors(tmp + "/trainable.safetensors", t, {{"format", "pt"}});
      // And in PEFT's layout, for peft.PeftModel / `r2rec generate --adapter` over the stage's base model.
      if (const auto spec = lora_spec_of(model)) {
        make_owned_dir(tmp + "/adapter", model_dir_name);
        save_lora_adapter(model, *spec, tmp + "/adapter", plan.base_model);
        seal_owned_dir(tmp + "/adapter");
      }
    }
    {
      torch::serialize::OutputArchive ar;
      optimizer->save(ar);
      ar.save_to(tmp + "/optimizer.pt");
    }
    nlohmann::ordered_json rng;
    rng["world_size"] = generators.size();
    rng["torch_cpu"] = generators;
    write_file_atomic(tmp + "/rng.json", rng.dump() + "\n");
    write_file_atomic(tmp + "/settings.yaml", plan.settings_yaml);
    if (fault_is(plan.fault, "kill-in-checkpoint", step)) {
      LOG(WARNING) << "R2REC_FAULT: killing rank 0 while " << tmp << " is half written";
      google::FlushLogFiles(google::GLOG_INFO);
      std::raise(SIGKILL);
    }
    nlohmann::ordered_json st;
    st["stage"] = plan.stage;
    st["step"] = step;
    st["fingerprint"] = plan.fingerprint;
    st["world_size"] = generators.size();
    st["record"] = record;
    nlohmann::ordered_json files = nlohmann::ordered_json::object();
    for (const std::string& rel : files_under(tmp)) {
      const std::string p = tmp + "/" + rel;
      files[rel] = {{"bytes", fs::file_size(p)}, {"fnv1a", file_hash(p)}};
    }
    st["files"] = files;
    write_file_atomic(tmp + "/state.json", st.dump(1) + "\n");
    seal_owned_dir(tmp);
    // Into place; a step-N already there (redone after a resume from an older checkpoint) is replaced, a user's
    // file in it moving into the new one.
    replace_owned_dir(final_dir, tmp, checkpoint_name);
    set_owned_entries(plan.dir, {name}, {name + ".tmp"});
    // The newest `keep` up to this one stay (this one always: a newer, damaged one left by an older run does not
    // count); older ones and leftovers of killed writes go, each only if r2rec wrote it.
    std::vector<std::pair<int64_t, std::string>> older;
    std::vector<std::string> gone;
    for (const auto& e : fs::directory_iterator(plan.dir)) {
      const std::string n = e.path().filename().string();
      const int64_t s = step_of(n);
      if (s >= 0 && s < step) {
        older.emplace_back(s, n);
      } else if (n.rfind(kPrefix, 0) == 0 && n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0) {
        remove_if_owned(e.path().string(), checkpoint_name);
        if (!fs::exists(e.path())) gone.push_back(n);
      }
    }
    std::sort(older.rbegin(), older.rend());
    for (size_t i = static_cast<size_t>(std::max<int64_t>(0, plan.keep - 1)); i < older.size(); ++i) {
      remove_if_owned(plan.dir + "/" + older[i].second, checkpoint_name);
      if (!fs::exists(plan.dir + "/" + older[i].second)) gone.push_back(older[i].second);
    }
    set_owned_entries(plan.dir, {}, gone);
    LOG(INFO) << plan.stage << ": checkpoint " << final_dir;
    if (fault_is(plan.fault, "kill-after-checkpoint", step)) {
      LOG(WARNING) << "R2REC_FAULT: killing rank 0 after " << final_dir;
      google::FlushLogFiles(google::GLOG_INFO);
      std::raise(SIGKILL);
    }
  });
}

nlohmann::json load_train_state(const std::string& path, TransformerImpl& model, torch::optim::Optimizer* optimizer,
                                int rank) {
  nlohmann::json state;
  const std::string why = damage(path, &state);
  if (!why.empty()) throw DataError(path + ": cannot resume from it: " + why);
  {
    torch::NoGradGuard no_grad;
    const std::string trainable = path + "/trainable.safetensors";
    if (fs::exists(trainable)) {
      const SafetensorsFile f(trainable);
      for (auto& [n, p] : trainable_parameters(model)) {
        if (!f.has(n)) throw DataError(trainable + ": no tensor " + n);
        p.copy_(f.load_f32(n, p.sizes().vec()).to(p.dtype()));
      }
    } else {
      model.load_hf(path + "/model");
    }
  }
  if (optimizer != nullptr) {
    try {  // libtorch's archive reader throws c10::Error on a damaged file
      torch::serialize::InputArchive ar;
      ar.load_from(path + "/optimizer.pt");
      optimizer->load(ar);
    } catch (const c10::Error& e) {
      throw DataError(path + "/optimizer.pt: not an optimizer state for this model (" + e.what_without_backtrace() +
                      ")");
    }
  }
  const std::string rng_path = path + "/rng.json";
  nlohmann::json states;
  try {
    states = nlohmann::json::parse(read_file(rng_path)).at("torch_cpu");
    if (!states.is_array()) throw DataError(rng_path + ": torch_cpu is not a list");
    for (const auto& g : states)
      if (!g.is_string()) throw DataError(rng_path + ": torch_cpu holds a value that is not a hex string");
  } catch (const nlohmann::json::exception& e) {
    throw DataError(rng_path + ": malformed (" + e.what() + ")");
  }
  if (rank < static_cast<int>(states.size()) && states.size() == state.at("world_size").get<size_t>()) {
    try {
      set_generator_state(states.at(static_cast<size_t>(rank)).get<std::string>(), rng_path);
    } catch (const c10::Error& e) {
      throw DataError(rng_path + ": rank " + std::to_string(rank) + "'s generator state does not fit this libtorch (" +
                      e.what_without_backtrace() + ")");
    }
  } else if (rank == 0) {
    LOG(WARNING) << path << ": written by " << states.size()
                 << " rank(s), resumed on another count: the torch generators start afresh (only LoRA dropout "
                    "draws from them)";
  }
  return state;
}

}  // namespace r2rec
