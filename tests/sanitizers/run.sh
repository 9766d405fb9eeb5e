#!/usr/bin/env bash
# The sanitizer runs of CI (docs/hardening.md), each a build in its own folder (ccache as the main build) of a test
# selection that fits CI's budget; any finding fails its test.
#
#   tests/sanitizers/run.sh address,undefined [BUILD_DIR]   (default build-asan)
#     AddressSanitizer + UndefinedBehaviorSanitizer over the tests that parse outside input or run r2rec's threads
#     without training: the YAML config loader and overrides, the metrics log, tokenizer files and encode/decode,
#     the dataset readers, HDF5 shards and manifests, the shard reader's prefetch thread, process groups, the
#     collectives, the trajectory channel and its decoder, the weight broadcast, the safetensors parser, every
#     stored fuzz input replayed through its target (test_fuzz_corpus); and training in process: the CPU kernels,
#     the chunked LM head, the transformer and generation, LoRA, SFT, GRPO, checkpoint state, data-parallel SFT and
#     GRPO over 2-3 ranks and split GRPO; buckets, gradient sync, splits, chains, item tokens, metrics and the
#     paired statistics (the binary's end-to-end tests and a few slow ones are left out: docs/hardening.md).
#   tests/sanitizers/run.sh thread [BUILD_DIR]              (default build-tsan)
#     ThreadSanitizer over the threaded parts: shard prefetch, the gradient-sync progress thread, the watchdog, the
#     trajectory channel, the metrics log, process groups and the collectives.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:?usage: tests/sanitizers/run.sh address,undefined|thread [BUILD_DIR]}
case "$mode" in
  address,undefined)
    build=${2:-build-asan}
    tests=(test_config test_metrics_log test_tokenizer test_sampler_dataset test_shards test_reader test_process
           test_collectives test_trajectory test_param_broadcast test_safetensors test_fuzz_corpus
           test_cpu_kernels test_lm_head_loss test_transformer test_generation test_lora test_sft test_grpo
           test_train_state test_data_parallel test_grpo_split test_buckets test_gradient_sync test_sampler_split
           test_sampler_chains test_item_tokens test_metrics test_stats) ;;
  thread)
    build=${2:-build-tsan}
    tests=(test_reader test_gradient_sync test_watchdog test_trajectory test_metrics_log test_process
           test_collectives) ;;
  *) echo "tests/sanitizers/run.sh: mode '$mode': expected address,undefined or thread" >&2; exit 2 ;;
esac
start=$(date +%s)
mkdir -p "$build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O1 \
      -DR2REC_SANITIZE="$mode" -DR2REC_BUILD_BENCHMARKS=OFF > "$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j2 --target "${tests[@]}"
built=$(date +%s)
regex="^($(IFS='|'; echo "${tests[*]}"))(_np[0-9]+)?\$"
ctest --test-dir "$build" --output-on-failure -j2 --timeout 900 -R "$regex"
echo "sanitizers ($mode): build $((built - start)) s, tests $(($(date +%s) - built)) s"
