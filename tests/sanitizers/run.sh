#!/usr/bin/env bash
# The sanitizer run of CI (docs/hardening.md): an AddressSanitizer + UndefinedBehaviorSanitizer build in its own
# folder (ccache as the main build) of the tests that parse outside input or run r2rec's threads without training:
# the YAML config loader and overrides, the metrics log, tokenizer files and encode/decode, the dataset readers,
# HDF5 shards and manifests, the shard reader's prefetch thread, process groups, the collectives, the trajectory
# channel and its decoder, the weight broadcast, the safetensors parser. Any finding fails its test.
#
#   tests/sanitizers/run.sh [BUILD_DIR]     (default build-asan)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-asan}
tests=(test_config test_metrics_log test_tokenizer test_sampler_dataset test_shards test_reader test_process
       test_collectives test_trajectory test_param_broadcast test_safetensors)
start=$(date +%s)
mkdir -p "$build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O1 \
      -DR2REC_SANITIZE=address,undefined -DR2REC_BUILD_BENCHMARKS=OFF > "$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j2 --target "${tests[@]}"
built=$(date +%s)
regex="^($(IFS='|'; echo "${tests[*]}"))(_np[0-9]+)?\$"
ctest --test-dir "$build" --output-on-failure -j2 --timeout 900 -R "$regex"
echo "sanitizers: build $((built - start)) s, tests $(($(date +%s) - built)) s"
