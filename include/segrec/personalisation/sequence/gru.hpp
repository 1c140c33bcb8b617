// The sequence model's network (GRU4Rec style): an item embedding plus an event-type
// embedding (plus, optionally, an embedding of the time since the previous event, in log2
// buckets) feeds a GRU over a user's last L events; the state after position t scores
// every item as the next one (h_t . E_out^T + b_out, softmax over all items; E_out is the
// input item embedding when tied).
//
// A batch holds B windows, time-major (row t * B + b of every T*B matrix is window b at
// position t); windows shorter than T are padded at the end (item -1, no target). The
// GRU (gates z, r, n; PyTorch's convention):
//   z = s(x Wx_z + bx_z + h Wh_z + bh_z), r = s(x Wx_r + bx_r + h Wh_r + bh_r)
//   n = tanh(x Wx_n + bx_n + r * (h Wh_n + bh_n)),  h' = (1 - z) n + z h
// Training may drop input and output features (Batch::drop_in, drop_out: inverted dropout
// with masks fixed by the caller, so the gradient is exact for those masks).
// Every step is a GEMM over the batch (B x D times D x 3H); the input projection of all
// positions, the output scores and the weight gradients are single GEMMs over T*B rows.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "segrec/personalisation/mlp.hpp"

namespace segrec::seq {

/// Sizes of the network.
struct Shape {
  std::int64_t n_items = 0;  ///< output and input vocabulary
  std::int64_t n_types = 1;  ///< event types (embedded and added to the item's embedding)
  std::int64_t dim = 64;     ///< D: embedding width = GRU state width
  bool tied = false;         ///< the output scores with the input item embedding (no out_w block)
  std::int64_t n_gaps = 0;   ///< time-gap buckets embedded in the input (0: no gap input)
};

/// Time-gap buckets of the gap input: 0 = no previous event, else 1 + floor(log2(1 + dt))
/// for dt in the log's time unit (seconds: 1 s -> 2, 1 h -> 12, 1 day -> 17, 1 year -> 25),
/// capped at kGapBuckets - 1; a negative dt counts as 0.
inline constexpr std::int64_t kGapBuckets = 32;
std::uint8_t gap_bucket(double dt);

/// The times of a window of the last `keep` of the events timed `tm` (oldest first), as
/// Batch::from reads them: the time of the event before the window (NaN: none), then each.
inline std::vector<double> window_times(const std::vector<double>& tm, std::size_t keep) {
  std::vector<double> out;
  out.push_back(keep < tm.size() ? tm[tm.size() - keep - 1]
                                 : std::numeric_limits<double>::quiet_NaN());
  out.insert(out.end(), tm.end() - static_cast<std::ptrdiff_t>(keep), tm.end());
  return out;
}

/// Offsets of the parameter blocks in the flat vector (row-major matrices).
struct Layout {
  std::int64_t item_emb = 0;  ///< n_items x D
  std::int64_t type_emb = 0;  ///< n_types x D
  std::int64_t gap_emb = 0;   ///< n_gaps x D
  std::int64_t wx = 0;        ///< D x 3D   [z | r | n]
  std::int64_t wh = 0;        ///< D x 3D
  std::int64_t bx = 0;        ///< 3D
  std::int64_t bh = 0;        ///< 3D
  std::int64_t out_w = 0;     ///< n_items x D (output item embedding; = item_emb when tied)
  std::int64_t out_b = 0;     ///< n_items
  std::int64_t size = 0;
  explicit Layout(const Shape& s);
  /// The ranges that take weight decay (everything but the biases).
  std::vector<std::pair<std::int64_t, std::int64_t>> decayed() const;
};

/// B windows of at most T events, time-major (index t * B + b).
struct Batch {
  std::int64_t B = 0, T = 0;
  std::vector<std::int32_t> item;    ///< T*B, -1 = padding
  std::vector<std::uint8_t> type;    ///< T*B
  std::vector<std::int32_t> target;  ///< T*B: next item, -1 = no loss here
  std::vector<std::int32_t> len;     ///< B: valid positions of each window (>= 1)
  std::vector<std::uint8_t> gap;     ///< T*B gap buckets (empty: no times given)
  /// Dropout multipliers (0 or 1 / (1 - rate)), T*B x D row-major, or empty (none):
  /// drop_in on each position's input (item + type + gap embedding), drop_out on the state
  /// that scores the next item (not on the recurrence).
  std::vector<float> drop_in, drop_out;
  /// Builds a batch from windows given as event lists (items and types of equal length);
  /// with `targets`, window b's targets are its events shifted by one (its last event
  /// then is only a target: the window has size - 1 inputs). `times` (empty, or one list
  /// per window: the time of the event before the window, NaN when none, then each event's
  /// time) gives the gap buckets.
  static Batch from(const std::vector<std::vector<std::int32_t>>& items,
                    const std::vector<std::vector<std::uint8_t>>& types, bool targets,
                    const std::vector<std::vector<double>>& times = {});
  std::int64_t n_targets() const;
};

template <class T>
class GruNet {
 public:
  using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using MatMap = Eigen::Map<Matrix>;
  using CMatMap = Eigen::Map<const Matrix>;
  using RowVec = Eigen::Matrix<T, 1, Eigen::Dynamic>;

  explicit GruNet(const Shape& s) : shape_(s), layout_(s) {
    params_.assign(static_cast<std::size_t>(layout_.size), T(0));
  }
  const Shape& shape() const { return shape_; }
  const Layout& layout() const { return layout_; }
  std::vector<T>& params() { return params_; }
  const std::vector<T>& params() const { return params_; }

  /// Initial weights keyed by the seed and the parameter index (biases 0).
  void init(std::uint64_t seed);

  /// The summed cross-entropy of every target of the batch; adds its gradient (a sum,
  /// not a mean) to grad (layout().size). Returns the loss sum.
  double loss_and_grad(const Batch& b, T* grad);

  /// The same, item-parallel (--grad-sync items): rank r owns the output rows
  /// [cols[r], cols[r + 1]) of out_w and out_b. Every rank's scored states (and targets) are
  /// gathered, each rank scores its items for all of them (each row's softmax maximum and sum
  /// combined over the ranks), and each state's gradient is summed back to its rank. Adds to
  /// grad this rank's output rows and every block before out_w (the other output rows stay
  /// untouched); returns this rank's share of the batch loss (the shares sum to it).
  /// Collective over ex.
  double loss_and_grad_split(const Batch& b, T* grad, const mlp::ItemExchange<T>& ex,
                             std::span<const std::int64_t> cols);

  /// The GRU state after each window's last input: B x D.
  Matrix final_states(const Batch& b);

  /// Scores of all items for states H (rows x D): rows x n_items.
  Matrix scores(const Matrix& H) const;

 private:
  CMatMap W(std::int64_t off, std::int64_t r, std::int64_t c) const {
    return CMatMap(params_.data() + off, r, c);
  }
  void forward(const Batch& b);
  // Backward from dH (T*B x D, the loss gradient of every state; zero where none) through
  // time into the GRU, type and item embedding blocks of grad.
  void backward(const Batch& b, const Matrix& dH, T* grad);
  // Rows of H_ that score a target (time-major index), and their states with drop_out applied.
  std::vector<std::int64_t> target_rows(const Batch& b) const;
  void scored_states(const Batch& b, const std::int64_t* rows, std::int64_t m, T* out) const;

  Shape shape_;
  Layout layout_;
  std::vector<T> params_;
  // Forward state of the last batch (T*B rows).
  Matrix X_;          ///< inputs, T*B x D
  Matrix GX_;         ///< x Wx + bx, T*B x 3D
  Matrix Z_, R_, N_;  ///< gates, T*B x D
  Matrix NH_;         ///< h_prev Wh_n + bh_n, T*B x D
  Matrix H_;          ///< states, T*B x D
};

extern template class GruNet<float>;
extern template class GruNet<double>;

}  // namespace segrec::seq
