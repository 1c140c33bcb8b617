// The shared negatives of the sampled softmax (--loss sampled-softmax): per
// optimiser step, n draws with replacement from a proposal Q over the items,
// Q(i) proportional to (count_i + 1)^alpha (alpha 0: uniform), keyed by the
// seed and the global step only, so every rank draws the same set.
#pragma once

#include <cstdint>
#include <vector>

#include "segrec/personalisation/mlp.hpp"

namespace segrec::train_impl {

class NegativeSampler {
 public:
  /// counts: training interactions per item (global, the same on every rank).
  NegativeSampler(const std::vector<std::int64_t>& counts, double alpha, std::int64_t n);
  /// Fills bt.neg_idx (the distinct items drawn, ascending) and bt.neg_corr (per item
  /// log(n Q(i)) - log(times drawn): the importance weight exp(-corr) makes the sum over the
  /// draws an unbiased estimate of the sum over all items).
  template <class T>
  void draw(std::uint64_t key, mlp::Batch<T>& bt) const;
  /// Q(i).
  double q(std::int32_t i) const { return q_[static_cast<std::size_t>(i)]; }
  std::int64_t draws() const { return n_; }

 private:
  std::vector<double> q_, cdf_;  // n_items: Q and its running sum (the last entry is 1)
  std::int64_t n_ = 0;
};

}  // namespace segrec::train_impl
