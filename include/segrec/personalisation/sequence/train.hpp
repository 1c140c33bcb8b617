// `segrec train --model-kind sequence`: the sequence model trained data-parallel.
//
// A user's time-ordered events are cut into windows of at most L + 1 events from the last
// one back (consecutive windows share one event): position t of a window reads its events
// 0..t and predicts event t + 1, so every event but the user's first is a target exactly
// once. Users with fewer than two events are skipped. Validation users (--val-users, keyed
// by the seed and the global user index) hold out their last event, ranked among all items
// from the L events before it (NDCG@ndcg-k, HR@recall-k; the best epoch is kept, --patience
// stops); their earlier events still train. Dropout masks (--seq-dropout) are keyed by the
// seed, the epoch and the global window index. The epoch's batches are the MLP trainer's
// (train/batches.hpp, over the global training windows in user order), so every rank holds
// an even share of every batch; a rank computes the gradient sum of its members and every rank
// takes the identical optimiser step (the gradient divided by the batch's targets). With
// --grad-sync items on several ranks the output layer is split by items (GruNet::
// loss_and_grad_split); untied, each rank updates its own output rows (gathered at each
// epoch's end) and only the blocks below are allreduced. Otherwise (tied, or another
// --grad-sync) one allreduce of the flat gradient (with the loss and target count). The result
// is the same at any rank count up to float rounding.
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
