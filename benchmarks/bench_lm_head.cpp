// The chunked LM head loss (core/model/lm_head_loss.h) against the unfused one it replaced in training
// (logits [n, V], cross_entropy, backward), forward + backward, on one thread, at vocabularies from ML-100K's
// to Amazon Games' with user tokens. Per size: median seconds per step of each, and the minor page faults and
// system CPU time per step (getrusage), since the unfused loss's blocks above glibc's mmap ceiling are mapped
// and zeroed afresh every step.
//
//   bench_lm_head [--reps N] [--positions N] [--hidden D] [--chunk ROWS] [--vocab V ...]
#include <sys/resource.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "benchmarks/bench_util.h"
#include "core/model/lm_head_loss.h"
#include "core/runtime.h"

namespace {

struct Usage {
  double sys_s;
  long minflt;
};

Usage usage() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return {static_cast<double>(u.ru_stime.tv_sec) + 1e-6 * static_cast<double>(u.ru_stime.tv_usec), u.ru_minflt};
}

struct Timing {
  std::vector<double> seconds;
  double sys_per_step = 0, faults_per_step = 0;
};

template <typename F>
Timing time_steps(int reps, F&& step) {
  step();  // warm-up: allocator and BLAS buffers
  Timing t;
  const Usage u0 = usage();
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    t.seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const Usage u1 = usage();
  t.sys_per_step = (u1.sys_s - u0.sys_s) / reps;
  t.faults_per_step = static_cast<double>(u1.minflt - u0.minflt) / reps;
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 7;
  int64_t n = 2048, d = 128, chunk = 0;  // chunk 0: lm_head_chunk_rows(V)  // pretraining's micro-batch: 16 rows x 128
                                         // tokens, the default model's width
  std::vector<int64_t> vocabs;
  for (int i = 1; i < argc; ++i) {
    const auto next = [&] {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_lm_head: %s needs a value\n", argv[i]);
        std::exit(2);
      }
      return std::atoll(argv[++i]);
    };
    if (!std::strcmp(argv[i], "--reps"))
      reps = static_cast<int>(next());
    else if (!std::strcmp(argv[i], "--positions"))
      n = next();
    else if (!std::strcmp(argv[i], "--hidden"))
      d = next();
    else if (!std::strcmp(argv[i], "--vocab"))
      vocabs.push_back(next());
    else if (!std::strcmp(argv[i], "--chunk"))
      chunk = next();
    else {
      std::fprintf(stderr,
                   "usage: bench_lm_head [--reps N] [--positions N] [--hidden D] [--chunk ROWS] [--vocab V ...]\n");
      return 2;
    }
  }
  // ML-100K, a synthetic 3.4k users x 3.8k items, Amazon Games (item tokens only), Amazon with user tokens.
  if (vocabs.empty()) vocabs = {3328, 7744, 18496, 67000};
  r2rec::tune_allocator();
  r2rec::set_intra_op_threads(1);  // and OpenBLAS's own pool, as every r2rec rank does
  for (const int64_t V : vocabs) {
    torch::manual_seed(1);
    const torch::Tensor h = (torch::randn({n, d})).requires_grad_(true);
    const torch::Tensor w = (torch::randn({V, d}) * 0.05).requires_grad_(true);
    const torch::Tensor t = torch::randint(V, {n}, torch::kLong), rw = torch::ones({n});
    const auto fused = [&] {
      r2rec::lm_head_nll(h, w, t, rw, chunk).backward();
      h.mutable_grad().reset(), w.mutable_grad().reset();
    };
    const auto unfused = [&] {
      const torch::Tensor logits = torch::matmul(h, w.t());
      (torch::nn::functional::cross_entropy(logits, t,
                                            torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone)) *
       rw)
          .sum()
          .backward();
      h.mutable_grad().reset(), w.mutable_grad().reset();
    };
    const Timing a = time_steps(reps, fused), b = time_steps(reps, unfused);
    std::printf("V %lld: fused %.4f s/step (sys %.4f s, %.0f minor faults), unfused %.4f s/step (sys %.4f s, %.0f)\n",
                static_cast<long long>(V), r2rec::bench::median(a.seconds), a.sys_per_step, a.faults_per_step,
                r2rec::bench::median(b.seconds), b.sys_per_step, b.faults_per_step);
    char what[256];
    std::snprintf(what, sizeof(what),
                  "LM head loss fwd+bwd, %lld positions x d %lld, V %lld, 1 thread: chunked vs [n, V] logits; ratio = "
                  "t(unfused) / t(chunked); minor faults/step %.0f vs %.0f",
                  static_cast<long long>(n), static_cast<long long>(d), static_cast<long long>(V), a.faults_per_step,
                  b.faults_per_step);
    // ratio printed as baseline / ours (above 1: the chunked head is faster): pass the inverse times.
    std::vector<double> speed;
    for (double s : a.seconds) speed.push_back(1.0 / s);
    r2rec::bench::print_result("lm_head_steps_per_s_V" + std::to_string(V), "steps/s", speed,
                               1.0 / r2rec::bench::median(b.seconds), what);
  }
  return 0;
}
