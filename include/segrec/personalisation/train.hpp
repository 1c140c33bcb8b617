// `segrec train`: the personalisation model, trained data-parallel.
//
// Every rank holds an even block of users and trains on its own. Each epoch
// draws a seeded permutation of the global training-user indices, cut into
// global batches of at most --batch-size users; the permutation is stratified
// (every batch takes one user from each run of consecutive global indices), so
// that each rank holds an even share of every batch. A rank computes the
// gradient of its members of the batch, one allreduce sums the flat gradient
// buffer, and every rank takes the identical optimiser step. Batches, dropout masks and the
// validation split are keyed by the seed and GLOBAL user indices, so the
// result does not depend on the rank count (up to float rounding).
//
// model.h5 (format "segrec-model", version 1):
//   /items/ids                 string[n_items]
//   /mlp/W<l>, /mlp/b<l>       f32 fan_in x fan_out, f32[fan_out]; layer 0 reads
//                              [history (n_items) | dense (h) | embedding (E)]
//   /mlp/segment_embedding     f32 k x E (when trained with one)
//   /mlp/heads/segments        i32[n_heads]: the segment of each head (segment-heads)
//   /mlp/heads/W<l>, b<l>      f32 (n_heads * fan_in) x fan_out, n_heads x fan_out: the
//                              per-segment copies of the top `layers` layers
//   /mlp (attributes)          input, history_weight, activation, loss, hidden,
//                              sparse_in, dense_in, n_segments, embed_dim, n_items
//   /config (attributes)       every training option
//   /curves/train_loss, /curves/val_ndcg, /curves/lr, /curves/seconds   f64[epochs]
//   /curves/val_recall         f64[epochs]
//   /validation (attributes)   best_epoch, best_ndcg, k, recall_k, n_users, n_train_users
//   /validation/quality/...    the quality table (mode, users, segment, n_users, ndcg, recall)
//   /profile, /projection, /segments, /cooc   the serving bundle (bundle.hpp), when
//                              trained with --profiles, --projection and --segments
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/personalisation/bundle.hpp"
#include "segrec/personalisation/mlp.hpp"

namespace segrec {

struct TrainParams {
  std::string data;        ///< dataset.h5 (required by the CLI)
  std::string projection;  ///< projection.h5: /H read for --input projected|both
  std::string segments;    ///< segments.h5: /labels read for --personalize segment-input
  std::string profiles;    ///< profiles.h5: with projection and segments, the serving bundle
  std::string out;         ///< model.h5 to write
  std::string checkpoint;  ///< checkpoint file; "" = OUT.ckpt.h5
  bool resume = false;     ///< continue from the checkpoint

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
  std::string hidden = "1000";      ///< hidden widths, e.g. "1000" or "256,256"; "none" = linear
  std::string activation = "tanh";  ///< relu | tanh
  double input_dropout = 0.5;       ///< share of each user's history dropped from the input
  double dropout = 0;               ///< dropout rate of the hidden layers
  std::string loss = "softmax";     ///< softmax (multinomial) | bce (sigmoid + cross-entropy)

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
  /// Passes over the training users; -1 = auto: enough epochs for kAutoSteps
  /// optimiser steps, within [kAutoMinEpochs, kAutoMaxEpochs] (early stopping
  /// on the validation NDCG ends most runs sooner).
  std::int64_t epochs = -1;
  /// Global batch, whatever the rank count; 0 = auto: n_train / kAutoBatchesPerEpoch,
  /// within [kAutoMinBatch, kAutoMaxBatch].
  std::int64_t batch_size = 0;
  static constexpr std::int64_t kAutoSteps = 4000, kAutoMinEpochs = 10, kAutoMaxEpochs = 200;
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

  /// Throws UsageError naming the option and the value.
  void validate() const;
  /// Parsed --hidden.
  std::vector<std::int64_t> hidden_sizes() const;
  /// The checkpoint path ("" when neither --checkpoint nor --out is set).
  std::string checkpoint_path() const;
  bool uses_history() const { return input != "projected"; }
  bool uses_projection() const { return input != "history"; }
  bool uses_segments() const { return personalize == "segment-input"; }
  bool uses_heads() const { return personalize == "segment-heads"; }
  /// The segment labels are read (a segment mode, the comparison, or --segments given).
  bool reads_segments() const {
    return personalize != "none" || compare_personalize || !segments.empty();
  }
  /// The batch size and epochs for this many training users (auto values resolved).
  std::int64_t effective_batch(std::int64_t n_train) const;
  std::int64_t effective_epochs(std::int64_t n_train) const;
  /// Every option as (name, value) text, for the model file and the config hash.
  std::vector<std::pair<std::string, std::string>> config() const;
};

/// This rank's block of users, in memory.
struct TrainData {
  std::int64_t n_users = 0;     ///< global
  std::int64_t user_begin = 0;  ///< global index of the first local user
  std::vector<std::string> item_ids;
  // Interactions, local CSR n_local x n_items: summed event weights.
  std::vector<std::int64_t> indptr{0};
  std::vector<std::int32_t> indices;
  std::vector<float> weights;
  std::int64_t dense_dim = 0;          ///< width of `dense`
  std::vector<float> dense;            ///< n_local x dense_dim, row-major (the projection h_u)
  std::int64_t n_segments = 0;         ///< k
  std::vector<std::int32_t> segments;  ///< n_local labels in [0, k)

  std::vector<std::string> user_ids;  ///< n_local (needed by --test-items)

  std::int64_t n_local() const { return static_cast<std::int64_t>(indptr.size()) - 1; }
  std::int64_t n_items() const { return static_cast<std::int64_t>(item_ids.size()); }
};

/// Collective. Reads this rank's block of dataset.h5 and, as the options ask,
/// projection.h5 (/H) and segments.h5 (/labels); checks that they match.
TrainData load_train_data(const TrainParams& p, const Comm& comm);

/// One row of the quality table: a mode scored on a set of users.
struct QualityRow {
  std::string mode;           ///< none | segment-input | segment-heads
  std::string users;          ///< validation | test
  std::int32_t segment = -1;  ///< -1: all users
  std::int64_t n_users = 0;
  double ndcg = 0, recall = 0;  ///< mean NDCG@ndcg_k, Recall@recall_k
};

/// A trained model: the network and what it needs to read a user.
struct Model {
  mlp::Shape shape;
  std::string input = "history";
  std::string history_weight = "binary";
  std::vector<std::string> item_ids;
  std::vector<float> params;  ///< flat, in mlp::Layout order
  // Segment heads: head h replaces the parameters of the top head_layers layers
  // (the flat range [Layout.w[L - head_layers], Layout.emb)) for the users of
  // segment head_segments[h]; other segments use the global layers.
  std::int64_t head_layers = 0;
  std::vector<std::int32_t> head_segments;
  std::vector<float> heads;  ///< n_heads x head_size(), row-major
  std::vector<std::pair<std::string, std::string>> config;
  // Training record.
  std::vector<double> train_loss, val_ndcg, lr, seconds;  ///< per epoch
  std::vector<double> val_recall;                         ///< per epoch
  std::vector<QualityRow> quality;  ///< validation (and test) quality per mode and segment
  std::int64_t recall_k = 0;
  std::int64_t best_epoch = -1;  ///< 1-based epoch of the kept weights (-1: the last)
  double best_ndcg = std::numeric_limits<double>::quiet_NaN();
  std::int64_t ndcg_k = 0, n_val_users = 0, n_train_users = 0;
  std::optional<ServingParts> serving;  ///< what serves new users (bundle.hpp), if stored

  /// Parameters per head (0 without heads).
  std::int64_t head_size() const;
};

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

struct TrainResult {
  Model model;
  std::vector<EpochStats> epochs;  ///< every epoch, those before a resume included
  bool stopped_early = false;
  std::int64_t steps_per_epoch = 0;
  std::int64_t batch_size = 0, planned_epochs = 0;  ///< as resolved (auto values)
  std::uint64_t sync_bytes_per_step =
      0;  ///< bytes this rank sends per step (gradients and parameters)
  /// How the gradients were combined, e.g. "sharded over 2 nodes x 2 ranks (shared memory
  /// within a node)" or "allreduce over 4 ranks".
  std::string sync_layout;
  std::int64_t n_test_users = 0;  ///< users scored from --test-items
};

/// The quality table as text (one line per mode, then per segment).
std::string quality_table(const Model& m);

using EpochCallback = std::function<void(const EpochStats&)>;

/// Collective. Trains on the data (each rank its block); writes checkpoints
/// as asked. Throws Interrupted after writing a checkpoint when a stop was
/// requested (request_training_stop) or after --stop-after-steps.
TrainResult train(const TrainParams& p, const TrainData& data, const Comm& comm,
                  const EpochCallback& on_epoch = {});

/// Asks a running train() to checkpoint and stop at the next step (async-signal-safe).
void request_training_stop();

/// Collective. Writes / reads model.h5.
void write_model(const std::string& path, const Model& m, const Comm& comm);
Model read_model(const std::string& path, const Comm& comm);

/// Throws DataError unless the model was trained on exactly these items.
void check_items(const Model& m, const std::vector<std::string>& item_ids, const std::string& what);

/// A block of users to score.
struct UserInputs {
  std::vector<std::int64_t> indptr{0};  ///< CSR rows x n_items of summed event weights
  std::vector<std::int32_t> indices;
  std::vector<float> weights;
  std::vector<float> dense;            ///< rows x model dense width (projection)
  std::vector<std::int32_t> segments;  ///< rows (segment labels), when the model has an embedding
                                       ///< or heads
  bool segment_heads = true;           ///< score with the segment heads (when the model has them)
  std::int64_t rows() const { return static_cast<std::int64_t>(indptr.size()) - 1; }
};

/// Top-N items per user, best first: rows x n, item -1 / score -inf where a
/// user has fewer than n candidates. Ties go to the smaller item index.
struct TopN {
  std::int64_t n = 0;
  std::vector<std::int32_t> items;
  std::vector<float> scores;  ///< the logits
};

/// Scores each user's items with the model and keeps the best n, excluding the
/// items in the user's history unless `exclude_history` is false.
TopN score_users(const Model& m, const UserInputs& users, std::int64_t n,
                 bool exclude_history = true);

namespace detail {

/// A bijection of [0, n) keyed by `key` (the epoch's batch order): a 4-round
/// Feistel network over the smallest even-bit domain >= n, with cycle walking.
class Permutation {
 public:
  Permutation(std::uint64_t n, std::uint64_t key);
  std::uint64_t operator()(std::uint64_t x) const;

 private:
  std::uint64_t feistel(std::uint64_t x) const;
  std::uint64_t n_, key_;
  int half_;
  std::uint64_t mask_;
};

/// The batches of one epoch over N global training users. The indices t in
/// [0, N) are cut into strata of n_batches consecutive indices; a permutation
/// of [0, n_batches) keyed by (key, stratum) sends each user of a stratum to its
/// own batch, so every batch draws one user from each stratum (at most
/// ceil(N / n_batches) users) and a contiguous block of users holds an even
/// share of every batch.
class EpochBatches {
 public:
  EpochBatches(std::uint64_t n, std::uint64_t n_batches, std::uint64_t key);
  std::uint64_t batch(std::uint64_t t) const;
  /// Users per batch.
  std::vector<std::int64_t> counts() const;

 private:
  std::uint64_t n_, nb_, key_;
};

/// NDCG@k of a ranked list (best first, at most k long) against the sorted
/// relevant items; the ideal DCG covers min(k, |relevant|) hits.
double ndcg_at(const std::vector<std::int32_t>& ranked, const std::vector<std::int32_t>& relevant,
               std::int64_t k);

}  // namespace detail
}  // namespace segrec
