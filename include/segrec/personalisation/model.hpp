// The trained personalisation model: model.h5 reading and writing, and
// scoring users with it (top-N items per user).
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
//   / (attribute model_kind)   mlp | ease | popularity (absent: mlp). For ease and
//                              popularity /mlp is absent and instead:
//   /ease/B                    f32 n_items x n_items (row-partitioned by item blocks)
//   /ease (attributes)         l2, history_weight; /ease/l2_grid, /ease/val_ndcg f64
//   /popularity/scores         f32[n_items]: training counts
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/personalisation/bundle.hpp"
#include "segrec/personalisation/mlp.hpp"
#include "segrec/personalisation/model_kind.hpp"

namespace segrec {

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
  /// mlp: shape, params and heads below. ease / popularity: shape is the linear
  /// n_items -> n_items shape (no parameters); the item scores are in item_item /
  /// item_scores (ease.hpp).
  ModelKind kind = ModelKind::kMlp;
  std::vector<float> item_item;          ///< ease: B, n_items x n_items, row-major, zero diagonal
  std::vector<float> item_scores;        ///< popularity: the training count of each item
  double l2 = 0;                         ///< ease: the lambda of B
  std::vector<double> l2_grid, l2_ndcg;  ///< ease: the lambdas tried, their validation NDCG
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

/// The quality table as text (one line per mode, then per segment).
std::string quality_table(const Model& m);

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

/// Indices of the k largest finite scores of z[0, n) (ties: the smaller index first), best
/// first, into `out`; `scratch` is reused between calls.
void top_k(const float* z, std::int64_t n, std::int64_t k, std::vector<std::int32_t>& scratch,
           std::vector<std::int32_t>& out);

/// Scores each user's items with the model and keeps the best n, excluding the
/// items in the user's history unless `exclude_history` is false.
TopN score_users(const Model& m, const UserInputs& users, std::int64_t n,
                 bool exclude_history = true);

}  // namespace segrec
