// Batched KV-cached generation of r2rec's engine (core/generation.h) against the same model written in
// PyTorch-Python (benchmarks/python/decode_step.py, Debian's python3-torch) on the same shapes and threads,
// measured in the same run; medians of --reps. GRPO-shaped with --group G: B prompts x G completions each. The
// engine shares each prompt's prefill and cached keys/values among its G rows (SamplingOptions::share_prompts);
// the Python loop does what Hugging Face generate(num_return_sequences=G) does, repeating every prompt G times
// before a plain prefill and decode. Both prefill, then decode N tokens greedily, gathering each chosen token's
// log-prob; prefill and decode are timed apart. The engine unshared (every row prefilled) is measured too, and a
// sampled run (temperature 1, top-p 0.95). The engine also does what the Python loop does not (per-row
// sampling/stop bookkeeping on the CPU, a live-row mask). Last, greedy decode with the look-up copy
// (model.copy_lookup 4, the same weights) against the same model without it.
// Default shape = configs/defaults.yaml's model (d 256, 4 layers, 4 heads / 2 kv heads, SwiGLU 688, vocab
// 4096, tied, QKV bias); batch 8 x 64-token prompts, 64 new tokens, group 1.
// usage: bench_generate [--reps N] [--batch B] [--group G] [--prompt P] [--new N] [--threads T] [--engine-only 1]
// --engine-only 1 runs the engine's greedy generation alone (no baseline, no other modes): for perf record.
// Measured 2026-12-02 (an AVX-512 2-vCPU Xeon VM), 1 thread (OpenBLAS pool 1 on both sides), medians of 5,
// 8 prompts x 8 completions x 384 + 64, with the CPU decode kernels (core/model/cpu_kernels.h): decode 8978
// tokens/s shared, 4255 unshared, Python 4011 (ratio 2.24; 1.68 before the kernels on that VM); prefill 12.9x
// Python; sampled decode 6156 tokens/s. What is left of a step is mostly the linear layers' and LM head's
// products (the sgemm both sides run). Learner pass: shared 1976 ms vs unshared 8391 (4.25x).
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "benchmarks/bench_util.h"
#include "core/model/generation.h"
#include "core/runtime.h"

using namespace r2rec;

int main(int argc, char** argv) {
  tune_allocator();
  int reps = 5, B = 8, G = 1, P = 64, N = 64, threads = 0, engine_only = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--batch")) B = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--group")) G = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--prompt")) P = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--new")) N = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--engine-only")) engine_only = std::atoi(argv[i + 1]);
  }
  set_intra_op_threads(threads > 0 ? threads : torch::get_num_threads());  // sizes OpenBLAS's pool too
  threads = torch::get_num_threads();
  TransformerConfig c;
  c.qkv_bias = true;
  torch::manual_seed(0);
  Transformer model(c);
  const torch::Tensor prompts = torch::randint(c.vocab_size, {B, P});
  std::vector<GenerationRequest> requests;
  for (int b = 0; b < B; ++b) {
    const torch::Tensor row = prompts[b].contiguous();
    for (int g = 0; g < G; ++g) {
      requests.push_back({std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + P),
                          static_cast<uint64_t>(b * G + g), nullptr});
    }
  }
  auto run = [&](double temperature, double top_p, std::vector<double>& prefill, std::vector<double>& decode,
                 bool share = true, TransformerImpl* which = nullptr) {
    SamplingOptions o;
    o.max_new_tokens = N;
    o.temperature = temperature;
    o.top_p = top_p;
    o.share_prompts = share;
    for (int r = 0; r < reps + 1; ++r) {  // the first run warms up
      GenerationStats stats;
      generate(which ? *which : *model, requests, o, {}, 0, &stats);
      if (r > 0) prefill.push_back(stats.prefill_seconds), decode.push_back(stats.decode_seconds);
    }
  };
  std::vector<double> greedy_prefill, greedy_decode, sampled_prefill, sampled_decode, plain_prefill, plain_decode;
  run(0.0, 1.0, greedy_prefill, greedy_decode);
  if (engine_only) {
    std::printf("engine greedy, %d x %d x %d + %d: prefill %.1f ms, decode %.1f ms (%.0f tokens/s), median of %d\n", B,
                G, P, N, bench::median(greedy_prefill) * 1e3, bench::median(greedy_decode) * 1e3,
                static_cast<double>(B) * G * (N - 1) / bench::median(greedy_decode), reps);
    return 0;
  }
  run(1.0, 0.95, sampled_prefill, sampled_decode);
  if (G > 1) run(0.0, 1.0, plain_prefill, plain_decode, /*share=*/false);
  const double pre = bench::median(greedy_prefill), dec = bench::median(greedy_decode);

  const std::string cmd = bench::python_command(threads) + R2REC_SOURCE_DIR + "/benchmarks/python/decode_step.py " +
                          std::to_string(B) + " " + std::to_string(P) + " " + std::to_string(N) + " " +
                          std::to_string(c.hidden_size) + " " + std::to_string(c.num_layers) + " " +
                          std::to_string(c.num_heads) + " " + std::to_string(c.num_kv_heads) + " " +
                          std::to_string(c.intermediate_size) + " " + std::to_string(c.vocab_size) + " " +
                          std::to_string(reps) + " " + std::to_string(threads) + " " + std::to_string(G);
  double py_pre = 0, py_dec = 0;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char line[256];
    while (std::fgets(line, sizeof(line), p)) {
      std::sscanf(line, "median_prefill_seconds %lf", &py_pre);
      std::sscanf(line, "median_decode_seconds %lf", &py_dec);
    }
    pclose(p);
  }
  // Tokens/s count every row's prompt tokens (what a row-by-row prefill computes) and generated tokens.
  const double rows = static_cast<double>(B) * G, decoded = rows * (N - 1), prefilled = rows * P;
  std::printf(
      "generation, %d prompts x %d completions, prompts of %d tokens, %d new tokens, %d threads, median of %d\n", B, G,
      P, N, threads, reps);
  std::printf("  r2rec greedy:    prefill %.1f ms (%.0f tokens/s), decode %.1f ms (%.0f tokens/s)%s\n", pre * 1e3,
              prefilled / pre, dec * 1e3, decoded / dec, G > 1 ? " [prompts shared by their group]" : "");
  if (G > 1) {
    std::printf(
        "  r2rec unshared:  prefill %.1f ms (%.0f tokens/s), decode %.1f ms (%.0f tokens/s) [every row prefilled]\n",
        bench::median(plain_prefill) * 1e3, prefilled / bench::median(plain_prefill), bench::median(plain_decode) * 1e3,
        decoded / bench::median(plain_decode));
  }
  std::printf("  r2rec sampled:   prefill %.1f ms, decode %.1f ms (%.0f tokens/s) [temperature 1, top-p 0.95]\n",
              bench::median(sampled_prefill) * 1e3, bench::median(sampled_decode) * 1e3,
              decoded / bench::median(sampled_decode));
  if (py_dec > 0) {
    std::printf("  PyTorch-Python:  prefill %.1f ms (%.0f tokens/s), decode %.1f ms (%.0f tokens/s)\n", py_pre * 1e3,
                prefilled / py_pre, py_dec * 1e3, decoded / py_dec);
    std::printf("  ratio r2rec / python (tokens/s): decode %.3f, prefill %.3f\n", py_dec / dec, py_pre / pre);
  } else {
    std::printf("  PyTorch-Python baseline unavailable (/usr/bin/python3 with torch)\n");
  }
  std::vector<double> rates;
  for (double t : greedy_decode) rates.push_back(decoded / t);
  const std::string shape = std::to_string(B) + " prompts x " + std::to_string(G) + " completions, " +
                            std::to_string(P) + "-token prompts + " + std::to_string(N) + " new, " +
                            std::to_string(threads) + " thread(s)";
  bench::print_result("decode_tokens_per_s", "tokens/s", rates, py_dec > 0 ? decoded / py_dec : NAN,
                      "greedy KV-cache decode, " + shape + ", vs a PyTorch-Python KV-cache loop (prompts repeated)");
  std::vector<double> totals;  // a whole rollout: every row's prompt and completion per second of prefill + decode
  for (size_t r = 0; r < greedy_decode.size(); ++r)
    totals.push_back((prefilled + decoded) / (greedy_prefill[r] + greedy_decode[r]));
  bench::print_result(
      "generate_tokens_per_s", "tokens/s", totals, py_dec > 0 ? (prefilled + decoded) / (py_pre + py_dec) : NAN,
      "prefill + greedy decode (prompt and new tokens of every row), " + shape + ", vs the same PyTorch-Python loop");
  {
    // The look-up copy (model.copy_lookup, core/model/copy_lookup.h): the same weights with the copy on, greedy; its
    // cost is the per-row scan of prompt + completion each step and the boost of the proposed logits.
    TransformerConfig cc = c;
    cc.copy_lookup = 4;
    Transformer copying(cc);
    torch::NoGradGuard no_grad;
    auto copy_params = copying->named_parameters();  // the plain model's weights; the copy gate keeps its init
    for (const auto& p : model->named_parameters()) copy_params[p.key()].copy_(p.value());
    std::vector<double> copy_prefill, copy_decode;
    run(0.0, 1.0, copy_prefill, copy_decode, true, copying.get());
    std::printf("  r2rec greedy with the look-up copy: decode %.1f ms (%.0f tokens/s), %.3f of plain\n",
                bench::median(copy_decode) * 1e3, decoded / bench::median(copy_decode),
                dec / bench::median(copy_decode));
    std::vector<double> copy_rates;
    for (double t : copy_decode) copy_rates.push_back(decoded / t);
    bench::print_result("decode_copy_lookup_tokens_per_s", "tokens/s", copy_rates, decoded / dec,
                        "greedy decode with model.copy_lookup 4, " + shape + ", vs the same model without it");
  }
  if (G > 1) {
    // The learner's pass over the same groups: forward + backward of the teacher-forced log-probs of every row's
    // completion (N tokens), each prompt run once for its G rows vs every row's prompt run again.
    std::vector<std::vector<int64_t>> prompt_rows, completion_rows;
    for (const auto& r : requests) {
      prompt_rows.push_back(r.prompt);
      completion_rows.push_back(std::vector<int64_t>(static_cast<size_t>(N), 7));
    }
    auto learner_pass = [&](bool share) {
      std::vector<double> t;
      for (int r = 0; r < reps + 1; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        completion_logprobs(*model, prompt_rows, completion_rows, share).sum().backward();
        for (auto& p : model->parameters()) p.mutable_grad().reset();
        if (r > 0) t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      return t;
    };
    const std::vector<double> shared_pass = learner_pass(true), plain_pass = learner_pass(false);
    std::printf(
        "  learner pass (teacher-forced log-probs, forward + backward): shared prompts %.1f ms, unshared %.1f ms "
        "(%.2fx)\n",
        bench::median(shared_pass) * 1e3, bench::median(plain_pass) * 1e3,
        bench::median(plain_pass) / bench::median(shared_pass));
    std::vector<double> speedups;
    for (double t : shared_pass) speedups.push_back(bench::median(plain_pass) / t);
    bench::print_result("learner_shared_prompt_speedup", "x", speedups, 1.0,
                        "GRPO learner pass (completion_logprobs forward+backward), " + shape +
                            ": each prompt once per group vs every row; ratio = t(unshared) / t(shared)");
  }
  return 0;
}
