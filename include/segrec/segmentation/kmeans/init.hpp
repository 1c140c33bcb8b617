// K-means initial centroids: k-means++, k-means|| and random users (collective).
#pragma once

#include <cstdint>
#include <span>

#include "segrec/core/comm.hpp"
#include "segrec/segmentation/kmeans/kmeans.hpp"

namespace segrec {

/// Initial centroids (k x h) by p.init (not a file) for restart `restart`.
MatrixRF init_centroids(const MatrixRF& X, std::int64_t k, const KMeansParams& p, int restart,
                        const Comm& comm);

/// Greedy weighted k-means++ (scikit-learn's variant: 2 + floor(ln k) D^2-weighted candidates
/// per pick, the one that lowers the potential most is kept). `weights`: one per local row,
/// or empty for 1. `key` seeds the draws.
MatrixRF kmeans_plus_plus(const MatrixRF& X, std::span<const double> weights, std::int64_t k,
                          std::uint64_t key, int threads, const Comm& comm);

/// Initial centroids (k x h) for k clusters from an earlier run's (`cluster --previous`):
/// k = k_old: the old centroids as they are; k > k_old: the old ones (rows [0, k_old)), then
/// k - k_old greedy k-means++ picks continued from them (keyed by seed and k); k < k_old:
/// repeatedly, of the two closest kept old centroids the one of the smaller old segment
/// (equal sizes: the higher id) is dropped until k remain, kept in old id order.
MatrixRF centroids_from_previous(const MatrixRF& X, const PreviousCentroids& prev, std::int64_t k,
                                 const KMeansParams& p, const Comm& comm);

}  // namespace segrec
