// Candidate scoring in eval: score_continuations (one prefill of the prompt + reasoning, shared by the C
// candidates' answers through a forked KV cache) against the direct way, completion_logprobs over C rows of
// prefix + answer unshared (C full forwards of the prefix), on the same model and inputs; medians of --reps.
// Default: the default model shape, a 640-token prefix (an ML-100K prompt + trace), C = 20 answers of 3 tokens.
// usage: bench_score [--reps N] [--prefix P] [--candidates C] [--threads T]
// Measured 2026-11-26, 2-vCPU VM, 1 thread, medians of 3: shared 128.8 ms vs direct 2083.2 ms (ratio 16.2), scores
// equal within 3.8e-6.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "benchmarks/bench_util.h"
#include "core/model/generation.h"
#include "core/runtime.h"

using namespace r2rec;

int main(int argc, char** argv) {
  tune_allocator();
  int reps = 5, P = 640, C = 20, threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--prefix")) P = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--candidates")) C = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
  }
  set_intra_op_threads(threads > 0 ? threads : torch::get_num_threads());  // sizes OpenBLAS's pool too
  TransformerConfig c;
  torch::manual_seed(0);
  Transformer model(c);
  model->eval();
  const torch::Tensor ids = torch::randint(c.vocab_size, {P});
  const std::vector<int64_t> prefix(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + P);
  std::vector<std::vector<int64_t>> answers;
  for (int k = 0; k < C; ++k) answers.push_back({10 + k, 7, 9});
  auto time = [&](auto&& f) {
    std::vector<double> t;
    for (int r = 0; r < reps + 1; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      f();
      if (r > 0) t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return bench::median(t);
  };
  double worst = 0;
  const double shared = time([&] { score_continuations(*model, prefix, answers); });
  const double direct = time([&] {
                          torch::NoGradGuard g;
                          const torch::Tensor lp =
                              completion_logprobs(*model, std::vector<std::vector<int64_t>>(C, prefix), answers,
                                                  /*share_prompts=*/false);
                          const auto s = score_continuations(*model, prefix, answers);
                          for (int k = 0; k < C; ++k)
                            worst = std::max(worst, std::abs(lp[k].sum().item<double>() - s[k]));
                        }) -
                        shared;  // the direct way alone (the check's shared scoring subtracted)
  std::printf("candidate scoring, prefix %d tokens, %d candidates x 3 tokens, %d threads, median of %d\n", P, C,
              torch::get_num_threads(), reps);
  std::printf("  shared prefix (score_continuations): %.1f ms\n", shared * 1e3);
  std::printf("  direct (completion_logprobs, C rows): %.1f ms\n", direct * 1e3);
  std::printf("  ratio direct / shared: %.1f   (max |score difference| %.2g)\n", direct / shared, worst);
  return 0;
}
