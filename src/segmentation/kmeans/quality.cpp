// Clustering quality figures: mean silhouette of a keyed sample of users against the sample
// (distances in the GEMM form over sample tiles), Davies-Bouldin and Calinski-Harabasz from the
// label means.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "internal.hpp"
#include "segrec/segmentation/kmeans/quality.hpp"
#include "segrec/segmentation/kmeans/split_dip.hpp"

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

/// The silhouette's sample (`sample` users keyed by the seed and the global index, ascending):
/// their rows and labels, on every rank.
struct SampledRows {
  MatrixRF rows;                     // S x h
  std::vector<std::int64_t> labels;  // S
};

/// Collective.
SampledRows sampled_rows(const MatrixRF& X, const Layout& L, std::span<const std::int32_t> labels,
                         std::int64_t sample, std::uint64_t seed, const Comm& comm) {
  auto ids = sample_indices(L, sample, key_of(seed, kTagSilhouette), comm);
  std::sort(ids.begin(), ids.end());
  const auto S = static_cast<std::int64_t>(ids.size());
  MatrixRF P = fetch_rows(X, L, ids, X.cols(), comm);
  std::vector<std::int64_t> plab(static_cast<std::size_t>(S), 0);
  for (std::int64_t s = 0; s < S; ++s)
    if (L.mine(ids[s])) plab[s] = labels[ids[s] - L.begin];
  comm.allreduce(plab);
  return {std::move(P), std::move(plab)};
}

}  // namespace

double split_dip_score(const MatrixRF& X, std::span<const std::int32_t> labels, std::int64_t k,
                       std::int64_t sample, std::uint64_t seed, const Comm& comm) {
  if (sample <= 0) return nan();
  const Layout L = make_layout(X.rows(), comm);
  const SampledRows sampled = sampled_rows(X, L, labels, sample, seed, comm);
  return split_dip(sampled.rows, sampled.labels, k);
}

double silhouette_score(const MatrixRF& X, std::span<const std::int32_t> labels, std::int64_t k,
                        std::int64_t sample, std::uint64_t seed, int threads, const Comm& comm,
                        std::int64_t* sample_used) {
  if (sample_used) *sample_used = 0;
  const Layout L = make_layout(X.rows(), comm);
  std::vector<std::int64_t> sizes(static_cast<std::size_t>(k), 0);
  for (const auto j : labels) sizes[j] += 1;
  comm.allreduce(sizes);
  const auto nonempty = std::count_if(sizes.begin(), sizes.end(), [](auto c) { return c > 0; });
  if (sample <= 0 || nonempty < 2 || nonempty >= L.n) return nan();
  const SampledRows sampled = sampled_rows(X, L, labels, sample, seed, comm);
  const MatrixRF& P = sampled.rows;  // S x h
  const std::vector<std::int64_t>& plab = sampled.labels;
  const auto S = static_cast<std::int64_t>(plab.size());
  std::vector<std::int64_t> scount(static_cast<std::size_t>(k), 0);  // per cluster, in sample
  for (const auto l : plab) scount[l] += 1;
  if (std::count_if(scount.begin(), scount.end(), [](auto c) { return c > 0; }) < 2) return nan();
  // Sample against sample in tiles of kTile sampled users (tile t on rank t mod ranks, on
  // any thread): G = P_tile * P^T, the same arithmetic for a tile wherever it runs; each
  // sampled user's silhouette is written by one rank, the others add zeros.
  const std::vector<float> pn = row_sqnorms(P);
  const MatrixRF Pt = P.transpose();
  constexpr std::int64_t kTile = 256;
  const std::int64_t ntiles = (S + kTile - 1) / kTile;
  std::vector<std::int64_t> mine;
  for (std::int64_t t = comm.rank(); t < ntiles; t += comm.size()) mine.push_back(t);
  std::vector<double> sil(static_cast<std::size_t>(S), 0.0);
  parallel_for(threads, static_cast<std::int64_t>(mine.size()), [&](int, std::int64_t task) {
    const std::int64_t s0 = mine[task] * kTile, w = std::min(kTile, S - s0);
    const MatrixRF G = P.middleRows(s0, w) * Pt;  // w x S
    std::vector<double> acc(static_cast<std::size_t>(k));
    for (std::int64_t r = 0; r < w; ++r) {
      const std::int64_t s = s0 + r, own = plab[s];
      if (scount[own] <= 1) continue;  // silhouette 0 for singletons
      std::fill(acc.begin(), acc.end(), 0.0);
      const float* g = G.data() + r * S;
      for (std::int64_t q = 0; q < S; ++q) {
        if (q == s) continue;
        const float d2 = pn[s] + pn[q] - 2.0f * g[q];
        acc[plab[q]] += std::sqrt(std::max(d2, 0.0f));
      }
      const double a = acc[own] / static_cast<double>(scount[own] - 1);
      double b = std::numeric_limits<double>::infinity();
      for (std::int64_t l = 0; l < k; ++l)
        if (l != own && scount[l] > 0) b = std::min(b, acc[l] / static_cast<double>(scount[l]));
      const double den = std::max(a, b);
      if (den > 0) sil[s] = (b - a) / den;
    }
  });
  comm.allreduce(sil);
  double total = 0;
  for (const double v : sil) total += v;
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
