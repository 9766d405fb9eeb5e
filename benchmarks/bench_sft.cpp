// The real SFT loop (trainers/lm/sft.h train_sft: r2rec's length-sorted micro-batches, logits only where the loss
// looks, gradients summed by the GradientSynchronizer) on a run directory's ML-100K traces, against the same
// model, sequences and batch taken the Hugging-Face way in PyTorch-Python (benchmarks/python/sft_step.py: shuffled
// micro-batches right-padded to their longest, logits everywhere, masked loss), measured in the same run.
// The model is the run's shape (config.yaml), freshly initialised; the tokenizer the run's (sft/model).
//   bench_sft --run-dir D [--steps N] [--per-rank-batch B] [--threads T] [--python] [--pack]
//   mpirun -np 2 bench_sft --run-dir D ...   (weak scaling: the same per-rank batch on 2 ranks)
// Prints per-step figures and RESULT lines (benchmarks/run_all.sh): sft_tokens_per_s (1 rank, with --python),
// sft_step_s_np<W> (the step time at W ranks, for weak_scaling_2); with --pack (sft.packing) named *_packed.
// The first step warms up and is not counted.
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "benchmarks/bench_util.h"
#include "core/config.h"
#include "core/runtime.h"
#include "core/tokenizer/tokenizer.h"
#include "distributed/communicator.h"
#include "distributed/process.h"
#include "trainers/lm/model_folder.h"
#include "trainers/lm/sft.h"
#include "trainers/task/traces.h"

using namespace r2rec;

int main(int argc, char** argv) {
  tune_allocator();
  MpiSession mpi(&argc, &argv);
  const int rank = mpi.info().rank, W = mpi.info().world_size;
  std::string run_dir;
  int steps = 8, per_rank = 16, threads = 1;
  bool python = false, pack = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--run-dir") run_dir = v, ++i;
    if (a == "--steps") steps = std::atoi(v), ++i;
    if (a == "--per-rank-batch") per_rank = std::atoi(v), ++i;
    if (a == "--threads") threads = std::atoi(v), ++i;
    if (a == "--python") python = true;
    if (a == "--pack") pack = true;
  }
  if (run_dir.empty()) {
    if (rank == 0) std::fprintf(stderr, "bench_sft: --run-dir DIR (a run with traces/ and sft/model) is required\n");
    return 2;
  }
  set_intra_op_threads(threads);
  Config c = load_config(run_dir + "/config.yaml", {"run.dir=" + run_dir});
  const Tokenizer tok = Tokenizer::load(run_dir + "/sft/model");
  const TraceSet traces = read_traces(run_dir + "/traces/traces.h5");
  c.sft.batch_size = static_cast<int64_t>(per_rank) * W;
  c.sft.micro_batch_size = std::min<int64_t>(c.sft.micro_batch_size, per_rank);
  c.sft.max_steps = steps + 1;
  c.sft.warmup_steps = 1;
  c.sft.packing = pack;
  const std::string suffix = pack ? "_packed" : "";
  torch::manual_seed(0);
  Transformer model = build_model(c, tok.vocab_size());
  DataParallelOptions options;
  options.timeout_s = 600;
  options.bucket_mb = c.distributed.bucket_mb;
  const DataParallelGroup group = DataParallelGroup::world(options);
  std::vector<double> step_s, rates;
  double last_s = 0;
  int64_t last_tokens = 0;
  train_sft(*model, c, traces, tok, group, [&](const LmStep& s) {
    if (s.step > 0) {
      step_s.push_back(s.seconds - last_s);
      rates.push_back(static_cast<double>(s.tokens - last_tokens) / (s.seconds - last_s));
    }
    last_s = s.seconds;
    last_tokens = s.tokens;
  });
  double py = NAN;
  if (python && rank == 0 && W == 1) {
    const std::vector<LmSequence> seqs = sft_sequences(c, traces, tok);
    const std::string file = run_dir + "/bench_sft_sequences.bin";
    {
      std::ofstream f(file, std::ios::binary);
      const int64_t n = static_cast<int64_t>(seqs.size());
      f.write(reinterpret_cast<const char*>(&n), 8);
      for (const LmSequence& q : seqs) {
        const int64_t len = static_cast<int64_t>(q.ids.size());
        f.write(reinterpret_cast<const char*>(&len), 8);
        f.write(reinterpret_cast<const char*>(&q.loss_from), 8);
        f.write(reinterpret_cast<const char*>(q.ids.data()), 8 * len);
        std::vector<float> w = q.weights.empty() ? std::vector<float>(q.ids.size(), 1.0f) : q.weights;
        f.write(reinterpret_cast<const char*>(w.data()), 4 * len);
      }
    }
    const TransformerConfig& m = model->config;
    const std::string cmd =
        bench::python_command(threads) + std::string(R2REC_SOURCE_DIR) + "/benchmarks/python/sft_step.py " + file +
        " " + std::to_string(c.sft.batch_size) + " " + std::to_string(c.sft.micro_batch_size) + " " +
        std::to_string(steps + 1) + " " + std::to_string(m.hidden_size) + " " + std::to_string(m.num_layers) + " " +
        std::to_string(m.num_heads) + " " + std::to_string(m.num_kv_heads) + " " + std::to_string(m.intermediate_size) +
        " " + std::to_string(m.vocab_size) + " " + (m.qkv_bias ? "1" : "0") + " " +
        std::to_string(c.sft.learning_rate) + " " + std::to_string(threads);
    std::vector<double> theirs;
    if (FILE* p = popen(cmd.c_str(), "r")) {
      char line[256];
      double v = 0;
      while (std::fgets(line, sizeof(line), p))
        if (std::sscanf(line, "step_tokens_per_s %lf", &v) == 1) theirs.push_back(v);
      pclose(p);
    }
    std::remove(file.c_str());
    if (!theirs.empty()) py = bench::median(theirs);
  }
  if (rank == 0) {
    std::printf("sft: %d rank(s) x %d sequences per step, micro-batch %lld, %d thread(s), %zu timed steps\n", W,
                per_rank, static_cast<long long>(c.sft.micro_batch_size), threads, step_s.size());
    std::printf("  r2rec: median step %.3f s, %.0f tokens/s\n", bench::median(step_s), bench::median(rates));
    if (std::isfinite(py)) std::printf("  PyTorch-Python (HF-style padded): %.0f tokens/s\n", py);
    if (python && W == 1)
      bench::print_result("sft_tokens_per_s" + suffix, "tokens/s", rates, py,
                          std::string("the SFT loop") + (pack ? " (sft.packing)" : "") + " on ML-100K traces, " +
                              std::to_string(per_rank) + " sequences/step, 1 rank x " + std::to_string(threads) +
                              " thread(s), vs PyTorch-Python with HF-style padded batches");
    bench::print_result(
        "sft_step_s_np" + std::to_string(W) + suffix, "s", step_s, NAN,
        "one SFT step, " + std::to_string(per_rank) + " sequences per rank, " + std::to_string(W) + " rank(s)");
  }
  return 0;
}
