#!/usr/bin/env bash
# The sanitizer runs of CI (docs/hardening.md), each a build in its own folder (ccache as the main build) of a test
# selection that fits CI's budget; any finding fails its test.
#
#   tests/sanitizers/run.sh address,undefined [BUILD_DIR]   (default build-asan)
#     AddressSanitizer + UndefinedBehaviorSanitizer over every test but those labelled slow (>= 60 s in the main
#     run, or minutes of CPU instrumented: cmake/R2recTesting.cmake), gpu, or format: the parsers of outside input
#     (config, tokenizer files, datasets, shards, manifests, safetensors, checkpoint state, every stored fuzz input),
#     r2rec's threads (shard prefetch, gradient-sync progress, trajectory channel, metrics log), the collectives over
#     1-4 ranks, training in process (CPU kernels, chunked head, transformer, generation, LoRA, SFT, GRPO,
#     data-parallel and split GRPO over 2-3 ranks), and the instrumented r2rec binary through the CLI, generate,
#     the launch scripts and split GRPO's fault tests. The whole build, binary included.
#   tests/sanitizers/run.sh thread [BUILD_DIR]              (default build-tsan)
#     ThreadSanitizer over the threaded parts: shard prefetch, the gradient-sync progress thread, the watchdog, the
#     trajectory channel, the metrics log, process groups and the collectives.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:?usage: tests/sanitizers/run.sh address,undefined|thread [BUILD_DIR]}
case "$mode" in
  address,undefined)
    build=${2:-build-asan}
    targets=()  # all
    select=(-LE "slow|gpu|format") ;;
  thread)
    build=${2:-build-tsan}
    tests=(test_reader test_gradient_sync test_watchdog test_trajectory test_metrics_log test_process
           test_collectives)
    targets=(--target "${tests[@]}")
    select=(-R "^($(IFS='|'; echo "${tests[*]}"))(_np[0-9]+)?\$") ;;
  *) echo "tests/sanitizers/run.sh: mode '$mode': expected address,undefined or thread" >&2; exit 2 ;;
esac
start=$(date +%s)
mkdir -p "$build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O1 \
      -DR2REC_SANITIZE="$mode" -DR2REC_BUILD_BENCHMARKS=OFF > "$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j2 "${targets[@]}"
built=$(date +%s)
ctest --test-dir "$build" --output-on-failure -j2 --timeout 900 "${select[@]}"
echo "sanitizers ($mode): build $((built - start)) s, tests $(($(date +%s) - built)) s"
