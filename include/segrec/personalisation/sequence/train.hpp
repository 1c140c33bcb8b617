// `segrec train --model-kind sequence`: the sequence model trained data-parallel.
//
// Each user contributes one window, the last min(n, L + 1) of its time-ordered events:
// position t reads events 0..t and predicts event t + 1 (every position is a target,
// not only the last). Users with fewer than two events are skipped. Validation users
// (--val-users, keyed by the seed and the global user index) are held out of training;
// their last event is ranked among all items from the L events before it (NDCG@ndcg-k,
// HR@recall-k). The epoch's batches are the MLP trainer's (train/batches.hpp: keyed by
// the seed, the epoch and the global training-user index), so every rank holds an even
// share of every batch; a rank computes the gradient sum of its members, one allreduce
// of the flat gradient (with the loss and target count) sums it, and every rank takes the
// identical optimiser step (the gradient divided by the batch's targets). The result is
// the same at any rank count up to float rounding.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/ingest/dataset.hpp"
#include "segrec/personalisation/sequence/model.hpp"
#include "segrec/personalisation/train/params.hpp"
#include "segrec/personalisation/train/trainer.hpp"

namespace segrec {

inline const h5::Format kSeqCheckpointFormat{"segrec-sequence-checkpoint", 1};

struct SeqTrainResult {
  SeqModel model;
  std::vector<EpochStats> epochs;  ///< every epoch, those before a resume included
  bool stopped_early = false;
  std::int64_t steps_per_epoch = 0, batch_size = 0, planned_epochs = 0;
  std::int64_t targets_per_epoch = 0;  ///< predicted events per epoch (global)
};

/// Collective. Trains the sequence model on the event log of `ds` (each rank its block of
/// users, as read_dataset gives it). Checkpoints and --resume as train(); throws
/// Interrupted after writing a checkpoint on --stop-after-steps.
SeqTrainResult train_sequence(const TrainParams& p, const Dataset& ds, const Comm& comm,
                              const EpochCallback& on_epoch = {});

}  // namespace segrec
