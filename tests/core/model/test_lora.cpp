// LoRA adapters and activation checkpointing: gradients of the adapter path against central finite differences
// (float64), merge == adapted model, PEFT save/load round trip and its errors, checkpointed gradients == plain.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/model/lora.h"
#include "core/model/safetensors.h"
#include "tests/core/model/tiny_model.h"
#include "tests/test_support.h"

namespace r2rec {
namespace {
using testing::make_model;
using testing::TempDir;
using testing::tiny;

// Every projection kind; lm_head only for untied models.
LoraSpec all_targets(int64_t rank, bool lm_head = false) {
  LoraSpec s;
  s.rank = rank;
  s.alpha = 2.0 * static_cast<double>(rank);
  s.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  if (lm_head) s.targets.push_back("lm_head");
  return s;
}

// Gives every lora_B random values, so the adapters change the output and A gets gradients too.
void randomise_adapters(TransformerImpl& m, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard g;
  for (auto& [name, proj] : m.projections()) {
    if (proj->has_lora()) proj->lora_B.copy_(torch::randn_like(proj->lora_B) * 0.3);
  }
}

const torch::Tensor kIds = torch::tensor({{1, 5, 9, 2, 7}, {0, 0, 3, 22, 4}});
const torch::Tensor kMask = torch::tensor({{1, 1, 1, 1, 1}, {0, 0, 1, 1, 1}});

TEST(Lora, NewAdaptersChangeNothingAndOnlyAdaptersTrain) {
  Transformer m = make_model(tiny(false), 3);
  torch::NoGradGuard g;
  const torch::Tensor before = m->forward(kIds, kMask);
  EXPECT_EQ(add_lora(*m, all_targets(4, /*lm_head=*/true)), 2 * 7 + 1);  // 7 per layer + the untied lm_head
  EXPECT_TRUE(torch::equal(before, m->forward(kIds, kMask)));
  const auto trainable = trainable_parameters(*m);
  EXPECT_EQ(trainable.size(), 2u * 15);
  for (const auto& [name, t] : trainable) EXPECT_TRUE(name.find("lora_") != std::string::npos) << name;
  try {
    LoraSpec bad = all_targets(2);
    bad.targets = {"q_proj", "qproj"};
    add_lora(*make_model(tiny(false), 3), bad);
    FAIL() << "unknown target not caught";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.lora.targets: 'qproj'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(add_lora(*make_model(tiny(true), 3), all_targets(2, /*lm_head=*/true)), ConfigError);  // tied
}

TEST(Lora, AdapterGradientsMatchFiniteDifferences) {
  Transformer m = make_model(tiny(true), 7);
  LoraSpec spec = all_targets(3);
  spec.targets = {"q_proj", "v_proj", "o_proj", "down_proj"};
  add_lora(*m, spec);
  m->to(torch::kDouble);
  randomise_adapters(*m, 8);
  const torch::Tensor weights = torch::randn({2, 5, m->config.vocab_size}, torch::kDouble);
  auto loss_of = [&] { return (m->forward(kIds, kMask) * weights).sum(); };
  loss_of().backward();
  std::vector<torch::Tensor> adapters;
  for (auto& [name, p] : trainable_parameters(*m)) {
    ASSERT_TRUE(p.grad().defined()) << name;
    adapters.push_back(p);
  }
  int checked = 0;
  const double worst = testing::worst_finite_difference_error(adapters, loss_of, 5, &checked);
  for (auto& p : m->named_parameters()) {
    if (p.key().find("lora_") == std::string::npos) {
      EXPECT_FALSE(p.value().grad().defined()) << p.key();
    }
  }
  EXPECT_GT(checked, 60);
  EXPECT_LT(worst, 1e-6) << "worst relative error over " << checked << " adapter entries";
}

TEST(Lora, MergedWeightsAndExportEqualTheAdaptedModel) {
  TempDir dir;
  for (bool qwen : {true, false}) {
    Transformer m = make_model(tiny(qwen), 13);
    add_lora(*m, all_targets(2, /*lm_head=*/!qwen));
    randomise_adapters(*m, 14);
    torch::NoGradGuard g;
    const torch::Tensor adapted = m->forward(kIds, kMask);
    const std::string out = dir.file(qwen ? "merged-q" : "merged-l");
    m->save_hf(out);  // merge on export
    Transformer fresh(TransformerConfig::from_hf_json(out + "/config.json"));
    fresh->load_hf(out);
    EXPECT_LT((fresh->forward(kIds, kMask) - adapted).abs().max().item<double>(), 1e-5);
    merge_lora(*m);
    EXPECT_TRUE(trainable_parameters(*m).size() == m->parameters().size());
    for (auto& p : m->named_parameters()) EXPECT_EQ(p.key().find("lora_"), std::string::npos) << p.key();
    EXPECT_LT((m->forward(kIds, kMask) - adapted).abs().max().item<double>(), 1e-5);
  }
}

TEST(Lora, PeftAdapterRoundTrip) {
  TempDir dir;
  Transformer m = make_model(tiny(true), 17);
  LoraSpec spec = all_targets(4);
  spec.alpha = 8;
  spec.dropout = 0.05;
  spec.targets = {"q_proj", "v_proj", "up_proj"};
  add_lora(*m, spec);
  randomise_adapters(*m, 18);
  save_lora_adapter(*m, spec, dir.file("adapter"), "tiny-qwen");
  const auto config = nlohmann::json::parse(read_file(dir.file("adapter/adapter_config.json")));
  EXPECT_EQ(config["peft_type"], "LORA");
  EXPECT_EQ(config["r"], 4);
  EXPECT_EQ(config["lora_alpha"], 8.0);
  EXPECT_EQ(config["target_modules"], nlohmann::json({"q_proj", "v_proj", "up_proj"}));
  EXPECT_EQ(config["base_model_name_or_path"], "tiny-qwen");
  SafetensorsFile file(dir.file("adapter/adapter_model.safetensors"));
  EXPECT_EQ(file.tensors().size(), 2u * 3 * 2);
  EXPECT_TRUE(file.has("base_model.model.model.layers.1.mlp.up_proj.lora_B.weight"));
  EXPECT_EQ(file.tensors().at("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").shape,
            (std::vector<int64_t>{4, 16}));

  Transformer base = make_model(tiny(true), 17);  // the same base weights
  const LoraSpec loaded = load_lora_adapter(*base, dir.file("adapter"));
  EXPECT_EQ(loaded.rank, 4);
  EXPECT_EQ(loaded.targets, spec.targets);
  EXPECT_DOUBLE_EQ(loaded.dropout, 0.05);
  m->eval();
  base->eval();
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::equal(m->forward(kIds, kMask), base->forward(kIds, kMask)));
}

TEST(Lora, BadAdaptersAreNamedAndLeaveTheModelAlone) {
  TempDir dir;
  Transformer m = make_model(tiny(true), 19);
  add_lora(*m, all_targets(2));
  save_lora_adapter(*m, all_targets(2), dir.file("good"), "");
  const std::string good_config = read_file(dir.file("good/adapter_config.json"));
  const Transformer reference = make_model(tiny(true), 19);
  auto expect_error = [&](const std::string& case_name, const std::string& needle) {
    Transformer fresh = make_model(tiny(true), 19);
    try {
      load_lora_adapter(*fresh, dir.file(case_name));
      ADD_FAILURE() << case_name << ": not caught";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << case_name << ": " << e.what();
    }
    // Untouched: same parameters, values and trainability as before.
    const auto before = reference->named_parameters(), after = fresh->named_parameters();
    ASSERT_EQ(after.size(), before.size()) << case_name << ": adapters were added";
    for (size_t i = 0; i < after.size(); ++i) {
      EXPECT_TRUE(after[i].value().requires_grad()) << case_name << ": " << after[i].key();
      EXPECT_TRUE(torch::equal(after[i].value(), before[i].value())) << case_name << ": " << after[i].key();
    }
  };
  auto variant = [&](const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
    std::filesystem::create_directories(dir.file(name));
    std::filesystem::copy_file(dir.file("good/adapter_model.safetensors"),
                               dir.file(name + "/adapter_model.safetensors"));
    nlohmann::json j = nlohmann::json::parse(good_config);
    edit(j);
    dir.write(name + "/adapter_config.json", j.dump());
  };
  variant("prefix", [](nlohmann::json& j) { j["peft_type"] = "PREFIX_TUNING"; });
  expect_error("prefix", "prefix/adapter_config.json: peft_type");
  variant("regex", [](nlohmann::json& j) { j["target_modules"] = ".*proj"; });
  expect_error("regex", "regex/adapter_config.json: target_modules");
  variant("rank", [](nlohmann::json& j) { j["r"] = 3; });  // tensors are rank 2
  expect_error("rank", "has shape [2, 16], the model needs [3, 16]");
  variant("pattern", [](nlohmann::json& j) { j["rank_pattern"] = {{"q_proj", 4}}; });
  expect_error("pattern", "rank_pattern");
  variant("types", [](nlohmann::json& j) { j["use_rslora"] = "yes"; });
  expect_error("types", "types/adapter_config.json: use_rslora: has the wrong type");
  variant("extra", [](nlohmann::json& j) { j["modules_to_save"] = {"lm_head"}; });
  expect_error("extra", "modules_to_save");
  variant("tied", [](nlohmann::json& j) { j["target_modules"] = {"q_proj", "lm_head"}; });
  expect_error("tied", "lm_head needs a model with untied embeddings");
  // Onto a model that already has adapters: refused before anything changes.
  try {
    load_lora_adapter(*m, dir.file("good"));
    ADD_FAILURE() << "second adapter not refused";
  } catch (const RuntimeFailure& e) {
    EXPECT_NE(std::string(e.what()).find("already has a LoRA adapter"), std::string::npos) << e.what();
  }
  EXPECT_EQ(trainable_parameters(*m).size(), 2u * 2 * 7);
  std::filesystem::create_directories(dir.file("nofile"));
  dir.write("nofile/adapter_config.json", good_config);
  expect_error("nofile", "nofile/adapter_model.safetensors: not found");
  // A tensor missing from the weights file.
  SafetensorsFile full(dir.file("good/adapter_model.safetensors"));
  std::vector<std::pair<std::string, torch::Tensor>> partial;
  for (const auto& [name, info] : full.tensors()) {
    if (name.find("layers.1.mlp.down_proj.lora_A") == std::string::npos) partial.emplace_back(name, full.load(name));
  }
  std::filesystem::create_directories(dir.file("missing"));
  write_safetensors(dir.file("missing/adapter_model.safetensors"), partial);
  dir.write("missing/adapter_config.json", good_config);
  expect_error("missing", "'base_model.model.model.layers.1.mlp.down_proj.lora_A.weight' is missing");
}

// Gradients with activation checkpointing equal the plain ones: full fine-tuning, and LoRA over frozen
// embeddings (where nothing upstream of the first layer requires grad) with adapter dropout on.
TEST(ActivationCheckpointing, SameGradientsAsPlainBackward) {
  for (int variant : {0, 1, 2}) {  // full fine-tuning, LoRA with dropout, full fine-tuning with smeared keys
    const bool lora = variant == 1;
    SCOPED_TRACE(lora ? "lora with dropout" : variant == 2 ? "smeared keys" : "full fine-tuning");
    std::vector<std::vector<torch::Tensor>> grads;
    for (bool checkpoint : {false, true}) {
      Transformer m = make_model(variant == 2 ? testing::smeared(tiny(true)) : tiny(true), 23);
      if (lora) {
        LoraSpec spec = all_targets(2);
        spec.dropout = 0.3;
        add_lora(*m, spec);
        randomise_adapters(*m, 24);
      }
      m->train();
      m->activation_checkpointing = checkpoint;
      torch::manual_seed(99);  // the same dropout masks in both runs
      torch::nn::functional::cross_entropy(m->forward(kIds, kMask).view({-1, m->config.vocab_size}), kIds.view({-1}))
          .backward();
      std::vector<torch::Tensor> g;
      for (auto& [name, p] : trainable_parameters(*m)) {
        EXPECT_TRUE(p.grad().defined()) << name << (checkpoint ? " (checkpointed)" : "");
        g.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
      }
      grads.push_back(g);
    }
    ASSERT_EQ(grads[0].size(), grads[1].size());
    double worst = 0;
    for (size_t i = 0; i < grads[0].size(); ++i)
      worst = std::max(worst, (grads[0][i] - grads[1][i]).abs().max().item<double>());
    EXPECT_LT(worst, 1e-6);
  }
}

}  // namespace
}  // namespace r2rec
