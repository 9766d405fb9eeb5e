// SFT traces at rest (docs/design.md §7): what `annotate` writes and `sft` reads.
//
// <run.dir>/traces/traces.h5 (HDF5, written to a temporary name and renamed):
//   attributes  schema_version (2), dataset, prepare_hash (the shards' config hash), teacher ("template"),
//               split ("train")
//   example_id          int64 [N]
//   reaching            int32 [N]   prompt chains that reach the target (votes of the target)
//   target_top          int8  [N]   1 when the target has the most votes (ties included)
//   direct              int8  [N]   1 for a direct-form trace (the prompt asks for the answer only)
//   prompt_offsets      int64 [N+1] prompt i is prompt_bytes[prompt_offsets[i] .. prompt_offsets[i+1])
//   prompt_bytes        uint8       ChatML text up to "<|im_start|>assistant\n"
//   completion_offsets  int64 [N+1]
//   completion_bytes    uint8       "<think>...</think><answer>...</answer>", or "<answer>...</answer>" in the
//                                   direct form (the end-of-turn token is added at SFT)
// <run.dir>/traces/traces.json: the same identity, counts and the file's CRC-32 (written last).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace r2rec {

constexpr int64_t kTraceSchemaVersion = 2;  // 2: target_top, direct

struct TraceSet {
  std::string dataset, prepare_hash, teacher = "template", split = "train";
  std::vector<int64_t> example_id;
  std::vector<int32_t> reaching;
  std::vector<int8_t> target_top, direct;
  std::vector<std::string> prompts, completions;
  int64_t size() const { return static_cast<int64_t>(example_id.size()); }
};

// Writes `traces` to `path` through a temporary file and a rename. Throws RuntimeFailure on I/O errors.
void write_traces(const std::string& path, const TraceSet& traces, int compression);

// Reads and checks a trace file (schema version, array shapes, offsets). Throws DataError naming the file.
TraceSet read_traces(const std::string& path);

}  // namespace r2rec
