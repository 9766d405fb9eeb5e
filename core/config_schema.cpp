// The table of every config key: type, range, meaning. The default is the initialiser in core/config.h.
#include "core/config_schema.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <type_traits>

namespace r2rec::config_detail {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// R2_REF(data.path) -> a function returning &config.data.path; the key string is the member path itself.
#define R2_REF(member) [](Config& c) -> void* { return &c.member; }
#define R2_KEY(member) #member

Field make(std::string key, Kind kind, std::function<void*(Config&)> ref, std::string doc) {
  Field f;
  f.key = std::move(key);
  f.kind = kind;
  f.ref = std::move(ref);
  f.doc = std::move(doc);
  return f;
}
Field ranged(Field f, double lo, double hi, bool lo_exclusive = false) {
  f.min = lo;
  f.max = hi;
  f.min_exclusive = lo_exclusive;
  return f;
}
Field with_choices(Field f, std::vector<std::string> choices) {
  f.choices = std::move(choices);
  return f;
}
Field existing(Field f) {
  f.must_exist = true;
  return f;
}

#define INT(m, lo, hi, doc) ranged(make(R2_KEY(m), Kind::kInt, R2_REF(m), doc), lo, hi)
#define FLOAT(m, lo, hi, doc) ranged(make(R2_KEY(m), Kind::kFloat, R2_REF(m), doc), lo, hi)
#define FLOAT_POS(m, hi, doc) ranged(make(R2_KEY(m), Kind::kFloat, R2_REF(m), doc), 0, hi, true)
#define BOOL(m, doc) make(R2_KEY(m), Kind::kBool, R2_REF(m), doc)
#define STR(m, doc) make(R2_KEY(m), Kind::kString, R2_REF(m), doc)
#define PATH(m, doc) make(R2_KEY(m), Kind::kPath, R2_REF(m), doc)
#define ENUM(m, choices, doc) with_choices(make(R2_KEY(m), Kind::kEnum, R2_REF(m), doc), choices)

std::vector<Field> build() {
  using V = std::vector<std::string>;
  std::vector<Field> s = {
      // data
      STR(data.name, "Dataset label written into shard attributes and reports."),
      ENUM(data.format, (V{"ml-100k", "lastfm-hetrec", "recbole", "recbole-llmrank"}),
           "Reader for data.path: MovieLens-100K files (u.data, u.item), Last.fm HetRec (user_artists.dat, "
           "artists.dat), RecBole atomic files (<prefix>.inter, <prefix>.item), or RecBole LLMRank sequences "
           "(<prefix>.test.inter holding each user's full sequence, <prefix>.item)."),
      existing(PATH(data.path, "Dataset folder. Required by prepare.")),
      STR(data.prefix, "RecBole atomic-file stem, e.g. Games-6k; empty means the folder's name."),
      STR(data.title_field, "RecBole .item field whose text names an item in prompts."),
      FLOAT(data.min_rating, 0, kInf, "Interactions rated below this are dropped; 0 keeps every interaction."),
      INT(data.kcore, 0, 1000,
          "Iterated k-core filter: users and items with fewer interactions are removed "
          "until none remain; 0 turns it off."),
      INT(data.min_history, 3, 100000,
          "Users with fewer interactions after filtering are dropped (leave-one-out "
          "needs at least one train, one validation and one test item)."),
      BOOL(data.skip_malformed, "Count and skip malformed input lines instead of stopping at the first one."),
      // sampler
      INT(sampler.history_len, 1, 512, "H: the last H items of a user's history shown in a prompt."),
      INT(sampler.num_candidates, 2, 1000,
          "C: candidates per example, the target plus C-1 items the user never "
          "touched (uniform, seeded)."),
      INT(sampler.chains_per_example, 0, 256, "K: interaction chains sampled per example."),
      INT(sampler.max_hops, 2, 16,
          "Longest alternating user/item walk, in edges (a closed chain has 4, a "
          "bridge chain 3)."),
      with_choices(make("sampler.chain_types", Kind::kStringList, R2_REF(sampler.chain_types),
                        "Chain forms to sample: closed (u0-i0-u1-i1-u0), bridge (u0-i-u1-candidate), walk "
                        "(alternating walk up to max_hops), transition (u0-i-u1-candidate: i one of the history "
                        "items the prompt shows, the candidate among what u1 took right after i), neighbour "
                        "(u0-i-u1-candidate: u1 "
                        "one of the sampler.neighbours users sharing most of u0's history)."),
                   {"closed", "bridge", "walk", "transition", "neighbour"}),
      INT(sampler.transition_window, 1, 1000,
          "Transition chains: the candidate is among the this many items u1 took right after i (u1's train "
          "sequence, oldest first)."),
      INT(sampler.neighbours, 1, 100000,
          "Neighbour chains: u1 is one of the this many users sharing the most items with u0's visible history "
          "(ties to the lower id)."),
      INT(sampler.min_shared_items, 1, 64,
          "Closure constraint: a closed chain's u1 shares at least this many "
          "history items with u0."),
      INT(sampler.train_examples_per_user, 0, 100000,
          "Training examples per user: the latest target positions of the train history (p = n-3, n-4, ...); "
          "100000 takes every position from 1 to n-3, 0 none."),
      INT(sampler.num_shards, 1, 65536, "HDF5 shards written by prepare (independent of the world size)."),
      INT(sampler.compression, 0, 9, "HDF5 deflate level of the shard datasets (0 = none)."),
      PATH(sampler.output_dir, "Where prepare writes shards; empty means <run.dir>/data."),
      // task
      ENUM(task.item_text, (V{"auto", "token", "title", "token+title"}),
           "How an item appears in prompts and traces: its own added token (<item_ID>), its title, or both; auto is "
           "token for a model trained from scratch and token+title for a pretrained model.path (its knowledge "
           "lives in the titles)."),
      BOOL(task.user_tokens, "Users in chains as one added token each (<user_ID>) instead of the text \"user ID\"."),
      INT(task.cited_chains, 1, 256,
          "Most chains a template trace walks: the evidence form's first chains reaching the answer, the votes "
          "form's first chain to each of the most-reached candidates."),
      FLOAT(task.direct_share, 0, 1,
            "Share of SFT traces in the direct form (the prompt asks for the answer only, the completion is "
            "<answer>...</answer>); eval's likelihood ranking uses that form, so it conditions on no reasoning."),
      ENUM(task.trace_form, (V{"evidence", "votes"}),
           "evidence: a template trace names its answer, then walks the prompt chains that reach it back to U "
           "(or says none does); votes: the chain tally where the most votes pick the answer, the evidence form "
           "elsewhere. Either way a trace's stated rule arrives at its answer (docs/training.md, \"Traces\")."),
      ENUM(task.chain_layout, (V{"forward", "backward", "compact", "grouped"}),
           "How the prompt (and the pretraining corpus) writes a chain: forward \"1. U -> <item_50> -> <user_231> -> "
           "<item_98>\"; backward \"<item_98> <- <user_231> <- <item_50> <- U (chain 1)\", the direction the "
           "evidence form reads it, so that a citation is a copy of the prompt's line; compact \"1. "
           "<item_98><user_231><item_50>U\", backward with the tokens side by side, its citation \"<item_98>"
           "<user_231><item_50>U.\" naming the chain by its hops, not its number (docs/training.md: what a small "
           "model learns to copy); grouped: compact with each chain listed under the candidate it reaches, after that "
           "candidate's line and its count (\"Candidate <item_98> 2\"), so that the reasoning copies a candidate's "
           "line and then its chains (docs/training.md, \"Transition chains and grouped chains\"). compact and grouped "
           "need item and user "
           "tokens."),
      ENUM(task.candidate_order, (V{"given", "support"}),
           "The order the compact and grouped prompts list the candidates in: given, the candidate list's own "
           "(shuffled) order; support, most prompt chains reaching a candidate first (ties in the given order), so "
           "that a small model reads the chains' tally from a line's place (docs/training.md, \"Candidates in order "
           "of support\"). Answers name the item token, so the order changes no answer's meaning."),
      // annotate
      ENUM(annotate.teacher, (V{"template", "model"}),
           "Who writes the SFT traces: template, the string formatter of trainers/task/task.h; model, a checkpoint "
           "prompted hop by hop with the rest of the chain masked and the answer as guidance, its traces kept only "
           "when code finds them grounded, revealed and consistent (docs/teacher.md)."),
      PATH(annotate.teacher_model,
           "Model folder of the model teacher (a pretrained Qwen/Llama, or a stage's model such as "
           "<run.dir>/sft/model); required with annotate.teacher model, refused otherwise."),
      INT(annotate.samples, 1, 64, "Traces the model teacher samples per example; the first accepted one is kept."),
      FLOAT(annotate.temperature, 0, 100, "Sampling temperature of the model teacher's thoughts (0 = greedy)."),
      FLOAT_POS(annotate.top_p, 1, "Nucleus of the model teacher's thoughts (1 = off)."),
      INT(annotate.thought_tokens, 1, 4096,
          "Most tokens of one thought (one hop's sentence); a thought that does not end within them is rejected."),
      INT(annotate.max_examples, 0, 100000000,
          "Examples sent to the model teacher, the first ones of the train split (0 = all); the others keep the "
          "template teacher's trace. A trial's limit."),
      INT(annotate.batch_size, 1, 4096,
          "Examples per generation batch of the model teacher. Batches are fixed slices of the train split dealt "
          "to the ranks in turn, so the traces do not depend on the number of ranks."),
      ENUM(annotate.on_reject, (V{"template", "drop"}),
           "What an example gets when the model teacher's samples are all rejected: the template teacher's trace, "
           "or no trace."),
      // tokenizer
      existing(PATH(tokenizer.path,
                    "tokenizer.json(.gz), a folder holding one, or vocab.json+merges.txt; empty "
                    "means learn a byte-level BPE vocabulary from the dataset's text.")),
      INT(tokenizer.vocab_size, 300, 1 << 20, "Size of the learnt vocabulary (bytes + merges + special tokens)."),
      // model
      existing(PATH(model.path,
                    "Hugging Face checkpoint folder (config.json, *.safetensors); empty means a "
                    "new model of the shape below.")),
      INT(model.hidden_size, 8, 65536, "Width of the residual stream."),
      INT(model.num_layers, 1, 512, "Decoder layers."),
      INT(model.num_heads, 1, 1024, "Attention (query) heads; must divide hidden_size."),
      INT(model.num_kv_heads, 1, 1024, "Key/value heads (grouped-query attention); must divide num_heads."),
      INT(model.intermediate_size, 8, 1 << 20, "Width of the SwiGLU MLP."),
      INT(model.max_position, 16, 1 << 20, "Longest sequence the model is built for."),
      FLOAT_POS(model.rope_theta, kInf, "Rotary position base frequency."),
      FLOAT_POS(model.rms_norm_eps, 1, "Epsilon of RMSNorm."),
      BOOL(model.tie_embeddings, "Share the input embedding with the output projection."),
      BOOL(model.qkv_bias, "Bias on the q/k/v projections (Qwen2 style)."),
      BOOL(model.smeared_keys,
           "Smeared keys (from scratch only): each attention key mixes in the key of the token before it, by a learnt "
           "share per key/value head, so one layer can find the token after an earlier copy of the current one — "
           "the look-up a grounded citation needs (docs/model.md). The model folder then runs in r2rec only."),
      INT(model.copy_lookup, 0, 64,
          "Look-up copy (from scratch only; 0 = off): the tokens that followed an earlier occurrence of the "
          "sequence's last tokens (the longest match, up to this many) get a learnt boost to their logits, so a "
          "small model can copy a chain from its prompt (docs/model.md). The model folder then runs in r2rec only."),
      ENUM(model.dtype, (V{"auto", "float32", "bfloat16"}), "Compute dtype; auto is float32 on CPU, bfloat16 on CUDA."),
      BOOL(model.activation_checkpointing, "Recompute layer activations in backward to save memory."),
      INT(model.lora.rank, 0, 4096, "LoRA rank; 0 means full fine-tuning."),
      FLOAT_POS(model.lora.alpha, kInf, "LoRA scaling numerator (scale = alpha / rank)."),
      FLOAT(model.lora.dropout, 0, 0.99, "Dropout on the LoRA input."),
      make("model.lora.targets", Kind::kStringList, R2_REF(model.lora.targets),
           "Module names that get adapters (Hugging Face names: q_proj, k_proj, v_proj, o_proj, gate_proj, "
           "up_proj, down_proj)."),
      // pretrain
      INT(pretrain.steps, 0, 1 << 30,
          "Next-token steps of the from-scratch model on the train split's corpus (users' item sequences, "
          "item-title pairs, chain-grammar walks); 0 skips pretraining. Ignored with model.path."),
      INT(pretrain.batch_size, 1, 1 << 30,
          "Packed rows per step, all learner ranks; a multiple of learner ranks x micro_batch_size."),
      INT(pretrain.micro_batch_size, 1, 1 << 20, "Packed rows per forward pass per learner rank."),
      INT(pretrain.seq_len, 8, 1 << 20, "Tokens per packed row (documents are concatenated and cut)."),
      FLOAT_POS(pretrain.learning_rate, 10, "Peak AdamW learning rate (warm-up, then cosine to 10%)."),
      INT(pretrain.warmup_steps, 0, 1 << 30, "Linear warm-up steps."),
      FLOAT(pretrain.grad_clip, 0, kInf, "Global gradient-norm clip; 0 turns it off."),
      INT(pretrain.save_every, 0, 1 << 30,
          "Optimizer steps between full-state checkpoints (<run.dir>/pretrain/checkpoints/step-N); a re-run of "
          "an interrupted stage continues exactly from the newest. 0 = none."),
      FLOAT(pretrain.title_share, 0, 1,
            "Share of the catalog's items whose \"<item_ID> is <title>.\" line joins each pass over the corpus."),
      INT(pretrain.walks_per_user, 0, 1 << 16, "Chain-grammar random walks per user in each pass over the corpus."),
      INT(pretrain.reading_per_user, 0, 1 << 16,
          "Reading documents per user in each pass over the corpus: 8 walks, then one walk's end read back through "
          "the first task.cited_chains walks holding it in the traces' evidence form (teaches looking up and copying "
          "chain entities)."),
      INT(pretrain.copy_per_user, 0, 1 << 16,
          "Copy documents per user in each pass over the corpus: a whole task conversation (prompt and template "
          "trace) whose entities are drawn uniformly from the catalog, not the graph, so that only looking them up in "
          "the prompt predicts the trace (teaches copying without a walk prior)."),
      ENUM(pretrain.init_items, (V{"none", "bpr"}),
           "Initialise the item-token embedding rows from a BPR-MF trained on the train split (LLaRA's hybrid "
           "item representation), projected to hidden_size; none keeps the random init."),
      // sft
      INT(sft.epochs, 1, 100000, "Passes over the SFT traces."),
      FLOAT_POS(sft.learning_rate, 10,
                "Peak AdamW learning rate (the default suits the small from-scratch model; fine-tune a pretrained "
                "model.path with ~1e-5 to 3e-4)."),
      FLOAT(sft.weight_decay, 0, 10, "AdamW decoupled weight decay."),
      INT(sft.warmup_steps, 0, 1 << 30, "Linear warm-up steps, then cosine decay."),
      INT(sft.batch_size, 1, 1 << 30,
          "Global batch (sequences per optimizer step, all learner ranks); must be a "
          "multiple of learner ranks x micro_batch_size."),
      INT(sft.micro_batch_size, 1, 1 << 20, "Sequences per forward pass per learner rank."),
      FLOAT(sft.grad_clip, 0, kInf, "Global gradient-norm clip; 0 turns it off."),
      INT(sft.max_seq_len, 16, 1 << 20,
          "Longest training sequence (prompt + trace, tokens); longer ones are left out and counted."),
      INT(sft.max_steps, 0, 1ll << 40, "Stop after this many optimizer steps (0 = run every epoch)."),
      INT(sft.save_every, 0, 1 << 30,
          "Optimizer steps between full-state checkpoints (<run.dir>/sft/checkpoints/step-N: model, optimizer, "
          "step, RNG); a re-run of an interrupted stage continues exactly from the newest. 0 = none."),
      INT(sft.eval_every, 0, 1 << 30,
          "Optimizer steps between validation passes: HR@1 on the first eval.valid_examples of the valid split "
          "(never test), logged to metrics.jsonl as val_hr1 (generation, with eval.generate) and "
          "val_hr1_likelihood, and drawn in training.svg. Not part of the result: changing it never retrains. "
          "0 = none."),
      BOOL(sft.packing,
           "Pack each rank's sequences of a step into rows no longer than its longest (attention and positions "
           "per sequence), so micro_batch_size rows carry several short traces and little compute goes to "
           "padding; same loss and gradients up to float summation order (docs/training.md)."),
      FLOAT(sft.answer_weight, 0, 1000,
            "Loss weight of the answer label's tokens inside <answer></answer>; the other completion tokens weigh "
            "1. A trace has tens of reasoning tokens and one answer token: without the weight the answer's "
            "gradient is diluted by the reasoning (docs/training.md)."),
      BOOL(sft.skip_unreached,
           "Leave out examples none of whose prompt chains reaches the target (otherwise "
           "the trace says the evidence is weak)."),
      // rl
      INT(rl.steps, 1, 1 << 30, "GRPO policy updates."),
      INT(rl.prompts_per_step, 1, 1 << 20, "Prompts per update, all ranks together."),
      INT(rl.group_size, 2, 1024, "G: completions sampled per prompt."),
      INT(rl.micro_batch_size, 1, 1 << 20, "Completions per forward pass per learner rank."),
      INT(rl.inner_epochs, 1, 64, "Optimisation passes over each batch of rollouts."),
      INT(rl.save_every, 0, 1 << 30,
          "Policy updates between full-state checkpoints (<run.dir>/rl/checkpoints/step-N); a re-run of an "
          "interrupted stage continues from the newest (bit-identically when synchronous). 0 = none."),
      INT(rl.eval_every, 0, 1 << 30,
          "Policy updates between validation passes (as sft.eval_every; split mode: on learner 0 alone, while the "
          "other ranks wait: a pass must stay well inside distributed.timeout_s). 0 = none."),
      FLOAT_POS(rl.learning_rate, 10,
                "AdamW learning rate of the policy (the default moves the small from-scratch model; a pretrained "
                "model.path usually wants 1e-6 to 1e-5)."),
      FLOAT(rl.grad_clip, 0, kInf, "Global gradient-norm clip of the policy update; 0 turns it off."),
      FLOAT(rl.clip_low, 0, 1, "epsilon_low: ratio clipped below at 1 - clip_low."),
      FLOAT(rl.clip_high, 0, 10, "epsilon_high: ratio clipped above at 1 + clip_high."),
      FLOAT(rl.kl_beta, 0, kInf, "Weight of the k3 KL estimate to the frozen SFT reference."),
      BOOL(rl.std_scale, "Divide group advantages by the group's reward std."),
      make("rl.rewards", Kind::kStringList, R2_REF(rl.rewards),
           "Reward components as name=weight, summed: answer (1 when the answer names the target), format (1 for "
           "a well-formed <think>...</think><answer>...</answer>), rank (NDCG of the target among the candidates "
           "in the order the completion names them, its answer first), grounded (the share of the completion's claims "
           "- chain citations, votes line, \"No chain reaches it\" - true to its prompt; 0 with no claim), consistent "
           "(1 when the answer is what its own stated evidence favours). Each is logged on its own."),
      INT(rl.max_new_tokens, 1, 1 << 20, "Longest completion sampled by rollout workers."),
      FLOAT(rl.temperature, 0, 100, "Sampling temperature of rollouts; 0 is greedy."),
      FLOAT(rl.top_p, 0, 1, "Nucleus sampling mass of rollouts."),
      BOOL(rl.async, "Let rollout workers run ahead of the learners (bounded by max_staleness)."),
      INT(rl.max_staleness, 0, 1024, "Async mode: policy versions a trajectory may lag behind the learner."),
      // eval
      ENUM(eval.split, (V{"valid", "test"}), "Split scored by eval."),
      make("eval.ks", Kind::kIntList, R2_REF(eval.ks),
           "Cut-offs k of HR@k and NDCG@k; each at most "
           "sampler.num_candidates."),
      INT(eval.max_examples, 0, 1 << 30, "Score only the first N examples of the split; 0 scores all."),
      BOOL(eval.generate, "Also measure HR@1 by generation (slower than likelihood ranking)."),
      INT(eval.max_new_tokens, 1, 1 << 20, "Longest completion generated during eval."),
      INT(eval.batch_size, 1, 1 << 20, "Prompts generated together in one batch (per rank)."),
      INT(eval.valid_examples, 1, 1 << 30,
          "Validation during training (sft.eval_every, rl.eval_every): the first N examples of the valid split."),
      BOOL(eval.counterfactual,
           "With eval.generate, the faithfulness test: every completion that cites m of its prompt's chains (and "
           "leaves at least m uncited) is generated again with those m chains removed, and again with m uncited "
           "chains removed; the report gives the share "
           "of answers that change in each (cf_cited, cf_uncited). About doubles generation time."),
      // baseline
      INT(baseline.sasrec.hidden, 1, 4096, "SASRec: item embedding and hidden size."),
      INT(baseline.sasrec.layers, 1, 64, "SASRec: self-attention blocks."),
      INT(baseline.sasrec.heads, 1, 64, "SASRec: attention heads; must divide hidden."),
      FLOAT(baseline.sasrec.dropout, 0, 0.99, "SASRec: dropout rate."),
      INT(baseline.sasrec.max_len, 2, 4096, "SASRec: longest input sequence (the most recent items)."),
      INT(baseline.sasrec.epochs, 1, 100000, "SASRec: most training epochs (early stopping may end sooner)."),
      INT(baseline.sasrec.batch_size, 1, 1 << 20, "SASRec: users per optimizer step, all ranks together."),
      FLOAT_POS(baseline.sasrec.learning_rate, 10, "SASRec: Adam learning rate."),
      INT(baseline.sasrec.eval_every, 1, 100000, "SASRec: epochs between validation passes."),
      INT(baseline.sasrec.patience, 1, 100000, "SASRec: validation passes without a better NDCG@10 before stopping."),
      INT(baseline.bpr.dim, 1, 4096, "BPR-MF: embedding size."),
      INT(baseline.bpr.epochs, 1, 100000, "BPR-MF: most training epochs (early stopping may end sooner)."),
      INT(baseline.bpr.batch_size, 1, 1 << 24, "BPR-MF: (user, positive, negative) triples per step, all ranks."),
      FLOAT_POS(baseline.bpr.learning_rate, 10, "BPR-MF: Adam learning rate."),
      FLOAT(baseline.bpr.reg, 0, 100, "BPR-MF: L2 weight on the embeddings of each batch."),
      BOOL(baseline.bpr.fold_in,
           "BPR-MF: when an example's pre-target history holds items training never paired with the user (a test "
           "example's validation item), score it with the user's vector updated by them (one Newton step of the BPR "
           "objective from the trained vector; trainers/baselines/bpr.cpp); false scores with the trained vector."),
      INT(baseline.bpr.eval_every, 1, 100000, "BPR-MF: epochs between validation passes."),
      INT(baseline.bpr.patience, 1, 100000, "BPR-MF: validation passes without a better NDCG@10 before stopping."),
      INT(baseline.lightgcn.dim, 1, 4096, "LightGCN: embedding size."),
      INT(baseline.lightgcn.layers, 0, 16, "LightGCN: propagation layers K (0 is BPR-MF)."),
      INT(baseline.lightgcn.epochs, 1, 100000, "LightGCN: most training epochs (early stopping may end sooner)."),
      INT(baseline.lightgcn.batch_size, 1, 1 << 24,
          "LightGCN: (user, positive, negative) triples per step, all ranks."),
      FLOAT_POS(baseline.lightgcn.learning_rate, 10, "LightGCN: Adam learning rate."),
      FLOAT(baseline.lightgcn.reg, 0, 100, "LightGCN: L2 weight on the layer-0 embeddings of each batch."),
      INT(baseline.lightgcn.eval_every, 1, 100000, "LightGCN: epochs between validation passes."),
      INT(baseline.lightgcn.patience, 1, 100000,
          "LightGCN: validation passes without a better NDCG@10 before stopping."),
      INT(baseline.itemknn.neighbors, 0, 1 << 30, "item-kNN: similar items kept per item; 0 keeps all."),
      FLOAT(baseline.itemknn.shrink, 0, 1e9, "item-kNN: shrinkage in sim = co-count / (sqrt(n_i n_j) + shrink)."),
      // distributed
      ENUM(distributed.backend, (V{"auto", "mpi", "nccl"}),
           "Communicator of the trainers' collectives. auto and mpi: MPI (the trainers keep the model on the CPU "
           "in this version); nccl is refused until they place it on a GPU."),
      BOOL(distributed.colocated, "Every rank is both learner and rollout worker (time-sliced)."),
      INT(distributed.learner_ranks, 0, 1 << 20, "Split mode: ranks 0..L-1 learn. Must be 0 when colocated."),
      INT(distributed.rollout_ranks, 0, 1 << 20,
          "Split mode: the remaining R ranks roll out; L + R must equal "
          "the world size."),
      FLOAT_POS(distributed.bucket_mb, 4096, "Cap of one gradient / weight-broadcast bucket, in MiB."),
      BOOL(distributed.weight_checksum,
           "Split RL: checksum every weight-sync bucket and verify it on the rollout ranks (halves the sync's "
           "speed on CPU; for checking a transport)."),
      FLOAT_POS(distributed.timeout_s, 86400, "Watchdog deadline of every blocking operation, in seconds."),
      INT(distributed.threads, 0, 4096,
          "Intra-op threads per rank; 0 measures at start-up: the faster of 1 and the cores available to the rank "
          "on a short matmul probe (more only when >= 15% faster; printed once). Set it for runs that must repeat "
          "bit for bit on other machines."),
      // run
      PATH(run.dir, "Run directory: logs, resolved config, shards, checkpoints, report."),
      INT(run.seed, 0, 9007199254740991.0, "Seed of every random choice (sampling, init, shuffles)."),
      ENUM(run.log_level, (V{"info", "warning", "error"}),
           "Least severe log level echoed to the terminal; the per-rank log files always get INFO and up."),
      BOOL(run.log_all_ranks, "Echo every rank's INFO lines to the terminal, not only rank 0's."),
      BOOL(run.force,
           "Redo stages whose outputs already exist, and start interrupted stages afresh instead of resuming."),
      INT(run.keep_checkpoints, 1, 1 << 20, "Full-state checkpoints kept per stage (the newest ones)."),
      with_choices(make("run.baselines", Kind::kStringList, R2_REF(run.baselines),
                        "Trained baselines `r2rec run` trains and scores on eval.split beside the language model, "
                        "each into report.json and examples.jsonl; a re-run skips one whose entry holds the same "
                        "fingerprint (data, baseline settings, seed, eval settings, ranks). [] runs none. sasrec is "
                        "left out by default: its 200 epochs (~100 s on ML-100K under 2 ranks of a 2-core box) leave "
                        "it unconverged, validation NDCG@10 still rising at 0.626 (docs/baselines.md). lightgcn (the "
                        "strongest on "
                        "ML-100K validation) is left out for time: ~95 s on the same box."),
                   {"itemknn", "bpr", "lightgcn", "sasrec"}),
  };
  return s;
}

}  // namespace

const std::vector<Field>& schema() {
  static const std::vector<Field> fields = build();
  return fields;
}

const std::vector<std::pair<std::string, std::string>>& sections() {
  static const std::vector<std::pair<std::string, std::string>> s = {
      {"data", "Which dataset, and how it is read and filtered."},
      {"sampler", "Examples, candidates and interaction chains written by `prepare`."},
      {"task", "How the task is written: items and users in prompts, the template teacher's traces."},
      {"annotate", "Who writes the SFT traces: the template teacher or a model teacher."},
      {"tokenizer", "Byte-level BPE tokenizer: loaded, or learnt from the dataset."},
      {"model", "Llama/Qwen2 decoder: a checkpoint to load, or the shape of a new one; LoRA."},
      {"pretrain", "Pretraining of a from-scratch model on the train split (`r2rec pretrain`)."},
      {"sft", "Supervised fine-tuning on reasoning traces."},
      {"rl", "GRPO reinforcement learning."},
      {"eval", "Evaluation on the stored candidate lists."},
      {"baseline", "Classical recommenders scored on the same candidate lists (`r2rec baseline`)."},
      {"distributed", "Roles, communicators, buckets, watchdog, threads."},
      {"run", "Run directory, seed, logging."},
  };
  return s;
}

namespace {
std::string num(double v) {
  if (v == kInf) return "inf";
  std::ostringstream os;
  if (v == static_cast<double>(static_cast<int64_t>(v)) && std::abs(v) < 1e15) {
    os << static_cast<int64_t>(v);
  } else {
    os << v;
  }
  return os.str();
}
std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}
std::string range_text(const Field& f, const char* what) {
  const bool has_lo = f.min != -kInf, has_hi = f.max != kInf;
  if (has_lo && has_hi)
    return std::string(what) + (f.min_exclusive ? " in (" : " in [") + num(f.min) + ", " + num(f.max) + "]";
  if (has_lo) return std::string(what) + (f.min_exclusive ? " > " : " >= ") + num(f.min);
  return what;
}
}  // namespace

std::string expectation(const Field& f) {
  switch (f.kind) {
    case Kind::kBool:
      return "true or false";
    case Kind::kInt:
      return range_text(f, "an integer");
    case Kind::kFloat:
      return range_text(f, "a number");
    case Kind::kString:
      return "a string";
    case Kind::kPath:
      return f.must_exist ? "a path to an existing file or folder" : "a path";
    case Kind::kEnum:
      return "one of " + join(f.choices, ", ");
    case Kind::kStringList:
      return f.choices.empty() ? "a list of strings" : "a list of " + join(f.choices, ", ");
    case Kind::kIntList:
      return "a list of integers";
  }
  return "";
}

std::string value_text(const Field& f, const Config& config) {
  void* p = f.ref(const_cast<Config&>(config));
  auto quote = [](const std::string& s) {  // YAML double-quoted scalar: escape backslash, quote, controls
    std::string out = "\"";
    for (char c : s) {
      if (c == '\\' || c == '"') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    return out + "\"";
  };
  switch (f.kind) {
    case Kind::kBool:
      return *static_cast<bool*>(p) ? "true" : "false";
    case Kind::kInt:
      return std::to_string(*static_cast<int64_t*>(p));
    case Kind::kFloat: {
      // The shortest text that reads back as the same double.
      const double v = *static_cast<double*>(p);
      std::string s;
      for (int precision = 6; precision <= 17; ++precision) {
        std::ostringstream os;
        os.precision(precision);
        os << v;
        s = os.str();
        if (std::strtod(s.c_str(), nullptr) == v) break;
      }
      if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
      return s;
    }
    case Kind::kString:
    case Kind::kPath:
    case Kind::kEnum:
      return quote(*static_cast<std::string*>(p));
    case Kind::kStringList: {
      std::vector<std::string> q;
      for (const auto& s : *static_cast<std::vector<std::string>*>(p)) q.push_back(quote(s));
      return "[" + join(q, ", ") + "]";
    }
    case Kind::kIntList: {
      std::vector<std::string> q;
      for (int64_t v : *static_cast<std::vector<int64_t>*>(p)) q.push_back(std::to_string(v));
      return "[" + join(q, ", ") + "]";
    }
  }
  return "";
}

namespace {
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}
}  // namespace

std::string suggest(const std::string& wrong, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::string::npos;
  const size_t limit = std::max<size_t>(2, wrong.size() / 3);  // keeps wild guesses out
  for (const auto& c : candidates) {
    // The distance is at least the difference in length: a candidate that far off cannot be suggested, and skipping
    // it keeps the work bounded for a key of any length (a fuzzed 60 kB key took seconds of edit distances).
    const size_t gap = wrong.size() > c.size() ? wrong.size() - c.size() : c.size() - wrong.size();
    if (gap > limit) continue;
    size_t d = edit_distance(wrong, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best_d <= limit ? best : "";
}

}  // namespace r2rec::config_detail
