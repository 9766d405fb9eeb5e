// `r2rec sft`: data-parallel supervised fine-tuning on <run.dir>/traces/traces.h5 (trainers/sft.h).
//
// Tokenizer: tokenizer.path, or (empty) a byte-level BPE of tokenizer.vocab_size learnt by rank 0 from the
// traces' text (item titles, prompts, reasoning) into <run.dir>/tokenizer/tokenizer.json, reused by later runs
// unless run.force. Model: model.path, or a new model of the model.* shape (trainers/sft.h build_model).
// Output: <run.dir>/sft/model (config.json, model.safetensors, tokenizer.json, generation_config.json — loads in
// `transformers` and `r2rec generate`), written at the end and every sft.save_every steps; <run.dir>/sft/sft.json
// with the per-step losses and throughput.
#include <glog/logging.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/bpe_trainer.h"
#include "core/error.h"
#include "core/files.h"
#include "distributed/communicator.h"
#include "launch/command.h"
#include "trainers/sft.h"

namespace r2rec {
namespace fs = std::filesystem;

namespace {

// What the checkpoint depends on: the traces' identity and every model/tokenizer/sft/seed setting (FNV-1a 64
// over their text), so `r2rec run` retrains only when one of them changed.
std::string sft_fingerprint(const Config& c, const TraceSet& traces) {
  Config k;  // defaults everywhere except the fields that matter
  k.tokenizer = c.tokenizer;
  k.model = c.model;
  k.sft = c.sft;
  k.run.seed = c.run.seed;
  const std::string text = to_yaml(k) + traces.prepare_hash + traces.teacher + std::to_string(traces.size()) +
                           std::to_string(c.distributed.colocated);
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : text) h = (h ^ ch) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

int command_sft(CommandContext& ctx, const char* argv0) {
  open_run_dir(ctx, argv0, "sft");
  const Config& c = ctx.config;
  const int rank = ctx.process->rank;
  if (!c.distributed.colocated) {
    throw ConfigError("distributed.colocated: sft runs every rank as a learner; use colocated mode for this stage");
  }
  TraceSet traces;
  run_agreed([&] { traces = read_traces(traces_dir(c) + "/traces.h5"); });
  const std::string fingerprint = sft_fingerprint(c, traces);
  const std::string json_path = (fs::path(c.run.dir) / "sft" / "sft.json").string();
  const std::string out = (fs::path(c.run.dir) / "sft" / "model").string();
  if (!c.run.force && fs::exists(out + "/config.json") && fs::exists(json_path)) {
    bool current = false;
    try {
      current = nlohmann::json::parse(read_file(json_path)).value("fingerprint", "") == fingerprint;
    } catch (const std::exception&) {
    }
    if (current) {  // every rank reads the same file and decides alike
      if (rank == 0) std::cout << "sft: " << out << " is up to date; nothing to do (run.force=true retrains)\n" << std::flush;
      return kExitOk;
    }
  }

  std::string tokenizer_path = c.tokenizer.path;
  if (tokenizer_path.empty()) {
    tokenizer_path = (fs::path(c.run.dir) / "tokenizer" / "tokenizer.json").string();
    run_agreed([&] {
      if (rank != 0 || (fs::exists(tokenizer_path) && !c.run.force)) return;
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<std::string> texts;
      const int64_t n = std::min<int64_t>(traces.size(), 3000);  // ~4 MB of text: a second of training
      for (int64_t i = 0; i < n; ++i) {
        texts.push_back(traces.prompts[i]);
        texts.push_back(traces.completions[i]);
      }
      BpeTrainerOptions options;
      options.vocab_size = c.tokenizer.vocab_size;
      fs::create_directories(fs::path(tokenizer_path).parent_path());
      Tokenizer(train_bpe(texts, options), "learnt").save(tokenizer_path);
      LOG(INFO) << "sft: learnt a " << c.tokenizer.vocab_size << "-token BPE vocabulary from " << n << " traces in "
                << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s -> " << tokenizer_path;
    });
  }
  std::unique_ptr<Tokenizer> tokenizer;
  Transformer model{nullptr};
  run_agreed([&] {
    tokenizer = std::make_unique<Tokenizer>(Tokenizer::load(tokenizer_path));
    model = build_model(c, tokenizer->vocab_size());
  });
  int64_t params = 0, trainable = 0;
  for (const auto& p : model->parameters()) {
    params += p.numel();
    if (p.requires_grad()) trainable += p.numel();
  }
  LOG(INFO) << "sft: " << traces.size() << " traces, model " << model->config.num_layers << " layers x "
            << model->config.hidden_size << ", vocab " << model->config.vocab_size << ", " << params << " parameters ("
            << trainable << " trainable)";

  std::shared_ptr<Communicator> comm;
  const Collectives collectives = communicator_collectives(ctx, &comm);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t total_steps = 0;
  SftResult result;
  run_agreed([&] {
    result = train_sft(*model, c, traces, *tokenizer, collectives, [&](int64_t step, double loss) {
      if (rank != 0) return;
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (step < 5 || (step + 1) % 10 == 0) LOG(INFO) << "sft: step " << step + 1 << " loss " << loss << " (" << s << " s)";
      if (c.sft.save_every > 0 && (step + 1) % c.sft.save_every == 0) save_checkpoint(*model, *tokenizer, out);
      total_steps = step + 1;
    });
  });
  if (rank == 0) {
    save_checkpoint(*model, *tokenizer, out);
    nlohmann::ordered_json j;
    j["fingerprint"] = fingerprint;
    j["traces"] = traces.size();
    j["traces_used"] = result.traces_used;
    j["too_long"] = result.too_long;
    j["steps"] = result.steps;
    j["ranks"] = ctx.process->world_size;
    j["parameters"] = params;
    j["trainable_parameters"] = trainable;
    j["seconds"] = result.seconds;
    j["tokens_per_second"] = result.tokens_per_second;
    j["first_loss"] = result.losses.front();
    j["last_loss"] = result.losses.back();
    j["losses"] = result.losses;
    write_file_atomic(json_path, j.dump(2) + "\n");
    std::printf("sft: %lld steps on %lld traces (%lld longer than %lld tokens left out), %d rank(s)\n"
                "  loss %.4f -> %.4f, %.1f s, %.0f tokens/s\n  checkpoint %s (r2rec generate --model %s)\n",
                static_cast<long long>(result.steps), static_cast<long long>(result.traces_used),
                static_cast<long long>(result.too_long), static_cast<long long>(c.sft.max_seq_len), ctx.process->world_size,
                result.losses.front(), result.losses.back(), result.seconds, result.tokens_per_second, out.c_str(), out.c_str());
    std::fflush(stdout);
  }
  (void)total_steps;
  return kExitOk;
}

}  // namespace r2rec
