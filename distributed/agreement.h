// Agreement of every rank on a stage's outcome and on rank 0's decisions, over MPI_COMM_WORLD (usable before
// any Communicator exists, e.g. while the config is loaded). Every call is collective: all ranks make it, in
// the same order.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace r2rec {

// Runs `step` on every rank, then agrees on the outcome, so no rank goes on alone into a collective after
// another failed: when any rank threw an r2rec::Error, the lowest such rank rethrows it and every other rank
// throws an Error with the same exit code and an empty message (main prints nothing for those). Library
// exceptions (filesystem, JSON, allocation) become a one-line RuntimeFailure, agreed like the others. A
// CommError is not agreed (a peer may be gone): it propagates at once and main ends the job.
void run_agreed(const std::function<void()>& step);

// Rank 0's `value`, known to every rank (ranks may not see the same files on a non-shared run.dir, so a
// decision such as "this stage's outputs are current" is made by rank 0 alone).
bool agree_on_rank0(bool value);

// Rank 0's `text`, known to every rank.
std::string broadcast_from_rank0(const std::string& text);

// Every rank's `text`, on rank 0 in rank order (other ranks get an empty list).
std::vector<std::string> gather_to_rank0(const std::string& text);

}  // namespace r2rec
