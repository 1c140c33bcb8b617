// Training's memory estimate per rank, checked against --max-memory-per-rank before the
// network, the gradient buffer and the optimiser moments are allocated (private to train/).
#pragma once

#include "segrec/core/comm.hpp"
#include "segrec/core/memory_budget.hpp"
#include "segrec/personalisation/train/data.hpp"
#include "segrec/personalisation/train/params.hpp"

namespace segrec::train_impl {

/// The bytes one rank needs at the peak of a training run over d (loaded already).
MemoryNeed train_memory(const TrainParams& p, const TrainModes& modes, const TrainData& d,
                        int ranks);

/// Collective. p with --hidden auto resolved (p itself otherwise): one layer of
/// TrainParams::kAutoHidden units, or the widest multiple of kAutoHiddenStep below it whose
/// train_memory fits memory_per_rank() on every rank (the narrowest when none does, which
/// check_train_memory then refuses). Sets width_rule.
TrainParams resolve_width(const TrainParams& p, const TrainModes& modes, const TrainData& d,
                          const Comm& comm);

/// Collective. check_memory("train", train_memory(...)) with what to change.
void check_train_memory(const TrainParams& p, const TrainModes& modes, const TrainData& d,
                        const Comm& comm);

}  // namespace segrec::train_impl
