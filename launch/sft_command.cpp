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

#include "core/error.h"
#include "core/files.h"
#include "core/hash.h"
#include "core/tokenizer/bpe_trainer.h"
#include "distributed/communicator.h"
#include "launch/command.h"
#include "trainers/checkpoint.h"
#include "trainers/sft.h"

namespace r2rec {
namespace fs = std::filesystem;

namespace {

// The traces' contents (every prompt and completion), FNV-1a 64.
std::string traces_digest(const TraceSet& traces) {
  uint64_t h = kFnvOffset;
  for (int64_t i = 0; i < traces.size(); ++i) h = fnv1a(traces.completions[i], fnv1a(traces.prompts[i], h));
  return hex64(h);
}

// What the checkpoint depends on: the traces' contents and every model/tokenizer/sft/seed setting, so `r2rec
// run` retrains exactly when one of them changed.
std::string sft_fingerprint(const Config& c, const std::string& digest) {
  Config k;  // defaults everywhere except the fields that matter
  k.tokenizer = c.tokenizer;
  k.model = c.model;
  k.sft = c.sft;
  k.run.seed = c.run.seed;
  return hex64(fnv1a(to_yaml(k) + digest));
}

bool json_field_equals(const std::string& path, const char* key, const std::string& value) {
  try {
    return fs::exists(path) && nlohmann::json::parse(read_file(path)).value(key, "") == value;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

int command_sft(CommandContext& ctx, const char* argv0) {
  open_run_dir(ctx, argv0, "sft");
  const Config& c = ctx.config;
  const int rank = ctx.process->rank;
  TraceSet traces;
  run_agreed([&] {
    if (!c.distributed.colocated) {
      throw ConfigError("distributed.colocated: sft runs every rank as a learner; use colocated mode for this stage");
    }
    if (c.tokenizer.path.empty() && !c.model.path.empty() && !fs::exists(c.model.path + "/tokenizer.json")) {
      throw ConfigError("tokenizer.path: empty, and model.path " + c.model.path +
                        " has no tokenizer.json: a pretrained model "
                        "needs its own tokenizer");
    }
    traces = read_traces(ctx.layout.traces_h5());
  });
  const std::string digest = traces_digest(traces), fingerprint = sft_fingerprint(c, digest);
  const std::string json_path = ctx.layout.stage_json("sft"), out = ctx.layout.stage_model("sft");
  const bool current = agree_on_rank0(rank == 0 && !c.run.force && fs::exists(out + "/config.json") &&
                                      json_field_equals(json_path, "fingerprint", fingerprint));
  if (current) {
    if (rank == 0)
      std::cout << "sft: " << out << " is up to date; nothing to do (run.force=true retrains)\n" << std::flush;
    return kExitOk;
  }
  run_agreed([&] {  // from here on the checkpoint folder is not the one sft.json describes
    std::error_code ec;
    if (rank == 0) fs::remove(json_path, ec);
  });

  // Tokenizer: tokenizer.path, the pretrained model's own, or one learnt from these traces (relearnt when the
  // traces or tokenizer.vocab_size change).
  std::string tokenizer_path = !c.tokenizer.path.empty() ? c.tokenizer.path : !c.model.path.empty() ? c.model.path : "";
  if (tokenizer_path.empty()) {
    tokenizer_path = ctx.layout.tokenizer_json();
    const std::string source_path = ctx.layout.tokenizer_source();
    const std::string source = hex64(fnv1a(digest + "/" + std::to_string(c.tokenizer.vocab_size)));
    const bool reuse = agree_on_rank0(rank == 0 && !c.run.force && fs::exists(tokenizer_path) &&
                                      json_field_equals(source_path, "source", source));
    run_agreed([&] {
      if (rank != 0 || reuse) return;
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
      nlohmann::ordered_json j = {
          {"source", source}, {"traces_digest", digest}, {"vocab_size", c.tokenizer.vocab_size}, {"texts", 2 * n}};
      write_file_atomic(source_path, j.dump(2) + "\n");
      LOG(INFO) << "sft: learnt a " << c.tokenizer.vocab_size << "-token BPE vocabulary from " << n << " traces in "
                << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s -> "
                << tokenizer_path;
    });
  }
  std::unique_ptr<Tokenizer> tokenizer;
  Transformer model{nullptr};
  run_agreed([&] {
    tokenizer = std::make_unique<Tokenizer>(Tokenizer::load(tokenizer_path));
    model = build_model(c, tokenizer->vocab_size());
  });
  if (!tokenizer->token_id("<|im_end|>") && !tokenizer->token_id("<|endoftext|>")) {
    LOG(WARNING) << "sft: " << tokenizer_path
                 << " has neither <|im_end|> nor <|endoftext|>: the model will not learn to stop";
  }
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
  SftResult result;
  // Saves are made by rank 0 inside run_agreed on every rank: the others wait for it (no deadline runs out
  // behind a slow save) and a failed save ends every rank with its message.
  auto save = [&] {
    run_agreed([&] {
      if (rank == 0) save_checkpoint(*model, *tokenizer, out);
    });
  };
  run_agreed([&] {
    result = train_sft(*model, c, traces, *tokenizer, collectives, [&](int64_t step, double loss) {
      if (rank == 0 && (step < 5 || (step + 1) % 10 == 0)) {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        LOG(INFO) << "sft: step " << step + 1 << " loss " << loss << " (" << s << " s)";
      }
      if (c.sft.save_every > 0 && (step + 1) % c.sft.save_every == 0) save();
    });
  });
  save();
  run_agreed([&] {
    if (rank != 0) return;
    nlohmann::ordered_json j;
    j["fingerprint"] = fingerprint;
    j["traces_digest"] = digest;
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
    std::printf(
        "sft: %lld steps on %lld traces (%lld longer than %lld tokens left out), %d rank(s)\n"
        "  loss %.4f -> %.4f, %.1f s, %.0f tokens/s\n  checkpoint %s (r2rec generate --model %s --chat)\n",
        static_cast<long long>(result.steps), static_cast<long long>(result.traces_used),
        static_cast<long long>(result.too_long), static_cast<long long>(c.sft.max_seq_len), ctx.process->world_size,
        result.losses.front(), result.losses.back(), result.seconds, result.tokens_per_second, out.c_str(),
        out.c_str());
    std::fflush(stdout);
  });
  return kExitOk;
}

}  // namespace r2rec
