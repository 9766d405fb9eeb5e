// The model teacher on the generation engine (docs/teacher.md; protocol and checks: trainers/task/teacher.h). For a
// batch of train examples, every (example, sample) row writes its trace one thought at a time: each round builds
// every live row's masked prompt plus its trace so far, and one batched `generate` call writes the next thought
// of all of them (stop at "."); a row is dropped at its first rejected thought. After its last thought a row's
// answer is chosen among the candidates (the answer constraint) with the whole prompt shown, and the trace is
// judged. Every thought is drawn from a stream keyed by (seed, example id, sample, step), so a trace depends on
// its example and the batch it was written in, not on which rank wrote it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/model/generation.h"
#include "core/model/transformer.h"
#include "core/tokenizer/tokenizer.h"
#include "sampler/chains.h"
#include "sampler/shard.h"
#include "trainers/task/teacher.h"

namespace r2rec {

struct TeacherOptions {
  int64_t samples = 4;
  double temperature = 1.0;
  double top_p = 0.95;
  int64_t thought_tokens = 32;
  uint64_t seed = 0;
};

// One thought as written: the step's mask (its chain and how far it was revealed) and the teacher's sentence.
struct TeacherThought {
  ChainMask mask;
  std::string text;
};

struct TeacherOutcome {
  int32_t accepted = -1;                 // the first accepted sample, -1 when none
  std::string completion;                // that sample's trace
  std::vector<TeacherThought> thoughts;  // and its thoughts, in order
  std::vector<TeacherVerdict> verdicts;  // one per sample
  std::vector<std::string> last;         // per sample, the last thought it wrote (a rejected sample's culprit)
  int64_t tokens = 0;                    // tokens the teacher generated for this example (all samples)
};

// The teacher's traces for `examples` (each with its own chains, all of them in the prompt); examples no chain
// reaches get an outcome with no samples. `stats` (optional) adds the engine's counters.
std::vector<TeacherOutcome> teach(TransformerImpl& model, const Tokenizer& tokenizer,
                                  const std::vector<Example>& examples, const std::vector<ChainBuffer>& chains,
                                  const Catalog& catalog, const TaskFormat& format, const TeacherOptions& options,
                                  GenerationStats* stats = nullptr);

}  // namespace r2rec
