// Tied (Mahalanobis) K-means: whitening rounds around Lloyd (tied.hpp).
#include "segrec/segmentation/kmeans/tied.hpp"

#include <Eigen/Cholesky>
#include <Eigen/LU>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>
#include <vector>

#include "internal.hpp"
#include "segrec/core/error.hpp"

namespace segrec {

void whiten_rows(const MatrixRF& X, const MatrixRD& whitening, MatrixRF& Z) {
  // In double, by blocks of rows (a bounded temporary; each row's arithmetic is the same
  // wherever it sits): the block is cast first, so that the product is one GEMM.
  constexpr Eigen::Index kBlock = 4096;
  Z.resize(X.rows(), X.cols());
  const MatrixRD Wt = whitening.transpose();
  MatrixRD Xd, Zd;  // a block of rows in double, and its whitened rows
  for (Eigen::Index i = 0; i < X.rows(); i += kBlock) {
    const Eigen::Index m = std::min(kBlock, X.rows() - i);
    Xd = X.middleRows(i, m).cast<double>();
    Zd.noalias() = Xd * Wt;
    Z.middleRows(i, m) = Zd.cast<float>();
  }
}

MatrixRF whiten_rows(const MatrixRF& X, const MatrixRD& whitening) {
  MatrixRF Z;
  whiten_rows(X, whitening, Z);
  return Z;
}

MatrixRD unwhiten_rows(const MatrixRD& C, const MatrixRD& whitening) {
  return whitening.partialPivLu().solve(C.transpose()).transpose();
}

TiedInput tied_input(const MatrixRF& X, const Comm& comm) {
  const Eigen::Index h = X.cols();
  kmeans_detail::RowCovariance rc = kmeans_detail::row_covariance(X, comm);
  TiedInput in;
  in.n = rc.n;
  in.cov = std::move(rc.cov);
  const double top = h > 0 ? in.cov.diagonal().maxCoeff() : 0.0;
  for (Eigen::Index j = 0; j < h; ++j)
    if (in.cov(j, j) > 1e-12 * top) in.cols.push_back(j);
  return in;
}

namespace {

constexpr Eigen::Index kScatterBlock = 4096;  // rows per GEMM of the pooled scatter

// Cholesky of S + eps I (S: d x d covariance of k segments' rows, eps: kTiedRidge x S's mean
// variance), and its log det.
Eigen::LLT<Eigen::MatrixXd> ridged_llt(Eigen::MatrixXd S, std::int64_t k, double& log_det) {
  const Eigen::Index d = S.rows();
  const double ridge = kTiedRidge * (d > 0 ? S.trace() / static_cast<double>(d) : 0.0);
  S.diagonal().array() += ridge > 0 ? ridge : 1e-30;
  Eigen::LLT<Eigen::MatrixXd> llt(S);
  if (llt.info() != Eigen::Success)
    throw DataError("the pooled within-segment covariance of " + std::to_string(k) +
                        " tied segments is not positive definite; use --shape spherical",
                    true);
  log_det = 2.0 * llt.matrixLLT().diagonal().array().log().sum();
  return llt;
}

// The whitening of the pooled within-segment covariance of X's columns in.cols under
// `labels` (k segments): h x h, identity outside cols. Also the segments' means (k x h).
// log_det: log det(S + eps I), the tied classification likelihood's criterion.
MatrixRD pooled_whitening(const MatrixRF& X, const TiedInput& in,
                          const std::vector<std::int32_t>& labels, std::int64_t k, MatrixRD& means,
                          double& log_det, const Comm& comm) {
  const Eigen::Index h = X.cols(), d = std::ssize(in.cols);
  // [k*h sums | k counts]
  std::vector<double> buf(static_cast<std::size_t>(k * h + k), 0.0);
  for (Eigen::Index i = 0; i < X.rows(); ++i) {
    const auto l = static_cast<std::size_t>(labels[static_cast<std::size_t>(i)]);
    for (Eigen::Index j = 0; j < h; ++j) buf[l * static_cast<std::size_t>(h) + j] += X(i, j);
    buf[static_cast<std::size_t>(k * h) + l] += 1;
  }
  comm.allreduce(buf);
  means = MatrixRD::Zero(k, h);
  for (std::int64_t c = 0; c < k; ++c) {
    const double cnt = buf[static_cast<std::size_t>(k * h + c)];
    if (cnt > 0)
      for (Eigen::Index j = 0; j < h; ++j)
        means(c, j) = buf[static_cast<std::size_t>(c * h + j)] / cnt;
  }
  // The scatter S = sum_i r_i^T r_i, r_i the row's columns `cols` around its segment's mean,
  // a GEMM per block of kScatterBlock rows (R: rows x d, double).
  Eigen::MatrixXd S = Eigen::MatrixXd::Zero(d, d);
  MatrixRD R;
  for (Eigen::Index i0 = 0; i0 < X.rows(); i0 += kScatterBlock) {
    const Eigen::Index m = std::min(kScatterBlock, X.rows() - i0);
    R.resize(m, d);
    for (Eigen::Index q = 0; q < m; ++q) {
      const auto l = labels[static_cast<std::size_t>(i0 + q)];
      for (Eigen::Index a = 0; a < d; ++a) R(q, a) = X(i0 + q, in.cols[a]) - means(l, in.cols[a]);
    }
    S.noalias() += R.transpose() * R;
  }
  comm.allreduce(S);
  S /= std::max(in.n, 1.0);
  const Eigen::LLT<Eigen::MatrixXd> llt = ridged_llt(std::move(S), k, log_det);
  const Eigen::MatrixXd Linv =
      llt.matrixL().solve(Eigen::MatrixXd::Identity(d, d));  // lower triangular
  MatrixRD W = MatrixRD::Identity(h, h);
  for (Eigen::Index a = 0; a < d; ++a)
    for (Eigen::Index b = 0; b < d; ++b) W(in.cols[a], in.cols[b]) = Linv(a, b);
  return W;
}

}  // namespace

double tied_total_log_det(const TiedInput& in) {
  const auto d = std::ssize(in.cols);
  Eigen::MatrixXd S(d, d);
  for (Eigen::Index a = 0; a < d; ++a)
    for (Eigen::Index b = 0; b < d; ++b) S(a, b) = in.cov(in.cols[a], in.cols[b]);
  double log_det = 0;
  ridged_llt(std::move(S), 1, log_det);
  return log_det;
}

double pooled_log_det(const MatrixRF& X, const TiedInput& in,
                      const std::vector<std::int32_t>& labels, std::int64_t k, const Comm& comm) {
  MatrixRD unused;
  double log_det = 0;
  pooled_whitening(X, in, labels, k, unused, log_det, comm);
  return log_det;
}

double whitened_mean_variance(const TiedInput& in, const MatrixRD& whitening) {
  const Eigen::Index h = in.cov.rows();
  if (h == 0) return 0;
  return (whitening * in.cov * whitening.transpose()).trace() / static_cast<double>(h);
}

TiedFit tied_kmeans(const MatrixRF& X, KMeansResult& res, const KMeansParams& p,
                    const KMeansModes& modes, const Comm& comm) {
  return tied_kmeans(X, tied_input(X, comm), res, p, modes, comm);
}

TiedFit tied_kmeans(const MatrixRF& X, const TiedInput& in, KMeansResult& res,
                    const KMeansParams& p, const KMeansModes& modes, const Comm& comm) {
  const auto L = kmeans_detail::make_layout(X.rows(), comm);
  const auto ex = kmeans_detail::exec_of(p, modes);
  TiedFit t;
  MatrixRD means;
  for (int round = 0; round < kMaxTiedRounds; ++round) {
    const MatrixRD W = pooled_whitening(X, in, res.labels, res.k, means, t.log_det, comm);
    whiten_rows(X, W, t.Z);  // (the previous round's rows are no longer needed)
    const MatrixRD C = means * W.transpose();
    KMeansResult r = kmeans_detail::lloyd_impl(t.Z, L, C, p, modes,
                                               p.tol * whitened_mean_variance(in, W), ex, comm);
    std::int64_t changed = 0;
    for (std::size_t i = 0; i < r.labels.size(); ++i) changed += r.labels[i] != res.labels[i];
    changed = comm.allreduce_value(changed);
    r.n_iter += res.n_iter;
    r.restart = res.restart;
    r.restart_inertia = res.restart_inertia;
    r.init_seconds = res.init_seconds;
    r.seconds += res.seconds;
    res = std::move(r);
    t.whitening = W;
    t.rounds = round + 1;
    if (changed == 0) {
      t.converged = true;
      break;
    }
  }
  if (!t.converged)  // the criterion of the final labels (the whitening stays the last round's)
    t.log_det = pooled_log_det(X, in, res.labels, res.k, comm);
  return t;
}

TiedFit tied_kmeans_restarts(const MatrixRF& X, const TiedInput& in, std::int64_t k,
                             KMeansResult& res, const KMeansParams& p, const KMeansModes& modes,
                             const Comm& comm, const std::function<void()>& restart_done) {
  const auto L = kmeans_detail::make_layout(X.rows(), comm);
  const auto ex = kmeans_detail::exec_of(p, modes);
  const double tol_abs =
      p.tol * in.cov.trace() / static_cast<double>(std::max<Eigen::Index>(X.cols(), 1));
  const int restarts = p.restarts(L.n, k, X.cols());
  TiedFit best;
  std::vector<double> compared;
  double init_s = 0, lloyd_s = 0;
  for (int r = 0; r < restarts; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const MatrixRF c0 = kmeans_detail::init_centroids(X, k, p, modes, r, comm);
    init_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    KMeansResult start =
        kmeans_detail::lloyd_impl(X, L, c0.cast<double>(), p, modes, tol_abs, ex, comm);
    start.restart = r;
    TiedFit t = tied_kmeans(X, in, start, p, modes, comm);
    lloyd_s += start.seconds;
    compared.push_back(t.log_det);
    if (r == 0 || t.log_det < best.log_det) {
      best = std::move(t);
      res = std::move(start);
    }
    if (restart_done) restart_done();
  }
  res.seconds = lloyd_s;
  res.init_seconds = init_s;
  res.restart_inertia = std::move(compared);
  tied_swap_refine(X, in, res, best, p.swaps(L.n, k, X.cols()), p, modes, comm);
  return best;
}

}  // namespace segrec
