// The pretraining corpus of a from-scratch model (docs/design.md §1, "Pretraining"): text built from the train
// split only, so the model holds collaborative knowledge before SFT the way a pretrained LLM holds world
// knowledge. Documents, in the prompt's own grammar (trainers/task/task.h):
//   sequence  "History (oldest first): <item_a><item_b>..." — a user's whole train sequence s[0..n-3]
//   walks     "Chains (U is this user):\n1. U -> <item_i> -> <user_v> -> <item_j>\n..." — walks_per_user random
//             walks per user on the train graph (u -> an item of u -> another user of it -> another item of
//             theirs)
//   reading   walks as above, then "<think>\nCandidate <item_j>.\n<item_j> <- <user_v> <- <item_i> <- U (chain 2).\n
//             </think>" — reading_per_user per user: one walk's end read back through the first cited_chains walks
//             holding it, the evidence form of the traces, so the model learns to look an entity up in the chains and
//             copy its neighbours (docs/training.md, "Teaching the model to copy")
//   copy      a whole task conversation — render_chat_prompt, then the template trace — for an example whose every
//             entity (history, candidates, target, chain users and items) is drawn uniformly from the catalog, not
//             from the graph: copy_per_user per user. Nothing the model knows predicts the trace's entities; only
//             looking them up in the prompt does, so these documents teach the copy the traces need without the walk
//             prior the reading documents also teach (docs/training.md, "Teaching the model to copy")
//   titles    "<item_a> is <title>.\n..." — a title_share sample of the catalog's items, eight lines a document
// Pass e of the corpus draws its walks and title sample from Rng(seed, kPretrain, e) and shuffles the documents
// with the same stream; no validation or test interaction is used (the catalog's user_train_items).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sampler/shard.h"
#include "trainers/task/task.h"

namespace r2rec {

struct CorpusOptions {
  int64_t walks_per_user = 2;
  int64_t reading_per_user = 0;
  int64_t copy_per_user = 0;
  int64_t history_len = 10;     // the copy documents' prompt shape (sampler.history_len, num_candidates,
  int64_t num_candidates = 20;  // chains_per_example)
  int64_t chains_per_example = 16;
  double title_share = 0.1;
  uint64_t seed = 0;
};

// The documents of corpus pass `epoch`, in their shuffled order.
std::vector<std::string> corpus_documents(const Catalog& catalog, const TaskFormat& format,
                                          const CorpusOptions& options, int64_t epoch);

// Concatenates the documents' token ids, each followed by `separator` (when >= 0), and cuts them into rows of
// exactly `row_len` tokens (the last partial row is dropped).
std::vector<std::vector<int64_t>> pack_rows(const std::vector<std::vector<int64_t>>& documents, int64_t separator,
                                            int64_t row_len);

}  // namespace r2rec
