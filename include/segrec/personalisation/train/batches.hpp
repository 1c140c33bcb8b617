// The batches of a training epoch: a keyed Feistel permutation and the
// stratified cut of the global training users into batches.
#pragma once

#include <cstdint>
#include <vector>

namespace segrec::detail {

/// A bijection of [0, n) keyed by `key` (the epoch's batch order): a 4-round
/// Feistel network over the smallest even-bit domain >= n, with cycle walking.
class Permutation {
 public:
  Permutation(std::uint64_t n, std::uint64_t key);
  std::uint64_t operator()(std::uint64_t x) const;

 private:
  std::uint64_t feistel(std::uint64_t x) const;
  std::uint64_t n_, key_;
  int half_;
  std::uint64_t mask_;
};

/// The batches of one epoch over N global training users. The indices t in
/// [0, N) are cut into strata of n_batches consecutive indices; a permutation
/// of [0, n_batches) keyed by (key, stratum) sends each user of a stratum to its
/// own batch, so every batch draws one user from each stratum (at most
/// ceil(N / n_batches) users) and a contiguous block of users holds an even
/// share of every batch.
class EpochBatches {
 public:
  EpochBatches(std::uint64_t n, std::uint64_t n_batches, std::uint64_t key);
  std::uint64_t batch(std::uint64_t t) const;
  /// Users per batch.
  std::vector<std::int64_t> counts() const;

 private:
  std::uint64_t n_, nb_, key_;
};

}  // namespace segrec::detail
