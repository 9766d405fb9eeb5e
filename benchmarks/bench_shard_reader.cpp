// Shard reading rate against (a) reading the same shards raw, without the reader's index, shares, shuffle and
// prefetch, and (b) the rate one training step of the default model consumes examples — so the ratio says
// how far ahead of the trainer the data path runs. Both measured in the same run; medians of --reps (5).
//
// The training-step rate is a proxy until the model lands: forward + backward through linear layers of the
// default config's shapes (4 layers; hidden 256; q/o 256x256, k/v 256x128; SwiGLU 256x688, 688x256; a 4096-
// token output projection) on micro_batch x seq tokens, i.e. the same matmul FLOPs as the real decoder minus
// attention scores. Usage: bench_shard_reader [--reps N] [--seq 512] [--micro-batch 4]
// Measured 2026-11-26 (2-core dev VM, Release, ML-100K 6,601 records in 4 shards): see the issue note.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <vector>

#include "benchmarks/bench_util.h"
#include "core/config.h"
#include "sampler/prepare.h"
#include "sampler/shard_reader.h"

namespace fs = std::filesystem;
using namespace r2rec;
using Clock = std::chrono::steady_clock;

namespace {
using r2rec::bench::median;
double seconds(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

int main(int argc, char** argv) {
  int reps = 5, seq = 512, micro = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--seq")) seq = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--micro-batch")) micro = std::atoi(argv[i + 1]);
  }
  const char* data = std::getenv("R2REC_DATA_DIR");
  const std::string data_dir = data && *data ? data : R2REC_DEFAULT_DATA_DIR;
  const fs::path dir = fs::temp_directory_path() / ("r2rec-bench-reader-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const Config config = load_config("", {"data.path=" + data_dir + "/ml-100k", "sampler.output_dir=" + dir.string()});
  const Manifest manifest = prepare_in_process(config, dir.string());
  const int32_t items = static_cast<int32_t>(manifest.num_items), users = static_cast<int32_t>(manifest.num_users);

  // (1) Through the reader: open (verifies checksums), then every record with its chains, shuffled.
  std::vector<double> reader_rate, raw_rate, step_rate;
  int64_t records = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t = Clock::now();
    ReaderOptions o;
    o.dir = dir.string();
    o.seed = static_cast<uint64_t>(r);
    ShardReader reader(o);
    Example ex;
    ChainBuffer chains;
    records = 0;
    while (reader.next(&ex, &chains)) {
      chains.clear();
      ++records;
    }
    reader_rate.push_back(records / seconds(t));
  }
  // (2) Raw: read each shard's columns and materialise every example, in file order.
  for (int r = 0; r < reps; ++r) {
    const auto t = Clock::now();
    int64_t n = 0;
    for (const auto& f : manifest.shards) {
      const ExampleColumns cols = read_shard((dir / f.name).string(), nullptr, items, users);
      ChainBuffer chains;
      for (int64_t e = 0; e < cols.size(); ++e, ++n) {
        Example ex = cols.example(e);
        chains.clear();
        cols.copy_chains(e, &chains);
      }
    }
    raw_rate.push_back(n / seconds(t));
  }
  // (3) Training-step proxy of the default model shape.
  torch::manual_seed(0);
  const int64_t H = 256, KV = 128, FF = 688, V = 4096, L = 4;
  std::vector<torch::Tensor> weights;
  auto W = [&](int64_t in, int64_t out) {
    weights.push_back((torch::randn({in, out}) * 0.02).requires_grad_());
    return weights.back();
  };
  struct Layer {
    torch::Tensor q, k, v, o, gate, up, down;
  };
  std::vector<Layer> layers;
  for (int l = 0; l < L; ++l) layers.push_back({W(H, H), W(H, KV), W(H, KV), W(H, H), W(H, FF), W(H, FF), W(FF, H)});
  const torch::Tensor head = W(H, V);
  const torch::Tensor x0 = torch::randn({micro * seq, H});
  const torch::Tensor labels = torch::randint(V, {micro * seq});
  for (int r = 0; r < reps + 1; ++r) {  // first run warms up
    const auto t = Clock::now();
    torch::Tensor x = x0;
    for (const Layer& ly : layers) {
      torch::Tensor q = x.mm(ly.q), k = x.mm(ly.k), v = x.mm(ly.v);
      x = x + (q + torch::cat({k, v}, 1)).mm(ly.o);
      x = x + (torch::silu(x.mm(ly.gate)) * x.mm(ly.up)).mm(ly.down);
    }
    torch::Tensor loss = torch::nn::functional::cross_entropy(x.mm(head), labels);
    loss.backward();
    for (auto& w : weights) w.mutable_grad().reset();
    if (r > 0) step_rate.push_back(micro / seconds(t));
  }
  fs::remove_all(dir);

  const double reader = median(reader_rate), raw = median(raw_rate), step = median(step_rate);
  std::cout << "records per epoch: " << records << " (ML-100K, 4 shards, with chains)\n"
            << "reader (open + verify + shuffled shares + prefetch): " << reader << " records/s (median of " << reps
            << ")\n"
            << "raw shard reads (no reader):                          " << raw << " records/s\n"
            << "training step proxy (micro_batch " << micro << " x seq " << seq << ", " << at::get_num_threads()
            << " threads): " << step << " examples/s\n"
            << "ratio reader / raw: " << reader / raw << "\n"
            << "ratio reader / training consumption: " << reader / step << "\n";
  bench::print_result("shard_read_headroom", "records/s", reader_rate, step,
                      "the shard reader (verify, shuffled shares, prefetch) vs the rate a training step of the "
                      "default model consumes examples; ratio = headroom");
  return 0;
}
