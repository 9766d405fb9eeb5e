# Tokenizer encoding throughput: ./benchmarks/bench_tokenizer (cached BPE vs the same encoder without cache).
add_executable(bench_tokenizer bench_tokenizer.cpp)
target_link_libraries(bench_tokenizer PRIVATE r2rec_tokenizer benchmark::benchmark)
target_compile_definitions(bench_tokenizer PRIVATE R2REC_DEFAULT_DATA_DIR="${PROJECT_SOURCE_DIR}/../shared/data")
set_target_properties(bench_tokenizer PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/benchmarks")
r2rec_target_warnings(bench_tokenizer)
