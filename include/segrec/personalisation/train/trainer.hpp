// The training run: train() drives epochs of batches, validation, early
// stopping, checkpoints and the segment heads; EpochStats and TrainResult
// report it.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/personalisation/model.hpp"
#include "segrec/personalisation/train/data.hpp"
#include "segrec/personalisation/train/params.hpp"

namespace segrec {

/// Per-epoch record of a training run.
struct EpochStats {
  std::int64_t epoch = 0;  ///< 1-based
  double train_loss = 0;   ///< mean loss per training user
  double val_ndcg = std::numeric_limits<double>::quiet_NaN();
  double val_recall = std::numeric_limits<double>::quiet_NaN();
  double lr = 0;                 ///< learning rate of the epoch's last step
  double seconds = 0;            ///< wall time of the epoch (with validation)
  double step_seconds = 0;       ///< time in training steps
  double comm_seconds = 0;       ///< time in the gradient allreduce (waiting included)
  double compute_seconds = 0;    ///< time in the forward and backward passes
  double optimiser_seconds = 0;  ///< time in the optimiser update
  std::int64_t samples = 0;      ///< training users processed (global)
  bool improved = false;         ///< new best validation NDCG
};

/// Copies a run's curves (per epoch) and validation record into a model (Model or SeqModel):
/// best_epoch and best_ndcg only when a best epoch was kept (best_params non-empty).
template <class M>
void set_training_record(M& m, const std::vector<EpochStats>& history, bool kept_best,
                         std::int64_t best_epoch, double best_ndcg, const TrainParams& p,
                         std::int64_t n_val, std::int64_t n_train) {
  for (const auto& e : history) {
    m.train_loss.push_back(e.train_loss);
    m.val_ndcg.push_back(e.val_ndcg);
    m.val_recall.push_back(e.val_recall);
    m.lr.push_back(e.lr);
    m.seconds.push_back(e.seconds);
  }
  if (kept_best) {
    m.best_epoch = best_epoch;
    m.best_ndcg = best_ndcg;
  }
  m.ndcg_k = p.ndcg_k;
  m.recall_k = p.recall_k;
  m.n_val_users = n_val;
  m.n_train_users = n_train;
}

struct TrainResult {
  Model model;
  std::vector<EpochStats> epochs;  ///< every epoch, those before a resume included
  bool stopped_early = false;
  std::int64_t steps_per_epoch = 0;
  std::int64_t batch_size = 0, planned_epochs = 0;  ///< as resolved (auto values)
  /// The loss, width, batch and epochs as resolved, auto choices marked
  /// (TrainParams::resolved_summary).
  std::string resolved;
  std::uint64_t sync_bytes_per_step =
      0;  ///< bytes this rank sends per step (gradients and parameters)
  /// How the gradients were combined, e.g. "sharded over 2 nodes x 2 ranks (shared memory
  /// within a node)" or "allreduce over 4 ranks".
  std::string sync_layout;
  std::int64_t n_test_users = 0;  ///< users scored from --test-items
};

using EpochCallback = std::function<void(const EpochStats&)>;

/// Collective. Trains on the data (each rank its block); writes checkpoints
/// as asked. Throws Interrupted after writing a checkpoint when a stop was
/// requested (request_training_stop) or after --stop-after-steps.
TrainResult train(const TrainParams& p, const TrainData& data, const Comm& comm,
                  const EpochCallback& on_epoch = {});

/// Asks a running train() to checkpoint and stop at the next step (async-signal-safe).
void request_training_stop();
/// Whether a stop was requested and not yet served; clear_training_stop() serves it (for
/// the other trainers: train_sequence).
bool training_stop_requested();
void clear_training_stop();

}  // namespace segrec
