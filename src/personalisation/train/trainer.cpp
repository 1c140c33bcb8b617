#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <tuple>
#include <unordered_map>

#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/core/random.hpp"
#include "segrec/core/watchdog.hpp"
#include "trainer_impl.hpp"

namespace segrec {

namespace train_impl {

namespace {

using rng::fnv1a;

std::atomic<int> g_stop_requested{0};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

mlp::Shape make_shape(const TrainParams& p, const TrainModes& modes, const TrainData& d) {
  mlp::Shape s;
  s.sparse_in = modes.uses_history() ? d.n_items() : 0;
  s.dense_in = modes.uses_projection() ? d.dense_dim : 0;
  s.n_segments = modes.uses_segments() ? d.n_segments : 0;
  s.embed_dim = modes.uses_segments() ? p.segment_embedding : 0;
  s.hidden = p.hidden_sizes();
  s.n_out = d.n_items();
  s.activation = modes.activation;
  s.loss = modes.loss;
  return s;
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

// Even parts of [lo, hi) in whole 64-byte lines (so that every rank's loops vectorise alike):
// parts + 1 offsets.
std::vector<std::int64_t> line_partition(std::int64_t lo, std::int64_t hi, int parts) {
  std::vector<std::int64_t> off(static_cast<std::size_t>(parts) + 1, hi);
  for (int r = 0; r < parts; ++r) off[r] = std::min(hi, lo + ((hi - lo) * r / parts) / 16 * 16);
  return off;
}

void Trainer::setup_grad_sync() {
  sync_ = static_cast<Sync>(modes_.grad_sync);
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
    optimiser_update(opt_, grad_, net_.params().data(), m_.data(), v_.data(), P_, decayed_, t,
                     inv_count, lr);
    return;
  }
  std::int64_t off = 0;
  for (const auto& o : own_) {
    optimiser_update(opt_, o.grad, net_.params().data() + o.param, m_.data() + off,
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

TrainResult Trainer::run(const EpochCallback& on_epoch) {
  load_test_items();
  assign_roles();
  build_validation();
  net_.init(p_.seed);
  // The optimiser's moments: of the ranges this rank updates (own_), back to back.
  std::int64_t n_moments = 0;
  for (const auto& o : own_) n_moments += o.n;
  m_.assign(static_cast<std::size_t>(n_moments), 0.0f);
  if (opt_.kind == TrainModes::Optimizer::kAdam)
    v_.assign(static_cast<std::size_t>(n_moments), 0.0f);
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
      lr = learning_rate(opt_, global_step_, epoch_, epochs_ * steps_per_epoch_);
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
  if (modes_.uses_heads()) {
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

}  // namespace train_impl

using train_impl::Trainer;

void request_training_stop() { train_impl::g_stop_requested.store(1); }

TrainResult train(const TrainParams& p, const TrainData& data, const Comm& comm,
                  const EpochCallback& on_epoch) {
  const TrainModes modes = p.validate();
  check_data(p, modes, data, comm);
  if (!p.compare_personalize) {
    Trainer t(p, modes, data, comm);
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
  TrainModes mg = modes, me = modes;
  mg.personalize = TrainModes::Personalize::kSegmentHeads;
  me.personalize = TrainModes::Personalize::kSegmentInput;
  TrainResult rg = Trainer(g, mg, data, comm).run(on_epoch);
  TrainResult re = Trainer(e, me, data, comm).run(on_epoch);
  std::vector<QualityRow> table = rg.model.quality;
  table.insert(table.end(), re.model.quality.begin(), re.model.quality.end());
  TrainResult& r = modes.personalize == TrainModes::Personalize::kSegmentInput ? re : rg;
  if (modes.personalize == TrainModes::Personalize::kNone) {
    r.model.head_layers = 0;
    r.model.heads.clear();
    r.model.head_segments.clear();
  }
  r.model.quality = std::move(table);
  r.model.config = p.config();
  return std::move(r);
}

}  // namespace segrec
