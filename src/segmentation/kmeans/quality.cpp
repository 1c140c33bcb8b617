// Clustering quality figures: mean silhouette over a keyed sample of users (distances in the
// GEMM form over row blocks), Davies-Bouldin and Calinski-Harabasz from the label means.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "internal.hpp"
#include "segrec/segmentation/kmeans/quality.hpp"

namespace segrec {

using namespace kmeans_detail;

namespace {

/// Means of the labelled users per cluster, counts, and the global mean (collective).
struct LabelMeans {
  MatrixRD means;              // k x h
  std::vector<double> counts;  // k
  Eigen::RowVectorXd mean;     // h
  std::int64_t n = 0, nonempty = 0;
};

LabelMeans label_means(const MatrixRF& X, std::span<const std::int32_t> labels, std::int64_t k,
                       const Comm& comm) {
  const std::int64_t h = X.cols();
  std::vector<double> buf(static_cast<std::size_t>(k * h + k + h + 1), 0.0);
  for (Eigen::Index i = 0; i < X.rows(); ++i) {
    const std::int64_t j = labels[i];
    for (std::int64_t f = 0; f < h; ++f) {
      buf[j * h + f] += X(i, f);
      buf[k * h + k + f] += X(i, f);
    }
    buf[k * h + j] += 1;
  }
  buf.back() = static_cast<double>(X.rows());
  comm.allreduce(buf);
  LabelMeans m;
  m.n = static_cast<std::int64_t>(buf.back());
  m.means = MatrixRD::Zero(k, h);
  m.counts.assign(buf.begin() + k * h, buf.begin() + k * h + k);
  m.mean = Eigen::RowVectorXd::Zero(h);
  for (std::int64_t j = 0; j < k; ++j)
    if (m.counts[j] > 0) {
      ++m.nonempty;
      for (std::int64_t f = 0; f < h; ++f) m.means(j, f) = buf[j * h + f] / m.counts[j];
    }
  if (m.n > 0)
    for (std::int64_t f = 0; f < h; ++f) m.mean[f] = buf[k * h + k + f] / static_cast<double>(m.n);
  return m;
}

}  // namespace

double silhouette_score(const MatrixRF& X, std::span<const std::int32_t> labels, std::int64_t k,
                        std::int64_t sample, std::uint64_t seed, int threads, const Comm& comm,
                        std::int64_t* sample_used) {
  if (sample_used) *sample_used = 0;
  const Layout L = make_layout(X.rows(), comm);
  const std::int64_t h = X.cols();
  std::vector<std::int64_t> sizes(static_cast<std::size_t>(k), 0);
  for (const auto j : labels) sizes[j] += 1;
  comm.allreduce(sizes);
  const auto nonempty = std::count_if(sizes.begin(), sizes.end(), [](auto c) { return c > 0; });
  if (sample <= 0 || nonempty < 2 || nonempty >= L.n) return nan();
  auto ids = sample_indices(L, sample, key_of(seed, kTagSilhouette), comm);
  std::sort(ids.begin(), ids.end());
  const auto S = static_cast<std::int64_t>(ids.size());
  const MatrixRF P = fetch_rows(X, L, ids, h, comm);
  std::vector<std::int64_t> plab(static_cast<std::size_t>(S), 0);
  for (std::int64_t s = 0; s < S; ++s)
    if (L.mine(ids[s])) plab[s] = labels[ids[s] - L.begin];
  comm.allreduce(plab);
  const std::vector<float> pn = row_sqnorms(P), xn = row_sqnorms(X);
  // sums[l * S + s]: sum of distances from sample s to the users of cluster l.
  std::vector<double> sums(static_cast<std::size_t>(k * S), 0.0);
  constexpr std::int64_t kTile = 512;
  const std::int64_t ntiles = (S + kTile - 1) / kTile;
  parallel_for(threads, ntiles, [&](int, std::int64_t tile) {
    const std::int64_t s0 = tile * kTile, w = std::min(kTile, S - s0);
    const MatrixRF Pt = P.middleRows(s0, w).transpose();
    for_each_block(X, L, Pt, 1, 1,
                   [&](std::int64_t, int, std::int64_t row0, std::int64_t rows, std::int64_t off,
                       const MatrixRF& G) {
                     for (std::int64_t r = 0; r < rows; ++r) {
                       const std::int64_t i = row0 + r, gi = L.begin + i;
                       double* acc = sums.data() + labels[i] * S + s0;
                       const float* g = G.data() + (off + r) * w;
                       // This user's own column (if sampled here) must add exactly 0.
                       const auto it = std::lower_bound(ids.begin() + s0, ids.begin() + s0 + w, gi);
                       const bool self = it != ids.begin() + s0 + w && *it == gi;
                       const std::int64_t si = self ? it - ids.begin() - s0 : 0;
                       const double keep = self ? acc[si] : 0.0;
                       const float xi = xn[i];
                       for (std::int64_t s = 0; s < w; ++s) {
                         const float d2 = xi + pn[s0 + s] - 2.0f * g[s];
                         acc[s] += std::sqrt(std::max(d2, 0.0f));
                       }
                       if (self) acc[si] = keep;
                     }
                   });
  });
  comm.allreduce(sums);
  double total = 0;
  for (std::int64_t s = 0; s < S; ++s) {
    const std::int64_t own = plab[s];
    if (sizes[own] <= 1) continue;  // silhouette 0 for singletons
    const double a = sums[own * S + s] / static_cast<double>(sizes[own] - 1);
    double b = std::numeric_limits<double>::infinity();
    for (std::int64_t l = 0; l < k; ++l)
      if (l != own && sizes[l] > 0)
        b = std::min(b, sums[l * S + s] / static_cast<double>(sizes[l]));
    const double den = std::max(a, b);
    if (den > 0) total += (b - a) / den;
  }
  if (sample_used) *sample_used = S;
  return total / static_cast<double>(S);
}

double davies_bouldin_score(const MatrixRF& X, std::span<const std::int32_t> labels, std::int64_t k,
                            const Comm& comm) {
  const LabelMeans m = label_means(X, labels, k, comm);
  if (m.nonempty < 2) return nan();
  const std::int64_t h = X.cols();
  std::vector<double> intra(static_cast<std::size_t>(k), 0.0);
  for (Eigen::Index i = 0; i < X.rows(); ++i) {
    const std::int64_t j = labels[i];
    double d2 = 0;
    for (std::int64_t f = 0; f < h; ++f) {
      const double d = X(i, f) - m.means(j, f);
      d2 += d * d;
    }
    intra[j] += std::sqrt(d2);
  }
  comm.allreduce(intra);
  std::vector<std::int64_t> live;
  for (std::int64_t j = 0; j < k; ++j)
    if (m.counts[j] > 0) {
      intra[j] /= m.counts[j];
      live.push_back(j);
    }
  bool all_intra_zero = true, all_centroid_zero = true;
  for (const auto j : live) all_intra_zero = all_intra_zero && intra[j] == 0;
  double score = 0;
  for (const auto a : live) {
    double worst = 0;
    for (const auto b : live) {
      if (a == b) continue;
      const double dc = (m.means.row(a) - m.means.row(b)).norm();
      if (dc == 0) continue;  // scikit-learn: infinite separation, ratio 0
      all_centroid_zero = false;
      worst = std::max(worst, (intra[a] + intra[b]) / dc);
    }
    score += worst;
  }
  if (all_intra_zero || all_centroid_zero) return 0.0;
  return score / static_cast<double>(live.size());
}

double calinski_harabasz_score(const MatrixRF& X, std::span<const std::int32_t> labels,
                               std::int64_t k, const Comm& comm) {
  const LabelMeans m = label_means(X, labels, k, comm);
  if (m.nonempty < 2 || m.nonempty >= m.n) return nan();
  const std::int64_t h = X.cols();
  double intra = 0;
  for (Eigen::Index i = 0; i < X.rows(); ++i) {
    const std::int64_t j = labels[i];
    for (std::int64_t f = 0; f < h; ++f) {
      const double d = X(i, f) - m.means(j, f);
      intra += d * d;
    }
  }
  intra = comm.allreduce_value(intra);
  double extra = 0;
  for (std::int64_t j = 0; j < k; ++j)
    if (m.counts[j] > 0) extra += m.counts[j] * (m.means.row(j) - m.mean).squaredNorm();
  if (intra == 0) return 1.0;
  const double c = static_cast<double>(m.nonempty), n = static_cast<double>(m.n);
  return extra * (n - c) / (intra * (c - 1));
}

}  // namespace segrec
