// Output folders r2rec replaces as a whole (the prepared shards, model checkpoints), and the rule that it never
// deletes what it did not write (docs/formats.md, "Folders r2rec owns").
//
// Every such folder holds a marker file, ".r2rec-owned", listing the entries r2rec wrote there ("*" while the
// folder is being built: all of it is r2rec's). A new version is built in a sibling folder (made by
// make_owned_dir) and swapped in by replace_owned_dir:
//   - the target does not exist or is empty: the new folder moves in;
//   - the target is r2rec's (it has the marker, or — folders written before markers — every entry matches the
//     writer's own names): the entries r2rec did not write are moved into the new folder first, so a user's
//     file in it survives; then the old folder moves aside, the new one in, and the old one is removed;
//   - anything else (a non-empty folder holding something r2rec did not write, and no marker): ConfigError
//     (exit 2) naming the folder and the first such entry, and nothing is touched.
// check_replaceable() says the same before a long stage starts, so a refusal costs nothing.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace r2rec {

constexpr const char* kOwnedMarker = ".r2rec-owned";

// True for an entry name a writer of this kind of folder produces (for folders written before markers).
using OwnName = std::function<bool(const std::string& name)>;

// Names r2rec writes in a model checkpoint folder (config.json, *.safetensors, the index, tokenizer.json,
// generation_config.json, the PEFT adapter files).
bool model_dir_name(const std::string& name);

// Throws ConfigError unless `dir` is absent, empty, or r2rec's (see above).
void check_replaceable(const std::string& dir, const OwnName& own);

// A fresh, marked, empty folder at `dir`. `building` (a staging sibling, sealed when complete): everything put in
// it counts as r2rec's until then; otherwise (a long-lived folder such as the checkpoints) only the entries
// recorded with set_owned_entries do. An existing `dir` is removed first if it is r2rec's; otherwise ConfigError.
// Throws RuntimeFailure when it cannot be created.
void make_owned_dir(const std::string& dir, const OwnName& own, bool building = true);

// Adds `add` to and removes `drop` from the entries `dir`'s marker lists as r2rec's (nothing else is listed).
void set_owned_entries(const std::string& dir, const std::vector<std::string>& add,
                       const std::vector<std::string>& drop);

// Records every entry now in `dir` (but the marker) as written by r2rec. Call when the folder is complete.
void seal_owned_dir(const std::string& dir);

// Swaps the sealed folder `fresh` in at `dir` (see above).
void replace_owned_dir(const std::string& dir, const std::string& fresh, const OwnName& own);

// Removes `dir` when it is r2rec's (a leftover staging folder); leaves anything else alone. Never throws.
void remove_if_owned(const std::string& dir, const OwnName& own);

}  // namespace r2rec
