// Fuzz targets for every parser of outside input (docs/hardening.md "Fuzzing"). Each takes arbitrary bytes, hands
// them to the real loader (through a file where the loader reads files) and returns normally when the loader
// accepts them or refuses them with an r2rec::Error (DataError, ConfigError, ...): the one-line exit 2 a user sees.
// Anything else - a crash, a sanitizer report, another exception type (which the binary turns into "internal
// error", exit 3), a hang, unbounded memory - is a finding.
//
// The same functions run twice: under libFuzzer (tests/fuzz/fuzz_main.cpp, one executable per target, clang with
// -DR2REC_FUZZ=ON; tests/fuzz/run.sh) and as a plain test over the stored corpus, seeds and every crash found
// (tests/fuzz/test_fuzz_corpus.cpp, in every build and in CI's sanitizer run).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace r2rec::fuzz {

struct Target {
  const char* name;
  void (*run)(const uint8_t* data, size_t size);
};

// config            a YAML config file (load_config)
// overrides         command-line overrides, one per line, over the defaults (load_config)
// dataset           byte 0 picks the format (ml-100k, lastfm-hetrec, recbole, recbole-llmrank); the rest is the
//                   interaction file and the item file, split at the first NUL (read_raw_log)
// manifest          data/manifest.json (read_manifest)
// tokenizer         byte 0 even: tokenizer.json; odd: vocab.json and merges.txt split at the first NUL
//                   (Tokenizer::load); when it loads, encode/decode must round-trip a fixed text
// safetensors       a .safetensors file (SafetensorsFile, then every tensor loaded)
// safetensors_index a model.safetensors.index.json beside two small shards (SafetensorsCheckpoint, every mapped
//                   tensor loaded)
// model_config      a Hugging Face config.json (TransformerConfig::from_hf_json)
// adapter_config    a PEFT adapter_config.json (load_lora_adapter on a tiny model)
// trajectory        a trajectory batch message (deserialize)
// shard             an HDF5 example shard whose columns are drawn from the input (read_shard_index, read_shard,
//                   then every accepted example, its chains and their vote)
// checkpoint        a checkpoint folder: state.json and, after a NUL, rng.json, with a tiny model's weights
//                   (newest_checkpoint, load_train_state); state.json's file hashes resealed where it lists files
// weight_broadcast  a weight-broadcast header and buckets as a receiver gets them (check_received_broadcast)
const std::vector<Target>& targets();
const Target* find_target(const std::string& name);

}  // namespace r2rec::fuzz
