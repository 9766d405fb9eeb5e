// `r2rec generate --model DIR ...`: complete prompts read from stdin with a Hugging Face checkpoint (and an
// optional PEFT LoRA adapter), through the same engine rollout workers and evaluation use (core/generation.h).
//
// Input: one prompt per line; "\n", "\t" and "\\" escapes become newline, tab and backslash. Special tokens
// written in the text (<|im_start|>) are recognised. With --chat each line is the user turn of a ChatML
// conversation (Qwen's template), with --system as the system turn.
// Output: one line per prompt, in order: the completion with newlines escaped as "\n"; with --json one object
// {"prompt", "prompt_ids", "ids", "logprobs", "text", "finish"} per line. Prompt i samples with seed --seed + i.
// Stop tokens: the checkpoint's eos_token_id (config.json, generation_config.json) plus --stop-token ids.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "core/model/generation.h"
#include "core/runtime.h"
#include "core/tokenizer/tokenizer.h"
#include "launch/commands.h"
#include "trainers/lm/model_folder.h"

namespace r2rec {
namespace {

std::string unescape(const std::string& line) {
  std::string out;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\\' && i + 1 < line.size()) {
      const char c = line[i + 1];
      if (c == 'n' || c == 't' || c == '\\') {
        out += c == 'n' ? '\n' : c == 't' ? '\t' : '\\';
        ++i;
        continue;
      }
    }
    out += line[i];
  }
  return out;
}

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\\')
      out += "\\\\";
    else if (c == '\r')
      out += "\\r";
    else
      out += c;
  }
  return out;
}

// eos_token_id of a Hugging Face config file: an integer or a list of integers (absent file/key: nothing).
void read_eos(const std::string& path, std::vector<int64_t>& out) {
  if (!std::filesystem::exists(path)) return;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw DataError(path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!j.is_object() || !j.contains("eos_token_id") || j["eos_token_id"].is_null()) return;
  const auto& e = j["eos_token_id"];
  auto add = [&](const nlohmann::json& v) {
    if (!v.is_number_integer()) throw DataError(path + ": eos_token_id: expected an integer or a list of integers");
    if (std::find(out.begin(), out.end(), v.get<int64_t>()) == out.end()) out.push_back(v.get<int64_t>());
  };
  if (e.is_array()) {
    for (const auto& v : e) add(v);
  } else {
    add(e);
  }
}

}  // namespace

int command_generate(const GenerateOptions& opt) {
  if (opt.model_dir.empty()) throw DataError("generate: --model DIR is required");
  const std::string config_path = opt.model_dir + "/config.json";
  if (!std::filesystem::exists(config_path))
    throw DataError(config_path + ": not found (--model needs a Hugging Face checkpoint folder)");
  if (opt.max_new_tokens < 0) throw DataError("generate: --max-new-tokens must be >= 0");
  if (!(opt.temperature >= 0) || !std::isfinite(opt.temperature))
    throw DataError("generate: --temperature must be a number >= 0");
  if (!(opt.top_p > 0 && opt.top_p <= 1)) throw DataError("generate: --top-p must be in (0, 1]");
  if (opt.top_k < 0) throw DataError("generate: --top-k must be >= 0");
  if (opt.batch_size <= 0) throw DataError("generate: --batch-size must be positive");
  set_intra_op_threads(choose_thread_count(opt.threads, 1));

  LoadedModel loaded = load_model_folder(opt.model_dir, opt.tokenizer_path, opt.adapter_dir, /*tokenizer_first=*/true);
  TransformerImpl& model = *loaded.model;
  const Tokenizer& tokenizer = *loaded.tokenizer;
  const TransformerConfig& config = model.config;
  model.eval();

  SamplingOptions sampling;
  sampling.max_new_tokens = opt.max_new_tokens;
  sampling.temperature = opt.temperature;
  sampling.top_p = opt.top_p;
  sampling.top_k = opt.top_k;
  sampling.stop_strings = opt.stop_strings;
  read_eos(config_path, sampling.stop_tokens);
  read_eos(opt.model_dir + "/generation_config.json", sampling.stop_tokens);
  for (int64_t id : opt.stop_tokens) {
    if (id < 0 || id >= config.vocab_size)
      throw DataError("generate: --stop-token " + std::to_string(id) + " is outside the vocabulary");
    sampling.stop_tokens.push_back(id);
  }
  // Special tokens, padding rows of the embedding and holes in the tokenizer's ids print as nothing.
  const TokenText token_text = [&tokenizer](int64_t id) { return tokenizer.piece(id, /*specials=*/false); };

  std::vector<std::string> texts;
  std::vector<GenerationRequest> batch;
  size_t line_no = 0;
  auto flush = [&] {
    if (batch.empty()) return;
    const std::vector<Generation> out = generate(model, batch, sampling, token_text);
    for (size_t i = 0; i < out.size(); ++i) {
      if (!opt.json) {
        std::cout << escape(out[i].text) << '\n';
        continue;
      }
      nlohmann::ordered_json j;
      j["prompt"] = texts[i];
      j["prompt_ids"] = batch[i].prompt;
      j["ids"] = out[i].tokens;
      j["logprobs"] = out[i].logprobs;
      j["text"] = out[i].text;
      j["finish"] = finish_reason_name(out[i].finish);
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    }
    std::cout.flush();
    batch.clear();
    texts.clear();
  };
  std::string line;
  while (std::getline(std::cin, line)) {
    ++line_no;
    std::string text = unescape(line);
    if (opt.chat) {
      std::vector<ChatMessage> messages;
      if (!opt.system.empty()) messages.push_back({"system", opt.system});
      messages.push_back({"user", text});
      text = render_chatml(messages, /*add_generation_prompt=*/true);
    }
    std::vector<TokenId> ids = tokenizer.encode(text);
    if (ids.empty())
      throw DataError("<stdin> line " + std::to_string(line_no) + ": empty prompt (nothing to condition on)");
    if (static_cast<int64_t>(ids.size()) + opt.max_new_tokens > config.max_position) {
      throw DataError("<stdin> line " + std::to_string(line_no) + ": " + std::to_string(ids.size()) +
                      " prompt tokens + " + std::to_string(opt.max_new_tokens) +
                      " new tokens exceed max_position_embeddings " + std::to_string(config.max_position) + " of " +
                      config_path);
    }
    texts.push_back(text);
    batch.push_back({std::vector<int64_t>(ids.begin(), ids.end()), opt.seed + line_no - 1, nullptr});
    if (static_cast<int64_t>(batch.size()) >= opt.batch_size) flush();
  }
  flush();
  return kExitOk;
}

}  // namespace r2rec
