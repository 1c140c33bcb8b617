// Test data and a naive double-precision Lloyd K-means, the reference the fast,
// distributed implementation is checked against.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "segrec/segmentation/kmeans/kmeans.hpp"

namespace segrec::testing_ref {

/// Adjusted Rand index of two labellings of the same users (1 when both are one segment).
inline double ari(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b) {
  std::map<std::pair<int, int>, double> nij;
  std::map<int, double> ai, bj;
  for (std::size_t i = 0; i < a.size(); ++i) {
    nij[{a[i], b[i]}] += 1;
    ai[a[i]] += 1;
    bj[b[i]] += 1;
  }
  const auto c2 = [](double x) { return x * (x - 1) / 2; };
  double sij = 0, sa = 0, sb = 0;
  for (const auto& [k, v] : nij) sij += c2(v);
  for (const auto& [k, v] : ai) sa += c2(v);
  for (const auto& [k, v] : bj) sb += c2(v);
  const double expected = sa * sb / c2(static_cast<double>(a.size()));
  const double mx = (sa + sb) / 2;
  return mx == expected ? 1.0 : (sij - expected) / (mx - expected);
}

/// n points around `centers` random centres in [-spread, spread]^h, unit normal noise.
inline MatrixRF make_blobs(std::int64_t n, std::int64_t h, int centers, double spread,
                           std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uc(-spread, spread);
  std::normal_distribution<double> noise(0.0, 1.0);
  MatrixRD c(centers, h);
  for (int j = 0; j < centers; ++j)
    for (std::int64_t f = 0; f < h; ++f) c(j, f) = uc(rng);
  MatrixRF X(n, h);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t f = 0; f < h; ++f)
      X(i, f) = static_cast<float>(c(i % centers, f) + noise(rng));
  return X;
}

/// Four tight blobs of `per` users at x = 0, 10, 20, 30 (y ~ N(0, 1), x noise N(0, 1)), users
/// interleaved (user i in blob i % 4), and the start of a local optimum of K-means: two
/// centroids in the first blob, one in the second, one between the last two (k = 4, 2 dims).
struct LineBlobs {
  MatrixRF X;
  MatrixRD trap;   ///< a start from which Lloyd ends in a poor local optimum
  MatrixRD truth;  ///< the blob centres
};
inline LineBlobs line_blobs(std::int64_t per, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0.0, 1.0);
  LineBlobs b;
  b.X.resize(4 * per, 2);
  for (std::int64_t i = 0; i < 4 * per; ++i) {
    b.X(i, 0) = static_cast<float>(10.0 * static_cast<double>(i % 4) + noise(rng));
    b.X(i, 1) = static_cast<float>(noise(rng));
  }
  b.trap.resize(4, 2);
  b.trap << 0, -0.8, 0, 0.8, 10, 0, 25, 0;
  b.truth.resize(4, 2);
  b.truth << 0, 0, 10, 0, 20, 0, 30, 0;
  return b;
}

/// Bars 0 and 1 side by side (x = 0 and 6.5, sd 0.3), each uniform in y on [-5, 5]; blobs 2
/// and 3 round (sd 1) and far (x = 30, 40); `per` rows each, row i in blob i % 4. Lloyd from
/// `trap` cuts bars 0 and 1 together across y (centroids (3.25, -2.5) and (3.25, 2.5)): a
/// stable fixed point, as a tilt of the cut by e comes back as 6.5^2 / (2 5^2) e = 0.85 e,
/// with 1.5x the bars' inertia. Their union spreads most along x (variance 10.6 against
/// 8.3), so 2-means from its principal axis halves finds the bars.
inline LineBlobs crossed_blobs(std::int64_t per, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0.0, 1.0);
  std::uniform_real_distribution<double> along(-5.0, 5.0);
  constexpr double kCentre[4] = {0, 6.5, 30, 40};
  LineBlobs b;
  b.X.resize(4 * per, 2);
  for (std::int64_t i = 0; i < 4 * per; ++i) {
    const bool bar = i % 4 < 2;
    b.X(i, 0) = static_cast<float>(kCentre[i % 4] + (bar ? 0.3 : 1.0) * noise(rng));
    b.X(i, 1) = static_cast<float>(bar ? along(rng) : noise(rng));
  }
  b.trap.resize(4, 2);
  b.trap << 3.25, -2.5, 3.25, 2.5, 30, 0, 40, 0;
  b.truth.resize(4, 2);
  b.truth << 0, 0, 6.5, 0, 30, 0, 40, 0;
  return b;
}

struct NaiveResult {
  std::vector<std::int32_t> labels;
  MatrixRD centroids;
  double inertia = 0;
  int n_iter = 0;
  std::int64_t relocated = 0;
};

/// Lloyd in double with the same rules: nearest centroid (first on ties); empty clusters
/// take the users farthest from their assigned centroid (ties: smaller index), whose
/// contribution leaves their old cluster; stop on unchanged labels or shift <= tol_abs.
inline NaiveResult naive_kmeans(const MatrixRF& Xf, const MatrixRF& init, int max_iter,
                                double tol_abs) {
  const MatrixRD X = Xf.cast<double>();
  const std::int64_t n = X.rows(), h = X.cols(), k = init.rows();
  NaiveResult r;
  MatrixRD C = init.cast<double>();
  r.labels.assign(static_cast<std::size_t>(n), -1);
  std::vector<double> d(static_cast<std::size_t>(n));
  auto assign = [&] {
    std::int64_t changed = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      double best = std::numeric_limits<double>::infinity();
      std::int32_t bj = 0;
      for (std::int64_t j = 0; j < k; ++j) {
        const double dd = (X.row(i) - C.row(j)).squaredNorm();
        if (dd < best) {
          best = dd;
          bj = static_cast<std::int32_t>(j);
        }
      }
      changed += r.labels[i] != bj;
      r.labels[i] = bj;
      d[i] = best;
    }
    return changed;
  };
  bool consistent = false;
  for (int it = 0; it < max_iter; ++it) {
    const std::int64_t changed = assign();
    MatrixRD sums = MatrixRD::Zero(k, h);
    std::vector<double> counts(static_cast<std::size_t>(k), 0.0);
    for (std::int64_t i = 0; i < n; ++i) {
      sums.row(r.labels[i]) += X.row(i);
      counts[r.labels[i]] += 1;
    }
    std::vector<std::int64_t> order(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::int64_t a, std::int64_t b) { return d[a] > d[b]; });
    std::size_t next = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      if (counts[j] != 0) continue;
      const std::int64_t i = order[next++];
      sums.row(r.labels[i]) -= X.row(i);
      counts[r.labels[i]] -= 1;
      sums.row(j) = X.row(i);
      counts[j] = 1;
      ++r.relocated;
    }
    MatrixRD Cn = C;
    for (std::int64_t j = 0; j < k; ++j)
      if (counts[j] > 0) Cn.row(j) = sums.row(j) / counts[j];
    const double shift = (Cn - C).squaredNorm();
    C = Cn;
    r.n_iter = it + 1;
    if (changed == 0 || shift <= tol_abs) {
      consistent = shift == 0;
      break;
    }
  }
  if (!consistent) assign();
  r.inertia = 0;
  for (std::int64_t i = 0; i < n; ++i) r.inertia += (X.row(i) - C.row(r.labels[i])).squaredNorm();
  r.centroids = C;
  return r;
}

/// Largest |a - b| / max(1, |b|) over all entries.
inline double max_rel_diff(const MatrixRD& a, const MatrixRD& b) {
  double m = 0;
  for (Eigen::Index i = 0; i < a.rows(); ++i)
    for (Eigen::Index j = 0; j < a.cols(); ++j)
      m = std::max(m, std::fabs(a(i, j) - b(i, j)) / std::max(1.0, std::fabs(b(i, j))));
  return m;
}

}  // namespace segrec::testing_ref
