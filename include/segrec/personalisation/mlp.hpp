// The personalisation network (Mult-DAE style, Liang et al. 2018): a
// feed-forward net from a user's input row to one logit per item.
//
// The first layer reads the concatenation [history | dense | embedding]:
//   history    sparse, sparse_in wide (the user's items, L2-normalised),
//              multiplied sparse-times-dense straight into W0 (never densified)
//   dense      dense_in wide (e.g. the user's projection h_u)
//   embedding  embed_dim wide, row `segment` of a learned n_segments x embed_dim table
// then hidden layers (ReLU or tanh, optional dropout) and a linear output layer.
// Losses, summed over the batch rows (the caller divides by the global batch):
//   softmax  multinomial log-likelihood  -sum_i x_ui log softmax(z_u)_i
//   bce      sum_i softplus(z_ui) - y_ui z_ui  (sigmoid + binary cross-entropy)
//   sampled-softmax  the softmax with the partition sum Z_u = sum_i exp(z_ui) estimated
//            from the row's own targets (exact terms) plus the batch's shared negatives
//            (Batch::neg_idx, each weighted by exp(-neg_corr), an importance weight; a
//            negative that is one of the row's targets is left out of that row's sum):
//            -sum_i x_ui (z_ui - log Z^_u). Needs a hidden layer.
//
// All parameters live in one flat vector (see Layout), so that gradients are
// one buffer and one allreduce. The network is templated on the scalar type:
// training uses float, the gradient checks double.
#pragma once

#include "segrec/core/random.hpp"

#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace segrec::mlp {

enum class Activation { kRelu, kTanh };
enum class Loss { kSoftmax, kBce, kSampledSoftmax };

/// "relu" | "tanh"; throws UsageError naming --activation otherwise.
Activation parse_activation(const std::string& s);
/// "softmax" | "bce" | "sampled-softmax"; throws UsageError naming --loss otherwise.
Loss parse_loss(const std::string& s);
std::string to_string(Activation a);
std::string to_string(Loss l);

/// Sizes of a network.
struct Shape {
  std::int64_t sparse_in = 0;        ///< width of the sparse history input (0 = none)
  std::int64_t dense_in = 0;         ///< width of the dense input (0 = none)
  std::int64_t n_segments = 0;       ///< rows of the segment embedding table (0 = none)
  std::int64_t embed_dim = 0;        ///< width of a segment embedding (0 = none)
  std::vector<std::int64_t> hidden;  ///< hidden layer widths (empty = linear model)
  std::int64_t n_out = 0;            ///< one logit per item
  Activation activation = Activation::kRelu;
  Loss loss = Loss::kSoftmax;

  std::int64_t in_dim() const { return sparse_in + dense_in + embed_dim; }
  /// Dense layers including the output layer.
  int n_layers() const { return static_cast<int>(hidden.size()) + 1; }
  std::int64_t fan_in(int l) const { return l == 0 ? in_dim() : hidden[l - 1]; }
  std::int64_t fan_out(int l) const { return l + 1 == n_layers() ? n_out : hidden[l]; }
  /// Throws UsageError when a size is not positive or the parts do not fit.
  void check() const;
};

/// Offsets of the parameter blocks in the flat parameter vector:
/// W_l (fan_in x fan_out, row-major), b_l (fan_out), then the embedding
/// (n_segments x embed_dim, row-major).
struct Layout {
  std::vector<std::int64_t> w, b;
  std::int64_t emb = 0;
  std::int64_t size = 0;
  Layout() = default;
  explicit Layout(const Shape& s);
  /// True for entries that weight decay applies to (weights and embeddings, not biases).
  std::vector<std::pair<std::int64_t, std::int64_t>> decayed_ranges(const Shape& s) const;
};

/// One mini-batch: the input rows, the targets and the dropout keys.
template <class T>
struct Batch {
  std::int64_t rows = 0;
  // Sparse input, rows x sparse_in, CSR (values already normalised, input dropout applied).
  std::vector<std::int64_t> in_ptr{0};
  std::vector<std::int32_t> in_idx;
  std::vector<T> in_val;
  // Dense input, rows x dense_in, row-major.
  std::vector<T> dense;
  // Segment label per row (when the network has an embedding).
  std::vector<std::int32_t> segment;
  // Targets, rows x n_out, CSR: items and weights (bce: 1).
  std::vector<std::int64_t> tgt_ptr{0};
  std::vector<std::int32_t> tgt_idx;
  std::vector<T> tgt_val;
  // Hidden-dropout key per row (from the seed, the epoch and the global user index).
  std::vector<std::uint64_t> key;
  // Sampled softmax: the negatives shared by every row (item indices, ascending, distinct)
  // and the offset subtracted from each one's logit (log of its expected over its drawn count).
  std::vector<std::int32_t> neg_idx;
  std::vector<T> neg_corr;

  void clear() {
    rows = 0;
    in_ptr.assign(1, 0);
    in_idx.clear();
    in_val.clear();
    dense.clear();
    segment.clear();
    tgt_ptr.assign(1, 0);
    tgt_idx.clear();
    tgt_val.clear();
    key.clear();
    neg_idx.clear();
    neg_corr.clear();
  }
};

using rng::hash_keys;
using rng::splitmix64;
using rng::unit_uniform;

/// Gradient buckets: during the backward pass `ready(begin, end)` is called
/// for ranges of the flat gradient that are final, at most `bucket_elems`
/// long, from the output layer down (layer l's weights and bias, then the
/// embedding after layer 0), so that their reduction can start while the
/// layers below are still computed. The ranges depend only on the shape, so
/// every rank calls `ready` with the same ranges in the same order, even with
/// an empty batch slice.
struct GradReady {
  std::int64_t bucket_elems = 1 << 20;
  std::function<void(std::int64_t begin, std::int64_t end)> ready;
};

/// The collectives of the item-parallel step (Network::loss_and_grad_split)
/// over the ranks that share a batch, rank r of size(); every rank calls them
/// in the same order. Offsets: size()+1 element offsets, rank r's block
/// [off[r], off[r+1]). The one over Comm: train/item_exchange.hpp.
template <class T>
struct ItemExchange {
  virtual ~ItemExchange() = default;
  virtual int size() const = 0;
  virtual int rank() const = 0;
  /// Every rank's `local`, concatenated in rank order.
  virtual std::vector<std::int64_t> allgatherv(std::span<const std::int64_t> local) const = 0;
  virtual std::vector<std::int32_t> allgatherv(std::span<const std::int32_t> local) const = 0;
  virtual std::vector<T> allgatherv(std::span<const T> local) const = 0;
  /// Sums `data` over the ranks; rank r keeps block r of the sum (the rest is scratch).
  virtual void reduce_scatter(std::span<T> data, std::span<const std::int64_t> off) const = 0;
  /// Rank r's block r of `data` to every rank.
  virtual void allgather_blocks(std::span<T> data, std::span<const std::int64_t> off) const = 0;
  /// In place: the element-wise maximum over the ranks.
  virtual void allreduce_max(std::span<T> data) const = 0;
  /// In place: the element-wise sum over the ranks.
  virtual void allreduce_sum(std::span<double> data) const = 0;
};

template <class T>
class Network {
 public:
  using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using MatMap = Eigen::Map<Matrix>;
  using CMatMap = Eigen::Map<const Matrix>;
  using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;
  using VecMap = Eigen::Map<Vector>;
  using CVecMap = Eigen::Map<const Vector>;

  /// Zero parameters of the given shape (Shape::check() must pass).
  explicit Network(const Shape& shape);

  const Shape& shape() const { return shape_; }
  const Layout& layout() const { return layout_; }
  std::vector<T>& params() { return params_; }
  const std::vector<T>& params() const { return params_; }

  /// Views of the parameter blocks.
  MatMap W(int l) {
    return MatMap(params_.data() + layout_.w[l], shape_.fan_in(l), shape_.fan_out(l));
  }
  CMatMap W(int l) const {
    return CMatMap(params_.data() + layout_.w[l], shape_.fan_in(l), shape_.fan_out(l));
  }
  VecMap b(int l) { return VecMap(params_.data() + layout_.b[l], shape_.fan_out(l)); }
  CVecMap b(int l) const { return CVecMap(params_.data() + layout_.b[l], shape_.fan_out(l)); }
  MatMap embedding() {
    return MatMap(params_.data() + layout_.emb, shape_.n_segments, shape_.embed_dim);
  }

  /// Weights N(0, 2/fan_in) for ReLU (He) or N(0, 2/(fan_in+fan_out)) for tanh
  /// (Xavier), zero biases, embedding entries N(0, 1/embed_dim): every value is
  /// keyed by the seed and its index, so all ranks get the same network.
  void init(std::uint64_t seed);

  /// Forward pass over the batch; `dropout` is the hidden-layer dropout rate
  /// (0 in evaluation). Afterwards logits() holds batch.rows x n_out logits.
  void forward(const Batch<T>& batch, T dropout);
  /// Logits of the last forward pass (a view into the workspace).
  auto logits() { return out_().topRows(rows_); }

  /// Forward pass and the loss summed over the batch rows. When `grad` is not
  /// null it receives d(loss)/d(params) (layout().size values, overwritten).
  /// The logits are overwritten by their gradient. With first_layer > 0 only
  /// the layers first_layer.. get a gradient (the entries of the layers below,
  /// and of the embedding, are left as they are): fine-tuning the top layers.
  /// With `buckets` (first_layer 0 only), finished gradient ranges are
  /// announced as they are computed (see GradReady).
  double loss_and_grad(const Batch<T>& batch, T dropout, T* grad, int first_layer = 0,
                       const GradReady* buckets = nullptr);

  /// Item-parallel step (collective over `ex`; needs a hidden layer): the
  /// output layer is split by item columns, rank r owning [cols[r], cols[r+1])
  /// (ex.size()+1 offsets, the same on every rank). `batch` is this rank's slice
  /// of the global batch (the slices in rank order make the batch). The ranks
  /// exchange the last hidden layer's rows (N x h, N the global batch), their
  /// targets and per-row softmax sums, and reduce-scatter dL/dH back to the
  /// row owners, so the output layer's gradient is never summed over ranks.
  /// `grad` (flat layout) receives this rank's rows' gradient of the layers
  /// below the output layer and of the embedding (to be summed over ranks; the
  /// output layer's entries are not touched). `grad_out` receives the complete
  /// gradient of this rank's columns, (h + 1) x nc row-major: W_out[:, cols]
  /// then the bias. Reads only this rank's columns of the output layer.
  /// With `in_rows` (size()+1 offsets over the sparse input) the sparse rows
  /// of W0 are split alike: rank r adds rows [in_rows[r], in_rows[r+1]) of
  /// X W0 for the whole batch (reduce-scattered to the rows' owners) and gets
  /// their complete gradient in `grad` (the other sparse rows are not touched).
  /// Returns this rank's share of the batch loss (the shares sum to it).
  double loss_and_grad_split(const Batch<T>& batch, T dropout, T* grad, T* grad_out,
                             const ItemExchange<T>& ex, std::span<const std::int64_t> cols,
                             std::span<const std::int64_t> in_rows = {});
  /// Seconds spent in the item-parallel step's collectives so far (waits included).
  double comm_seconds() const { return comm_seconds_; }

 private:
  Matrix& out_() { return A_.back(); }
  void reserve_rows(std::int64_t rows);
  // With skip_output the output layer is not computed (its input is left in
  // A_ or H_ of the last hidden layer). sparse_part: rows x fan_out(0), the
  // sparse input's X W0 computed elsewhere.
  void forward_impl(const Batch<T>& batch, T dropout, bool output_bias, bool skip_output = false,
                    const T* sparse_part = nullptr);
  // Loss over the rows; with gb (the output bias gradient) the logits become dL/dz.
  double loss_softmax(const Batch<T>& batch, T* gb);
  double loss_bce(const Batch<T>& batch, T* gb);
  // Sampled softmax over the negatives and targets in item columns [c0, c1), for the N rows
  // H (N x h, the output layer's input) with targets (tp, ti, tv), rows [own0, own1) counting
  // toward the returned loss. combine(mx, st) turns the per-row partial maxima (N) and
  // (exp sum, target dot) pairs (2N) into sums over every column range (nothing to do when
  // [c0, c1) holds every item). Writes gW (h x ldg, column j of the range at gW + j - c0;
  // the columns without a candidate are zero), gb (c1 - c0) and dH (N x h).
  double loss_sampled(const Batch<T>& bt, const T* H, std::int64_t N,
                      const std::vector<std::int64_t>& tp, const std::vector<std::int32_t>& ti,
                      const std::vector<T>& tv, std::int64_t c0, std::int64_t c1, std::int64_t own0,
                      std::int64_t own1,
                      const std::function<void(std::vector<T>&, std::vector<double>&)>& combine,
                      T* gW, std::int64_t ldg, T* gb, T* dH);
  // Layers top..first_layer; A_[top] holds dL/d(pre-activation of layer top).
  // sparse_split: the sparse rows of W0 get their gradient elsewhere (untouched here).
  void backward(const Batch<T>& batch, T dropout, T* grad, bool output_bias_done, int first_layer,
                const GradReady* buckets, int top, bool sparse_split);
  // G_[j] (dL/dH_j, n rows) through the dropout mask and the activation: A_[j] becomes
  // dL/d(pre-activation of hidden layer j).
  void hidden_grad(int j, std::int64_t n, T dropout);
  // The input of the output layer: the last hidden layer after dropout.
  const Matrix& top_input(T dropout) const {
    return dropout > 0 ? H_[H_.size() - 1] : A_[A_.size() - 2];
  }
  // Announces [begin, end) to `buckets` in pieces of at most bucket_elems.
  static void announce(const GradReady* buckets, std::int64_t begin, std::int64_t end);

  Shape shape_;
  Layout layout_;
  std::vector<T> params_;
  std::int64_t rows_ = 0, capacity_ = 0;
  bool bias_pending_ = false;  // the logits still lack the output bias
  // Workspace, capacity_ rows each. A_[l]: layer l's output (pre-activation,
  // then the activation for hidden layers, then dL/dA in backward); A_.back()
  // holds the logits. M_[l]: dropout scale of hidden layer l. H_[l]: the input
  // of layer l+1 (A_[l] times the mask; unused without dropout).
  std::vector<Matrix> A_, H_, M_;
  std::vector<Matrix> G_;  // scratch per hidden layer: dL/dH
  Matrix Emb_;             // rows x embed_dim: the batch's segment embeddings
  // Item-parallel step: the global batch's last hidden rows (N x h), this rank's
  // columns of the logits (N x nc, then dL/dz), dL/dH of all rows (N x h).
  // Pin_: the whole batch's X W0 parts, then dL/dA0 (N x fan_out(0)).
  Matrix Hall_, Zc_, dHall_, Pin_;
  // Sampled softmax: the candidates' output weights, one row per item (negatives first, then
  // the targets that are not negatives; rows x h), their gradient, and item -> row (-1 = none).
  Matrix Wt_, gWt_;
  std::vector<std::int32_t> slot_;
  double comm_seconds_ = 0;
};

extern template class Network<float>;
extern template class Network<double>;

}  // namespace segrec::mlp
