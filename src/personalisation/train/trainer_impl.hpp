// The Trainer (private to train/): the state of one training run, shared by
// trainer.cpp (the loop), checkpoint.cpp and heads.cpp.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "grad_sync.hpp"
#include "segrec/core/comm.hpp"
#include "segrec/personalisation/input_rows.hpp"
#include "segrec/personalisation/mlp.hpp"
#include "segrec/personalisation/model.hpp"
#include "segrec/personalisation/train/batches.hpp"
#include "segrec/personalisation/train/data.hpp"
#include "segrec/personalisation/train/negatives.hpp"
#include "segrec/personalisation/train/optimiser.hpp"
#include "segrec/personalisation/train/params.hpp"
#include "segrec/personalisation/train/trainer.hpp"
#include "segrec/personalisation/train/validation.hpp"

namespace segrec::train_impl {

using mlp::hash_keys;
using mlp::splitmix64;
using mlp::unit_uniform;

// Tags that separate the random streams drawn from one seed.
inline constexpr std::uint64_t kTagValUser = 0x76616c2d75736572ULL;   // validation users
inline constexpr std::uint64_t kTagHoldout = 0x686f6c646f7574ULL;     // held-out items
inline constexpr std::uint64_t kTagPerm = 0x7065726d75746521ULL;      // batch permutation
inline constexpr std::uint64_t kTagInDrop = 0x696e2d64726f70ULL;      // input dropout
inline constexpr std::uint64_t kTagHiddenDrop = 0x686964642d6472ULL;  // hidden dropout
inline constexpr std::uint64_t kTagHead = 0x686561642d6570ULL;        // head fine-tuning batches
inline constexpr std::uint64_t kTagNegatives = 0x6e65672d73616dULL;   // sampled-softmax negatives
// Epoch numbers of the head fine-tuning (input dropout keys), apart from the global epochs.
inline constexpr std::int64_t kHeadEpochBase = std::int64_t{1} << 40;
// Epoch numbers of the head fine-tuning (input dropout keys), apart from the global epochs.

/// The network shape the options and data ask for.
mlp::Shape make_shape(const TrainParams& p, const TrainModes& modes, const TrainData& d);

/// Collective. Throws unless every rank holds the same parameter bits.
void check_same_params(const std::vector<float>& v, const Comm& comm, const char* when);

class Trainer {
 public:
  Trainer(const TrainParams& p, const TrainModes& modes, const TrainData& d, const Comm& comm)
      : p_(p),
        modes_(modes),
        opt_(OptimiserParams::from(p, modes)),
        d_(d),
        comm_(comm),
        shape_(make_shape(p, modes, d)),
        net_(shape_) {
    spec_.history = modes.uses_history();
    spec_.log_weight = modes.history_weight == TrainModes::HistoryWeight::kLog;
    spec_.dense_dim = shape_.dense_in;
    spec_.segments = modes.uses_segments();
    spec_.bce = shape_.loss == mlp::Loss::kBce;
    P_ = net_.layout().size;
    decayed_ = net_.layout().decayed_ranges(shape_);
    sync_ = make_grad_sync(modes, p.grad_sync, p.bucket_mb, p.clip, net_, decayed_, comm);
  }

  TrainResult run(const EpochCallback& on_epoch);

 private:
  void assign_roles();
  void build_order(std::int64_t epoch);
  void add_train_user(mlp::Batch<float>& bt, std::int64_t i, std::int64_t epoch) const;
  // Sampled softmax: the proposal from the training users' item counts (collective).
  void build_sampler();
  // One identical update on every rank from the gradient sum (or of this rank's share).
  void optimiser_step(float inv_count, double lr, double sumsq);
  void load_test_items();
  void build_validation();
  // Validation NDCG@K and Recall@K of the current weights (collective).
  std::pair<double, double> validation_quality();
  void train_heads(Model& m);
  // Appends the validation (and test) quality of m to m.quality under the name `mode`.
  void add_quality(Model& m, const std::string& mode, bool heads) const;
  std::string config_text() const;
  void write_checkpoint(const std::string& path);
  void read_checkpoint(const std::string& path);
  Model make_model() const;

 public:
  // The model's quality rows (run() adds those of its own mode).
  void quality_of(Model& m, const std::string& mode, bool heads) const {
    add_quality(m, mode, heads);
  }

 private:
  const TrainParams& p_;
  TrainModes modes_;
  OptimiserParams opt_;
  const TrainData& d_;
  const Comm& comm_;
  mlp::Shape shape_;
  mlp::Network<float> net_;
  RowSpec spec_;
  std::int64_t P_ = 0;
  std::vector<std::pair<std::int64_t, std::int64_t>> decayed_;

  std::vector<std::int64_t> train_local_, val_local_;  // local user indices
  std::int64_t n_train_ = 0, train_offset_ = 0, n_val_ = 0;
  std::int64_t batch_ = 0, epochs_ = 0;  // resolved --batch-size and --epochs
  std::vector<char> is_test_;            // local users listed in --test-items
  EvalUsers val_eval_, test_eval_;
  Model probe_;  // the current weights, for validation
  std::int64_t steps_per_epoch_ = 0;
  std::vector<std::pair<std::uint64_t, std::int64_t>> order_;  // (batch * N + t, local index)
  std::vector<std::int64_t> batch_count_;                      // users per global batch

  std::unique_ptr<NegativeSampler> sampler_;  // sampled softmax only
  std::unique_ptr<GradSync> sync_;            // --grad-sync: the gradient buffer and its exchange
  std::vector<float> m_, v_;                  // optimiser moments of sync_->owned(), back to back
  std::vector<float> best_params_;
  // Progress (checkpointed).
  std::int64_t epoch_ = 0, step_in_epoch_ = 0, global_step_ = 0;
  double epoch_loss_ = 0;
  double best_ndcg_ = -1;
  std::int64_t best_epoch_ = -1, since_best_ = 0;
  std::vector<EpochStats> history_;
};

}  // namespace segrec::train_impl
