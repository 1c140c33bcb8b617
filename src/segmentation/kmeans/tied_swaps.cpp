// Merge-split moves for tied segments (tied.hpp, tied_swap_refine): swaps.cpp's moves in the
// whitened space, ranked by the tied criterion log det S instead of the inertia.
//
// A move from the fit (Z: the rows whitened, C: k x h whitened centroids, n_j users, S_j the
// within sum of squares of segment j on Z):
//   merge: the pair (a, b) with the least Ward cost n_a n_b / (n_a + n_b) ||c_a - c_b||^2,
//          c_a <- the pair's mean;
//   split: one of the kSplitCandidates segments j outside {a, b} with the largest S_j is cut in
//          two by 2-means on its own rows, started from the halves on either side of its
//          principal axis; c_j, c_b <- the two means;
// then Lloyd on Z from C and whitening rounds (tied_kmeans). A move is kept when log det falls
// by more than kMinLogDetGain. A single user farthest from its centroid (swaps.cpp) makes a
// poor second centroid here: on segrec generate's 16 behaviour segments such moves lowered
// log det by 0.6 and left ARI at 0.79, where the 2-means split reached the fit of the planted
// segments (ARI 0.97) from each of three starts. Every decision reads global sums, so it is
// the same on every rank.
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cstdint>
#include <map>
#include <vector>

#include "internal.hpp"
#include "segrec/segmentation/kmeans/tied.hpp"

namespace segrec {

namespace {

constexpr double kMinLogDetGain = 1e-6;  // log det drop (nats) that keeps a move
constexpr int kSplitCandidates = 3;      // segments (largest S_j first) tried per merged pair
constexpr int kSplitIters = 20;          // 2-means iterations inside the split segment

using RowD = Eigen::RowVectorXd;

// Two centroids for segment j of Z (this rank's rows labelled j): 2-means on the segment's rows
// from the halves on either side of its principal axis through `mean`. False when a half is
// empty. Collective; the result is the same on every rank.
bool split_segment(const MatrixRF& Z, const std::vector<std::int32_t>& labels, std::int32_t j,
                   const RowD& mean, RowD& c0, RowD& c1, const Comm& comm) {
  const Eigen::Index h = Z.cols(), n = Z.rows();
  Eigen::MatrixXd cov = Eigen::MatrixXd::Zero(h, h);
  RowD z(h);  // one row at a time, in double
  for (Eigen::Index i = 0; i < n; ++i)
    if (labels[static_cast<std::size_t>(i)] == j) {
      z = Z.row(i).cast<double>() - mean;
      cov.noalias() += z.transpose() * z;
    }
  comm.allreduce(cov);
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(cov);
  Eigen::VectorXd v = eig.eigenvectors().col(h - 1);
  Eigen::Index top = 0;  // sign: the largest component positive (the same at any rank count)
  v.cwiseAbs().maxCoeff(&top);
  if (v(top) < 0) v = -v;
  std::vector<std::int8_t> side(static_cast<std::size_t>(n), -1);  // -1: not in segment j
  for (Eigen::Index i = 0; i < n; ++i)
    if (labels[static_cast<std::size_t>(i)] == j)
      side[static_cast<std::size_t>(i)] = (Z.row(i).cast<double>() - mean).dot(v) > 0 ? 1 : 0;
  // [sums of side 0 (h) | sums of side 1 (h) | count 0 | count 1 | changed]
  std::vector<double> buf(static_cast<std::size_t>(2 * h + 3));
  for (int it = 0; it <= kSplitIters; ++it) {
    std::fill(buf.begin(), buf.end(), 0.0);
    for (Eigen::Index i = 0; i < n; ++i) {
      const std::int8_t s = side[static_cast<std::size_t>(i)];
      if (s < 0) continue;
      if (it > 0) {
        z = Z.row(i).cast<double>();
        const std::int8_t t = (z - c1).squaredNorm() < (z - c0).squaredNorm() ? 1 : 0;
        buf[static_cast<std::size_t>(2 * h + 2)] += t != s;
        side[static_cast<std::size_t>(i)] = t;
      }
      const auto off = static_cast<std::size_t>(side[static_cast<std::size_t>(i)] * h);
      for (Eigen::Index f = 0; f < h; ++f) buf[off + static_cast<std::size_t>(f)] += Z(i, f);
      buf[static_cast<std::size_t>(2 * h + side[static_cast<std::size_t>(i)])] += 1;
    }
    comm.allreduce(buf);
    const double n0 = buf[static_cast<std::size_t>(2 * h)];
    const double n1 = buf[static_cast<std::size_t>(2 * h + 1)];
    if (n0 == 0 || n1 == 0) return false;
    c0 = Eigen::Map<const RowD>(buf.data(), h) / n0;
    c1 = Eigen::Map<const RowD>(buf.data() + h, h) / n1;
    if (it > 0 && buf[static_cast<std::size_t>(2 * h + 2)] == 0) break;
  }
  return true;
}

}  // namespace

void tied_swap_refine(const MatrixRF& X, const std::vector<Eigen::Index>& cols, KMeansResult& res,
                      TiedFit& fit, int tries, const KMeansParams& p, const KMeansModes& modes,
                      const Comm& comm) {
  using namespace kmeans_detail;
  const std::int64_t k = res.k;
  const Layout L = make_layout(X.rows(), comm);
  if (tries <= 0 || k < 3 || L.n <= k) return;
  const Exec ex = exec_of(p, modes);
  KMeansParams short_p = p;  // the first Lloyd run of a move
  short_p.max_iter = p.restart_iters > 0 ? std::min(3 * p.restart_iters, p.max_iter) : p.max_iter;
  double seconds = 0;
  // At most k kept moves: each lowers log det, and k bounds the work on a slow descent.
  while (res.swaps < k) {
    const std::vector<double> sse = within_sums(fit.Z, L, res, comm);  // S_j on Z, global
    const auto pairs = cheapest_merges(res, tries);
    std::vector<std::int64_t> by_sse;  // segments that can be split, largest S_j first
    for (std::int64_t j = 0; j < k; ++j)
      if (res.sizes[static_cast<std::size_t>(j)] >= 2 && sse[static_cast<std::size_t>(j)] > 0)
        by_sse.push_back(j);
    std::stable_sort(by_sse.begin(), by_sse.end(), [&](std::int64_t x, std::int64_t y) {
      return sse[static_cast<std::size_t>(x)] > sse[static_cast<std::size_t>(y)];
    });
    std::map<std::int64_t, std::pair<RowD, RowD>> splits;  // segment -> its two halves' means
    const double tol_abs = p.tol * mean_variance(fit.Z, L, comm);
    bool kept = false;
    for (std::size_t t = 0; t < pairs.size() && !kept; ++t) {
      const auto [cost, a, b] = pairs[t];
      int tried = 0;
      for (std::size_t s = 0; s < by_sse.size() && tried < kSplitCandidates && !kept; ++s) {
        const std::int64_t j = by_sse[s];
        if (j == a || j == b) continue;
        ++tried;
        auto it = splits.find(j);
        if (it == splits.end()) {
          RowD c0, c1;
          if (!split_segment(fit.Z, res.labels, static_cast<std::int32_t>(j), res.centroids.row(j),
                             c0, c1, comm))
            c0.resize(0);
          it = splits.emplace(j, std::make_pair(std::move(c0), std::move(c1))).first;
        }
        if (it->second.first.size() == 0) continue;
        MatrixRD C = merged_centroids(res, a, b);
        C.row(j) = it->second.first;
        C.row(b) = it->second.second;
        // A short Lloyd run in the current whitening, then whitening rounds to convergence.
        // (Not screened: judged after 30 Lloyd iterations, or after 3 short rounds, the move
        // that took generate's 16 behaviour segments at seed 5 from ARI 0.65 to 0.97 was
        // rejected.)
        KMeansResult r = lloyd_impl(fit.Z, L, C, short_p, modes, tol_abs, ex, comm);
        ++res.swap_runs;
        TiedFit tf = tied_kmeans(X, cols, r, p, modes, comm);
        seconds += r.seconds;
        if (tf.log_det < fit.log_det - kMinLogDetGain) {
          take_move(res, std::move(r));
          fit = std::move(tf);
          kept = true;
        }
      }
    }
    if (!kept) break;
  }
  res.seconds += seconds;
}

}  // namespace segrec
