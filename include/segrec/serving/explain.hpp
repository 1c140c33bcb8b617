// Faithful explanations: which history items made the model rank a recommended item,
// measured by leave-one-out. For a user with history items i_1..i_h the model is run
// once with the full history and once without each i_k (h + 1 input rows, batches of up
// to 1,024: the first layer by a rank-one update of the full row, the layers above as one
// GEMM each, the output layer only for a shortlist of items: the listed ones and the best
// other candidates, 50 in all by default).
// The effect of i_k on item c is rel(full, c) - rel(without i_k, c), where the relative
// score rel(c) = logit(c) - log sum_{j in shortlist} exp(logit(j)) is c's log-share of the
// shortlist under the model's softmax. Raw logits would not do: the network's scores are
// defined up to a per-user constant (removing any item shifts them all), so only a
// score relative to the competing items says what lifted c in the ranking.
// The rank of c without its strongest history item comes from that variant's full
// output row, counted among the same candidates as the list (items not in the history
// and not excluded; ties to the smaller item index, as the list).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "segrec/io/items.hpp"
#include "segrec/personalisation/model.hpp"

namespace segrec {

namespace explain_detail {
using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
}

/// What one history item did to a recommended item's score.
struct HistoryEffect {
  std::int32_t item = -1;  ///< model item index (in the history)
  /// Relative score of the recommended item with the full history minus without this item.
  float effect = 0;
};

/// One recommended item, explained.
struct ItemExplanation {
  std::int32_t item = -1;
  std::int64_t rank = 0;             ///< 1-based position in the list (full history)
  float score = 0;                   ///< logit with the full history
  std::vector<HistoryEffect> named;  ///< items with the largest positive effects, largest first
  std::int64_t rank_without = 0;     ///< rank without named[0] (0 when nothing is named)
  bool linear = false;               ///< effects are score differences (ease), not relative scores
};

class Explainer {
 public:
  /// `named`: history items named per recommended item; `shortlist`: candidates the
  /// relative score is taken over (the listed items and the best others); `chunk`:
  /// leave-one-out rows per batch (memory: chunk x (widest layer + shortlist) floats).
  explicit Explainer(const Model& m, std::int64_t named = 3, std::int64_t shortlist = 50,
                     std::int64_t chunk = 1024);

  /// Local. Explains `list` (model items, best first; -1 ends it), the list of row r
  /// of `u`. `excluded`: per model item, 1 = never a candidate.
  std::vector<ItemExplanation> explain(const UserInputs& u, std::int64_t r,
                                       std::span<const std::int32_t> list,
                                       const std::vector<std::uint8_t>& excluded) const;
  /// Local. The same for rows [r0, r1) of `u`, their lists `lists` ((r1 - r0) x n);
  /// rows with skip[r - r0] != 0 get none (skip empty: none skipped). The full output
  /// rows (ranks) of many users go through the network together.
  std::vector<std::vector<ItemExplanation>> explain_rows(
      const UserInputs& u, std::int64_t r0, std::int64_t r1, std::span<const std::int32_t> lists,
      std::int64_t n, std::span<const std::uint8_t> skip,
      const std::vector<std::uint8_t>& excluded) const;

 private:
  struct Pass;     // rows of one user: the full history or without one item each
  struct Pending;  // a variant whose full output row is still to be computed
  std::int64_t history(const UserInputs& u, std::int64_t r) const;  // items the model reads
  // drops[q]: the history position row q leaves out (-1: none).
  Pass run(const UserInputs& u, std::int64_t r, std::span<const std::int64_t> drops) const;
  // Output-layer scores of X (rows of the output layer's input; a linear model's logits)
  // for the items `cols` (empty: all): rows x |cols|.
  explain_detail::Matrix output(std::size_t group, const explain_detail::Matrix& X,
                                std::span<const std::int32_t> cols) const;
  explain_detail::Matrix outputs(std::span<const std::size_t> groups,
                                 const explain_detail::Matrix& X) const;
  // One user's explanations; the ranks wait in `pending`. z0: full-history scores.
  std::vector<ItemExplanation> explain_user(const UserInputs& u, std::int64_t r,
                                            std::span<const std::int32_t> list,
                                            const std::vector<std::uint8_t>& excluded,
                                            const Pass& p0, const float* z0,
                                            std::vector<Pending>& pending) const;
  const float* weights(int layer, std::size_t group) const;  // fan_in x fan_out, row-major
  const float* bias(int layer, std::size_t group) const;
  std::size_t group_of(const UserInputs& u, std::int64_t r) const;  // 0: the global layers

  const Model& m_;
  mlp::Layout lay_;
  std::int64_t named_, shortlist_, chunk_;
  std::int64_t head_begin_ = 0, head_size_ = 0;
};

/// The explanations of an ease or popularity model (Explainer::explain_rows dispatches
/// here): the score is linear in the history, s_c = sum_i x_ui B_ic, so removing history
/// item i changes c's score by exactly x_ui B_ic, its effect; the items with the largest
/// positive effects are named and the rank without the first is that of s - x_ui B_i.
/// A popularity model's scores do not depend on the history: nothing is named.
std::vector<std::vector<ItemExplanation>> explain_linear_rows(
    const Model& m, std::int64_t named, const UserInputs& u, std::int64_t r0, std::int64_t r1,
    std::span<const std::int32_t> lists, std::int64_t n, std::span<const std::uint8_t> skip,
    const std::vector<std::uint8_t>& excluded);

/// Display names per model item: the --items name when the file has the item and a
/// name, else the item id.
std::vector<std::string> item_display_names(const Model& m, const ItemAttributes* items);

/// "ranked 3rd; without Toy Story (1995) it would be 41st (relative score -2.1); also raised by
/// Fargo (1996) (-0.9), Heat (1995) (-0.4)".
std::string describe(const ItemExplanation& e, const std::vector<std::string>& names);

/// "1st", "2nd", "3rd", "4th", "11th", "21st", ...
std::string ordinal(std::int64_t n);

}  // namespace segrec
