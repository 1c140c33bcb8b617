// The gap statistic against a Gaussian null (Tibshirani, Walther & Hastie 2001, with the
// reference drawn from the data's own mean and covariance instead of a uniform box):
//   gap(k) = mean_b log(W_k(Z_b) / m) - log(W_k(X) / n)
// W_k: K-means inertia (sum of squared distances to the nearest centroid); Z_b, b < B:
// m rows drawn from N(mu, Sigma) of X (Sigma: h x h, from one allreduce), each row keyed
// by (seed, b, global row index), so the reference is the same at any rank count.
// A Gaussian has no groups: gap ~ 0 when X has none, whatever its scale, skew of a few
// columns or correlations, and gap grows as groups separate. se(k) = sd_b * sqrt(1 + 1/B).
// gap(1) = 0 exactly (one cluster: both inertias are the total variance).
// Rule: the knee of the gap curve, the k after which the curve's slope drops the most:
//   k* = argmax_k [ s(k_-, k) - s(k, k_+) ],  s(a, b) = (gap(b) - gap(a)) / (b - a)
// (k_-, k_+: the sweep's values two places before and after k, or its ends; gap(1) = 0 is
// a point of the curve before a sweep that starts at 2). While k is below the number of
// groups, each extra segment separates more groups and the gap climbs steeply; past it,
// segments only split groups and the gap rises slowly (K-means still finds some structure
// in a group's spread that a Gaussian lacks, so Tibshirani's "first k with gap(k) >=
// gap(k+1) - se(k+1)" keeps going one or two k too far when se is small). Slopes over two
// steps: one step's rise varies by about a third between neighbouring k (each k is its own
// local optimum), enough to move a one-step knee on 16 groups. The last k of the sweep is
// never a knee unless the sweep has one value.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/segmentation/kmeans/kmeans.hpp"

namespace segrec {

/// The null distribution of a data set: N(mean, factor factor^T).
struct GapReference {
  Eigen::VectorXd mean;    ///< h
  Eigen::MatrixXd factor;  ///< h x h: Sigma = factor * factor^T (eigenvectors * sqrt(eigenvalues))
  std::int64_t rows = 0;   ///< m: rows per reference set
  int sets = 0;            ///< B
  std::uint64_t seed = 0;
};

/// Collective. Mean and covariance of X (population), m = min(sample, n) rows, B sets.
GapReference gap_reference(const MatrixRF& X, std::int64_t sample, int sets, std::uint64_t seed,
                           const Comm& comm);

/// Collective. This rank's rows of reference set `b` (block_partition of ref.rows).
MatrixRF gap_reference_rows(const GapReference& ref, int b, const Comm& comm);

struct GapValue {
  double gap = 0;
  double se = 0;
};

/// Local. The parameters a reference set is clustered with: p's, one start, no moves.
KMeansParams gap_reference_params(const KMeansParams& p);

/// Local. gap = mean(reference) - data, se = sd(reference) * sqrt(1 + 1/B) (B values, one per
/// reference set, of what `data` is for the data: log inertia, or log det for tied segments).
GapValue gap_of(std::span<const double> reference, double data);

/// Collective. gap(k) for data whose K-means inertia at k is `inertia` over `n` rows; the
/// reference sets are clustered with p and modes (one start each); `set_done` is called
/// after each (progress reports only).
GapValue gap_statistic(const GapReference& ref, double inertia, std::int64_t n, std::int64_t k,
                       const KMeansParams& p, const KMeansModes& modes, const Comm& comm,
                       const std::function<void()>& set_done = {});

/// Index into `g` (one value per k of the ascending sweep `ks`) at the knee (see above).
std::size_t gap_pick(std::span<const std::int64_t> ks, std::span<const GapValue> g);

}  // namespace segrec
