// Memory estimate per rank of the scoring stages (recommend, evaluate), checked against
// --max-memory-per-rank (core/memory_budget.hpp) before the score blocks are allocated.
#pragma once

#include <cstdint>
#include <string>

#include "segrec/core/comm.hpp"
#include "segrec/core/memory_budget.hpp"
#include "segrec/personalisation/model.hpp"

namespace segrec {

/// The model (parameters and segment heads, read already), one block of `block_users`
/// users scored against every item (logits, hidden activations, the ranking), and
/// `bytes_per_user` kept for each of the n_local users until the end (e.g. the top-n lists
/// of an .h5 output).
MemoryNeed score_memory(const Model& m, std::int64_t n_local, std::int64_t block_users,
                        long double bytes_per_user);

/// Collective. check_memory(stage, score_memory(...)) with what to change.
void check_score_memory(const std::string& stage, const Model& m, std::int64_t n_local,
                        std::int64_t block_users, long double bytes_per_user, const Comm& comm);

}  // namespace segrec
