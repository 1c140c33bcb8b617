// --grad-sync sharded (private to train/): the parameters [S, D) are cut into one share per
// rank; the gradient is reduce-scattered, each rank updates its share and the shares are
// gathered after the step. The base of --grad-sync items (grad_sync_items.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "grad_sync.hpp"

namespace segrec::train_impl {

class ShardedSync : public GradSync {
 public:
  // items: the parameters below the output layer's weights, [S, D) = [sparse_in x fan_out(0),
  // w[L - 1]), are sharded (grad_sync_items.cpp adds the rest); else all, [0, P).
  ShardedSync(double clip, const mlp::Network<float>& net, const Ranges& decayed, const Comm& comm,
              bool items);

  double exchange() override;
  bool shares_update() const override { return true; }
  void gather_parameters(mlp::Network<float>& net) override;
  std::vector<float> all_moments(const std::vector<float>& share) const override;
  std::uint64_t sent_bytes() const override {
    return sync_bytes(comm_.stats()) +
           (hierarchical_ ? sync_bytes(node_.stats()) + sync_bytes(cross_.stats()) : 0);
  }
  std::string layout() const override;

 protected:
  double clip_ = 0;
  std::int64_t emb_ = 0;  // the embedding's offset (layout().emb)
  // Flat: rank r updates [shard_off_[r], shard_off_[r + 1]) and the shares are exchanged over
  // all ranks. Hierarchical (several ranks per node, as many on every node): node rank l sums
  // block [node_off_[l], node_off_[l + 1]) from the node's shared gradients, and splits it
  // with the other nodes' rank l (cross_) at cross_off_ (relative to the block).
  bool hierarchical_ = false;
  Comm node_, cross_;      // before grad_win_, which uses node_
  SharedWindow grad_win_;  // node ranks x P floats
  std::vector<std::int64_t> shard_off_, node_off_, cross_off_;
  // items_ (several ranks, a hidden layer): the output layer is split by item columns, and
  // so are the sparse input's rows of W0; the parameters between, [S_, D_), are sharded; the
  // small embedding is allreduced and updated by all.
  bool items_ = false;
  std::int64_t S_ = 0, D_ = 0;            // the sharded parameters (all, [0, P_), unless items_)
  std::int64_t upd_lo_ = 0, upd_hi_ = 0;  // the share of [S_, D_) this rank updates
};

}  // namespace segrec::train_impl
