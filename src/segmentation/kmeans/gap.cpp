// The gap statistic against a Gaussian null (gap.hpp).
#include "segrec/segmentation/kmeans/gap.hpp"

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "internal.hpp"

namespace segrec {

namespace {
constexpr std::uint64_t kTagGap = 0x474150ULL;  // "GAP"
// Points of the sweep on each side of k over which the knee's slopes are taken (gap.hpp).
constexpr std::size_t kKneeWindow = 2;

// Standard normal from two keyed uniforms (Box-Muller).
double normal(std::uint64_t key) {
  const double u1 = 1.0 - kmeans_detail::unit(rng::splitmix64(key));  // (0, 1]
  const double u2 = kmeans_detail::unit(rng::splitmix64(key ^ 0x5bd1e995ULL));
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}
}  // namespace

GapReference gap_reference(const MatrixRF& X, std::int64_t sample, int sets, std::uint64_t seed,
                           const Comm& comm) {
  const kmeans_detail::RowCovariance rc = kmeans_detail::row_covariance(X, comm);
  GapReference r;
  r.sets = sets;
  r.seed = seed;
  r.rows = std::min<std::int64_t>(sample, static_cast<std::int64_t>(rc.n));
  r.mean = rc.mean;
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(rc.cov);
  const Eigen::VectorXd sd = eig.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  r.factor = eig.eigenvectors() * sd.asDiagonal();
  return r;
}

MatrixRF gap_reference_rows(const GapReference& ref, int b, const Comm& comm) {
  const std::int64_t h = ref.mean.size();
  const Block blk = block_partition(ref.rows, comm.size(), comm.rank());
  MatrixRF Z(blk.size(), h);
  Eigen::VectorXd g(h);
  for (std::int64_t i = 0; i < blk.size(); ++i) {
    const std::uint64_t row = static_cast<std::uint64_t>(blk.begin + i);
    for (std::int64_t j = 0; j < h; ++j)
      g[j] = normal(kmeans_detail::key_of(
          ref.seed, kTagGap, static_cast<std::uint64_t>(b),
          row * static_cast<std::uint64_t>(h) + static_cast<std::uint64_t>(j)));
    Z.row(i) = (ref.mean + ref.factor * g).cast<float>().transpose();
  }
  return Z;
}

KMeansParams gap_reference_params(const KMeansParams& p) {
  KMeansParams q = p;
  q.n_init = 1;
  q.swap_tries = 0;  // the null has no segments to exchange
  q.progress_stage = "gap reference";
  return q;
}

GapValue gap_of(std::span<const double> reference, double data) {
  double mean = 0, var = 0;
  for (double l : reference) mean += l;
  mean /= static_cast<double>(reference.size());
  for (double l : reference) var += (l - mean) * (l - mean);
  var /= static_cast<double>(reference.size());
  GapValue v;
  v.gap = mean - data;
  v.se = std::sqrt(var) * std::sqrt(1.0 + 1.0 / static_cast<double>(reference.size()));
  return v;
}

GapValue gap_statistic(const GapReference& ref, double inertia, std::int64_t n, std::int64_t k,
                       const KMeansParams& p, const KMeansModes& modes, const Comm& comm,
                       const std::function<void()>& set_done) {
  KMeansParams q = gap_reference_params(p);
  std::vector<double> logs;
  for (int b = 0; b < ref.sets; ++b) {
    const MatrixRF Z = gap_reference_rows(ref, b, comm);
    q.seed = rng::fold_keys(p.seed, kTagGap, static_cast<std::uint64_t>(b));
    const KMeansResult r =
        kmeans_detail::kmeans_prepared(Z, std::min(k, ref.rows), q, modes, comm, nullptr);
    logs.push_back(std::log(std::max(r.inertia, 1e-300) / static_cast<double>(ref.rows)));
    if (set_done) set_done();
  }
  return gap_of(logs, std::log(std::max(inertia, 1e-300) / static_cast<double>(n)));
}

std::size_t gap_pick(std::span<const std::int64_t> ks, std::span<const GapValue> g) {
  const std::size_t n = g.size();
  if (n < 2) return 0;
  // The curve with gap(1) = 0 in front when the sweep starts at 2 (the null has the data's
  // covariance, so one cluster scores exactly 0): points (x[i], y[i]), i < m.
  std::vector<double> x, y;
  if (ks[0] == 2) {
    x.push_back(1.0);
    y.push_back(0.0);
  }
  const std::size_t off = x.size();
  for (std::size_t i = 0; i < n; ++i) {
    x.push_back(static_cast<double>(ks[i]));
    y.push_back(g[i].gap);
  }
  const std::size_t m = x.size();
  const auto slope = [&](std::size_t a, std::size_t b) { return (y[b] - y[a]) / (x[b] - x[a]); };
  std::size_t best = n - 1;
  double best_drop = -std::numeric_limits<double>::infinity();
  for (std::size_t i = std::max<std::size_t>(off, 1); i + 1 < m; ++i) {
    const std::size_t lo = i >= kKneeWindow ? i - kKneeWindow : 0;
    const std::size_t hi = std::min(m - 1, i + kKneeWindow);
    const double drop = slope(lo, i) - slope(i, hi);
    if (std::isfinite(drop) && drop > best_drop) {
      best_drop = drop;
      best = i - off;
    }
  }
  return best;
}

}  // namespace segrec
