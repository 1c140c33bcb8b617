#include "segrec/personalisation/train/negatives.hpp"

#include <algorithm>
#include <cmath>

#include "segrec/core/random.hpp"
#include "trainer_impl.hpp"

namespace segrec::train_impl {

NegativeSampler::NegativeSampler(const std::vector<std::int64_t>& counts, double alpha,
                                 std::int64_t n)
    : n_(n) {
  q_.resize(counts.size());
  double total = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    q_[i] = std::pow(static_cast<double>(counts[i]) + 1.0, alpha);
    total += q_[i];
  }
  cdf_.resize(counts.size());
  double run = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    q_[i] /= total;
    run += q_[i];
    cdf_[i] = run;
  }
  if (!cdf_.empty()) cdf_.back() = 1.0;
}

template <class T>
void NegativeSampler::draw(std::uint64_t key, mlp::Batch<T>& bt) const {
  bt.neg_idx.clear();
  bt.neg_corr.clear();
  if (n_ <= 0 || cdf_.empty()) return;
  std::vector<std::int32_t> drawn(static_cast<std::size_t>(n_));
  for (std::int64_t j = 0; j < n_; ++j) {
    const double u = rng::unit_uniform(rng::hash_keys(key, static_cast<std::uint64_t>(j)));
    const auto it = std::upper_bound(cdf_.begin(), cdf_.end(), u);
    drawn[j] = static_cast<std::int32_t>(
        std::min<std::ptrdiff_t>(it - cdf_.begin(), static_cast<std::ptrdiff_t>(cdf_.size()) - 1));
  }
  std::sort(drawn.begin(), drawn.end());
  for (std::size_t a = 0; a < drawn.size();) {
    std::size_t b = a;
    while (b < drawn.size() && drawn[b] == drawn[a]) ++b;
    const double expected = static_cast<double>(n_) * q_[static_cast<std::size_t>(drawn[a])];
    bt.neg_idx.push_back(drawn[a]);
    bt.neg_corr.push_back(static_cast<T>(std::log(expected / static_cast<double>(b - a))));
    a = b;
  }
}

template void NegativeSampler::draw(std::uint64_t, mlp::Batch<float>&) const;
template void NegativeSampler::draw(std::uint64_t, mlp::Batch<double>&) const;

// The proposal counts the training users' items only (validation and test items stay unseen).
void Trainer::build_sampler() {
  if (shape_.loss != mlp::Loss::kSampledSoftmax) return;
  std::vector<std::int64_t> counts(static_cast<std::size_t>(shape_.n_out), 0);
  for (const auto i : train_local_)
    for (std::int64_t k = d_.indptr[i]; k < d_.indptr[i + 1]; ++k) ++counts[d_.indices[k]];
  comm_.allreduce(counts);
  sampler_ = std::make_unique<NegativeSampler>(counts, p_.negative_alpha,
                                               p_.effective_negatives(shape_.n_out));
}

}  // namespace segrec::train_impl
