// `r2rec generate` through the binary: a small checkpoint (a BPE vocabulary learnt from ML-100K titles, a random
// Qwen2-style model) saved in Hugging Face layout; greedy output and log-probs equal the library's engine and
// teacher-forced log-probs; sampling is seeded; a LoRA adapter is applied; bad input is one line, exit 2.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/model/generation.h"
#include "core/model/lora.h"
#include "core/tokenizer/bpe_trainer.h"
#include "core/tokenizer/tokenizer.h"
#include "tests/test_support.h"

namespace r2rec {
namespace {
using testing::TempDir;

std::vector<std::string> titles() {
  std::ifstream in(testing::data_dir() + "/ml-100k/u.item.utf8");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line) && out.size() < 400) {
    const size_t a = line.find('|'), b = line.find('|', a + 1);
    if (a != std::string::npos && b != std::string::npos) out.push_back(line.substr(a + 1, b - a - 1));
  }
  return out;
}

struct Checkpoint {
  TempDir dir;
  std::unique_ptr<Tokenizer> tokenizer;
  Transformer model{nullptr};

  Checkpoint() {
    BpeTrainerOptions options;
    options.vocab_size = 400;
    tokenizer = std::make_unique<Tokenizer>(train_bpe(titles(), options));
    std::filesystem::create_directories(dir.file("model"));
    tokenizer->save(dir.file("model/tokenizer.json"));
    TransformerConfig c;
    c.vocab_size = 416;  // a few unused rows past the tokenizer, as real checkpoints have
    c.hidden_size = 32;
    c.intermediate_size = 48;
    c.num_layers = 2;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 8;
    c.qkv_bias = true;
    torch::manual_seed(3);
    model = Transformer(c);
    {
      torch::NoGradGuard g;
      for (auto& p : model->parameters()) p.normal_(0, 0.5);
    }
    model->save_hf(dir.file("model"));
  }

  std::vector<int64_t> encode(const std::string& text) const {
    const auto ids = tokenizer->encode(text);
    return {ids.begin(), ids.end()};
  }
};

std::vector<nlohmann::json> json_lines(const std::string& out) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

const std::string kInput = "Toy Story (1995)\nA movie like\\nGoldenEye\n<|im_start|>user\n";
const std::vector<std::string> kPrompts = {"Toy Story (1995)", "A movie like\nGoldenEye", "<|im_start|>user"};

TEST(GenerateCommand, GreedyOutputAndLogprobsEqualTheLibrary) {
  Checkpoint ck;
  const auto r = testing::run_command({testing::r2rec_binary(), "generate", "--model", ck.dir.file("model"), "--json",
                                       "--max-new-tokens", "9", "--threads", "1"},
                                      kInput);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 3u);
  SamplingOptions o;
  o.max_new_tokens = 9;
  o.temperature = 0;
  std::vector<GenerationRequest> reqs;
  for (const auto& p : kPrompts) reqs.push_back({ck.encode(p), 0, nullptr});
  const auto lib = generate(*ck.model, reqs, o);
  std::vector<std::vector<int64_t>> prompts, completions;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(lines[i]["prompt"], kPrompts[i]);
    EXPECT_EQ(lines[i]["prompt_ids"].get<std::vector<int64_t>>(), reqs[i].prompt);
    EXPECT_EQ(lines[i]["ids"].get<std::vector<int64_t>>(), lib[i].tokens) << "prompt " << i;
    EXPECT_EQ(lines[i]["finish"], "length");
    prompts.push_back(reqs[i].prompt);
    completions.push_back(lines[i]["ids"].get<std::vector<int64_t>>());
  }
  EXPECT_EQ(reqs[2].prompt[0], *ck.tokenizer->token_id("<|im_start|>"));  // special tokens in the text are recognised
  torch::NoGradGuard g;
  const torch::Tensor teacher = completion_logprobs(*ck.model, prompts, completions);
  double worst = 0;
  for (size_t i = 0; i < 3; ++i) {
    const auto lp = lines[i]["logprobs"].get<std::vector<double>>();
    ASSERT_EQ(lp.size(), completions[i].size());
    for (size_t j = 0; j < lp.size(); ++j) worst = std::max(worst, std::abs(lp[j] - teacher[i][j].item<double>()));
  }
  EXPECT_LT(worst, 1e-5);

  // Plain output: one line per prompt, the decoded ids (special tokens left out, newlines escaped). (The JSON
  // "text" is the same where it is valid UTF-8; a random model's bytes are not, and JSON replaces them.)
  const auto plain = testing::run_command(
      {testing::r2rec_binary(), "generate", "--model", ck.dir.file("model"), "--max-new-tokens", "9"}, kInput);
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  std::istringstream in(plain.out);
  std::string line;
  for (size_t i = 0; i < 3 && std::getline(in, line); ++i) {
    std::vector<TokenId> ids;
    for (int64_t t : completions[i]) {
      if (t < ck.tokenizer->vocab_size() && !ck.tokenizer->is_special(static_cast<TokenId>(t)))
        ids.push_back(static_cast<TokenId>(t));
    }
    const std::string text = ck.tokenizer->decode(ids);
    std::string escaped;
    for (char c : text)
      escaped += c == '\n'   ? std::string("\\n")
                 : c == '\\' ? std::string("\\\\")
                 : c == '\r' ? std::string("\\r")
                             : std::string(1, c);
    EXPECT_EQ(line, escaped);
  }
}

TEST(GenerateCommand, SeededSamplingStopsAndAdapter) {
  Checkpoint ck;
  const std::vector<std::string> sample = {testing::r2rec_binary(),
                                           "generate",
                                           "--model",
                                           ck.dir.file("model"),
                                           "--json",
                                           "--temperature",
                                           "1.0",
                                           "--top-p",
                                           "0.95",
                                           "--seed",
                                           "11",
                                           "--max-new-tokens",
                                           "12"};
  const auto a = testing::run_command(sample, kInput), b = testing::run_command(sample, kInput);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  auto other = sample;
  other[10] = "12";
  EXPECT_NE(testing::run_command(other, kInput).out, a.out);

  // A stop token: the second generated id of prompt 0 ends it.
  const auto first = json_lines(a.out)[0]["ids"].get<std::vector<int64_t>>();
  auto stop = sample;
  stop.insert(stop.end(), {"--stop-token", std::to_string(first[1])});
  const auto s = json_lines(testing::run_command(stop, kInput).out);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0]["finish"], "stop_token");
  EXPECT_EQ(s[0]["ids"].get<std::vector<int64_t>>(), std::vector<int64_t>(first.begin(), first.begin() + 2));

  // A LoRA adapter changes the output to what the adapted library model gives.
  const std::vector<std::string> base_cmd = {
      testing::r2rec_binary(), "generate", "--model", ck.dir.file("model"), "--json", "--max-new-tokens", "6"};
  const auto base = json_lines(testing::run_command(base_cmd, kInput).out);
  ASSERT_EQ(base.size(), 3u);
  LoraSpec spec;
  spec.rank = 2;
  spec.targets = {"q_proj", "v_proj", "down_proj"};
  add_lora(*ck.model, spec);
  {
    torch::NoGradGuard g;
    for (auto& [name, p] : ck.model->projections()) {
      if (p->has_lora()) p->lora_B.normal_(0, 0.5);
    }
  }
  save_lora_adapter(*ck.model, spec, ck.dir.file("adapter"));
  const auto r = testing::run_command({testing::r2rec_binary(), "generate", "--model", ck.dir.file("model"),
                                       "--adapter", ck.dir.file("adapter"), "--json", "--max-new-tokens", "6"},
                                      kInput);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  SamplingOptions o;
  o.max_new_tokens = 6;
  o.temperature = 0;
  const auto lines = json_lines(r.out);
  int changed = 0;
  for (size_t i = 0; i < 3; ++i) {
    const auto lib = generate(*ck.model, {{ck.encode(kPrompts[i]), 0, nullptr}}, o)[0];
    EXPECT_EQ(lines[i]["ids"].get<std::vector<int64_t>>(), lib.tokens) << "prompt " << i;
    changed += lines[i]["logprobs"] != base[i]["logprobs"];
  }
  EXPECT_EQ(changed, 3) << "the adapter did not change the output";
}

TEST(GenerateCommand, BadInputIsOneLineAndExitTwo) {
  Checkpoint ck;
  struct Case {
    std::vector<std::string> args;
    std::string input, needle;
  };
  const std::string model = ck.dir.file("model");
  std::filesystem::create_directories(ck.dir.file("empty"));
  ck.dir.write("notok/config.json", testing::run_command({"cat", model + "/config.json"}).out);
  const std::vector<Case> cases = {
      {{"--model", ck.dir.file("empty")}, "x\n", "empty/config.json: not found"},
      {{"--model", ck.dir.file("notok")}, "x\n", "no tokenizer.json (pass --tokenizer PATH)"},
      {{"--model", model, "--top-p", "0"}, "x\n", "--top-p must be in (0, 1]"},
      {{"--model", model}, "fine\n\nnext\n", "<stdin> line 2: empty prompt"},
      {{"--model", model, "--adapter", ck.dir.file("empty")}, "x\n", "empty/adapter_config.json: not found"},
      {{"--model", model, "--stop-token", "9999"}, "x\n", "--stop-token 9999 is outside the vocabulary"},
      {{"--model", model, "--temperature", "inf"}, "x\n", "--temperature must be a number >= 0"},
      {{"--model", model, "--max-new-tokens", "5000"}, "x\n", "exceed max_position_embeddings 2048"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv = {testing::r2rec_binary(), "generate"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    const auto r = testing::run_command(argv, c.input);
    EXPECT_EQ(r.exit_code, 2) << c.needle << "\n" << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

}  // namespace
}  // namespace r2rec
