// The run's tokenizer, shared by every stage that builds or reads a model (pretrain, sft):
//   - tokenizer.path, or model.path's own tokenizer, with the task's entity tokens (trainers/task/task.h
//     entity_tokens: <item_ID>, <user_ID>) appended as plain added tokens where they are missing;
//   - else a byte-level BPE of tokenizer.vocab_size learnt from the traces' text (up to 3000 traces) and the
//     item titles, with the special tokens and the entity tokens on top.
// Rank 0 writes it to <run.dir>/tokenizer/tokenizer.json with source.json (what it was made from); a later
// stage reuses it while the source is the same, unless run.force. A base tokenizer that already holds every
// entity token is used in place.
#include <glog/logging.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/files.h"
#include "core/hash.h"
#include "core/tokenizer/bpe_trainer.h"
#include "launch/stage.h"
#include "trainers/task/task.h"

namespace r2rec {
namespace fs = std::filesystem;

namespace {

bool json_field_equals(const std::string& path, const char* key, const std::string& value) {
  try {
    return fs::exists(path) && nlohmann::json::parse(read_file(path)).value(key, "") == value;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

std::string run_tokenizer(CommandContext& ctx, const TraceSet& traces, const Catalog& catalog) {
  const Config& c = ctx.config;
  const std::vector<std::string> entities = entity_tokens(catalog, task_format(c));
  std::string base = c.tokenizer.path;
  if (base.empty() && !c.model.path.empty()) base = c.model.path;
  uint64_t h = fnv1a(base.empty() ? "learnt" : base);
  for (int64_t i = 0; i < traces.size(); ++i) h = fnv1a(traces.completions[i], fnv1a(traces.prompts[i], h));
  for (const auto& e : entities) h = fnv1a(e, h);
  for (const auto& t : catalog.item_titles) h = fnv1a(t, h);
  const std::string source = hex64(fnv1a(std::to_string(c.tokenizer.vocab_size), h));
  const std::string path = ctx.layout.tokenizer_json(), source_path = ctx.layout.tokenizer_source();
  bool in_place = false;
  const bool reuse = agree_on_rank0(ctx.process->rank == 0 && !c.run.force && fs::exists(path) &&
                                    json_field_equals(source_path, "source", source));
  run_agreed([&] {
    if (ctx.process->rank != 0 || reuse) return;
    const auto t0 = std::chrono::steady_clock::now();
    TokenizerSpec spec;
    std::string how;
    if (!base.empty()) {
      spec = read_tokenizer_spec(base);
      const Tokenizer tok(spec, base);
      int64_t next = tok.vocab_size(), added = 0;
      for (const auto& e : entities) {
        if (tok.token_id(e)) continue;
        spec.added_tokens.push_back({static_cast<TokenId>(next++), e, /*special=*/false});
        ++added;
      }
      in_place = added == 0;
      how = base + " + " + std::to_string(added) + " entity tokens";
    } else {
      std::vector<std::string> texts;
      const int64_t n = std::min<int64_t>(traces.size(), 3000);  // ~4 MB of text: a second of training
      for (int64_t i = 0; i < n; ++i) {
        texts.push_back(traces.prompts[i]);
        texts.push_back(traces.completions[i]);
      }
      for (const auto& t : catalog.item_titles) texts.push_back(t + ".");
      BpeTrainerOptions options;
      options.vocab_size = c.tokenizer.vocab_size;
      options.plain_tokens = entities;
      spec = train_bpe(texts, options);
      how = "a " + std::to_string(c.tokenizer.vocab_size) + "-token BPE learnt from " + std::to_string(n) +
            " traces + " + std::to_string(entities.size()) + " entity tokens";
    }
    if (in_place) return;
    fs::create_directories(ctx.layout.tokenizer_dir());
    Tokenizer(spec, "run tokenizer").save(path);
    nlohmann::ordered_json j = {{"source", source},
                                {"base", base},
                                {"made", how},
                                {"vocab_size", c.tokenizer.vocab_size},
                                {"entity_tokens", entities.size()}};
    write_file_atomic(source_path, j.dump(2) + "\n");
    LOG(INFO) << "tokenizer: " << how << " in "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s -> " << path;
  });
  return agree_on_rank0(in_place) ? base : path;
}

}  // namespace r2rec
