// `segrec train` options: TrainParams (the option text, as bound by the CLI),
// TrainModes (its enum-class modes, parsed once by validate()) and the auto
// batch size and epoch count.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "segrec/personalisation/mlp.hpp"
#include "segrec/personalisation/model_kind.hpp"

namespace segrec {

/// The parsed mode options of a training run (TrainParams::validate()).
struct TrainModes {
  enum class Input { kHistory, kProjected, kBoth };
  enum class HistoryWeight { kBinary, kLog };
  enum class Personalize { kNone, kSegmentInput, kSegmentHeads };
  enum class Optimizer { kAdam, kSgd };
  enum class GradSync { kAllreduce, kBuckets, kSharded, kItems };
  enum class LrSchedule { kConstant, kCosine, kStep };

  ModelKind model_kind = ModelKind::kMlp;
  Input input = Input::kHistory;
  HistoryWeight history_weight = HistoryWeight::kBinary;
  Personalize personalize = Personalize::kNone;
  mlp::Activation activation = mlp::Activation::kTanh;
  mlp::Loss loss = mlp::Loss::kSoftmax;
  bool auto_loss = false;  ///< --loss auto: TrainParams::effective_loss() decides
  Optimizer optimizer = Optimizer::kAdam;
  GradSync grad_sync = GradSync::kItems;
  LrSchedule lr_schedule = LrSchedule::kCosine;
  /// The segment labels are read (a segment mode, the comparison, or --segments given).
  bool reads_segments = false;

  bool uses_history() const { return input != Input::kProjected; }
  bool uses_projection() const { return input != Input::kHistory; }
  bool uses_segments() const { return personalize == Personalize::kSegmentInput; }
  bool uses_heads() const { return personalize == Personalize::kSegmentHeads; }
};

struct TrainParams {
  std::string data;        ///< dataset.h5 (required by the CLI)
  std::string projection;  ///< projection.h5: /H read for --input projected|both
  std::string segments;    ///< segments.h5: /labels read for --personalize segment-input
  std::string profiles;    ///< profiles.h5: with projection and segments, the serving bundle
  std::string out;         ///< model.h5 to write
  std::string checkpoint;  ///< checkpoint file; "" = OUT.ckpt.h5
  bool resume = false;     ///< continue from the checkpoint

  /// mlp | ease (closed-form item-item model, ease.hpp) | popularity (training counts)
  std::string model_kind = "mlp";
  /// ease: the L2 weight lambda, "auto" (the best of ease::default_grid() on the
  /// validation users) or a list such as 100,500,1000 (the best of them)
  std::string l2 = "auto";
  std::int64_t max_len = 50;  ///< sequence: events per user window (L)
  std::int64_t seq_dim = 64;  ///< sequence: embedding and GRU state width
  double seq_dropout = 0.2;   ///< sequence: dropout on the GRU's input and output features
  bool seq_tied = true;       ///< sequence: score items with the input item embedding
  bool seq_time_gap = true;   ///< sequence: embed the time since the previous event
  double seq_lr = 5e-3;       ///< sequence: peak learning rate (in place of --lr)

  std::string input = "history";          ///< history | projected | both
  std::string history_weight = "binary";  ///< binary | log (log1p of the summed event weight)
  /// none | segment-input (a learned segment embedding joins the input) |
  /// segment-heads (after global training every segment fine-tunes its own copy
  /// of the top --head-layers layers on its users)
  std::string personalize = "none";
  std::int64_t segment_embedding = 0;   ///< width E of the learned segment embedding (0 = off)
  std::int64_t head_layers = 1;         ///< segment-heads: layers per head (1 = the output layer)
  std::int64_t head_epochs = 10;        ///< segment-heads: fine-tuning epochs per segment
  double head_lr = 2e-4;                ///< segment-heads: fine-tuning learning rate (constant)
  std::int64_t min_segment_users = 50;  ///< smaller segments keep the global head
  /// Train none, segment-input and segment-heads on the same split and report
  /// their quality side by side (the model written is the --personalize one).
  bool compare_personalize = false;
  /// hidden widths, e.g. "1000" or "256,256"; "none" = linear; "auto" = one layer of
  /// kAutoHidden, narrowed by kAutoHiddenStep until training fits --max-memory-per-rank
  /// (train() resolves it: TrainParams::width_rule then says why)
  std::string hidden = "auto";
  static constexpr std::int64_t kAutoHidden = 1000, kAutoHiddenStep = 64;
  /// Set by train() when it resolved --hidden auto: the rule, for resolved_summary.
  std::string width_rule;
  std::string activation = "tanh";  ///< relu | tanh
  double input_dropout = 0.5;       ///< share of each user's history dropped from the input
  double dropout = 0;               ///< dropout rate of the hidden layers
  /// softmax (multinomial) | sampled-softmax (the softmax's partition sum estimated from each
  /// user's items and --negatives items shared by the batch) | bce (sigmoid + cross-entropy) |
  /// auto: sampled-softmax when users x items >= kAutoSampledWork and the items are at least
  /// kAutoSampledRatio x the auto negatives, else softmax
  std::string loss = "auto";
  /// sampled-softmax: items drawn per step (with replacement); 0 = auto:
  /// n_items / kAutoNegativesDiv within [kAutoMinNegatives, kAutoMaxNegatives]
  std::int64_t negatives = 0;
  /// sampled-softmax: the proposal Q(i) ~ (training count of i + 1)^alpha (0 = uniform)
  double negative_alpha = 0.5;
  static constexpr double kAutoSampledWork = 2e9;
  static constexpr std::int64_t kAutoSampledRatio = 8, kAutoNegativesDiv = 10;
  static constexpr std::int64_t kAutoMinNegatives = 256, kAutoMaxNegatives = 2048;

  std::string optimizer = "adam";                      ///< adam | sgd (with momentum)
  double lr = 5e-4;                                    ///< peak learning rate
  double momentum = 0.9;                               ///< SGD momentum
  double beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8;  ///< Adam constants
  double weight_decay = 0;  ///< decoupled for Adam (AdamW), L2 for SGD; not on biases
  double clip = 0;          ///< clip the gradient to this global L2 norm (0 = off)
  /// How the ranks combine their gradients each step (the same model either way):
  ///   allreduce  one blocking MPI_Allreduce of the flat gradient after the backward pass
  ///   buckets    an MPI_Iallreduce per bucket (--bucket-mb), started during the backward
  ///              pass as each layer's gradient is final, awaited before the update
  ///   sharded    reduce-scatter of the gradient, each rank updates its 1/P share of the
  ///              parameters and moments, then an allgather of the parameters; with
  ///              several ranks on each node, the ranks of a node sum their gradients
  ///              in shared memory and only the nodes exchange messages
  ///   items      the output layer (hidden x items) is split by item columns over the
  ///              ranks: each rank scores the whole global batch on its columns (the
  ///              last hidden rows, targets and softmax sums are exchanged, dL/dH is
  ///              reduce-scattered back), so that layer's gradient is never summed or
  ///              its weights gathered per step; the layers below are sharded as
  ///              above. Needs a hidden layer (else, and on one rank, it is sharded)
  std::string grad_sync = "items";
  double bucket_mb = 4;                ///< buckets: MiB of gradient per nonblocking allreduce
  std::string lr_schedule = "cosine";  ///< constant | cosine | step (after the warmup)
  std::int64_t warmup_steps = 0;       ///< linear warmup steps
  std::int64_t lr_step_epochs = 10;    ///< step schedule: decay every this many epochs
  double lr_gamma = 0.1;               ///< step schedule: decay factor
  /// Passes over the training users; -1 = auto: the fewest epochs that take kAutoSteps
  /// optimiser steps, within [kAutoMinEpochs, kAutoMaxEpochs] (early stopping on the
  /// validation NDCG ends most runs sooner). A budget of steps, not of epochs: from
  /// kAutoSteps / 10 = 400 steps per epoch (200,000 training users at batch
  /// 500) up, fewer than 10 epochs (10^6 users: 3 of 1,800 steps; 10^7: 1 of 18,000).
  std::int64_t epochs = -1;
  /// Global batch, whatever the rank count; 0 = auto: n_train / kAutoBatchesPerEpoch,
  /// within [kAutoMinBatch, kAutoMaxBatch].
  std::int64_t batch_size = 0;
  static constexpr std::int64_t kAutoSteps = 4000, kAutoMinEpochs = 1, kAutoMaxEpochs = 200;
  static constexpr std::int64_t kAutoBatchesPerEpoch = 16, kAutoMinBatch = 32, kAutoMaxBatch = 500;

  double val_users = 0.1;      ///< share of users held out for validation (0 = none)
  double val_holdout = 0.2;    ///< share of a validation user's items held out and ranked
  std::int64_t ndcg_k = 100;   ///< K of the validation NDCG@K
  std::int64_t recall_k = 20;  ///< K of the reported Recall@K
  std::int64_t patience = 10;  ///< stop after this many epochs without a better NDCG (0 = off)
  /// CSV (header naming user_id and item_id columns) of held-out items of users
  /// in the data: those users are left out of training and validation, and
  /// after training are scored with their data as the fold-in history (every
  /// rank reads the whole file; meant for evaluation splits).
  std::string test_items;

  std::int64_t checkpoint_every = 1;  ///< epochs between checkpoints (0 = none)
  std::int64_t stop_after_steps =
      0;                    ///< write a checkpoint and stop after this many steps (0 = off)
  std::uint64_t seed = 42;  ///< keys every random choice (with global user indices)

  /// Throws UsageError naming the option and the value; returns the parsed modes.
  TrainModes validate() const;
  /// Parsed --l2 (ease): the lambdas to try, ascending.
  std::vector<double> l2_values() const;
  /// Parsed --hidden ("auto": {kAutoHidden}, until train() resolves it).
  std::vector<std::int64_t> hidden_sizes() const;
  /// The checkpoint path ("" when neither --checkpoint nor --out is set).
  std::string checkpoint_path() const;
  /// The batch size and epochs for this many training users (auto values resolved).
  std::int64_t effective_batch(std::int64_t n_train) const;
  /// effective_batch, after refusing a --batch-size larger than the n_train training `unit`s
  /// (users; the sequence model's windows) (DataError, collective).
  std::int64_t checked_batch(std::int64_t n_train, const char* unit = "users") const;
  std::int64_t effective_epochs(std::int64_t n_train) const;
  /// The loss for this many users and items (--loss auto resolved).
  mlp::Loss effective_loss(const TrainModes& m, std::int64_t n_users, std::int64_t n_items) const;
  /// The negatives drawn per step for this many items (--negatives 0 resolved).
  std::int64_t effective_negatives(std::int64_t n_items) const;
  /// The resolved loss, width, batch and epochs as one line, each automatic choice marked
  /// with its rule, e.g. "loss sampled-softmax (auto: users x items >= 2e9), 2000 negatives
  /// (auto), hidden 1000, batch 500 (auto), 3 epochs (auto: >= 4000 steps at 1800 per
  /// epoch)". n_users, n_items: the data set's; n_train: the training users.
  std::string resolved_summary(const TrainModes& m, std::int64_t n_users, std::int64_t n_items,
                               std::int64_t n_train) const;
  /// The options a checkpoint must agree on, as "name=value" lines (paths, the stop and
  /// checkpoint settings and the gradient exchange left out: they do not change the model).
  std::string checkpoint_config() const;
  /// Every option as (name, value) text, for the model file and the config hash.
  std::vector<std::pair<std::string, std::string>> config() const;
};

/// Hidden widths as --hidden text: "256,256", or "none" when empty.
std::string join_sizes(const std::vector<std::int64_t>& v);

}  // namespace segrec
