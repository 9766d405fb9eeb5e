// Full-state checkpoints of a training stage and exact resume (docs/checkpoints.md).
//
// <run.dir>/<stage>/checkpoints/step-<N>/, N = optimizer steps done:
//   model/            the model in Hugging Face layout (config.json, model.safetensors, tokenizer.json; LoRA
//                     merged), loadable by `r2rec generate` and transformers
//   adapter/          with LoRA: the adapters in PEFT layout, unmerged
//   trainable.safetensors  with LoRA: the trainable tensors by r2rec name (what a resume loads; without LoRA
//                     a resume loads model/, which is then exactly the trained weights)
//   optimizer.pt      the optimizer's state (libtorch archive: AdamW moments and step counts)
//   rng.json          every rank's torch CPU generator state (hex), in rank order
//   settings.yaml     the settings the stage's fingerprint covers (to name a changed one)
//   state.json        written last: step, stage, fingerprint, world size, the trainer's record so far (losses,
//                     tokens, ...), and the size and FNV-1a hash of every other file
// The folder is built as step-<N>.tmp and renamed into place (core/owned_dir.h), so a kill while writing leaves
// the previous checkpoints whole; the newest `keep` are kept. A checkpoint whose state.json is missing or whose
// files do not match it is skipped with a warning naming it, and the next older one is used.
//
// Resume reads the checkpoint on every rank (run.dir on a shared filesystem, as on a cluster; a rank that cannot
// read it fails naming the file): the weights, the optimizer state and this rank's generator state are restored
// bit for bit, and the trainer continues its data order from step N (the order is a pure function of the seed and
// the epoch), so N steps + resume + the rest equal the uninterrupted run.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/model/transformer.h"
#include "trainers/lm/checkpoint_plan.h"

namespace torch::optim {
class Optimizer;
}

namespace r2rec {

// Writes checkpoint `step` (collective over MPI_COMM_WORLD: every rank passes its generator state; rank 0 writes
// and prunes; a failure on rank 0 is agreed, so every rank throws). `record` is the trainer's state.
// `optimizer` and `record` matter on rank 0 only (null elsewhere is fine: a rollout rank has no optimizer).
void save_train_state(const CheckpointPlan& plan, int64_t step, TransformerImpl& model,
                      const torch::optim::Optimizer* optimizer, const nlohmann::json& record, int rank);

// Restores weights, optimizer state (when `optimizer` is not null) and this rank's generator state from
// checkpoint folder `path`; returns its state.json. DataError naming the file on anything missing or not matching.
nlohmann::json load_train_state(const std::string& path, TransformerImpl& model, torch::optim::Optimizer* optimizer,
                                int rank);

}  // namespace r2rec
