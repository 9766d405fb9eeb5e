// safetensors: bit-exact round trips for every float dtype, sharded checkpoints with an index, a file written
// by another program (Python + numpy, bytes assembled by hand from the format spec), and every damage case
// reported as one DataError naming the file and tensor.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/model/safetensors.h"
#include "tests/test_support.h"

namespace r2rec {
namespace {
namespace fs = std::filesystem;
using testing::TempDir;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

bool bit_equal(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() &&
         (a.numel() == 0 ||  // an empty tensor has no data pointer to compare
          std::memcmp(a.contiguous().data_ptr(), b.contiguous().data_ptr(), a.numel() * a.element_size()) == 0);
}

std::vector<std::pair<std::string, at::Tensor>> sample_tensors() {
  at::manual_seed(3);
  return {{"model.embed_tokens.weight", at::randn({17, 8})},
          {"model.layers.0.self_attn.q_proj.weight", at::randn({8, 8}).to(at::kBFloat16)},
          {"model.layers.0.mlp.up_proj.weight", at::randn({12, 8}).to(at::kHalf)},
          {"model.norm.weight", at::randn({8}).to(at::kDouble)},
          {"position_ids", at::arange(5, at::kLong)},
          {"scalar", at::scalar_tensor(2.5)},
          {"empty", at::zeros({0, 3})}};
}

TEST(Safetensors, WriteReadIsBitExact) {
  TempDir dir;
  const auto tensors = sample_tensors();
  write_safetensors(dir.file("m.safetensors"), tensors, {{"format", "pt"}});
  SafetensorsFile f(dir.file("m.safetensors"));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.tensors().size(), tensors.size());
  for (const auto& [name, t] : tensors) EXPECT_TRUE(bit_equal(f.load(name), t)) << name;
  EXPECT_TRUE(
      at::allclose(f.load_f32("model.layers.0.self_attn.q_proj.weight", {8, 8}), tensors[1].second.to(at::kFloat)));
  // Data buffer starts 8-byte aligned.
  std::ifstream in(dir.file("m.safetensors"), std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);
}

TEST(Safetensors, ShardedCheckpointWithIndex) {
  TempDir dir;
  const auto tensors = sample_tensors();
  write_safetensors_checkpoint(dir.path(), tensors, /*max_shard_bytes=*/600);
  EXPECT_TRUE(fs::exists(dir.file("model.safetensors.index.json")));
  EXPECT_TRUE(fs::exists(dir.file("model-00002-of-00002.safetensors")));
  SafetensorsCheckpoint ckpt(dir.path());
  EXPECT_EQ(ckpt.names().size(), tensors.size());
  for (const auto& [name, t] : tensors) EXPECT_TRUE(bit_equal(ckpt.load(name), t)) << name;
  // A small model fits one file, no index.
  TempDir one;
  write_safetensors_checkpoint(one.path(), tensors, 1 << 30);
  EXPECT_TRUE(fs::exists(one.file("model.safetensors")));
  EXPECT_FALSE(fs::exists(one.file("model.safetensors.index.json")));
  EXPECT_TRUE(bit_equal(SafetensorsCheckpoint(one.path()).load("scalar"), tensors[5].second));
}

TEST(Safetensors, ReadsAFileWrittenByPython) {
  TempDir dir;
  const std::string path = dir.file("py.safetensors");
  const std::string script =
      "import json, struct, sys, numpy as np\n"
      "a = np.arange(6, dtype='<f4').reshape(2, 3) * 0.5\n"
      "b = (np.arange(4, dtype='<f4') - 1.5).astype('<f2')\n"
      "c = np.array([[1, -2], [3, 4]], dtype='<i8')\n"
      "hdr = {'a': {'dtype': 'F32', 'shape': [2, 3], 'data_offsets': [0, 24]},\n"
      "       'b': {'dtype': 'F16', 'shape': [4], 'data_offsets': [24, 32]},\n"
      "       'c': {'dtype': 'I64', 'shape': [2, 2], 'data_offsets': [32, 64]},\n"
      "       '__metadata__': {'by': 'python'}}\n"
      "h = json.dumps(hdr).encode()\n"
      "open(sys.argv[1], 'wb').write(struct.pack('<Q', len(h)) + h + a.tobytes() + b.tobytes() + c.tobytes())\n";
  const auto r = testing::run_command({"/usr/bin/python3", "-c", script, path});
  if (r.exit_code != 0) GTEST_SKIP() << "no /usr/bin/python3 with numpy: " << r.err;
  SafetensorsFile f(path);
  EXPECT_EQ(f.metadata().at("by"), "python");
  EXPECT_TRUE(at::equal(f.load("a"), at::arange(6, at::kFloat).reshape({2, 3}) * 0.5));
  EXPECT_TRUE(at::equal(f.load("b"), (at::arange(4, at::kFloat) - 1.5).to(at::kHalf)));
  EXPECT_TRUE(at::equal(f.load("c"), at::tensor({1, -2, 3, 4}, at::kLong).reshape({2, 2})));
}

TEST(Safetensors, DamageIsNamed) {
  TempDir dir;
  const std::string good = dir.file("good.safetensors");
  write_safetensors(good, sample_tensors());
  const std::string bytes = testing::run_command({"cat", good}).out;

  const std::string truncated = dir.write("truncated.safetensors", bytes.substr(0, bytes.size() - 10));
  std::string msg = error_of([&] { SafetensorsFile f(truncated); });
  EXPECT_NE(msg.find(truncated), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;

  const std::string tiny = dir.write("tiny.safetensors", "abc");
  EXPECT_NE(error_of([&] { SafetensorsFile f(tiny); }).find("truncated"), std::string::npos);

  std::string huge = bytes;
  huge[6] = '\x7f';  // header size far beyond the file
  const std::string bad_size = dir.write("size.safetensors", huge);
  EXPECT_NE(error_of([&] { SafetensorsFile f(bad_size); }).find("header size"), std::string::npos);

  auto with_header = [&](const std::string& name, const std::string& json, size_t data_bytes) {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((json.size() >> (8 * i)) & 0xff);
    return dir.write(name, out + json + std::string(data_bytes, '\0'));
  };
  EXPECT_NE(error_of([&] { SafetensorsFile f(with_header("j.safetensors", "{not json", 0)); }).find("not valid JSON"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] {
        SafetensorsFile f(with_header("d.safetensors", R"({"w":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}})", 4));
      }).find("unsupported dtype Q7"),
      std::string::npos);
  msg = error_of([&] {
    SafetensorsFile f(with_header("s.safetensors", R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", 16));
  });
  EXPECT_NE(msg.find("tensor 'w'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("needs 16 bytes"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] {
              SafetensorsFile f(with_header("o.safetensors",
                                            R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                            12));
            }).find("overlap"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              SafetensorsFile f(
                  with_header("n.safetensors", R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4));
            }).find("negative"),
            std::string::npos);

  SafetensorsFile f(good);
  msg = error_of([&] { f.load_f32("model.norm.weight", {9}); });
  EXPECT_NE(msg.find("'model.norm.weight' has shape [8], the model needs [9]"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { f.load_f32("position_ids", {5}); }).find("needs a float"), std::string::npos);
  EXPECT_NE(error_of([&] { f.load("lm_head.weight"); }).find("no tensor 'lm_head.weight'"), std::string::npos);
  TempDir none;
  EXPECT_NE(error_of([&] { SafetensorsCheckpoint c(none.path()); }).find("no model.safetensors"), std::string::npos);
}

TEST(Safetensors, IndexListingAMissingTensorIsNamed) {
  TempDir dir;
  write_safetensors_checkpoint(dir.path(), sample_tensors(), 600);
  const std::string index = dir.file("model.safetensors.index.json");
  std::string text = testing::run_command({"cat", index}).out;
  text.replace(text.find("\"scalar\""), 8, "\"ghost\"");
  dir.write("model.safetensors.index.json", text);
  const std::string msg = error_of([&] { SafetensorsCheckpoint c(dir.path()); });
  EXPECT_NE(msg.find("no tensor 'ghost'"), std::string::npos) << msg;
}

}  // namespace
}  // namespace r2rec
