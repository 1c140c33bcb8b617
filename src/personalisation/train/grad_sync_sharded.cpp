// --grad-sync sharded: reduce-scatter of the gradient, each rank updates its share, allgather
// of the parameters. With several ranks per node (as many on every node) the ranks of a node
// sum their gradients in shared memory and only the node sums cross the nodes.
#include "grad_sync_sharded.hpp"

#include <algorithm>

#include "segrec/core/error.hpp"

namespace segrec::train_impl {

ShardedSync::ShardedSync(double clip, const mlp::Network<float>& net, const Ranges& decayed,
                         const Comm& comm, bool items)
    : GradSync(comm, net.layout().size, decayed),
      clip_(clip),
      emb_(net.layout().emb),
      items_(items) {
  const mlp::Shape& shape = net.shape();
  const int L_net = shape.n_layers();
  const mlp::Layout& lay = net.layout();
  D_ = items_ ? lay.w[L_net - 1] : P_;
  S_ = items_ ? shape.sparse_in * shape.fan_out(0) : 0;
  // Which parameters of [S_, D_) this rank updates: all of them, or (sharded) its share.
  upd_lo_ = S_;
  upd_hi_ = D_;
  hierarchical_ = false;
  shard_off_ = line_partition(S_, D_, comm_.size());
  if (comm_.size() > 1) {
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
  init_buffer(hierarchical_ ? grad_win_.part<float>(node_.rank()) : nullptr);
  add_owned(upd_lo_, upd_hi_ - upd_lo_, grad_ + upd_lo_, comm_.size() == 1);
}

double ShardedSync::exchange() {
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
  const std::int64_t e0 = emb_, ne = items_ ? P_ - e0 : 0;
  double ss = 0;
  if (clip_ > 0)
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
  return sums[2] + (clip_ > 0 ? sumsq(grad_ + e0, ne) : 0.0);
}

void ShardedSync::gather_parameters(mlp::Network<float>& net) {
  const std::span<float> w(net.params().data(), static_cast<std::size_t>(D_));
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

std::vector<float> ShardedSync::all_moments(const std::vector<float>& share) const {
  if (comm_.size() == 1) return share;
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

std::string ShardedSync::layout() const {
  const std::string mode = items_ ? std::string("output layer ") +
                                        (S_ > 0 ? "and history input " : "") +
                                        "split by items, the layers between sharded"
                                  : "sharded";
  return hierarchical_ ? mode + " over " + std::to_string(cross_.size()) + " node(s) x " +
                             std::to_string(node_.size()) + " ranks (shared memory within a node)"
                       : mode + " over " + std::to_string(comm_.size()) + " rank(s)";
}

std::unique_ptr<GradSync> make_sharded_sync(double clip, const mlp::Network<float>& net,
                                            const Ranges& decayed, const Comm& comm) {
  return std::make_unique<ShardedSync>(clip, net, decayed, comm, false);
}

}  // namespace segrec::train_impl
