#include "segrec/personalisation/train/batches.hpp"

#include "segrec/core/random.hpp"

namespace segrec::detail {

using rng::hash_keys;

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

}  // namespace segrec::detail
