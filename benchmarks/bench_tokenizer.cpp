// Encoding throughput of the byte-level BPE tokenizer on real text: all ML-100K titles and the llama.cpp test
// vector inputs, concatenated and repeated to ~1 MB, encoded in one call. Baseline, measured in the same run:
// the same encoder with its per-piece BPE cache disabled (every piece is merged from bytes again).
// After the runs, the ratio of median MB/s (cached / uncached) is printed per tokenizer.
//
// Measured (2-core shared dev VM, Release, 5 repetitions of >= 0.5 s, medians, CPU time; MB = 1e6 bytes;
// two runs):
//   qwen3 (151k vocab, NFC):  cached 22.0 / 23.3 MB/s   uncached  6.7 /  7.8 MB/s   ratio 3.3x / 3.0x
//   gpt2  (50k vocab):        cached 46.8 / 50.8 MB/s   uncached  9.8 / 10.6 MB/s   ratio 4.8x / 4.8x
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "core/tokenizer/tokenizer.h"

namespace {

std::string data_dir() {
  const char* dir = std::getenv("R2REC_DATA_DIR");
  return dir && *dir ? dir : R2REC_DEFAULT_DATA_DIR;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// ~1 MB of real text: titles one per line plus the gold-vector inputs, repeated.
const std::string& corpus() {
  static const std::string text = [] {
    std::string once;
    std::istringstream items(slurp(data_dir() + "/ml-100k/u.item.utf8"));
    std::string line;
    while (std::getline(items, line)) {
      const size_t a = line.find('|'), b = line.find('|', a + 1);
      if (a != std::string::npos && b != std::string::npos) once += line.substr(a + 1, b - a - 1) + "\n";
    }
    once += slurp(data_dir() + "/tokenizers/test_vectors_llamacpp/ggml-vocab-qwen2.gguf.inp");
    if (once.size() < 1000) {
      std::cerr << "bench_tokenizer: no text under " << data_dir() << " (set R2REC_DATA_DIR)\n";
      std::exit(2);
    }
    std::string all;
    while (all.size() < 1'000'000) all += once;
    return all;
  }();
  return text;
}

void encode(benchmark::State& state, r2rec::Tokenizer* tok, bool cache) {
  r2rec::Tokenizer& t = *tok;
  t.set_cache_capacity(cache ? size_t{1} << 16 : 0);
  const std::string& text = corpus();
  size_t tokens = 0;
  for (auto _ : state) {
    std::vector<r2rec::TokenId> ids = t.encode(text);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
}

// Console output plus, at the end, median MB/s per benchmark and the cached/uncached ratio.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type == Run::RT_Aggregate && run.aggregate_name == "median") {
        median_mbs_[run.run_name.function_name] = run.counters.at("bytes_per_second") / 1e6;
      }
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    for (const char* name : {"qwen3", "gpt2"}) {
      const std::string cached = std::string("encode/") + name + "/cached",
                        plain = std::string("encode/") + name + "/uncached";
      if (!median_mbs_.count(cached) || !median_mbs_.count(plain)) continue;
      std::printf("%-6s median: cached %.2f MB/s, uncached %.2f MB/s, ratio %.2fx\n", name, median_mbs_[cached],
                  median_mbs_[plain], median_mbs_[cached] / median_mbs_[plain]);
    }
  }

 private:
  std::map<std::string, double> median_mbs_;
};

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = data_dir() + "/tokenizers";
  static r2rec::Tokenizer qwen = r2rec::Tokenizer::load(dir + "/qwen3/tokenizer.json.gz");
  static r2rec::Tokenizer gpt2 = r2rec::Tokenizer::load(dir + "/gpt2");
  for (const auto& [name, tok] : {std::pair<const char*, r2rec::Tokenizer*>{"qwen3", &qwen}, {"gpt2", &gpt2}}) {
    for (const bool cache : {true, false}) {
      benchmark::RegisterBenchmark((std::string("encode/") + name + (cache ? "/cached" : "/uncached")).c_str(), encode,
                                   tok, cache)
          ->Unit(benchmark::kMillisecond)
          ->Repetitions(5)
          ->ReportAggregatesOnly(true)
          ->MinTime(0.5);
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
