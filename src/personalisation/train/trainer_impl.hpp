// The Trainer (private to train/): the state of one training run, shared by
// trainer.cpp (the loop), checkpoint.cpp and heads.cpp.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/personalisation/input_rows.hpp"
#include "segrec/personalisation/mlp.hpp"
#include "segrec/personalisation/model.hpp"
#include "segrec/personalisation/train/batches.hpp"
#include "segrec/personalisation/train/data.hpp"
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
// Epoch numbers of the head fine-tuning (input dropout keys), apart from the global epochs.
inline constexpr std::int64_t kHeadEpochBase = std::int64_t{1} << 40;
// Epoch numbers of the head fine-tuning (input dropout keys), apart from the global epochs.

// Bytes this rank has sent in the collectives that exchange gradients and parameters.
inline std::uint64_t sync_bytes(const CommStats& s) {
  return s.allreduce_bytes + s.reduce_scatter_bytes + s.gather_bytes;
}

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
    setup_grad_sync();
  }

  TrainResult run(const EpochCallback& on_epoch);

 private:
  void assign_roles();
  void build_order(std::int64_t epoch);
  void add_train_user(mlp::Batch<float>& bt, std::int64_t i, std::int64_t epoch) const;
  void setup_grad_sync();
  // Combines the ranks' gradients in grad_ (with the loss and stop flag): afterwards
  // scalars_ hold the sums and grad_ the gradient sum (sharded: only in [upd_lo_, upd_hi_)).
  // Returns the global sum of squares of the gradient sum when sharded and clipping, else 0.
  double sync_gradients();
  void optimiser_step(float inv_count, double lr, double sumsq);
  void gather_parameters();
  // --grad-sync items: every rank gets the output columns (and sparse input rows) that the
  // others updated.
  void gather_item_parts();
  std::vector<float> all_moments(const std::vector<float>& share) const;
  // This rank's part of full (P_) moments: its owned ranges, concatenated.
  std::vector<float> own_moments(const std::vector<float>& all) const;
  // Bytes this rank has sent in the gradient and parameter exchange, over all communicators.
  std::uint64_t sent_bytes() const {
    return sync_bytes(comm_.stats()) +
           (hierarchical_ ? sync_bytes(node_.stats()) + sync_bytes(cross_.stats()) : 0);
  }
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

  std::vector<float> flat_;  // [gradient (P) | loss sum | stop flag]; see setup_grad_sync()
  // --grad-sync
  enum class Sync { kAllreduce, kBuckets, kSharded, kItems } sync_ = Sync::kAllreduce;
  mlp::GradReady buckets_;        // kBuckets: starts an Iallreduce per finished range
  std::vector<Request> pending_;  // kBuckets: the step's allreduces in flight
  float* grad_ = nullptr;         // the gradient: flat_ or (hierarchical) this rank's shared part
  float* scalars_ = nullptr;      // loss sum and stop flag, in flat_
  // kSharded. Flat: rank r updates [shard_off_[r], shard_off_[r + 1]) and the shares are
  // exchanged over all ranks. Hierarchical (several ranks per node, as many on every node):
  // node rank l sums block [node_off_[l], node_off_[l + 1]) from the node's shared gradients,
  // and splits it with the other nodes' rank l (cross_) at cross_off_ (relative to the block).
  bool hierarchical_ = false;
  Comm node_, cross_;      // before grad_win_, which uses node_
  SharedWindow grad_win_;  // node ranks x P floats
  std::vector<std::int64_t> shard_off_, node_off_, cross_off_;
  std::int64_t upd_lo_ = 0, upd_hi_ = 0;  // the share of [S_, D_) this rank updates
  // kItems (several ranks, a hidden layer): the output layer is split by item columns, rank r
  // owning [cols_[r], cols_[r + 1]), and so are the sparse input's rows of W0, [in_rows_[r],
  // in_rows_[r + 1]) (see Network::loss_and_grad_split); the parameters between,
  // [S_, D_), are sharded as above; the small embedding is allreduced and updated by all.
  bool items_ = false;
  std::int64_t S_ = 0, D_ = 0;  // the sharded parameters (all, [0, P_), unless items_)
  std::vector<std::int64_t> cols_, in_rows_;  // items_: column and input row offsets
  std::vector<float> grad_out_;  // items_: (h + 1) x nc, this rank's output-layer gradient
  // The parameter ranges this rank updates, with their gradient; the moments m_, v_ hold
  // these ranges back to back. Replicated ranges are updated alike on every rank.
  struct Owned {
    std::int64_t param = 0, n = 0;
    float* grad = nullptr;
    bool replicated = false;
    std::vector<std::pair<std::int64_t, std::int64_t>> decayed;  // relative to param
  };
  std::vector<Owned> own_;
  std::vector<float> m_, v_;  // optimiser moments of own_
  std::vector<float> best_params_;
  // Progress (checkpointed).
  std::int64_t epoch_ = 0, step_in_epoch_ = 0, global_step_ = 0;
  double epoch_loss_ = 0;
  double best_ndcg_ = -1;
  std::int64_t best_epoch_ = -1, since_best_ = 0;
  std::vector<EpochStats> history_;
};

}  // namespace segrec::train_impl
