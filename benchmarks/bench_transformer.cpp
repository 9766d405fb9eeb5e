// Forward + backward tokens/s of r2rec's Llama/Qwen2 decoder against the same model written in
// PyTorch-Python (benchmarks/python/transformer_step.py, Debian's python3-torch) on the same shapes, threads
// and loss, measured in the same run; medians of --reps (5). Default shape = configs/defaults.yaml's model
// (d 256, 4 layers, 4 heads / 2 kv heads, SwiGLU 688, vocab 4096, tied, QKV bias), batch 4 x 256 tokens.
// usage: bench_transformer [--reps N] [--batch B] [--seq T] [--threads N]
// Measured 2026-11-26, quiet 2-vCPU VM, medians of 5: 1 thread 226.8 ms vs Python 235.5 ms (ratio 1.04);
// 2 threads 640.6 ms vs 531.6 ms (ratio 0.83). Runs next to other jobs swing from 0.17 to 2.1: rerun quiet.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "benchmarks/bench_util.h"
#include "core/model/transformer.h"
#include "core/runtime.h"

using namespace r2rec;

int main(int argc, char** argv) {
  tune_allocator();
  int reps = 5, B = 4, T = 256, threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--batch")) B = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--seq")) T = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
  }
  set_intra_op_threads(threads > 0 ? threads : torch::get_num_threads());  // sizes OpenBLAS's pool too
  threads = torch::get_num_threads();
  TransformerConfig c;  // the defaults mirror configs/defaults.yaml's model section
  c.qkv_bias = true;
  TransformerConfig one_block = c;
  one_block.attention_block = 0;  // the same model attending over the whole sequence at once
  torch::manual_seed(0);
  Transformer model(c);
  torch::manual_seed(0);
  Transformer whole(one_block);
  const torch::Tensor ids = torch::randint(c.vocab_size, {B, T});
  auto time_steps = [&](Transformer& m) {
    std::vector<double> t;
    for (int r = 0; r < reps + 1; ++r) {  // the first run warms up
      const auto t0 = std::chrono::steady_clock::now();
      torch::Tensor logits = m->forward(ids);
      torch::Tensor loss = torch::nn::functional::cross_entropy(logits.view({-1, c.vocab_size}), ids.view({-1}));
      loss.backward();
      for (auto& p : m->parameters()) p.mutable_grad().reset();
      if (r > 0) t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return t;
  };
  const std::vector<double> ours = time_steps(model), unblocked = time_steps(whole);
  const double mine = bench::median(ours);

  const std::string cmd = bench::python_command(threads) + R2REC_SOURCE_DIR +
                          "/benchmarks/python/transformer_step.py " + std::to_string(B) + " " + std::to_string(T) +
                          " " + std::to_string(c.hidden_size) + " " + std::to_string(c.num_layers) + " " +
                          std::to_string(c.num_heads) + " " + std::to_string(c.num_kv_heads) + " " +
                          std::to_string(c.intermediate_size) + " " + std::to_string(c.vocab_size) + " " +
                          std::to_string(reps) + " " + std::to_string(threads);
  double theirs = 0;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char line[256];
    while (std::fgets(line, sizeof(line), p)) std::sscanf(line, "median_seconds %lf", &theirs);
    pclose(p);
  }
  const double tokens = static_cast<double>(B) * T;
  std::printf("forward+backward, batch %d x %d tokens, %d threads, median of %d\n", B, T, threads, reps);
  std::printf("  r2rec (C++/libtorch):  %.1f ms  %.0f tokens/s\n", mine * 1e3, tokens / mine);
  std::printf("  r2rec, one attention block: %.1f ms  %.0f tokens/s (causal blocks of %lld: %.3fx)\n",
              bench::median(unblocked) * 1e3, tokens / bench::median(unblocked),
              static_cast<long long>(c.attention_block), bench::median(unblocked) / mine);
  if (theirs > 0) {
    std::printf("  PyTorch-Python:        %.1f ms  %.0f tokens/s\n", theirs * 1e3, tokens / theirs);
    std::printf("  ratio r2rec / python (tokens/s): %.3f\n", theirs / mine);
  } else {
    std::printf("  PyTorch-Python baseline unavailable (/usr/bin/python3 with torch)\n");
  }
  std::vector<double> rates;
  for (double t : ours) rates.push_back(tokens / t);
  bench::print_result("fwd_bwd_tokens_per_s", "tokens/s", rates, theirs > 0 ? tokens / theirs : NAN,
                      "forward+backward, batch " + std::to_string(B) + " x " + std::to_string(T) + ", " +
                          std::to_string(threads) + " thread(s), vs PyTorch-Python on the same padded batch");
  return 0;
}
