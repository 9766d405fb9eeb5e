#!/usr/bin/env bash
# Run one libFuzzer target for SECONDS (docs/hardening.md "Fuzzing"):
#
#   tests/fuzz/run.sh TARGET SECONDS [BUILD_DIR]     (default build-fuzz)
#
# TARGET is one of tests/fuzz/fuzz_targets.h's (config overrides dataset manifest tokenizer safetensors
# safetensors_index model_config adapter_config trajectory shard checkpoint weight_broadcast). Builds build-fuzz with clang (ASan + UBSan + libFuzzer), starts from the
# stored inputs in tests/fuzz/corpus/TARGET, keeps what it learns in BUILD_DIR/corpus/TARGET, and writes a crash to
# BUILD_DIR/crashes/TARGET/; store each crash in tests/fuzz/corpus/TARGET/ once fixed, so test_fuzz_corpus replays it.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${1:?usage: tests/fuzz/run.sh TARGET SECONDS [BUILD_DIR]}
seconds=${2:?usage: tests/fuzz/run.sh TARGET SECONDS [BUILD_DIR]}
build=${3:-build-fuzz}
[ -d "tests/fuzz/corpus/$target" ] || { echo "tests/fuzz/run.sh: no fuzz target '$target'" >&2; exit 2; }
# No precompiled headers: clang 14 crashes compiling core/model/cpu_kernels.cpp against the torch PCH.
if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O1 \
    -DR2REC_FUZZ=ON -DR2REC_BUILD_BENCHMARKS=OFF -DCMAKE_DISABLE_PRECOMPILE_HEADERS=ON > /dev/null
fi
cmake --build "$build" -j2 --target "fuzz_$target"
mkdir -p "$build/corpus/$target" "$build/crashes/$target"
# Inputs of up to 64 kB, 2 s and 2 GB each; a slower or larger one is a finding (a hang, unbounded memory).
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$build/fuzz/fuzz_$target" "$build/corpus/$target" "tests/fuzz/corpus/$target" \
  -max_total_time="$seconds" -max_len=65536 -timeout=2 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$build/crashes/$target/"
