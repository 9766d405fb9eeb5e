// Checkpoint folders read back (trainers/lm/train_state.h): a whole one restores the weights and this rank's
// generator; a damaged or crafted one is skipped by newest_checkpoint and refused by load_train_state with a
// DataError naming the file. The crafted cases came out of the `checkpoint` fuzz target (tests/fuzz).
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/hash.h"
#include "core/model/lora.h"
#include "core/model/safetensors.h"
#include "tests/core/model/tiny_model.h"
#include "tests/test_support.h"
#include "trainers/lm/checkpoint_plan.h"
#include "trainers/lm/train_state.h"

namespace r2rec {
namespace {

std::string hash_of(const std::string& bytes) { return hex64(fnv1a_lanes(kFnvOffset, bytes.data(), bytes.size())); }

std::string generator_hex() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  const at::Tensor st = gen.get_state().contiguous();
  std::string s;
  static const char* d = "0123456789abcdef";
  for (int64_t i = 0; i < st.numel(); ++i) s += {d[st.data_ptr<uint8_t>()[i] >> 4], d[st.data_ptr<uint8_t>()[i] & 15]};
  return s;
}

// checkpoints/step-3 holding `model`'s weights, rng.json `rng`, the `more` files and a state.json listing every file
// with its true size and hash, plus `extra` entries as given.
std::string write_checkpoint(const testing::TempDir& tmp, TransformerImpl& model, const nlohmann::json& rng,
                             const nlohmann::json& extra = nlohmann::json::object(),
                             const std::map<std::string, std::string>& more = {}) {
  const std::string dir = tmp.file("checkpoints/step-3");
  std::filesystem::create_directories(dir);
  std::vector<std::pair<std::string, at::Tensor>> t;
  for (auto& [n, w] : trainable_parameters(model)) t.emplace_back(n, w.detach().contiguous());
  write_safetensors(dir + "/trainable.safetensors", t, {{"format", "pt"}});
  write_file_atomic(dir + "/rng.json", rng.dump());
  std::vector<std::string> listed = {"trainable.safetensors", "rng.json"};
  for (const auto& [rel, bytes] : more) write_file_atomic(dir + "/" + rel, bytes), listed.push_back(rel);
  nlohmann::json files = extra;
  for (const std::string& rel : listed) {
    const std::string bytes = read_file(dir + "/" + rel);
    files[rel] = {{"bytes", bytes.size()}, {"fnv1a", hash_of(bytes)}};
  }
  const nlohmann::json state = {{"stage", "sft"},           {"step", 3},     {"fingerprint", "f"}, {"world_size", 1},
                                {"record", {{"batch", 1}}}, {"files", files}};
  write_file_atomic(dir + "/state.json", state.dump());
  return dir;
}

std::string refusal(const std::string& dir, TransformerImpl& model, torch::optim::Optimizer* optimizer = nullptr) {
  try {
    load_train_state(dir, model, optimizer, 0);
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

TEST(TrainState, AWholeCheckpointRestoresTheWeightsAndThisRanksGenerator) {
  testing::TempDir tmp;
  torch::manual_seed(3);
  Transformer saved(testing::tiny(/*qwen=*/true));
  const std::string state = generator_hex();
  const double next = torch::rand({1}).item<double>();  // the draw after that state
  const std::string dir = write_checkpoint(tmp, *saved, {{"world_size", 1}, {"torch_cpu", {state}}});
  const auto found = newest_checkpoint(tmp.file("checkpoints"));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->step, 3);
  torch::manual_seed(99);
  Transformer loaded(testing::tiny(/*qwen=*/true));
  load_train_state(dir, *loaded, nullptr, 0);
  EXPECT_EQ(torch::rand({1}).item<double>(), next);
  for (size_t i = 0; i < saved->parameters().size(); ++i)
    EXPECT_TRUE(torch::equal(saved->parameters()[i], loaded->parameters()[i]));
}

TEST(TrainState, AListedFileOutsideTheFolderIsNotRead) {
  testing::TempDir tmp;
  Transformer model(testing::tiny(/*qwen=*/true));
  tmp.write("outside.txt", "not the checkpoint's");
  const std::string bytes = read_file(tmp.file("outside.txt"));
  // Its true size and hash: only the path gives it away.
  const nlohmann::json extra = {{"../../outside.txt", {{"bytes", bytes.size()}, {"fnv1a", hash_of(bytes)}}}};
  const std::string dir = write_checkpoint(tmp, *model, {{"world_size", 1}, {"torch_cpu", {generator_hex()}}}, extra);
  EXPECT_FALSE(newest_checkpoint(tmp.file("checkpoints")).has_value());
  EXPECT_NE(refusal(dir, *model).find("'../../outside.txt' is not a file of this checkpoint"), std::string::npos)
      << refusal(dir, *model);
}

TEST(TrainState, AGeneratorStateThatDoesNotFitIsRefusedNamingRngJson) {
  testing::TempDir tmp;
  Transformer model(testing::tiny(/*qwen=*/true));
  // Sealed in state.json, so only the contents can refuse it: before, libtorch's c10::Error ("internal error").
  std::string dir = write_checkpoint(tmp, *model, {{"world_size", 1}, {"torch_cpu", {"00ff"}}});
  EXPECT_NE(refusal(dir, *model).find("rng.json: rank 0's generator state does not fit"), std::string::npos)
      << refusal(dir, *model);
  dir = write_checkpoint(tmp, *model, {{"world_size", 1}, {"torch_cpu", 7}});
  EXPECT_NE(refusal(dir, *model).find("rng.json: torch_cpu is not a list"), std::string::npos) << refusal(dir, *model);
  dir = write_checkpoint(tmp, *model, {{"world_size", 1}});
  EXPECT_NE(refusal(dir, *model).find("rng.json: malformed"), std::string::npos) << refusal(dir, *model);
}

TEST(TrainState, ADamagedOptimizerArchiveIsRefusedNamingIt) {
  testing::TempDir tmp;
  Transformer model(testing::tiny(/*qwen=*/true));
  torch::optim::AdamW optimizer(model->parameters());
  // Sealed in state.json like the rest: before, libtorch's c10::Error escaped ("internal error").
  const std::string dir = write_checkpoint(tmp, *model, {{"world_size", 1}, {"torch_cpu", {generator_hex()}}},
                                           nlohmann::json::object(), {{"optimizer.pt", "PK\x03\x04 not an archive"}});
  EXPECT_NE(refusal(dir, *model, &optimizer).find("optimizer.pt: not an optimizer state for this model"),
            std::string::npos)
      << refusal(dir, *model, &optimizer);
}

}  // namespace
}  // namespace r2rec
