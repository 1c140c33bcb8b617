// Clustering quality figures: silhouette, Davies-Bouldin, Calinski-Harabasz (collective).
#pragma once

#include <cstdint>
#include <span>

#include "segrec/core/comm.hpp"
#include "segrec/segmentation/kmeans/kmeans.hpp"

namespace segrec {

/// Mean silhouette of `sample` users (chosen by a seeded hash of the global index; all users
/// when sample >= n), each against the other sampled users (scikit-learn's
/// silhouette_score(sample_size=...)); Euclidean distances; 2 sample^2 h flops split over the
/// ranks. NaN when fewer than two clusters are non-empty (overall or in the sample).
/// `sample_used` receives the sample size.
double silhouette_score(const MatrixRF& X, std::span<const std::int32_t> labels, std::int64_t k,
                        std::int64_t sample, std::uint64_t seed, int threads, const Comm& comm,
                        std::int64_t* sample_used = nullptr);
/// split_dip (split_dip.hpp) of the silhouette's sample of `sample` users (collective; NaN when
/// sample <= 0).
double split_dip_score(const MatrixRF& X, std::span<const std::int32_t> labels, std::int64_t k,
                       std::int64_t sample, std::uint64_t seed, const Comm& comm);
/// Davies-Bouldin index over non-empty clusters (centroids = means of the labelled users).
double davies_bouldin_score(const MatrixRF& X, std::span<const std::int32_t> labels, std::int64_t k,
                            const Comm& comm);
/// Calinski-Harabasz index (between / within dispersion, scaled by (n - c) / (c - 1)).
double calinski_harabasz_score(const MatrixRF& X, std::span<const std::int32_t> labels,
                               std::int64_t k, const Comm& comm);

}  // namespace segrec
