// The r2rec configuration: YAML -> typed structs, one struct per section.
//
// Every field is declared once in core/config_schema.cpp's table with its meaning, default and valid range;
// that table drives parsing, `key.sub=value` overrides, validation, the printed/saved resolved config and the
// reference in docs/config.md (`r2rec config-doc` regenerates it). The defaults below are the initialisers.
//
// Paths written in a config file are relative to that file's folder; paths given as command-line overrides
// are relative to the current directory. Both are stored absolute.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace r2rec {

struct DataConfig {
  std::string name = "ml-100k";       // label used in shard attributes and reports
  std::string format = "ml-100k";     // ml-100k | lastfm-hetrec | recbole | recbole-llmrank
  std::string path;                   // dataset folder (required for prepare)
  std::string prefix;                 // RecBole atomic-file stem ("" = folder name)
  std::string title_field = "title";  // RecBole .item field holding the item text
  double min_rating = 0.0;            // drop interactions rated below this (0 keeps all)
  int64_t kcore = 5;                  // iterated k-core filter on users and items (0 = off)
  int64_t min_history = 5;            // users with fewer interactions (after k-core) are dropped
  bool skip_malformed = false;        // count and skip malformed lines instead of failing
};

struct SamplerConfig {
  int64_t history_len = 10;        // H: last H items of the history shown in a prompt
  int64_t num_candidates = 20;     // C: target + C-1 never-touched items
  int64_t chains_per_example = 4;  // K
  int64_t max_hops = 4;            // longest alternating walk (edges)
  std::vector<std::string> chain_types = {"closed", "bridge", "walk"};
  int64_t min_shared_items = 2;         // closure constraint of closed chains
  int64_t transition_window = 10;       // transition chains: c within this many items after i in u1's sequence
  int64_t neighbours = 20;              // neighbour chains: u1 among u0's this many nearest users
  int64_t train_examples_per_user = 5;  // sliding target positions per user in the train split
  int64_t num_shards = 4;
  int64_t compression = 4;  // HDF5 deflate level
  std::string output_dir;   // "" = <run.dir>/data
};

struct TaskConfig {
  std::string item_text = "auto";         // auto | token | title | token+title: how an item appears in prompts
  bool user_tokens = true;                // chain users as one added token each (<user_N>) instead of text
  int64_t cited_chains = 3;               // most chains a template trace walks
  double direct_share = 0.25;             // share of SFT traces in the direct (answer-only) form
  std::string trace_form = "evidence";    // evidence | votes (trainers/task/task.h)
  std::string chain_layout = "forward";   // forward | backward | compact: how the prompt writes a chain (task.h)
  std::string candidate_order = "given";  // given | support: the order the compact and grouped prompts list candidates
};

// The model teacher of `annotate` (docs/teacher.md): progressive masked prompting of a checkpoint, rejection by
// code. teacher template is the string formatter of trainers/task/task.h.
struct AnnotateConfig {
  std::string teacher = "template";    // template | model
  std::string teacher_model;           // model folder the model teacher loads (required with teacher model)
  int64_t samples = 4;                 // traces sampled per example; the first accepted one is kept
  double temperature = 1.0;            // sampling temperature of each thought (0 = greedy)
  double top_p = 0.95;                 // nucleus of each thought's tokens (1 = off)
  int64_t thought_tokens = 32;         // most tokens of one thought (one hop's sentence)
  int64_t max_examples = 0;            // examples sent to the teacher (0 = all); a trial's limit
  int64_t batch_size = 16;             // examples per generation batch (fixed, so traces do not depend on ranks)
  std::string on_reject = "template";  // template | drop: what an example whose samples are all rejected gets
};

struct PretrainConfig {
  int64_t steps = 800;      // optimizer steps (0 = no pretraining)
  int64_t batch_size = 32;  // packed rows per step, all learner ranks
  int64_t micro_batch_size = 16;
  int64_t seq_len = 128;  // tokens per packed row
  double learning_rate = 3e-3;
  int64_t warmup_steps = 50;
  double grad_clip = 1.0;           // global gradient-norm clip (0 = off)
  int64_t save_every = 200;         // steps between full-state checkpoints (0 = none)
  double title_share = 0.1;         // share of items whose token-title line joins each corpus pass
  int64_t walks_per_user = 2;       // chain-grammar walks per user per corpus pass
  int64_t reading_per_user = 0;     // reading documents (walks read back in the evidence form) per user per pass
  int64_t copy_per_user = 0;        // copy documents (a task conversation of random entities) per user per pass
  std::string init_items = "none";  // none | bpr: item-token rows from a trained BPR-MF's item factors
};

struct TokenizerConfig {
  std::string path;           // tokenizer.json(.gz) / folder / vocab.json+merges.txt; "" = learn one
  int64_t vocab_size = 4096;  // size of the learnt byte-level BPE vocabulary
};

struct LoraConfig {
  int64_t rank = 0;  // 0 = full fine-tuning
  double alpha = 16.0;
  double dropout = 0.0;
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj"};
};

struct ModelConfig {
  std::string path;  // Hugging Face checkpoint folder; "" = from scratch with the shape below
  int64_t hidden_size = 256;
  int64_t num_layers = 4;
  int64_t num_heads = 4;
  int64_t num_kv_heads = 2;
  int64_t intermediate_size = 688;
  int64_t max_position = 2048;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool tie_embeddings = true;
  bool qkv_bias = false;
  bool smeared_keys = false;   // r2rec's look-up aid for a from-scratch model (docs/model.md "Smeared keys")
  int64_t copy_lookup = 0;     // the look-up copy's longest match, 0 = off (docs/model.md "Look-up copy")
  std::string dtype = "auto";  // auto | float32 | bfloat16
  bool activation_checkpointing = false;
  LoraConfig lora;
};

struct SftConfig {
  int64_t epochs = 1;
  double learning_rate = 2e-3;
  double weight_decay = 0.0;
  int64_t warmup_steps = 20;
  int64_t batch_size = 32;       // global, summed over learner ranks and accumulation micro-steps
  int64_t micro_batch_size = 4;  // per learner rank and forward pass
  double grad_clip = 1.0;        // 0 = off
  int64_t max_seq_len = 1024;
  int64_t save_every = 50;      // steps between full-state checkpoints (0 = none)
  int64_t eval_every = 50;      // steps between validation passes (0 = none)
  bool packing = false;         // pack sequences into rows (trainers/lm/lm_trainer.h LmTrainOptions::pack)
  int64_t max_steps = 0;        // 0 = every epoch
  bool skip_unreached = false;  // leave out examples whose prompt chains never reach the target
  double answer_weight = 5.0;   // loss weight of the answer label's tokens (the other completion tokens weigh 1)
};

struct RlConfig {
  int64_t steps = 100;
  int64_t prompts_per_step = 8;  // global
  int64_t group_size = 8;        // G completions per prompt
  int64_t micro_batch_size = 4;
  int64_t inner_epochs = 1;
  int64_t save_every = 10;  // steps between full-state checkpoints (0 = none)
  int64_t eval_every = 10;  // steps between validation passes (0 = none)
  double learning_rate = 1e-4;
  double grad_clip = 1.0;   // global gradient-norm clip (0 = off)
  double clip_low = 0.2;    // epsilon_low
  double clip_high = 0.28;  // epsilon_high
  double kl_beta = 0.04;
  bool std_scale = true;                                          // divide advantages by the group's std
  std::vector<std::string> rewards = {"answer=1", "format=0.1"};  // name=weight (trainers/task/reward.h)
  int64_t max_new_tokens = 256;
  double temperature = 1.0;
  double top_p = 1.0;
  bool async = false;
  int64_t max_staleness = 1;  // async mode: versions rollout may run ahead
};

struct EvalConfig {
  std::string split = "test";  // valid | test
  std::vector<int64_t> ks = {1, 3, 5, 10};
  int64_t max_examples = 0;  // 0 = all
  bool generate = true;      // HR@1 by generation in addition to likelihood ranking
  int64_t max_new_tokens = 256;
  int64_t batch_size = 64;       // prompts generated together
  int64_t valid_examples = 200;  // validation during training: the first N of the valid split
  bool counterfactual = true;    // regenerate without the cited chains / as many uncited ones (eval only)
};

struct SasrecConfig {  // Kang & McAuley 2018 defaults (ML-1M column of their Table 3 / code)
  int64_t hidden = 64;
  int64_t layers = 2;
  int64_t heads = 1;
  double dropout = 0.2;
  int64_t max_len = 50;
  int64_t epochs = 200;
  int64_t batch_size = 128;  // users per optimizer step, all ranks
  double learning_rate = 1e-3;
  int64_t eval_every = 5;  // epochs between validation passes
  int64_t patience = 5;    // validation passes without improvement before stopping
};

struct BprConfig {  // Rendle et al. 2009 with Adam
  int64_t dim = 64;
  int64_t epochs = 100;
  int64_t batch_size = 1024;  // (user, positive, negative) triples per step, all ranks
  double learning_rate = 1e-3;
  double reg = 1e-4;    // L2 on the embeddings of each batch
  bool fold_in = true;  // score a longer scoring prefix (a test example's) with the user folded in (bpr.cpp)
  int64_t eval_every = 5;
  int64_t patience = 5;
};

struct LightGcnConfig {  // He et al. 2020, BPR loss with Adam
  int64_t dim = 64;
  int64_t layers = 3;
  int64_t epochs = 100;
  int64_t batch_size = 4096;  // (user, positive, negative) triples per step, all ranks
  double learning_rate = 5e-3;
  double reg = 1e-4;  // L2 on the layer-0 embeddings of each batch
  int64_t eval_every = 5;
  int64_t patience = 5;
};

struct ItemKnnConfig {    // Sarwar et al. 2001: cosine item-item similarity
  int64_t neighbors = 0;  // keep the top-N similar items per item; 0 keeps all
  double shrink = 0.0;    // sim = co / (sqrt(n_i n_j) + shrink)
};

struct BaselineConfig {
  SasrecConfig sasrec;
  BprConfig bpr;
  LightGcnConfig lightgcn;
  ItemKnnConfig itemknn;
};

struct DistributedConfig {
  std::string backend = "auto";  // auto | mpi | nccl
  bool colocated = true;         // every rank is both learner and rollout worker
  int64_t learner_ranks = 0;     // split mode only
  int64_t rollout_ranks = 0;     // split mode only
  double bucket_mb = 25.0;       // gradient / broadcast bucket cap
  bool weight_checksum = false;  // split RL: checksum every weight-sync bucket, verified on the rollout ranks
  double timeout_s = 300.0;      // watchdog deadline of every blocking operation
  int64_t threads = 0;           // intra-op threads per rank (0 = cores available to the rank)
};

struct RunConfig {
  std::string dir = "runs/default";
  int64_t seed = 1234;
  std::string log_level = "info";  // info | warning | error
  bool log_all_ranks = false;      // echo every rank's INFO lines to the terminal
  bool force = false;              // redo stages whose outputs already exist; start interrupted ones afresh
  int64_t keep_checkpoints = 2;    // full-state checkpoints kept per stage
  // The trained baselines `r2rec run` trains and scores beside the language model (cached by a fingerprint).
  std::vector<std::string> baselines = {"itemknn", "bpr"};
};

struct Config {
  DataConfig data;
  SamplerConfig sampler;
  TaskConfig task;
  AnnotateConfig annotate;
  TokenizerConfig tokenizer;
  ModelConfig model;
  PretrainConfig pretrain;
  SftConfig sft;
  RlConfig rl;
  EvalConfig eval;
  BaselineConfig baseline;
  DistributedConfig distributed;
  RunConfig run;

  std::string source;  // the config file it came from ("" = defaults only)
};

// Parses `path` (may be empty: defaults only), applies `overrides` ("key.sub=value", in order), checks
// types, ranges and cross-field rules. Throws ConfigError with a one-line message on any problem.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Checks the rules that need the world size: the role split always; with `training`, also that the SFT and
// RL batches divide evenly over the learner ranks (stages that do not train skip that). Throws ConfigError.
void validate_for_world(const Config& config, int world_size, bool training = true);

// The resolved config as YAML (every field, in schema order), for printing and saving.
std::string to_yaml(const Config& config);

// Every field with its default and a comment giving meaning and range (configs/defaults.yaml).
std::string config_template_yaml();

// The field reference as Markdown (the body of docs/config.md).
std::string config_reference_markdown();

// Every dotted key the schema knows, in schema order.
std::vector<std::string> config_keys();

// Every key under `prefix` ("baseline.bpr.") with its value in `config` as YAML flow text, in schema order.
std::vector<std::pair<std::string, std::string>> config_values(const Config& config, const std::string& prefix);

// The dotted keys whose values differ between two configs, in schema order.
std::vector<std::string> changed_keys(const Config& a, const Config& b);

}  // namespace r2rec
