#include "segrec/personalisation/train.hpp"
#include "segrec/core/random.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numbers>
#include <numeric>
#include <sstream>
#include <tuple>
#include <unordered_map>

#include "segrec/core/error.hpp"
#include "segrec/core/fault.hpp"
#include "segrec/core/params.hpp"
#include "segrec/core/watchdog.hpp"
#include "segrec/ingest/dataset.hpp"

namespace segrec {

using mlp::hash_keys;
using mlp::splitmix64;
using mlp::unit_uniform;

namespace detail {

Permutation::Permutation(std::uint64_t n, std::uint64_t key) : n_(n), key_(key) {
  int bits = 2;
  while (bits < 62 && (std::uint64_t{1} << bits) < n) ++bits;
  if (bits & 1) ++bits;
  half_ = bits / 2;
  mask_ = (std::uint64_t{1} << half_) - 1;
}

std::uint64_t Permutation::operator()(std::uint64_t x) const {
  do x = feistel(x);
  while (x >= n_);
  return x;
}

std::uint64_t Permutation::feistel(std::uint64_t x) const {
  std::uint64_t l = x >> half_, r = x & mask_;
  for (std::uint64_t i = 0; i < 4; ++i) {
    const std::uint64_t f = hash_keys(key_, i, r) & mask_;
    const std::uint64_t nl = r;
    r = l ^ f;
    l = nl;
  }
  return (l << half_) | r;
}

// NDCG@k of a ranked list against a sorted set of relevant items.
double ndcg_at(const std::vector<std::int32_t>& ranked, const std::vector<std::int32_t>& relevant,
               std::int64_t k) {
  double dcg = 0, idcg = 0;
  for (std::size_t r = 0; r < ranked.size(); ++r)
    if (std::binary_search(relevant.begin(), relevant.end(), ranked[r]))
      dcg += 1.0 / std::log2(static_cast<double>(r) + 2.0);
  const auto ideal = std::min<std::int64_t>(k, std::ssize(relevant));
  for (std::int64_t r = 0; r < ideal; ++r) idcg += 1.0 / std::log2(static_cast<double>(r) + 2.0);
  return idcg > 0 ? dcg / idcg : 0.0;
}

EpochBatches::EpochBatches(std::uint64_t n, std::uint64_t n_batches, std::uint64_t key)
    : n_(n), nb_(n_batches), key_(key) {}

std::uint64_t EpochBatches::batch(std::uint64_t t) const {
  return Permutation(nb_, hash_keys(key_, t / nb_))(t % nb_);
}

std::vector<std::int64_t> EpochBatches::counts() const {
  // Full strata give every batch one user; a short last stratum gives some batches one more.
  std::vector<std::int64_t> c(nb_, static_cast<std::int64_t>(n_ / nb_));
  if (n_ % nb_ != 0) {
    const Permutation last(nb_, hash_keys(key_, n_ / nb_));
    for (std::uint64_t off = 0; off < n_ % nb_; ++off) ++c[last(off)];
  }
  return c;
}

}  // namespace detail

using detail::ndcg_at;
using detail::Permutation;

namespace {

std::atomic<int> g_stop_requested{0};

// Tags that separate the random streams drawn from one seed.
constexpr std::uint64_t kTagValUser = 0x76616c2d75736572ULL;   // validation users
constexpr std::uint64_t kTagHoldout = 0x686f6c646f7574ULL;     // held-out items
constexpr std::uint64_t kTagPerm = 0x7065726d75746521ULL;      // batch permutation
constexpr std::uint64_t kTagInDrop = 0x696e2d64726f70ULL;      // input dropout
constexpr std::uint64_t kTagHiddenDrop = 0x686964642d6472ULL;  // hidden dropout
constexpr std::uint64_t kTagHead = 0x686561642d6570ULL;        // head fine-tuning batches
// Epoch numbers of the head fine-tuning (input dropout keys), apart from the global epochs.
constexpr std::int64_t kHeadEpochBase = std::int64_t{1} << 40;

// Bytes this rank has sent in the collectives that exchange gradients and parameters.
std::uint64_t sync_bytes(const CommStats& s) {
  return s.allreduce_bytes + s.reduce_scatter_bytes + s.gather_bytes;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string fmt_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

using rng::fnv1a;

std::string hex64(std::uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// How an interaction weight becomes an input / target value.
float history_value(float w, bool log_weight) {
  return log_weight ? static_cast<float>(std::log1p(std::max(w, 0.0f))) : 1.0f;
}

// What the first layer reads and how rows are built.
struct RowSpec {
  bool history = true;
  bool log_weight = false;
  std::int64_t dense_dim = 0;
  bool segments = false;
  bool bce = false;
};

// Appends one user's input row: the (item, value) pairs in `items` (already
// chosen: all items, or the fold-in), L2-normalised, then input dropout with
// rate `drop` keyed by `drop_key` (survivors scaled by 1 / (1 - drop)).
void add_input_row(mlp::Batch<float>& bt, const RowSpec& spec,
                   const std::vector<std::pair<std::int32_t, float>>& items, double drop,
                   std::uint64_t drop_key, const float* dense, std::int32_t segment,
                   std::uint64_t key) {
  if (spec.history) {
    double ss = 0;
    for (const auto& [i, v] : items) ss += static_cast<double>(v) * v;
    const double inv = ss > 0 ? 1.0 / std::sqrt(ss) : 0.0;
    const float scale = static_cast<float>(inv / (1.0 - drop));
    const std::uint64_t mk = splitmix64(drop_key);
    for (const auto& [i, v] : items) {
      if (drop > 0 && unit_uniform(splitmix64(mk ^ static_cast<std::uint64_t>(i))) < drop) continue;
      bt.in_idx.push_back(i);
      bt.in_val.push_back(v * scale);
    }
  }
  bt.in_ptr.push_back(static_cast<std::int64_t>(bt.in_idx.size()));
  if (spec.dense_dim > 0) bt.dense.insert(bt.dense.end(), dense, dense + spec.dense_dim);
  if (spec.segments) bt.segment.push_back(segment);
  bt.key.push_back(key);
  ++bt.rows;
}

void close_targets(mlp::Batch<float>& bt) {
  bt.tgt_ptr.push_back(static_cast<std::int64_t>(bt.tgt_idx.size()));
}

// Indices of the k largest finite scores (ties: smaller index first), best first.
void top_k(const float* z, std::int64_t n, std::int64_t k, std::vector<std::int32_t>& scratch,
           std::vector<std::int32_t>& out) {
  scratch.clear();
  for (std::int64_t i = 0; i < n; ++i)
    if (z[i] > -std::numeric_limits<float>::infinity())
      scratch.push_back(static_cast<std::int32_t>(i));
  const auto better = [z](std::int32_t a, std::int32_t b) {
    return z[a] > z[b] || (z[a] == z[b] && a < b);
  };
  const auto kk = static_cast<std::ptrdiff_t>(std::min<std::int64_t>(k, std::ssize(scratch)));
  std::nth_element(scratch.begin(), scratch.begin() + kk, scratch.end(), better);
  std::sort(scratch.begin(), scratch.begin() + kk, better);
  out.assign(scratch.begin(), scratch.begin() + kk);
}

std::string join_sizes(const std::vector<std::int64_t>& v) {
  if (v.empty()) return "none";
  std::ostringstream os;
  for (std::size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
  return os.str();
}

mlp::Shape make_shape(const TrainParams& p, const TrainData& d) {
  mlp::Shape s;
  s.sparse_in = p.uses_history() ? d.n_items() : 0;
  s.dense_in = p.uses_projection() ? d.dense_dim : 0;
  s.n_segments = p.uses_segments() ? d.n_segments : 0;
  s.embed_dim = p.uses_segments() ? p.segment_embedding : 0;
  s.hidden = p.hidden_sizes();
  s.n_out = d.n_items();
  s.activation = mlp::parse_activation(p.activation);
  s.loss = mlp::parse_loss(p.loss);
  return s;
}

// Checks the in-memory data against the options (collective).
void check_data(const TrainParams& p, const TrainData& d, const Comm& comm) {
  std::string err;
  const std::int64_t n = d.n_local();
  const auto n_items = d.n_items();
  if (n < 0 || d.indptr.empty() || d.indptr[0] != 0 ||
      static_cast<std::int64_t>(d.indices.size()) != d.indptr.back() ||
      d.weights.size() != d.indices.size())
    err = "malformed interaction matrix";
  for (std::int64_t i = 0; err.empty() && i < n; ++i)
    if (d.indptr[i + 1] < d.indptr[i]) err = "malformed interaction matrix (row pointer)";
  for (std::size_t k = 0; err.empty() && k < d.indices.size(); ++k)
    if (d.indices[k] < 0 || d.indices[k] >= n_items)
      err = "item index " + std::to_string(d.indices[k]) + " out of range";
  if (err.empty() && p.uses_projection()) {
    if (d.dense_dim <= 0 || static_cast<std::int64_t>(d.dense.size()) != n * d.dense_dim)
      err = "--input " + p.input + " needs the projection rows of every user";
    for (std::size_t k = 0; err.empty() && k < d.dense.size(); ++k)
      if (!std::isfinite(d.dense[k])) err = "the projection holds a non-finite value";
  }
  if (err.empty() && (p.personalize != "none" || p.compare_personalize || !d.segments.empty())) {
    if (d.n_segments <= 0 || static_cast<std::int64_t>(d.segments.size()) != n)
      err = "--personalize " + p.personalize + " needs a segment label for every user";
    for (std::size_t k = 0; err.empty() && k < d.segments.size(); ++k)
      if (d.segments[k] < 0 || d.segments[k] >= d.n_segments)
        err = "segment label " + std::to_string(d.segments[k]) + " outside [0, " +
              std::to_string(d.n_segments) + ")";
  }
  comm.check_all(err, kExitData);
  const std::int64_t total = comm.allreduce_value(n);
  const std::int64_t begin = comm.exscan_sum(n);
  const std::int64_t items_min = comm.allreduce_value(n_items, Op::kMin);
  const std::int64_t items_max = comm.allreduce_value(n_items, Op::kMax);
  if (total != d.n_users || items_min != items_max)
    throw DataError("training data: ranks disagree on the users or items", true);
  comm.check_all(begin == d.user_begin ? "" : "training data: user blocks are not in rank order",
                 kExitData);
  if (n_items == 0) throw DataError("training data: no items", true);
}

// Order-sensitive hash of the parameter bits: four interleaved lanes of 64-bit words.
std::uint64_t params_hash(const std::vector<float>& v) {
  std::uint64_t h[4] = {v.size(), 1, 2, 3};
  const std::size_t words = v.size() * sizeof(float) / 8;
  const auto* bytes = reinterpret_cast<const unsigned char*>(v.data());
  for (std::size_t w = 0; w < words; ++w) {
    std::uint64_t word;
    std::memcpy(&word, bytes + 8 * w, sizeof word);
    h[w & 3] = splitmix64(h[w & 3] ^ word);
  }
  const std::size_t tail = v.size() * sizeof(float) - 8 * words;
  return fnv1a(bytes + 8 * words, tail,
               splitmix64(h[0] ^ splitmix64(h[1] ^ splitmix64(h[2] ^ h[3]))));
}

void check_same_params(const std::vector<float>& v, const Comm& comm, const char* when) {
  const std::uint64_t h = params_hash(v);
  const auto hi = comm.allreduce_value(h, Op::kMax);
  const auto lo = comm.allreduce_value(h, Op::kMin);
  if (hi - lo != 0)
    throw Error(std::string("train: the network parameters differ across ranks ") + when +
                    " (parameter hash spread " + std::to_string(hi - lo) + ")",
                kExitOther, true);
}

// Users scored against held-out items: their fold-in histories and what to find.
struct EvalUsers {
  UserInputs in;                         // fold-in histories (raw weights), dense rows, labels
  std::vector<std::int64_t> rel_ptr{0};  // CSR: relevant items known to the model, sorted
  std::vector<std::int32_t> rel;
  std::vector<std::int64_t> n_rel;    // relevant items per user, unknown items included
  std::vector<std::int32_t> segment;  // label per user (-1: no segments)
  std::int64_t missing = 0;           // listed users absent from the data (global; score 0)
  std::int64_t rows() const { return in.rows(); }
};

// Appends a user: fold-in (item, raw weight) pairs, the sorted known relevant items, their count
// with unknown items included.
void add_eval_user(EvalUsers& e, const TrainData& d, bool dense, std::int64_t i,
                   const std::vector<std::pair<std::int32_t, float>>& fold_in,
                   const std::vector<std::int32_t>& relevant, std::int64_t n_rel) {
  for (const auto& [item, w] : fold_in) {
    e.in.indices.push_back(item);
    e.in.weights.push_back(w);
  }
  e.in.indptr.push_back(std::ssize(e.in.indices));
  if (dense)
    e.in.dense.insert(e.in.dense.end(), d.dense.begin() + i * d.dense_dim,
                      d.dense.begin() + (i + 1) * d.dense_dim);
  const std::int32_t seg = d.segments.empty() ? -1 : d.segments[static_cast<std::size_t>(i)];
  if (!d.segments.empty()) e.in.segments.push_back(seg);
  e.segment.push_back(seg);
  e.rel.insert(e.rel.end(), relevant.begin(), relevant.end());
  e.rel_ptr.push_back(std::ssize(e.rel));
  e.n_rel.push_back(n_rel);
}

// The rows of `e` for which keep(row) holds (missing users are not carried over).
template <class Keep>
EvalUsers eval_subset(const EvalUsers& e, Keep keep) {
  EvalUsers out;
  const auto& in = e.in;
  const std::int64_t dd = e.rows() > 0 ? std::ssize(in.dense) / e.rows() : 0;
  for (std::int64_t r = 0; r < e.rows(); ++r) {
    if (!keep(r)) continue;
    out.in.indices.insert(out.in.indices.end(), in.indices.begin() + in.indptr[r],
                          in.indices.begin() + in.indptr[r + 1]);
    out.in.weights.insert(out.in.weights.end(), in.weights.begin() + in.indptr[r],
                          in.weights.begin() + in.indptr[r + 1]);
    out.in.indptr.push_back(std::ssize(out.in.indices));
    out.in.dense.insert(out.in.dense.end(), in.dense.begin() + r * dd,
                        in.dense.begin() + (r + 1) * dd);
    if (!in.segments.empty()) out.in.segments.push_back(in.segments[static_cast<std::size_t>(r)]);
    out.segment.push_back(e.segment[static_cast<std::size_t>(r)]);
    out.rel.insert(out.rel.end(), e.rel.begin() + e.rel_ptr[r], e.rel.begin() + e.rel_ptr[r + 1]);
    out.rel_ptr.push_back(std::ssize(out.rel));
    out.n_rel.push_back(e.n_rel[static_cast<std::size_t>(r)]);
  }
  return out;
}

// Quality sums (collective), 3 per row: NDCG@ndcg_k, Recall@recall_k, users; row 0 holds all
// users, row 1 + s the users of segment s. NDCG's ideal DCG and the recall's denominator use
// min(K, relevant items), unknown items included; listed users absent from the data count as
// users with nothing found.
std::vector<double> quality_sums(const Model& m, const EvalUsers& e, std::int64_t ndcg_k,
                                 std::int64_t recall_k, std::int64_t n_segments, bool heads,
                                 const Comm& comm) {
  std::vector<double> sums(static_cast<std::size_t>(3 * (n_segments + 1)), 0.0);
  const std::int64_t n = std::max(ndcg_k, recall_k);
  constexpr std::int64_t kChunk = 32768;  // users per score_users call (one network copy each)
  const auto& in = e.in;
  const std::int64_t dd = e.rows() > 0 ? std::ssize(in.dense) / e.rows() : 0;
  UserInputs part;
  for (std::int64_t r0 = 0; r0 < e.rows(); r0 += kChunk) {
    const std::int64_t r1 = std::min(e.rows(), r0 + kChunk);
    const auto a = in.indptr[r0], b = in.indptr[r1];
    part.indptr.assign(1, 0);
    for (std::int64_t r = r0; r < r1; ++r) part.indptr.push_back(in.indptr[r + 1] - a);
    part.indices.assign(in.indices.begin() + a, in.indices.begin() + b);
    part.weights.assign(in.weights.begin() + a, in.weights.begin() + b);
    part.dense.assign(in.dense.begin() + r0 * dd, in.dense.begin() + r1 * dd);
    part.segments.clear();
    if (!in.segments.empty())
      part.segments.assign(in.segments.begin() + r0, in.segments.begin() + r1);
    part.segment_heads = heads;
    const TopN top = score_users(m, part, n);
    for (std::int64_t r = r0; r < r1; ++r) {
      const auto rb = e.rel.begin() + e.rel_ptr[r], re = e.rel.begin() + e.rel_ptr[r + 1];
      const std::int64_t n_rel = e.n_rel[static_cast<std::size_t>(r)];
      double dcg = 0, idcg = 0, hits = 0;
      for (std::int64_t j = 0; j < n; ++j) {
        const std::int32_t item = top.items[static_cast<std::size_t>((r - r0) * n + j)];
        if (item < 0 || !std::binary_search(rb, re, item)) continue;
        if (j < ndcg_k) dcg += 1.0 / std::log2(static_cast<double>(j) + 2.0);
        if (j < recall_k) hits += 1;
      }
      for (std::int64_t j = 0; j < std::min(ndcg_k, n_rel); ++j)
        idcg += 1.0 / std::log2(static_cast<double>(j) + 2.0);
      const double nd = idcg > 0 ? dcg / idcg : 0.0;
      const double rc = n_rel > 0 ? hits / static_cast<double>(std::min(recall_k, n_rel)) : 0.0;
      const std::int32_t seg = e.segment[static_cast<std::size_t>(r)];
      const auto add = [&](std::int64_t row) {
        sums[static_cast<std::size_t>(3 * row)] += nd;
        sums[static_cast<std::size_t>(3 * row + 1)] += rc;
        sums[static_cast<std::size_t>(3 * row + 2)] += 1;
      };
      add(0);
      if (seg >= 0 && seg < n_segments) add(std::int64_t{seg} + 1);
    }
  }
  comm.allreduce(sums);
  sums[2] += static_cast<double>(e.missing);
  return sums;
}

// One optimiser update of n parameters w from the allreduced gradient sum g: the gradient is
// g * scale (the batch mean, clipped to the global norm, from global_sumsq = sum of g^2 over
// all parameters when g is a shard); t is the 1-based step (Adam's bias correction); decayed:
// the [a, b) ranges weight decay applies to, relative to w. Plain loops with exact IEEE
// operations only (this file is built with -fno-math-errno so that the square root vectorises):
// every element gets the same result whatever the alignment of the arrays, so ranks never drift
// apart.
void optimiser_update(const TrainParams& p, float* __restrict g, float* __restrict w,
                      float* __restrict m, float* __restrict v, std::int64_t n,
                      const std::vector<std::pair<std::int64_t, std::int64_t>>& decayed, double t,
                      double scale, double lr, const double* global_sumsq = nullptr) {
  if (p.clip > 0) {
    double ss = 0;
    if (global_sumsq != nullptr)
      ss = *global_sumsq;
    else
      for (std::int64_t k = 0; k < n; ++k) ss += static_cast<double>(g[k]) * g[k];
    const double norm = scale * std::sqrt(ss);
    if (norm > p.clip) scale *= p.clip / norm;
  }
  if (p.optimizer == "adam") {
    if (p.weight_decay > 0) {  // decoupled (AdamW)
      const auto f = static_cast<float>(1.0 - lr * p.weight_decay);
      for (const auto& [a, b] : decayed)
        for (std::int64_t k = a; k < b; ++k) w[k] *= f;
    }
    // w -= lr * (m / bc1) / (sqrt(v / bc2) + eps), with bc = 1 - beta^t.
    const auto b1 = static_cast<float>(p.beta1), b2 = static_cast<float>(p.beta2);
    const auto c1 = static_cast<float>((1.0 - p.beta1) * scale);
    const auto c2 = static_cast<float>((1.0 - p.beta2) * scale * scale);
    const auto step = static_cast<float>(lr / (1.0 - std::pow(p.beta1, t)));
    const auto inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(p.beta2, t)));
    const auto eps = static_cast<float>(p.adam_eps);
    for (std::int64_t k = 0; k < n; ++k) {
      const float gk = g[k];
      const float mk = b1 * m[k] + c1 * gk;
      const float vk = b2 * v[k] + c2 * (gk * gk);
      m[k] = mk;
      v[k] = vk;
      w[k] -= step * mk / (std::sqrt(vk) * inv_sqrt_bc2 + eps);
    }
  } else {
    const auto sc = static_cast<float>(scale);
    if (p.weight_decay > 0) {  // L2: g += wd * w, in units of the scaled gradient
      const auto f = static_cast<float>(p.weight_decay / scale);
      for (const auto& [a, b] : decayed)
        for (std::int64_t k = a; k < b; ++k) g[k] += f * w[k];
    }
    const auto mu = static_cast<float>(p.momentum);
    const auto lrf = static_cast<float>(lr);
    for (std::int64_t k = 0; k < n; ++k) {
      const float mk = mu * m[k] + sc * g[k];
      m[k] = mk;
      w[k] -= lrf * mk;
    }
  }
}

// ---------------------------------------------------------------------------------------------

class Trainer {
 public:
  Trainer(const TrainParams& p, const TrainData& d, const Comm& comm)
      : p_(p), d_(d), comm_(comm), shape_(make_shape(p, d)), net_(shape_) {
    spec_.history = p.uses_history();
    spec_.log_weight = p.history_weight == "log";
    spec_.dense_dim = shape_.dense_in;
    spec_.segments = p.uses_segments();
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
  double lr_at(std::int64_t step, std::int64_t epoch) const;
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

void Trainer::assign_roles() {
  const std::int64_t n = d_.n_local();
  for (std::int64_t i = 0; i < n; ++i) {
    if (d_.indptr[i + 1] == d_.indptr[i]) continue;  // no history: nothing to learn or rank
    if (!is_test_.empty() && is_test_[static_cast<std::size_t>(i)]) continue;
    const auto g = static_cast<std::uint64_t>(d_.user_begin + i);
    const bool val =
        p_.val_users > 0 && unit_uniform(hash_keys(p_.seed, kTagValUser, g)) < p_.val_users;
    (val ? val_local_ : train_local_).push_back(i);
  }
  n_train_ = comm_.allreduce_value(static_cast<std::int64_t>(train_local_.size()));
  train_offset_ = comm_.exscan_sum(static_cast<std::int64_t>(train_local_.size()));
  if (n_train_ == 0)
    throw DataError("train: no training users (every user is empty or held out)", true);
  if (p_.batch_size > n_train_)
    throw DataError("invalid value '" + std::to_string(p_.batch_size) +
                        "' for --batch-size: larger than the " + std::to_string(n_train_) +
                        " training users",
                    true);
  batch_ = p_.effective_batch(n_train_);
  epochs_ = p_.effective_epochs(n_train_);
  steps_per_epoch_ = (n_train_ + batch_ - 1) / batch_;
}

// The epoch's batches. The global training users t in [0, N) are cut into
// strata of n_b = steps_per_epoch consecutive indices; a seeded permutation of
// [0, n_b) per (epoch, stratum) sends each user of a stratum to its own batch.
// So every batch draws one user from each stratum: its contents depend only on
// the seed, the epoch and the global indices, and a rank (a contiguous range of
// t) holds an even share of every batch, which keeps the ranks in step.
// order_ holds (batch * N + t, local index), ascending; batch_count_ the sizes.
void Trainer::build_order(std::int64_t epoch) {
  const detail::EpochBatches batches(
      static_cast<std::uint64_t>(n_train_), static_cast<std::uint64_t>(steps_per_epoch_),
      hash_keys(p_.seed, kTagPerm, static_cast<std::uint64_t>(epoch)));
  const auto N = static_cast<std::uint64_t>(n_train_);
  order_.clear();
  for (std::size_t j = 0; j < train_local_.size(); ++j) {
    const std::uint64_t t = static_cast<std::uint64_t>(train_offset_) + j;
    order_.emplace_back(batches.batch(t) * N + t, train_local_[j]);
  }
  std::sort(order_.begin(), order_.end());
  batch_count_ = batches.counts();
}

void Trainer::add_train_user(mlp::Batch<float>& bt, std::int64_t i, std::int64_t epoch) const {
  static thread_local std::vector<std::pair<std::int32_t, float>> items;
  items.clear();
  const auto g = static_cast<std::uint64_t>(d_.user_begin + i);
  for (std::int64_t k = d_.indptr[i]; k < d_.indptr[i + 1]; ++k) {
    const float v = history_value(d_.weights[k], spec_.log_weight);
    items.emplace_back(d_.indices[k], v);
    bt.tgt_idx.push_back(d_.indices[k]);
    bt.tgt_val.push_back(spec_.bce ? 1.0f : v);
  }
  close_targets(bt);
  const auto e = static_cast<std::uint64_t>(epoch);
  add_input_row(bt, spec_, items, p_.input_dropout, hash_keys(p_.seed ^ kTagInDrop, e, g),
                spec_.dense_dim ? d_.dense.data() + i * spec_.dense_dim : nullptr,
                spec_.segments ? d_.segments[i] : 0, hash_keys(p_.seed ^ kTagHiddenDrop, e, g));
}

double Trainer::lr_at(std::int64_t step, std::int64_t epoch) const {
  if (step < p_.warmup_steps)
    return p_.lr * static_cast<double>(step + 1) / static_cast<double>(p_.warmup_steps);
  if (p_.lr_schedule == "cosine") {
    const double total = static_cast<double>(epochs_ * steps_per_epoch_ - p_.warmup_steps);
    const double t = static_cast<double>(step - p_.warmup_steps) / std::max(1.0, total);
    return p_.lr * 0.5 * (1.0 + std::cos(std::numbers::pi * std::min(1.0, t)));
  }
  if (p_.lr_schedule == "step")
    return p_.lr * std::pow(p_.lr_gamma, static_cast<double>(epoch / p_.lr_step_epochs));
  return p_.lr;
}

// Even parts of [lo, hi) in whole 64-byte lines (so that every rank's loops vectorise alike):
// parts + 1 offsets.
std::vector<std::int64_t> line_partition(std::int64_t lo, std::int64_t hi, int parts) {
  std::vector<std::int64_t> off(static_cast<std::size_t>(parts) + 1, hi);
  for (int r = 0; r < parts; ++r) off[r] = std::min(hi, lo + ((hi - lo) * r / parts) / 16 * 16);
  return off;
}

void Trainer::setup_grad_sync() {
  sync_ = p_.grad_sync == "buckets"   ? Sync::kBuckets
          : p_.grad_sync == "sharded" ? Sync::kSharded
          : p_.grad_sync == "items"   ? Sync::kItems
                                      : Sync::kAllreduce;
  if (sync_ == Sync::kBuckets) {
    buckets_.bucket_elems =
        std::max<std::int64_t>(1024, std::llround(p_.bucket_mb * 1048576.0 / sizeof(float)));
    buckets_.ready = [this](std::int64_t a, std::int64_t b) {
      pending_.push_back(comm_.iallreduce(std::span<float>(grad_ + a, b - a)));
      for (auto& r : pending_) r.test();  // progress the earlier buckets
    };
  }
  const int L_net = shape_.n_layers();
  const mlp::Layout& lay = net_.layout();
  // Item columns need a hidden layer (the split exchanges its rows) and several ranks;
  // otherwise items behaves as sharded.
  if (sync_ == Sync::kItems && (comm_.size() == 1 || L_net < 2)) sync_ = Sync::kSharded;
  items_ = sync_ == Sync::kItems;
  D_ = items_ ? lay.w[L_net - 1] : P_;
  S_ = items_ ? shape_.sparse_in * shape_.fan_out(0) : 0;
  // Which parameters of [S_, D_) this rank updates: all of them, or (sharded) its share.
  upd_lo_ = S_;
  upd_hi_ = D_;
  hierarchical_ = false;
  shard_off_ = line_partition(S_, D_, comm_.size());
  if ((sync_ == Sync::kSharded || items_) && comm_.size() > 1) {
    node_ = comm_.node();
    const int L = node_.size();
    hierarchical_ =
        L > 1 && comm_.allreduce_value(L, Op::kMin) == comm_.allreduce_value(L, Op::kMax);
    if (hierarchical_) {
      // Node rank l owns block l of the parameters on its node and, with the same node rank
      // on the other nodes (cross_), splits it further by node.
      cross_ = comm_.split(node_.rank(), comm_.rank());
      node_off_ = line_partition(S_, D_, L);
      // The nodes' parts of this rank's block, relative to the block.
      const std::int64_t b0 = node_off_[node_.rank()], b1 = node_off_[node_.rank() + 1];
      cross_off_ = line_partition(0, b1 - b0, cross_.size());
      upd_lo_ = b0 + cross_off_[cross_.rank()];
      upd_hi_ = b0 + cross_off_[cross_.rank() + 1];
      // The gradients of all the node's ranks, side by side in shared memory. Where the MPI
      // library cannot share memory, every rank falls back to the flat exchange together.
      int ok = 1;
      try {
        grad_win_ = node_.allocate_shared(static_cast<std::size_t>(P_), sizeof(float));
      } catch (const Error&) {
        ok = 0;
      }
      if (comm_.allreduce_value(ok, Op::kMin) == 0) {
        grad_win_ = SharedWindow();
        hierarchical_ = false;
      }
    }
    if (!hierarchical_) {
      upd_lo_ = shard_off_[comm_.rank()];
      upd_hi_ = shard_off_[comm_.rank() + 1];
    }
  }
  // The gradient buffer, followed by the loss and the stop flag (hierarchical: the gradient
  // lives in the shared window, flat_ holds the two scalars only).
  flat_.assign(static_cast<std::size_t>(hierarchical_ ? 0 : P_) + 2, 0.0f);
  grad_ = hierarchical_ ? grad_win_.part<float>(node_.rank()) : flat_.data();
  scalars_ = flat_.data() + (hierarchical_ ? 0 : P_);

  // The ranges this rank updates.
  own_.clear();
  const auto add_owned = [&](std::int64_t param, std::int64_t n, float* g, bool replicated) {
    Owned o{param, n, g, replicated, {}};
    for (const auto& [lo, hi] : decayed_)
      if (std::max(lo, param) < std::min(hi, param + n))
        o.decayed.emplace_back(std::max(lo, param) - param, std::min(hi, param + n) - param);
    own_.push_back(std::move(o));
  };
  const bool shared_update = sync_ == Sync::kSharded || items_;
  add_owned(upd_lo_, upd_hi_ - upd_lo_, grad_ + upd_lo_, !shared_update || comm_.size() == 1);
  if (items_) {
    cols_ = line_partition(0, shape_.n_out, comm_.size());
    const std::int64_t h = shape_.fan_in(L_net - 1), c0 = cols_[comm_.rank()],
                       nc = cols_[comm_.rank() + 1] - c0;
    grad_out_.assign(static_cast<std::size_t>((h + 1) * nc), 0.0f);
    for (std::int64_t i = 0; i < h; ++i)
      add_owned(lay.w[L_net - 1] + i * shape_.n_out + c0, nc, grad_out_.data() + i * nc, false);
    add_owned(lay.b[L_net - 1] + c0, nc, grad_out_.data() + h * nc, false);
    if (S_ > 0) {
      const std::int64_t h0 = shape_.fan_out(0);
      in_rows_ = line_partition(0, shape_.sparse_in, comm_.size());
      const std::int64_t a = in_rows_[comm_.rank()] * h0, b = in_rows_[comm_.rank() + 1] * h0;
      add_owned(a, b - a, grad_ + a, false);
    }
    if (P_ > lay.emb) add_owned(lay.emb, P_ - lay.emb, grad_ + lay.emb, true);
  }
}

double Trainer::sync_gradients() {
  if (sync_ == Sync::kAllreduce) {
    comm_.allreduce(flat_);
    return 0;
  }
  if (sync_ == Sync::kBuckets) {
    comm_.allreduce(std::span<float>(scalars_, 2));
    for (auto& r : pending_) r.wait();
    pending_.clear();
    return 0;
  }
  if (hierarchical_) {
    // Sum block l of every node rank's gradient straight from shared memory, in node rank
    // order as Comm::reduce_scatter does (one node gives the bits of one rank per node),
    // then across the nodes (each node rank l with its counterparts).
    grad_win_.fence();
    const int l = node_.rank(), L = node_.size();
    const std::int64_t b0 = node_off_[l], b1 = node_off_[l + 1];
    const auto part = [this](int q) { return grad_win_.part<const float>(q); };
    float* mine = grad_;
    constexpr std::int64_t kTile = 1024;  // floats per tile, summed in registers over the parts
    for (std::int64_t t = b0; t < b1; t += kTile) {
      const std::int64_t e = std::min(b1, t + kTile);
      float acc[kTile];
      std::copy(part(0) + t, part(0) + e, acc);
      for (int q = 1; q < L; ++q) {
        const float* __restrict x = part(q) + t;
        for (std::int64_t k = 0; k < e - t; ++k) acc[k] += x[k];
      }
      std::copy(acc, acc + (e - t), mine + t);
    }
    cross_.reduce_scatter(std::span<float>(mine + b0, static_cast<std::size_t>(b1 - b0)),
                          std::span<const std::int64_t>(cross_off_));
  } else {
    comm_.reduce_scatter(std::span<float>(grad_, static_cast<std::size_t>(D_)),
                         std::span<const std::int64_t>(shard_off_));
  }
  // Every parameter is in exactly one rank's share (a replicated range counts on rank 0): the
  // squared norm sums over the ranks. items_: the embedding's gradient is summed here, with
  // the loss, and counted after.
  const auto sumsq = [](const float* g, std::int64_t n) {
    double ss = 0;
    for (std::int64_t k = 0; k < n; ++k) ss += static_cast<double>(g[k]) * g[k];
    return ss;
  };
  const std::int64_t e0 = net_.layout().emb, ne = items_ ? P_ - e0 : 0;
  double ss = 0;
  if (p_.clip > 0)
    for (const auto& o : own_)
      if (!o.replicated || (!items_ && comm_.rank() == 0)) ss += sumsq(o.grad, o.n);
  std::vector<double> sums(static_cast<std::size_t>(3 + ne));
  sums[0] = scalars_[0];
  sums[1] = scalars_[1];
  sums[2] = ss;
  std::copy(grad_ + e0, grad_ + e0 + ne, sums.begin() + 3);
  comm_.allreduce(sums);
  scalars_[0] = static_cast<float>(sums[0]);
  scalars_[1] = static_cast<float>(sums[1]);
  std::transform(sums.begin() + 3, sums.end(), grad_ + e0,
                 [](double x) { return static_cast<float>(x); });
  return sums[2] + (p_.clip > 0 ? sumsq(grad_ + e0, ne) : 0.0);
}

// Sharded: every rank gets the parameters that the other ranks updated.
void Trainer::gather_parameters() {
  const std::span<float> w(net_.params().data(), static_cast<std::size_t>(D_));
  if (!hierarchical_) {
    comm_.allgather_blocks(w, std::span<const std::int64_t>(shard_off_));
    return;
  }
  const int l = node_.rank();
  const std::int64_t b0 = node_off_[l], b1 = node_off_[l + 1];
  cross_.allgather_blocks(
      w.subspan(static_cast<std::size_t>(b0), static_cast<std::size_t>(b1 - b0)),
      std::span<const std::int64_t>(cross_off_));
  node_.allgather_blocks(w, std::span<const std::int64_t>(node_off_));
}

// The output layer's columns, packed per rank as (h + 1) x nc (weights, then bias), and the
// sparse input's rows of W0.
void Trainer::gather_item_parts() {
  if (!items_) return;
  if (S_ > 0) {
    std::vector<std::int64_t> off(in_rows_);
    for (auto& x : off) x *= shape_.fan_out(0);
    comm_.allgather_blocks(std::span<float>(net_.params().data(), static_cast<std::size_t>(S_)),
                           std::span<const std::int64_t>(off));
  }
  const int L = shape_.n_layers(), P = comm_.size();
  const std::int64_t h = shape_.fan_in(L - 1), n_out = shape_.n_out;
  float* W = net_.params().data() + net_.layout().w[L - 1];
  float* bias = net_.params().data() + net_.layout().b[L - 1];
  const auto pack = [&](int r, float* buf, bool out) {
    const std::int64_t c0 = cols_[r], nc = cols_[r + 1] - c0;
    for (std::int64_t i = 0; i <= h; ++i) {
      float* p = i < h ? W + i * n_out + c0 : bias + c0;
      if (out)
        std::copy(p, p + nc, buf + i * nc);
      else
        std::copy(buf + i * nc, buf + (i + 1) * nc, p);
    }
  };
  std::vector<float> mine(
      static_cast<std::size_t>((h + 1) * (cols_[comm_.rank() + 1] - cols_[comm_.rank()])));
  pack(comm_.rank(), mine.data(), true);
  std::vector<float> all = comm_.allgatherv(mine);
  for (int r = 0; r < P; ++r) pack(r, all.data() + (h + 1) * cols_[r], false);
}

// All the moments of one kind, in parameter order, from every rank's ranges (collective).
std::vector<float> Trainer::all_moments(const std::vector<float>& share) const {
  if (comm_.size() == 1 || (sync_ != Sync::kSharded && !items_)) return share;
  std::vector<std::int64_t> where;  // (param, n) per range sent
  std::vector<float> values;
  std::int64_t off = 0;
  for (const auto& o : own_) {
    if (!o.replicated || comm_.rank() == 0) {
      where.insert(where.end(), {o.param, o.n});
      values.insert(values.end(), share.begin() + off, share.begin() + off + o.n);
    }
    off += o.n;
  }
  const std::vector<std::int64_t> all_where = comm_.allgatherv(where);
  const std::vector<float> all_values = comm_.allgatherv(values);
  std::vector<float> all(static_cast<std::size_t>(P_));
  std::size_t k = 0;
  for (std::size_t i = 0; i < all_where.size(); i += 2) {
    std::copy_n(all_values.begin() + static_cast<std::ptrdiff_t>(k), all_where[i + 1],
                all.begin() + all_where[i]);
    k += static_cast<std::size_t>(all_where[i + 1]);
  }
  return all;
}

std::vector<float> Trainer::own_moments(const std::vector<float>& all) const {
  if (all.empty()) return all;
  std::vector<float> mine;
  for (const auto& o : own_)
    mine.insert(mine.end(), all.begin() + o.param, all.begin() + o.param + o.n);
  return mine;
}

// One identical update on every rank from the gradient sum (sharded: each rank updates its
// share; gather_parameters() then completes every rank's copy).
void Trainer::optimiser_step(float inv_count, double lr, double sumsq) {
  const auto t = static_cast<double>(global_step_ + 1);
  if (sync_ != Sync::kSharded && !items_) {
    optimiser_update(p_, grad_, net_.params().data(), m_.data(), v_.data(), P_, decayed_, t,
                     inv_count, lr);
    return;
  }
  std::int64_t off = 0;
  for (const auto& o : own_) {
    optimiser_update(p_, o.grad, net_.params().data() + o.param, m_.data() + off,
                     v_.empty() ? nullptr : v_.data() + off, o.n, o.decayed, t, inv_count, lr,
                     &sumsq);
    off += o.n;
  }
}

// Reads --test-items: the listed users of this rank's block leave training and are scored
// after it, with their data as the fold-in history.
void Trainer::load_test_items() {
  if (p_.test_items.empty()) return;
  std::ifstream in(p_.test_items);
  if (!in) throw IoError("cannot read --test-items '" + p_.test_items + "'", true);
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  const auto head = split_list(line);
  std::size_t cu = 0, ci = 1;
  for (std::size_t c = 0; c < head.size(); ++c) {
    if (head[c] == "user_id") cu = c;
    if (head[c] == "item_id") ci = c;
  }
  std::map<std::string, std::vector<std::string>> listed;  // user -> items
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const auto f = split_list(line);
    if (f.size() <= std::max(cu, ci))
      throw DataError("--test-items '" + p_.test_items + "': short line '" + line + "'", true);
    listed[f[cu]].push_back(f[ci]);
  }
  std::unordered_map<std::string, std::int64_t> local;
  for (std::size_t i = 0; i < d_.user_ids.size(); ++i)
    local.emplace(d_.user_ids[i], static_cast<std::int64_t>(i));
  std::unordered_map<std::string, std::int32_t> item_index;
  for (std::size_t i = 0; i < d_.item_ids.size(); ++i)
    item_index.emplace(d_.item_ids[i], static_cast<std::int32_t>(i));
  is_test_.assign(static_cast<std::size_t>(d_.n_local()), 0);
  std::vector<std::pair<std::int32_t, float>> fold_in;
  std::vector<std::int32_t> rel;
  for (auto& [user, items] : listed) {
    std::sort(items.begin(), items.end());
    items.erase(std::unique(items.begin(), items.end()), items.end());
    const auto it = local.find(user);
    if (it == local.end()) continue;
    const std::int64_t i = it->second;
    is_test_[static_cast<std::size_t>(i)] = 1;
    rel.clear();
    for (const auto& id : items)
      if (const auto j = item_index.find(id); j != item_index.end()) rel.push_back(j->second);
    std::sort(rel.begin(), rel.end());
    fold_in.clear();
    for (std::int64_t k = d_.indptr[i]; k < d_.indptr[i + 1]; ++k)
      fold_in.emplace_back(d_.indices[k], d_.weights[k]);
    add_eval_user(test_eval_, d_, shape_.dense_in > 0, i, fold_in, rel, std::ssize(items));
  }
  const std::int64_t found = comm_.allreduce_value(test_eval_.rows());
  test_eval_.missing = std::ssize(listed) - found;
}

// The validation users' fold-in histories and held-out items (both keyed by the seed and the
// global user and item indices).
void Trainer::build_validation() {
  std::vector<std::pair<std::int32_t, float>> fold_in;
  std::vector<std::int32_t> held;
  for (const std::int64_t i : val_local_) {
    const auto g = static_cast<std::uint64_t>(d_.user_begin + i);
    fold_in.clear();
    held.clear();
    for (std::int64_t k = d_.indptr[i]; k < d_.indptr[i + 1]; ++k) {
      const std::int32_t item = d_.indices[k];
      if (unit_uniform(hash_keys(p_.seed ^ kTagHoldout, g, static_cast<std::uint64_t>(item))) <
          p_.val_holdout)
        held.push_back(item);
      else
        fold_in.emplace_back(item, d_.weights[k]);
    }
    if (held.empty()) continue;
    std::sort(held.begin(), held.end());
    add_eval_user(val_eval_, d_, shape_.dense_in > 0, i, fold_in, held, std::ssize(held));
  }
  probe_.shape = shape_;
  probe_.input = p_.input;
  probe_.history_weight = p_.history_weight;
  probe_.item_ids = d_.item_ids;
}

std::pair<double, double> Trainer::validation_quality() {
  probe_.params = net_.params();
  const auto s = quality_sums(probe_, val_eval_, p_.ndcg_k, p_.recall_k, 0, false, comm_);
  n_val_ = static_cast<std::int64_t>(s[2]);
  if (s[2] == 0) return {std::numeric_limits<double>::quiet_NaN(), 0.0};
  return {s[0] / s[2], s[1] / s[2]};
}

void Trainer::add_quality(Model& m, const std::string& mode, bool heads) const {
  const std::pair<const char*, const EvalUsers*> sets[] = {{"validation", &val_eval_},
                                                           {"test", &test_eval_}};
  const std::int64_t k = d_.n_segments;
  for (const auto& [name, e] : sets) {
    if (comm_.allreduce_value(e->rows()) + e->missing == 0) continue;
    const auto s = quality_sums(m, *e, p_.ndcg_k, p_.recall_k, k, heads, comm_);
    for (std::int64_t row = 0; row <= k; ++row) {
      const double n = s[static_cast<std::size_t>(3 * row + 2)];
      if (n == 0) continue;
      QualityRow q;
      q.mode = mode;
      q.users = name;
      q.segment = static_cast<std::int32_t>(row - 1);
      q.n_users = static_cast<std::int64_t>(n);
      q.ndcg = s[static_cast<std::size_t>(3 * row)] / n;
      q.recall = s[static_cast<std::size_t>(3 * row + 1)] / n;
      m.quality.push_back(q);
    }
  }
}

// Segment heads: after global training, every segment with at least --min-segment-users
// training users fine-tunes its own copy of the top --head-layers layers on its users, all
// ranks together, one segment after another (each segment's batches are keyed by the seed, the
// segment and the user's index among the segment's training users, so the heads do not depend
// on the rank count). Every head epoch is scored on the segment's validation users and the best
// kept; a head that never beats the global layers there is dropped (the segment keeps them).
// Without validation users the last epoch's head is kept.
void Trainer::train_heads(Model& m) {
  const int L = shape_.n_layers();
  const mlp::Layout& lay = net_.layout();
  m.head_layers = p_.head_layers;
  const std::int64_t a = lay.w[L - p_.head_layers], b = lay.emb, hs = b - a;
  std::vector<std::pair<std::int64_t, std::int64_t>> decayed;
  for (int l = L - static_cast<int>(p_.head_layers); l < L; ++l)
    decayed.emplace_back(lay.w[l] - a, lay.w[l] - a + shape_.fan_in(l) * shape_.fan_out(l));
  const std::int64_t k = d_.n_segments;
  std::vector<std::int64_t> counts(static_cast<std::size_t>(k), 0);
  for (const auto i : train_local_) ++counts[static_cast<std::size_t>(d_.segments[i])];
  comm_.allreduce(counts);
  const std::vector<float> base = m.params;
  Model probe = m;
  probe.head_layers = 0;
  probe.heads.clear();
  probe.head_segments.clear();
  std::vector<float> hm(static_cast<std::size_t>(hs)), hv(static_cast<std::size_t>(hs));
  std::vector<float> hbuf(static_cast<std::size_t>(hs) + 1), grad(static_cast<std::size_t>(P_));
  std::vector<std::int64_t> seg_local;
  std::vector<std::pair<std::uint64_t, std::int64_t>> order;
  mlp::Batch<float> bt;
  const auto dropout = static_cast<float>(p_.dropout);
  for (std::int32_t s = 0; s < k; ++s) {
    const std::int64_t N = counts[static_cast<std::size_t>(s)];
    if (N < p_.min_segment_users) continue;
    seg_local.clear();
    for (const auto i : train_local_)
      if (d_.segments[i] == s) seg_local.push_back(i);
    const std::int64_t offset = comm_.exscan_sum(std::ssize(seg_local));
    const std::int64_t bs = std::min(batch_, N), steps = (N + bs - 1) / bs;
    const EvalUsers val = eval_subset(val_eval_, [&](std::int64_t r) {
      return val_eval_.segment[static_cast<std::size_t>(r)] == s;
    });
    const bool has_val = comm_.allreduce_value(val.rows()) > 0;
    const auto score = [&]() {
      const auto q = quality_sums(probe, val, p_.ndcg_k, p_.recall_k, 0, false, comm_);
      return q[2] > 0 ? q[0] / q[2] : 0.0;
    };
    net_.params() = base;
    probe.params = base;
    double best = has_val ? score() : 0.0;
    bool keep = !has_val;
    std::vector<float> best_head(base.begin() + a, base.begin() + b);
    std::fill(hm.begin(), hm.end(), 0.0f);
    std::fill(hv.begin(), hv.end(), 0.0f);
    std::int64_t t = 0;
    for (std::int64_t e = 0; e < p_.head_epochs; ++e) {
      const detail::EpochBatches batches(
          static_cast<std::uint64_t>(N), static_cast<std::uint64_t>(steps),
          hash_keys(p_.seed ^ kTagHead, static_cast<std::uint64_t>(s),
                    static_cast<std::uint64_t>(e)));
      order.clear();
      for (std::size_t j = 0; j < seg_local.size(); ++j) {
        const auto tt = static_cast<std::uint64_t>(offset) + j;
        order.emplace_back(batches.batch(tt) * static_cast<std::uint64_t>(N) + tt, seg_local[j]);
      }
      std::sort(order.begin(), order.end());
      const auto cnt = batches.counts();
      std::size_t cursor = 0;
      for (std::int64_t st = 0; st < steps; ++st) {
        const std::uint64_t end =
            (static_cast<std::uint64_t>(st) + 1) * static_cast<std::uint64_t>(N);
        bt.clear();
        for (; cursor < order.size() && order[cursor].first < end; ++cursor)
          add_train_user(bt, order[cursor].second, kHeadEpochBase + e * k + s);
        const double loss =
            net_.loss_and_grad(bt, dropout, grad.data(), L - static_cast<int>(p_.head_layers));
        std::copy(grad.begin() + a, grad.begin() + b, hbuf.begin());
        hbuf[static_cast<std::size_t>(hs)] = static_cast<float>(loss);
        comm_.allreduce(hbuf);
        if (!std::isfinite(hbuf[static_cast<std::size_t>(hs)]))
          throw DataError("train: the loss is not finite while fine-tuning the head of segment " +
                              std::to_string(s) + "; lower --head-lr",
                          true);
        optimiser_update(p_, hbuf.data(), net_.params().data() + a, hm.data(), hv.data(), hs,
                         decayed, static_cast<double>(++t),
                         1.0 / static_cast<double>(cnt[static_cast<std::size_t>(st)]), p_.head_lr);
      }
      if (!has_val) continue;
      std::copy(net_.params().begin() + a, net_.params().begin() + b, probe.params.begin() + a);
      const double q = score();
      if (q > best) {
        best = q;
        keep = true;
        best_head.assign(net_.params().begin() + a, net_.params().begin() + b);
      }
    }
    if (!has_val) best_head.assign(net_.params().begin() + a, net_.params().begin() + b);
    if (!keep) continue;
    m.head_segments.push_back(s);
    m.heads.insert(m.heads.end(), best_head.begin(), best_head.end());
  }
  net_.params() = base;
  check_same_params(m.heads, comm_, "after fine-tuning the segment heads");
}

std::string Trainer::config_text() const {
  std::ostringstream os;
  static const char* const kNotHashed[] = {
      "data",   "projection",       "segments",         "out",       "checkpoint",
      "resume", "stop-after-steps", "checkpoint-every", "grad-sync", "bucket-mb"};
  for (const auto& [k, v] : p_.config()) {
    if (std::find(std::begin(kNotHashed), std::end(kNotHashed), k) != std::end(kNotHashed))
      continue;
    os << k << "=" << v << "\n";
  }
  os << "n_users=" << d_.n_users << "\nn_items=" << d_.n_items()
     << "\ndense_dim=" << shape_.dense_in << "\nn_segments=" << shape_.n_segments << "\n";
  return os.str();
}

void Trainer::write_checkpoint(const std::string& path) {
  if (path.empty()) return;
  fault_point("train.checkpoint", comm_);
  // Sharded: each rank holds the moments of its share; the file holds them all.
  const std::vector<float> m_all = all_moments(m_);
  const std::vector<float> v_all = p_.optimizer == "adam" ? all_moments(v_) : std::vector<float>{};
  h5::File f = h5::File::create(path, comm_, kTrainCheckpointFormat);
  for (const char* g : {"/items", "/opt", "/curves"}) f.create_group(g);
  const std::string cfg = config_text();
  f.set_attr("/", "config", cfg);
  f.set_attr("/", "config_hash", hex64(fnv1a(cfg.data(), cfg.size())));
  f.set_attr("/", "epoch", epoch_);
  f.set_attr("/", "step_in_epoch", step_in_epoch_);
  f.set_attr("/", "global_step", global_step_);
  f.set_attr("/", "epoch_loss_sum", epoch_loss_);
  f.set_attr("/", "best_ndcg", best_ndcg_);
  f.set_attr("/", "best_epoch", best_epoch_);
  f.set_attr("/", "since_best", since_best_);
  f.set_attr("/", "seed", static_cast<std::int64_t>(p_.seed));
  f.set_attr("/", "n_params", P_);
  f.write_strings("/items/ids", d_.item_ids, false);
  f.write_replicated<float>("/params", std::span<const float>(net_.params()));
  f.write_replicated<float>("/opt/m", std::span<const float>(m_all));
  if (!v_all.empty()) f.write_replicated<float>("/opt/v", std::span<const float>(v_all));
  if (!best_params_.empty())
    f.write_replicated<float>("/best_params", std::span<const float>(best_params_));
  std::vector<double> cols[8];
  for (const auto& e : history_) {
    const double row[8] = {static_cast<double>(e.epoch),
                           e.train_loss,
                           e.val_ndcg,
                           e.lr,
                           e.seconds,
                           e.step_seconds,
                           e.comm_seconds,
                           static_cast<double>(e.samples)};
    for (int c = 0; c < 8; ++c) cols[c].push_back(row[c]);
  }
  static const char* const kCols[8] = {"epoch",   "train_loss",   "val_ndcg",     "lr",
                                       "seconds", "step_seconds", "comm_seconds", "samples"};
  std::vector<double> improved, recall;
  for (const auto& e : history_) {
    improved.push_back(e.improved ? 1 : 0);
    recall.push_back(e.val_recall);
  }
  f.write_replicated<double>("/curves/val_recall", std::span<const double>(recall));
  for (int c = 0; c < 8; ++c)
    f.write_replicated<double>(std::string("/curves/") + kCols[c],
                               std::span<const double>(cols[c]));
  f.write_replicated<double>("/curves/improved", std::span<const double>(improved));
  f.commit();
}

void Trainer::read_checkpoint(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw UsageError("--resume: no checkpoint '" + path + "' (see --checkpoint)");
  const h5::File f = h5::File::open(path, comm_, kTrainCheckpointFormat);
  const auto items = f.read_strings("/items/ids", 0, f.shape("/items/ids")[0]);
  if (items != d_.item_ids)
    throw DataError("checkpoint '" + path + "' was written for other items (" +
                        std::to_string(items.size()) + " items; the data has " +
                        std::to_string(d_.item_ids.size()) + " or a different list)",
                    true);
  const std::string mine = config_text();
  const std::string theirs = f.attr_string("/", "config");
  if (mine != theirs) {
    // Name the settings that differ.
    std::istringstream a(mine), b(theirs);
    std::vector<std::string> la, lb, diff;
    for (std::string s; std::getline(a, s);) la.push_back(s);
    for (std::string s; std::getline(b, s);) lb.push_back(s);
    for (const auto& s : la)
      if (std::find(lb.begin(), lb.end(), s) == lb.end()) diff.push_back(s.substr(0, s.find('=')));
    std::string names;
    for (const auto& s : diff) names += (names.empty() ? "" : ", ") + s;
    throw UsageError("--resume: checkpoint '" + path +
                     "' was written with other settings or data (" + names +
                     "); rerun with the same options, or without --resume");
  }
  if (f.attr_int("/", "n_params") != P_)
    throw DataError("checkpoint '" + path + "' holds a network of another size", true);
  net_.params() = f.read_all<float>("/params");
  m_ = f.read_all<float>("/opt/m");
  if (f.exists("/opt/v")) v_ = f.read_all<float>("/opt/v");
  if (f.exists("/best_params")) best_params_ = f.read_all<float>("/best_params");
  if (std::ssize(net_.params()) != P_ || std::ssize(m_) != P_ ||
      (p_.optimizer == "adam" && std::ssize(v_) != P_))
    throw DataError("checkpoint '" + path + "': parameter arrays of the wrong size", true);
  for (const auto* a : {&net_.params(), &m_, &v_, &best_params_})
    if (!std::all_of(a->begin(), a->end(), [](float x) { return std::isfinite(x); }))
      throw DataError("checkpoint '" + path + "': non-finite parameters (damaged file?)", true);
  m_ = own_moments(m_);  // keep this rank's ranges of the moments
  v_ = own_moments(v_);
  epoch_ = f.attr_int("/", "epoch");
  step_in_epoch_ = f.attr_int("/", "step_in_epoch");
  global_step_ = f.attr_int("/", "global_step");
  epoch_loss_ = f.attr_double("/", "epoch_loss_sum");
  best_ndcg_ = f.attr_double("/", "best_ndcg");
  best_epoch_ = f.attr_int("/", "best_epoch");
  since_best_ = f.attr_int("/", "since_best");
  const auto col = [&](const char* name) {
    return f.read_all<double>(std::string("/curves/") + name);
  };
  const auto ep = col("epoch"), tl = col("train_loss"), vn = col("val_ndcg"), lr = col("lr"),
             sec = col("seconds"), ss = col("step_seconds"), cs = col("comm_seconds"),
             sa = col("samples"), im = col("improved");
  const auto rc = f.exists("/curves/val_recall") ? col("val_recall") : std::vector<double>{};
  history_.clear();
  for (std::size_t e = 0; e < ep.size(); ++e) {
    EpochStats s;
    s.epoch = static_cast<std::int64_t>(ep[e]);
    s.train_loss = tl[e];
    s.val_ndcg = vn[e];
    s.lr = lr[e];
    s.seconds = sec[e];
    s.step_seconds = ss[e];
    s.comm_seconds = cs[e];
    s.samples = static_cast<std::int64_t>(sa[e]);
    s.improved = im[e] != 0;
    if (e < rc.size()) s.val_recall = rc[e];
    history_.push_back(s);
  }
  if (epoch_ < 0 || step_in_epoch_ < 0 || step_in_epoch_ >= steps_per_epoch_ ||
      std::ssize(history_) != epoch_)
    throw DataError("checkpoint '" + path + "': inconsistent progress counters", true);
}

TrainResult Trainer::run(const EpochCallback& on_epoch) {
  load_test_items();
  assign_roles();
  build_validation();
  net_.init(p_.seed);
  // The optimiser's moments: of the ranges this rank updates (own_), back to back.
  std::int64_t n_moments = 0;
  for (const auto& o : own_) n_moments += o.n;
  m_.assign(static_cast<std::size_t>(n_moments), 0.0f);
  if (p_.optimizer == "adam") v_.assign(static_cast<std::size_t>(n_moments), 0.0f);
  const std::string ckpt = p_.checkpoint_path();
  if (p_.resume) read_checkpoint(ckpt);
  // Fault injection for the test of the check below: SEGREC_FAULT=train.init_params:<rank>.
  if (const char* f = std::getenv("SEGREC_FAULT");
      f && std::string(f) == "train.init_params:" + std::to_string(comm_.rank()))
    net_.params()[0] += 1.0f;
  check_same_params(net_.params(), comm_, "at the start");

  TrainResult res;
  res.steps_per_epoch = steps_per_epoch_;
  const std::string mode = items_ ? std::string("output layer ") +
                                        (S_ > 0 ? "and history input " : "") +
                                        "split by items, the layers between sharded"
                           : sync_ == Sync::kSharded ? "sharded"
                                                     : p_.grad_sync;
  res.sync_layout = hierarchical_
                        ? mode + " over " + std::to_string(cross_.size()) + " node(s) x " +
                              std::to_string(node_.size()) + " ranks (shared memory within a node)"
                        : mode + " over " + std::to_string(comm_.size()) + " rank(s)";
  res.batch_size = batch_;
  res.planned_epochs = epochs_;
  const bool validate = comm_.allreduce_value(static_cast<std::int64_t>(val_local_.size())) > 0;
  std::int64_t steps_this_run = 0;
  bool finished = epoch_ >= epochs_;
  if (!history_.empty() && p_.patience > 0 && since_best_ >= p_.patience) finished = true;
  mlp::Batch<float> bt;
  const auto dropout = static_cast<float>(p_.dropout);

  while (!finished) {
    const auto t_epoch = std::chrono::steady_clock::now();
    EpochStats st;
    st.epoch = epoch_ + 1;
    build_order(epoch_);
    watchdog::set_stage("train epoch " + std::to_string(epoch_ + 1));
    // Skip the batches done before a resume.
    std::size_t cursor = 0;
    const auto N = static_cast<std::uint64_t>(n_train_);
    while (cursor < order_.size() &&
           order_[cursor].first < static_cast<std::uint64_t>(step_in_epoch_) * N)
      ++cursor;
    bool stop = false;
    double lr = p_.lr;
    for (std::int64_t s = step_in_epoch_; s < steps_per_epoch_; ++s) {
      watchdog::set_step("step", s + 1);
      const auto t_step = std::chrono::steady_clock::now();
      const std::uint64_t end = (static_cast<std::uint64_t>(s) + 1) * N;
      bt.clear();
      for (; cursor < order_.size() && order_[cursor].first < end; ++cursor)
        add_train_user(bt, order_[cursor].second, epoch_);
      const auto t_compute = std::chrono::steady_clock::now();
      const auto bytes0 = sent_bytes();
      const double split_comm0 = net_.comm_seconds();
      const double loss =
          items_ ? net_.loss_and_grad_split(bt, dropout, grad_, grad_out_.data(), comm_,
                                            std::span<const std::int64_t>(cols_),
                                            std::span<const std::int64_t>(in_rows_))
                 : net_.loss_and_grad(bt, dropout, grad_, 0,
                                      sync_ == Sync::kBuckets ? &buckets_ : nullptr);
      // The item-parallel step's own collectives count as communication.
      const double split_comm = net_.comm_seconds() - split_comm0;
      st.compute_seconds += seconds_since(t_compute) - split_comm;
      st.comm_seconds += split_comm;
      scalars_[0] = static_cast<float>(loss);
      scalars_[1] = g_stop_requested.load() ? 1.0f : 0.0f;
      const auto t_comm = std::chrono::steady_clock::now();
      const double sumsq = sync_gradients();
      st.comm_seconds += seconds_since(t_comm);
      const std::int64_t count = batch_count_[static_cast<std::size_t>(s)];
      if (!std::isfinite(scalars_[0]))
        throw DataError("train: the loss is not finite at epoch " + std::to_string(epoch_ + 1) +
                            " step " + std::to_string(s + 1) + "; lower --lr or set --clip",
                        true);
      lr = lr_at(global_step_, epoch_);
      const auto t_opt = std::chrono::steady_clock::now();
      optimiser_step(1.0f / static_cast<float>(count), lr, sumsq);
      st.optimiser_seconds += seconds_since(t_opt);
      if (sync_ == Sync::kSharded || items_) {
        const auto t_gather = std::chrono::steady_clock::now();
        gather_parameters();
        st.comm_seconds += seconds_since(t_gather);
      }
      res.sync_bytes_per_step = sent_bytes() - bytes0;
      epoch_loss_ += scalars_[0];
      ++global_step_;
      ++steps_this_run;
      st.samples += count;
      st.step_seconds += seconds_since(t_step);
      stop = scalars_[1] > 0 || (p_.stop_after_steps > 0 && steps_this_run >= p_.stop_after_steps);
      if (stop) g_stop_requested.store(0);  // the request is served
      if (stop && s + 1 < steps_per_epoch_) {
        step_in_epoch_ = s + 1;
        gather_item_parts();
        write_checkpoint(ckpt);
        throw Interrupted("train: stopped at epoch " + std::to_string(epoch_ + 1) + " step " +
                          std::to_string(s + 1) + "; " +
                          (ckpt.empty()
                               ? std::string("no checkpoint file")
                               : "checkpoint written to '" + ckpt + "' (rerun with --resume)"));
      }
    }
    // End of the epoch: validation, early stopping, checkpoint.
    gather_item_parts();
    st.train_loss = epoch_loss_ / static_cast<double>(n_train_);
    st.lr = lr;
    if (validate) {
      std::tie(st.val_ndcg, st.val_recall) = validation_quality();
      if (std::isfinite(st.val_ndcg) && st.val_ndcg > best_ndcg_) {
        best_ndcg_ = st.val_ndcg;
        best_epoch_ = epoch_ + 1;
        best_params_ = net_.params();
        since_best_ = 0;
        st.improved = true;
      } else if (std::isfinite(st.val_ndcg)) {
        ++since_best_;
      }
    }
    check_same_params(net_.params(), comm_, "after an epoch");
    ++epoch_;
    step_in_epoch_ = 0;
    epoch_loss_ = 0;
    const bool early = validate && p_.patience > 0 && since_best_ >= p_.patience;
    finished = epoch_ >= epochs_ || early;
    res.stopped_early = early && epoch_ < epochs_;
    st.seconds = seconds_since(t_epoch);
    history_.push_back(st);
    if ((p_.checkpoint_every > 0 && (epoch_ % p_.checkpoint_every == 0 || finished)) ||
        (stop && !finished))
      write_checkpoint(ckpt);
    if (on_epoch) on_epoch(st);
    if (stop && !finished)
      throw Interrupted("train: stopped after epoch " + std::to_string(epoch_) + "; " +
                        (ckpt.empty()
                             ? std::string("no checkpoint file")
                             : "checkpoint written to '" + ckpt + "' (rerun with --resume)"));
  }
  if (validate && n_val_ == 0) validation_quality();  // counts the validation users after a resume
  res.epochs = history_;
  res.model = make_model();
  res.n_test_users = comm_.allreduce_value(test_eval_.rows()) + test_eval_.missing;
  if (p_.uses_heads()) {
    train_heads(res.model);
    add_quality(res.model, "none", false);
  }
  add_quality(res.model, p_.personalize, true);
  return res;
}

Model Trainer::make_model() const {
  Model m;
  m.shape = shape_;
  m.input = p_.input;
  m.history_weight = p_.history_weight;
  m.item_ids = d_.item_ids;
  m.params = best_params_.empty() ? net_.params() : best_params_;
  m.config = p_.config();
  for (const auto& e : history_) {
    m.train_loss.push_back(e.train_loss);
    m.val_ndcg.push_back(e.val_ndcg);
    m.val_recall.push_back(e.val_recall);
    m.lr.push_back(e.lr);
    m.seconds.push_back(e.seconds);
  }
  if (!best_params_.empty()) {
    m.best_epoch = best_epoch_;
    m.best_ndcg = best_ndcg_;
  }
  m.ndcg_k = p_.ndcg_k;
  m.recall_k = p_.recall_k;
  m.n_val_users = n_val_;
  m.n_train_users = n_train_;
  return m;
}

}  // namespace

// ---- parameters ------------------------------------------------------------------------------

std::vector<std::int64_t> TrainParams::hidden_sizes() const {
  std::vector<std::int64_t> out;
  if (hidden == "none") return out;
  const auto parts = split_list(hidden);
  require(!parts.empty(), "hidden", hidden, "give layer widths such as 600 or 256,256 (or none)");
  for (const auto& s : parts) {
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    require(used == s.size() && v > 0, "hidden", hidden,
            "layer widths must be positive integers, e.g. 600 or 256,256");
    out.push_back(v);
  }
  return out;
}

std::int64_t TrainParams::effective_batch(std::int64_t n_train) const {
  if (batch_size > 0) return batch_size;
  const std::int64_t b = (n_train + kAutoBatchesPerEpoch - 1) / kAutoBatchesPerEpoch;
  return std::max<std::int64_t>(1, std::min(n_train, std::clamp(b, kAutoMinBatch, kAutoMaxBatch)));
}

std::int64_t TrainParams::effective_epochs(std::int64_t n_train) const {
  if (epochs > 0) return epochs;
  const std::int64_t b = effective_batch(n_train);
  const std::int64_t steps = std::max<std::int64_t>(1, (n_train + b - 1) / b);
  return std::clamp((kAutoSteps + steps - 1) / steps, kAutoMinEpochs, kAutoMaxEpochs);
}

std::string TrainParams::checkpoint_path() const {
  if (!checkpoint.empty()) return checkpoint;
  return out.empty() ? std::string() : out + ".ckpt.h5";
}

void TrainParams::validate() const {
  require(input == "history" || input == "projected" || input == "both", "input", input,
          "use history, projected or both");
  require(history_weight == "binary" || history_weight == "log", "history-weight", history_weight,
          "use binary or log");
  require(personalize == "none" || personalize == "segment-input" || personalize == "segment-heads",
          "personalize", personalize, "use none, segment-input or segment-heads");
  require(head_layers >= 1, "head-layers", head_layers, "must be >= 1");
  require(head_layers <= std::ssize(hidden_sizes()) + 1, "head-layers", head_layers,
          "at most the number of layers (hidden layers + 1)");
  require(head_epochs >= 1, "head-epochs", head_epochs, "must be >= 1");
  require(std::isfinite(head_lr) && head_lr > 0, "head-lr", head_lr, "must be > 0");
  require(min_segment_users >= 1, "min-segment-users", min_segment_users, "must be >= 1");
  if (compare_personalize) {
    require(!resume, "resume", "true", "--compare-personalize runs are not checkpointed");
    require(!segments.empty(), "segments", segments, "--compare-personalize needs --segments FILE");
  }
  require(segment_embedding >= 0, "segment-embedding", segment_embedding, "must be >= 0");
  if (uses_segments())
    require(segment_embedding > 0, "segment-embedding", segment_embedding,
            "--personalize segment-input needs an embedding width > 0");
  else
    require(segment_embedding == 0, "segment-embedding", segment_embedding,
            "an embedding needs --personalize segment-input");
  (void)hidden_sizes();
  (void)mlp::parse_activation(activation);
  (void)mlp::parse_loss(loss);
  require(input_dropout >= 0 && input_dropout < 1, "input-dropout", input_dropout,
          "must be in [0, 1)");
  require(dropout >= 0 && dropout < 1, "dropout", dropout, "must be in [0, 1)");
  require(optimizer == "adam" || optimizer == "sgd", "optimizer", optimizer, "use adam or sgd");
  require(std::isfinite(lr) && lr > 0, "lr", lr, "the learning rate must be > 0");
  require(momentum >= 0 && momentum < 1, "momentum", momentum, "must be in [0, 1)");
  require(beta1 >= 0 && beta1 < 1, "beta1", beta1, "must be in [0, 1)");
  require(beta2 >= 0 && beta2 < 1, "beta2", beta2, "must be in [0, 1)");
  require(adam_eps > 0, "adam-eps", adam_eps, "must be > 0");
  require(weight_decay >= 0 && std::isfinite(weight_decay), "weight-decay", weight_decay,
          "must be >= 0");
  require(clip >= 0 && std::isfinite(clip), "clip", clip, "must be >= 0 (0 = off)");
  require(grad_sync == "allreduce" || grad_sync == "buckets" || grad_sync == "sharded" ||
              grad_sync == "items",
          "grad-sync", grad_sync, "use allreduce, buckets, sharded or items");
  require(std::isfinite(bucket_mb) && bucket_mb > 0, "bucket-mb", bucket_mb, "must be > 0");
  require(lr_schedule == "constant" || lr_schedule == "cosine" || lr_schedule == "step",
          "lr-schedule", lr_schedule, "use constant, cosine or step");
  require(warmup_steps >= 0, "warmup-steps", warmup_steps, "must be >= 0");
  require(lr_step_epochs >= 1, "lr-step-epochs", lr_step_epochs, "must be >= 1");
  require(lr_gamma > 0 && lr_gamma <= 1, "lr-gamma", lr_gamma, "must be in (0, 1]");
  require(epochs >= 1 || epochs == -1, "epochs", epochs,
          "train for at least one epoch (-1 = auto: sized from the users)");
  require(batch_size >= 0, "batch-size", batch_size, "must be >= 1 (0 = auto)");
  require(val_users >= 0 && val_users < 1, "val-users", val_users, "must be in [0, 1)");
  require(val_holdout > 0 && val_holdout < 1, "val-holdout", val_holdout, "must be in (0, 1)");
  require(ndcg_k >= 1, "ndcg-k", ndcg_k, "must be >= 1");
  require(recall_k >= 1, "recall-k", recall_k, "must be >= 1");
  require(patience >= 0, "patience", patience, "must be >= 0 (0 = off)");
  require(checkpoint_every >= 0, "checkpoint-every", checkpoint_every, "must be >= 0 (0 = never)");
  require(stop_after_steps >= 0, "stop-after-steps", stop_after_steps, "must be >= 0 (0 = off)");
  if (resume)
    require(!checkpoint_path().empty(), "resume", "true", "needs --checkpoint FILE or --out FILE");
}

std::vector<std::pair<std::string, std::string>> TrainParams::config() const {
  const auto d = [](double v) { return fmt_double(v); };
  const auto i = [](std::int64_t v) { return std::to_string(v); };
  return {{"data", data},
          {"projection", projection},
          {"segments", segments},
          {"out", out},
          {"checkpoint", checkpoint_path()},
          {"resume", resume ? "true" : "false"},
          {"input", input},
          {"history-weight", history_weight},
          {"personalize", personalize},
          {"segment-embedding", i(segment_embedding)},
          {"head-layers", i(head_layers)},
          {"head-epochs", i(head_epochs)},
          {"head-lr", d(head_lr)},
          {"min-segment-users", i(min_segment_users)},
          {"compare-personalize", compare_personalize ? "true" : "false"},
          {"test-items", test_items},
          {"hidden", join_sizes(hidden_sizes())},
          {"activation", activation},
          {"input-dropout", d(input_dropout)},
          {"dropout", d(dropout)},
          {"loss", loss},
          {"optimizer", optimizer},
          {"lr", d(lr)},
          {"momentum", d(momentum)},
          {"beta1", d(beta1)},
          {"beta2", d(beta2)},
          {"adam-eps", d(adam_eps)},
          {"weight-decay", d(weight_decay)},
          {"clip", d(clip)},
          {"grad-sync", grad_sync},
          {"bucket-mb", d(bucket_mb)},
          {"lr-schedule", lr_schedule},
          {"warmup-steps", i(warmup_steps)},
          {"lr-step-epochs", i(lr_step_epochs)},
          {"lr-gamma", d(lr_gamma)},
          {"epochs", i(epochs)},
          {"batch-size", i(batch_size)},
          {"val-users", d(val_users)},
          {"val-holdout", d(val_holdout)},
          {"ndcg-k", i(ndcg_k)},
          {"recall-k", i(recall_k)},
          {"patience", i(patience)},
          {"checkpoint-every", i(checkpoint_every)},
          {"stop-after-steps", i(stop_after_steps)},
          {"seed", std::to_string(seed)}};
}

// ---- data ------------------------------------------------------------------------------------

TrainData load_train_data(const TrainParams& p, const Comm& comm) {
  require(!p.data.empty(), "data", p.data, "give the dataset.h5 to train on");
  if (p.uses_projection())
    require(!p.projection.empty(), "projection", p.projection,
            "--input " + p.input + " needs --projection FILE");
  if (p.personalize != "none")
    require(!p.segments.empty(), "segments", p.segments,
            "--personalize " + p.personalize + " needs --segments FILE");
  Dataset ds = read_dataset(p.data, comm, /*with_log=*/false);
  TrainData d;
  d.n_users = ds.n_users;
  d.user_begin = ds.user_begin;
  d.item_ids = std::move(ds.item_ids);
  d.indptr = std::move(ds.indptr);
  d.indices = std::move(ds.indices);
  d.weights = std::move(ds.weights);
  d.user_ids = ds.user_ids;
  const Block b = block_partition(ds.n_users, comm.size(), comm.rank());

  // Per-user files must list the dataset's users in the dataset's order.
  const auto check_users = [&](const h5::File& f, const std::string& path) {
    if (!f.exists("/users/ids")) return;
    const auto ids = f.read_strings("/users/ids", b.begin, b.size());
    comm.check_all(
        ids == ds.user_ids
            ? ""
            : "'" + path + "' lists other users, or another order, than '" + p.data + "'",
        kExitData);
  };
  if (p.uses_projection()) {
    const h5::File f = h5::File::open(p.projection, comm, kProjectionFormat);
    const auto s = f.shape("/H");
    if (s.size() != 2 || s[0] != ds.n_users)
      throw DataError("'" + p.projection + "': /H has " + std::to_string(s[0]) + " rows; '" +
                          p.data + "' has " + std::to_string(ds.n_users) + " users",
                      true);
    check_users(f, p.projection);
    d.dense_dim = s[1];
    d.dense = f.read_rows<float>("/H", b.begin, b.size());
  }
  if (p.reads_segments()) {
    const h5::File f = h5::File::open(p.segments, comm, kSegmentsFormat);
    const auto s = f.shape("/labels");
    if (s[0] != ds.n_users)
      throw DataError("'" + p.segments + "': /labels has " + std::to_string(s[0]) + " rows; '" +
                          p.data + "' has " + std::to_string(ds.n_users) + " users",
                      true);
    check_users(f, p.segments);
    d.n_segments = f.attr_int("/", "k");
    if (d.n_segments <= 0)
      throw DataError("'" + p.segments + "': attribute k must be positive", true);
    d.segments = f.read_rows<std::int32_t>("/labels", b.begin, b.size());
  }
  return d;
}

// ---- training --------------------------------------------------------------------------------

void request_training_stop() { g_stop_requested.store(1); }

TrainResult train(const TrainParams& p, const TrainData& data, const Comm& comm,
                  const EpochCallback& on_epoch) {
  p.validate();
  check_data(p, data, comm);
  if (!p.compare_personalize) {
    Trainer t(p, data, comm);
    return t.run(on_epoch);
  }
  // The comparison: a global model with segment heads (scored with and without them) and a
  // model with a segment embedding, on the same split; neither run is checkpointed.
  TrainParams g = p;
  g.compare_personalize = false;
  g.out.clear();
  g.checkpoint.clear();
  g.personalize = "segment-heads";
  g.segment_embedding = 0;
  TrainParams e = g;
  e.personalize = "segment-input";
  e.segment_embedding = p.segment_embedding > 0 ? p.segment_embedding : 16;
  TrainResult rg = Trainer(g, data, comm).run(on_epoch);
  TrainResult re = Trainer(e, data, comm).run(on_epoch);
  std::vector<QualityRow> table = rg.model.quality;
  table.insert(table.end(), re.model.quality.begin(), re.model.quality.end());
  TrainResult& r = p.personalize == "segment-input" ? re : rg;
  if (p.personalize == "none") {
    r.model.head_layers = 0;
    r.model.heads.clear();
    r.model.head_segments.clear();
  }
  r.model.quality = std::move(table);
  r.model.config = p.config();
  return std::move(r);
}

// ---- model file ------------------------------------------------------------------------------

void write_model(const std::string& path, const Model& m, const Comm& comm) {
  const mlp::Layout lay(m.shape);
  SEGREC_ASSERT(std::ssize(m.params) == lay.size, "model parameters do not match the shape");
  SEGREC_ASSERT(std::ssize(m.heads) == std::ssize(m.head_segments) * m.head_size(),
                "segment heads do not match the shape");
  h5::File f = h5::File::create(path, comm, kModelFormat);
  for (const char* g : {"/items", "/mlp", "/config", "/curves", "/validation"}) f.create_group(g);
  f.write_strings("/items/ids", m.item_ids, false);
  const auto& s = m.shape;
  for (int l = 0; l < s.n_layers(); ++l) {
    const std::string L = std::to_string(l);
    f.write_replicated<float>(
        "/mlp/W" + L,
        std::span<const float>(m.params.data() + lay.w[l],
                               static_cast<std::size_t>(s.fan_in(l) * s.fan_out(l))),
        s.fan_out(l));
    f.write_replicated<float>(
        "/mlp/b" + L,
        std::span<const float>(m.params.data() + lay.b[l], static_cast<std::size_t>(s.fan_out(l))));
  }
  if (s.embed_dim > 0)
    f.write_replicated<float>("/mlp/segment_embedding",
                              std::span<const float>(m.params.data() + lay.emb,
                                                     static_cast<std::size_t>(lay.size - lay.emb)),
                              s.embed_dim);
  f.set_attr("/mlp", "input", m.input);
  f.set_attr("/mlp", "history_weight", m.history_weight);
  f.set_attr("/mlp", "activation", mlp::to_string(s.activation));
  f.set_attr("/mlp", "loss", mlp::to_string(s.loss));
  f.set_attr("/mlp", "hidden", join_sizes(s.hidden));
  f.set_attr("/mlp", "n_layers", static_cast<std::int64_t>(s.n_layers()));
  f.set_attr("/mlp", "sparse_in", s.sparse_in);
  f.set_attr("/mlp", "dense_in", s.dense_in);
  f.set_attr("/mlp", "n_segments", s.n_segments);
  f.set_attr("/mlp", "embed_dim", s.embed_dim);
  f.set_attr("/mlp", "n_items", s.n_out);
  if (m.head_layers > 0 && !m.head_segments.empty()) {
    // Head h's block holds, layer after layer, W_l (fan_in x fan_out) then b_l.
    f.create_group("/mlp/heads");
    f.set_attr("/mlp/heads", "layers", m.head_layers);
    f.write_replicated<std::int32_t>("/mlp/heads/segments",
                                     std::span<const std::int32_t>(m.head_segments));
    const std::int64_t nh = std::ssize(m.head_segments), hs = m.head_size();
    const int L = s.n_layers();
    for (int l = L - static_cast<int>(m.head_layers); l < L; ++l) {
      const std::int64_t w0 = lay.w[l] - lay.w[L - m.head_layers], nw = s.fan_in(l) * s.fan_out(l);
      std::vector<float> W, b;
      for (std::int64_t h = 0; h < nh; ++h) {
        const float* blk = m.heads.data() + h * hs + w0;
        W.insert(W.end(), blk, blk + nw);
        b.insert(b.end(), blk + nw, blk + nw + s.fan_out(l));
      }
      f.write_replicated<float>("/mlp/heads/W" + std::to_string(l), std::span<const float>(W),
                                s.fan_out(l));
      f.write_replicated<float>("/mlp/heads/b" + std::to_string(l), std::span<const float>(b),
                                s.fan_out(l));
    }
  }
  for (const auto& [k, v] : m.config) f.set_attr("/config", k, v);
  const auto curve = [&](const char* name, const std::vector<double>& v) {
    f.write_replicated<double>(std::string("/curves/") + name, std::span<const double>(v));
  };
  curve("train_loss", m.train_loss);
  curve("val_ndcg", m.val_ndcg);
  curve("lr", m.lr);
  curve("seconds", m.seconds);
  curve("val_recall", m.val_recall);
  f.set_attr("/validation", "best_epoch", m.best_epoch);
  f.set_attr("/validation", "best_ndcg", m.best_ndcg);
  f.set_attr("/validation", "k", m.ndcg_k);
  f.set_attr("/validation", "n_users", m.n_val_users);
  f.set_attr("/validation", "n_train_users", m.n_train_users);
  f.set_attr("/validation", "recall_k", m.recall_k);
  if (!m.quality.empty()) {
    f.create_group("/validation/quality");
    std::vector<std::string> mode, users;
    std::vector<std::int32_t> seg;
    std::vector<std::int64_t> n;
    std::vector<double> ndcg, recall;
    for (const auto& q : m.quality) {
      mode.push_back(q.mode);
      users.push_back(q.users);
      seg.push_back(q.segment);
      n.push_back(q.n_users);
      ndcg.push_back(q.ndcg);
      recall.push_back(q.recall);
    }
    f.write_strings("/validation/quality/mode", mode, false);
    f.write_strings("/validation/quality/users", users, false);
    f.write_replicated<std::int32_t>("/validation/quality/segment",
                                     std::span<const std::int32_t>(seg));
    f.write_replicated<std::int64_t>("/validation/quality/n_users",
                                     std::span<const std::int64_t>(n));
    f.write_replicated<double>("/validation/quality/ndcg", std::span<const double>(ndcg));
    f.write_replicated<double>("/validation/quality/recall", std::span<const double>(recall));
  }
  if (m.serving) write_serving_parts(f, *m.serving);
  f.commit();
}

Model read_model(const std::string& path, const Comm& comm) {
  const h5::File f = h5::File::open(path, comm, kModelFormat);
  Model m;
  m.item_ids = f.read_strings("/items/ids", 0, f.shape("/items/ids")[0]);
  m.input = f.attr_string("/mlp", "input");
  m.history_weight = f.attr_string("/mlp", "history_weight");
  auto& s = m.shape;
  try {
    s.activation = mlp::parse_activation(f.attr_string("/mlp", "activation"));
    s.loss = mlp::parse_loss(f.attr_string("/mlp", "loss"));
    TrainParams tmp;
    tmp.hidden = f.attr_string("/mlp", "hidden");
    s.hidden = tmp.hidden_sizes();
  } catch (const UsageError& e) {
    throw DataError("'" + path + "': bad network description: " + e.what(), true);
  }
  s.sparse_in = f.attr_int("/mlp", "sparse_in");
  s.dense_in = f.attr_int("/mlp", "dense_in");
  s.n_segments = f.attr_int("/mlp", "n_segments");
  s.embed_dim = f.attr_int("/mlp", "embed_dim");
  s.n_out = f.attr_int("/mlp", "n_items");
  if (s.n_out != std::ssize(m.item_ids) || (s.sparse_in != 0 && s.sparse_in != s.n_out) ||
      f.attr_int("/mlp", "n_layers") != s.n_layers())
    throw DataError("'" + path + "': the network does not match the item list", true);
  try {
    s.check();
  } catch (const UsageError& e) {
    throw DataError("'" + path + "': bad network shape: " + e.what(), true);
  }
  const mlp::Layout lay(s);
  m.params.assign(static_cast<std::size_t>(lay.size), 0.0f);
  const auto load = [&](const std::string& name, std::int64_t off, std::int64_t n) {
    const auto v = f.read_all<float>(name);
    if (std::ssize(v) != n)
      throw DataError("'" + path + "': " + name + " has the wrong size", true);
    if (!std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); }))
      throw DataError("'" + path + "': " + name + " holds non-finite values (damaged file?)", true);
    std::copy(v.begin(), v.end(), m.params.begin() + off);
  };
  for (int l = 0; l < s.n_layers(); ++l) {
    load("/mlp/W" + std::to_string(l), lay.w[l], s.fan_in(l) * s.fan_out(l));
    load("/mlp/b" + std::to_string(l), lay.b[l], s.fan_out(l));
  }
  if (s.embed_dim > 0) load("/mlp/segment_embedding", lay.emb, lay.size - lay.emb);
  if (f.exists("/mlp/heads")) {
    m.head_layers = f.attr_int("/mlp/heads", "layers");
    if (m.head_layers < 1 || m.head_layers > s.n_layers())
      throw DataError("'" + path + "': /mlp/heads has a bad layer count", true);
    m.head_segments = f.read_all<std::int32_t>("/mlp/heads/segments");
    for (auto g : m.head_segments)
      if (g < 0 || (s.n_segments > 0 && g >= s.n_segments))
        throw DataError("'" + path + "': /mlp/heads/segments holds a bad label", true);
    const std::int64_t nh = std::ssize(m.head_segments), hs = m.head_size();
    m.heads.assign(static_cast<std::size_t>(nh * hs), 0.0f);
    const int L = s.n_layers();
    for (int l = L - static_cast<int>(m.head_layers); l < L; ++l) {
      const std::int64_t w0 = lay.w[l] - lay.w[L - m.head_layers], nw = s.fan_in(l) * s.fan_out(l);
      const auto W = f.read_all<float>("/mlp/heads/W" + std::to_string(l));
      const auto b = f.read_all<float>("/mlp/heads/b" + std::to_string(l));
      if (std::ssize(W) != nh * nw || std::ssize(b) != nh * s.fan_out(l))
        throw DataError(
            "'" + path + "': /mlp/heads layer " + std::to_string(l) + " has the wrong size", true);
      for (std::int64_t h = 0; h < nh; ++h) {
        float* blk = m.heads.data() + h * hs + w0;
        std::copy(W.begin() + h * nw, W.begin() + (h + 1) * nw, blk);
        std::copy(b.begin() + h * s.fan_out(l), b.begin() + (h + 1) * s.fan_out(l), blk + nw);
      }
    }
  }
  // The configuration, as written.
  TrainParams names;
  for (const auto& [k, v] : names.config())
    if (f.has_attr("/config", k)) m.config.emplace_back(k, f.attr_string("/config", k));
  m.train_loss = f.read_all<double>("/curves/train_loss");
  m.val_ndcg = f.read_all<double>("/curves/val_ndcg");
  m.lr = f.read_all<double>("/curves/lr");
  m.seconds = f.read_all<double>("/curves/seconds");
  if (f.exists("/curves/val_recall")) m.val_recall = f.read_all<double>("/curves/val_recall");
  if (f.has_attr("/validation", "recall_k")) m.recall_k = f.attr_int("/validation", "recall_k");
  if (f.exists("/validation/quality")) {
    const auto n_rows = f.shape("/validation/quality/ndcg")[0];
    const auto mode = f.read_strings("/validation/quality/mode", 0, n_rows);
    const auto users = f.read_strings("/validation/quality/users", 0, n_rows);
    const auto seg = f.read_all<std::int32_t>("/validation/quality/segment");
    const auto n = f.read_all<std::int64_t>("/validation/quality/n_users");
    const auto nd = f.read_all<double>("/validation/quality/ndcg");
    const auto rc = f.read_all<double>("/validation/quality/recall");
    for (std::int64_t r = 0; r < n_rows; ++r) {
      const auto k = static_cast<std::size_t>(r);
      m.quality.push_back({mode[k], users[k], seg[k], n[k], nd[k], rc[k]});
    }
  }
  m.best_epoch = f.attr_int("/validation", "best_epoch");
  m.best_ndcg = f.attr_double("/validation", "best_ndcg");
  m.ndcg_k = f.attr_int("/validation", "k");
  m.n_val_users = f.attr_int("/validation", "n_users");
  m.n_train_users = f.attr_int("/validation", "n_train_users");
  if (has_serving_parts(f)) m.serving = read_serving_parts(f);
  return m;
}

void check_items(const Model& m, const std::vector<std::string>& item_ids,
                 const std::string& what) {
  if (m.item_ids == item_ids) return;
  std::string detail = std::to_string(m.item_ids.size()) + " items in the model, " +
                       std::to_string(item_ids.size()) + " in " + what;
  for (std::size_t i = 0; i < std::min(m.item_ids.size(), item_ids.size()); ++i)
    if (m.item_ids[i] != item_ids[i]) {
      detail += "; item " + std::to_string(i) + " is '" + m.item_ids[i] + "' in the model and '" +
                item_ids[i] + "' in " + what;
      break;
    }
  throw DataError("the model was trained on other items than " + what + " (" + detail + ")", true);
}

// ---- scoring ---------------------------------------------------------------------------------

std::int64_t Model::head_size() const {
  if (head_layers <= 0) return 0;
  const mlp::Layout lay(shape);
  return lay.emb - lay.w[shape.n_layers() - head_layers];
}

std::string quality_table(const Model& m) {
  if (m.quality.empty()) return "";
  std::ostringstream os;
  char buf[160];
  std::snprintf(buf, sizeof buf, "%-14s %-10s %8s %8s %10s %10s", "mode", "users", "segment",
                "n_users", ("NDCG@" + std::to_string(m.ndcg_k)).c_str(),
                ("Recall@" + std::to_string(m.recall_k)).c_str());
  os << buf << "\n";
  // Overall rows first, then per segment.
  for (const bool per_segment : {false, true})
    for (const auto& q : m.quality) {
      if ((q.segment >= 0) != per_segment) continue;
      std::snprintf(buf, sizeof buf, "%-14s %-10s %8s %8lld %10.4f %10.4f", q.mode.c_str(),
                    q.users.c_str(), q.segment < 0 ? "all" : std::to_string(q.segment).c_str(),
                    static_cast<long long>(q.n_users), q.ndcg, q.recall);
      os << buf << "\n";
    }
  const QualityRow* best = nullptr;
  for (const auto& q : m.quality)
    if (q.segment < 0 && q.users == "validation" && (!best || q.ndcg > best->ndcg)) best = &q;
  if (best) os << "best on the validation users (NDCG@" << m.ndcg_k << "): " << best->mode << "\n";
  return os.str();
}

TopN score_users(const Model& m, const UserInputs& u, std::int64_t n, bool exclude_history) {
  require(n >= 1, "top-n", n, "must be >= 1");
  const auto& s = m.shape;
  const std::int64_t rows = u.rows();
  const std::int64_t n_items = s.n_out;
  if (rows < 0 || u.indptr.empty() || u.indptr[0] != 0 ||
      u.indptr.back() != std::ssize(u.indices) || u.weights.size() != u.indices.size())
    throw DataError("score_users: malformed user histories");
  for (auto i : u.indices)
    if (i < 0 || i >= n_items)
      throw DataError("score_users: item index " + std::to_string(i) + " outside the model's " +
                      std::to_string(n_items) + " items");
  if (std::ssize(u.dense) != rows * s.dense_in)
    throw DataError("score_users: the model reads " + std::to_string(s.dense_in) +
                    " projection values per user; got " + std::to_string(u.dense.size()) + " for " +
                    std::to_string(rows) + " users");
  const bool heads = u.segment_heads && m.head_layers > 0 && !m.head_segments.empty();
  if (s.embed_dim > 0 || heads) {
    if (std::ssize(u.segments) != rows)
      throw DataError(std::string("score_users: the model needs a segment label per user") +
                      (s.embed_dim > 0 ? "" : " (or scoring without its segment heads)"));
    for (auto g : u.segments)
      if (g < 0 || (s.n_segments > 0 && g >= s.n_segments))
        throw DataError("score_users: segment label " + std::to_string(g) + " outside [0, " +
                        std::to_string(s.n_segments) + ")");
  }
  mlp::Network<float> net(s);
  net.params() = m.params;
  RowSpec spec;
  spec.history = s.sparse_in > 0;
  spec.log_weight = m.history_weight == "log";
  spec.dense_dim = s.dense_in;
  spec.segments = s.embed_dim > 0;

  // Rows grouped by the head they use (group 0: the global layers), each group in row order.
  const std::int64_t hs = heads ? m.head_size() : 0;
  const std::int64_t head_begin = heads ? mlp::Layout(s).w[s.n_layers() - m.head_layers] : 0;
  std::vector<std::vector<std::int64_t>> groups(1);
  if (heads) {
    std::unordered_map<std::int32_t, std::size_t> group_of;
    for (std::size_t h = 0; h < m.head_segments.size(); ++h)
      group_of.emplace(m.head_segments[h], h + 1);
    groups.resize(m.head_segments.size() + 1);
    for (std::int64_t r = 0; r < rows; ++r) {
      const auto it = group_of.find(u.segments[static_cast<std::size_t>(r)]);
      groups[it == group_of.end() ? 0 : it->second].push_back(r);
    }
  } else {
    groups[0].resize(static_cast<std::size_t>(rows));
    std::iota(groups[0].begin(), groups[0].end(), std::int64_t{0});
  }

  TopN out;
  out.n = n;
  out.items.assign(static_cast<std::size_t>(rows * n), -1);
  out.scores.assign(static_cast<std::size_t>(rows * n), -std::numeric_limits<float>::infinity());
  mlp::Batch<float> bt;
  std::vector<std::pair<std::int32_t, float>> items;
  std::vector<std::int32_t> scratch, ranked;
  constexpr std::int64_t kChunk = 512;
  for (std::size_t grp = 0; grp < groups.size(); ++grp) {
    const auto& list = groups[grp];
    if (list.empty()) continue;
    if (heads) {  // this group's layers in place of the top ones
      const float* src = grp == 0 ? m.params.data() + head_begin
                                  : m.heads.data() + static_cast<std::int64_t>(grp - 1) * hs;
      std::copy(src, src + hs, net.params().begin() + head_begin);
    }
    for (std::size_t j0 = 0; j0 < list.size(); j0 += kChunk) {
      const std::size_t j1 = std::min(list.size(), j0 + kChunk);
      bt.clear();
      for (std::size_t j = j0; j < j1; ++j) {
        const std::int64_t r = list[j];
        items.clear();
        for (std::int64_t k = u.indptr[r]; k < u.indptr[r + 1]; ++k)
          items.emplace_back(u.indices[k], history_value(u.weights[k], spec.log_weight));
        close_targets(bt);
        add_input_row(bt, spec, items, 0.0, 0,
                      spec.dense_dim ? u.dense.data() + r * s.dense_in : nullptr,
                      spec.segments ? u.segments[static_cast<std::size_t>(r)] : 0, 0);
      }
      net.forward(bt, 0.0f);
      auto Z = net.logits();
      for (std::size_t j = j0; j < j1; ++j) {
        const std::int64_t r = list[j];
        float* z = Z.row(static_cast<std::int64_t>(j - j0)).data();
        if (exclude_history)
          for (std::int64_t k = u.indptr[r]; k < u.indptr[r + 1]; ++k)
            z[u.indices[k]] = -std::numeric_limits<float>::infinity();
        top_k(z, n_items, n, scratch, ranked);
        for (std::size_t q = 0; q < ranked.size(); ++q) {
          out.items[static_cast<std::size_t>(r * n) + q] = ranked[q];
          out.scores[static_cast<std::size_t>(r * n) + q] = z[ranked[q]];
        }
      }
    }
  }
  return out;
}

}  // namespace segrec
