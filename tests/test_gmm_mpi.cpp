// Gaussian mixture EM under mpirun (1, 2 and 4 ranks): the distributed EM equals a naive
// single-process EM (two-pass covariances, log-densities through an LLT solve) from the
// same initial labels, and recovers the sample means and covariances of two well-separated
// Gaussians exactly.
#include <gtest/gtest.h>

#include <Eigen/Cholesky>
#include <cmath>
#include <numbers>
#include <random>

#include "kmeans_reference.hpp"
#include "segrec/segmentation/gmm/gmm.hpp"

namespace segrec {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

/// Naive EM on all rows (gmm.hpp's iteration order and convergence rule).
struct RefFit {
  std::vector<double> w;
  MatrixXd mu;
  std::vector<MatrixXd> cov;
  std::vector<std::int32_t> labels;
  double ll = 0;
  int n_iter = 0;
};

RefFit reference_em(const MatrixRF& Xf, const std::vector<std::int32_t>& init, int k,
                    const GmmOptions& o) {
  const MatrixXd X = Xf.cast<double>();
  const auto n = X.rows(), h = X.cols();
  const double var =
      ((X.rowwise() - X.colwise().mean()).array().square().colwise().sum() / static_cast<double>(n))
          .mean();
  const double reg = o.reg_covar * var;
  MatrixXd R = MatrixXd::Zero(n, k);
  for (Eigen::Index i = 0; i < n; ++i) R(i, init[i]) = 1;
  RefFit f;
  const auto m_step = [&] {
    const VectorXd nk = R.colwise().sum().transpose().array() + 10 * 2.220446049250313e-16;
    f.w.assign(k, 0);
    f.mu = (R.transpose() * X).array().colwise() / nk.array();
    f.cov.assign(k, MatrixXd::Zero(h, h));
    MatrixXd tied = MatrixXd::Zero(h, h);
    for (int j = 0; j < k; ++j) {
      f.w[j] = nk[j] / static_cast<double>(n);
      const MatrixXd D = X.rowwise() - f.mu.row(j);
      const MatrixXd S = D.transpose() * R.col(j).asDiagonal() * D;
      tied += S;
      f.cov[j] = S / nk[j];
      if (o.covariance == GmmCovariance::kDiag)
        f.cov[j] = MatrixXd(f.cov[j].diagonal().asDiagonal());
      f.cov[j].diagonal().array() += reg;
    }
    if (o.covariance == GmmCovariance::kTied) {
      tied /= static_cast<double>(n);
      tied.diagonal().array() += reg;
      f.cov.assign(k, tied);
    }
  };
  const auto e_step = [&] {
    MatrixXd lp(n, k);
    for (int j = 0; j < k; ++j) {
      const Eigen::LLT<MatrixXd> llt(f.cov[j]);
      const double logdet = 2 * MatrixXd(llt.matrixL()).diagonal().array().log().sum();
      const MatrixXd D = (X.rowwise() - f.mu.row(j)).transpose();
      const MatrixXd Z = llt.matrixL().solve(D);
      lp.col(j) =
          (std::log(f.w[j]) - 0.5 * (static_cast<double>(h) * std::log(2 * std::numbers::pi) +
                                     logdet + Z.colwise().squaredNorm().array()))
              .transpose();
    }
    double ll = 0;
    f.labels.assign(n, 0);
    for (Eigen::Index i = 0; i < n; ++i) {
      const double mx = lp.row(i).maxCoeff();
      const double lse = mx + std::log((lp.row(i).array() - mx).exp().sum());
      ll += lse;
      lp.row(i).maxCoeff(&f.labels[i]);
      R.row(i) = (lp.row(i).array() - lse).exp();
    }
    return ll;
  };
  m_step();
  double prev = -INFINITY;
  for (;;) {
    f.ll = e_step();
    if (f.n_iter > 0 && std::abs(f.ll / static_cast<double>(n) - prev) < o.tol) break;
    if (f.n_iter >= o.max_iter) break;
    prev = f.ll / static_cast<double>(n);
    m_step();
    ++f.n_iter;
  }
  return f;
}

/// Three elongated, overlapping Gaussian groups in 4 dims (correlated within a group).
MatrixRF elongated(std::int64_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> z(0, 1);
  MatrixRF X(n, 4);
  for (std::int64_t i = 0; i < n; ++i) {
    const int g = static_cast<int>(i % 3);
    const double a = z(rng) * 3, b = z(rng), c = z(rng), d = z(rng);
    X(i, 0) = static_cast<float>(a + 2 * g);
    X(i, 1) = static_cast<float>(0.8 * a + 0.6 * b + 3 * g);
    X(i, 2) = static_cast<float>(c * (1 + g) - g);
    X(i, 3) = static_cast<float>(d + 0.5 * c);
  }
  return X;
}

class GmmDifferential : public ::testing::TestWithParam<GmmCovariance> {};

TEST_P(GmmDifferential, DistributedEqualsNaiveReference) {
  const Comm world = Comm::world(), serial;
  const std::int64_t n = 901;
  const int k = 3;
  const MatrixRF X = elongated(n, 7);
  std::vector<std::int32_t> init(n);  // a poor start (index blocks), so EM runs many steps
  for (std::int64_t i = 0; i < n; ++i) init[i] = static_cast<std::int32_t>(i * k / n);
  GmmOptions o;
  o.covariance = GetParam();
  o.max_iter = 60;
  o.tol = 1e-7;
  const RefFit ref = reference_em(X, init, k, o);
  const Block b = block_partition(n, world.size(), world.rank());
  std::vector<std::int32_t> labels;
  const std::vector<std::int32_t> local_init(init.begin() + b.begin, init.begin() + b.end);
  const GmmFit fit = gmm_em(X.middleRows(b.begin, b.size()), local_init, k, o, world, labels);
  EXPECT_EQ(fit.n_iter, ref.n_iter);
  EXPECT_GT(fit.n_iter, 5);
  EXPECT_NEAR(fit.log_likelihood, ref.ll, 1e-9 * std::abs(ref.ll));
  EXPECT_EQ(labels,
            std::vector<std::int32_t>(ref.labels.begin() + b.begin, ref.labels.begin() + b.end));
  for (int j = 0; j < k; ++j) {
    EXPECT_NEAR(fit.weights[j], ref.w[j], 1e-9);
    EXPECT_LE((fit.means.row(j) - ref.mu.row(j)).cwiseAbs().maxCoeff(), 1e-8);
    const auto& cov = fit.covariances[o.covariance == GmmCovariance::kTied ? 0 : j];
    EXPECT_LE((cov - ref.cov[j]).cwiseAbs().maxCoeff(), 1e-8);
  }
  EXPECT_EQ(fit.n_params, gmm_parameters(o.covariance, k, 4));
  EXPECT_NEAR(fit.bic, -2 * ref.ll + static_cast<double>(fit.n_params) * std::log(n), 1e-6);
  // The same run on one process (serial communicator) agrees too.
  std::vector<std::int32_t> all;
  const GmmFit one = gmm_em(X, init, k, o, serial, all);
  EXPECT_EQ(one.n_iter, fit.n_iter);
  EXPECT_EQ(all, ref.labels);
}

INSTANTIATE_TEST_SUITE_P(Covariances, GmmDifferential,
                         ::testing::Values(GmmCovariance::kFull, GmmCovariance::kDiag,
                                           GmmCovariance::kTied));

TEST(GmmMpi, TwoSeparatedGaussiansClosedForm) {
  // Two Gaussians 60 standard deviations apart: the responsibilities are 0 or 1, so the
  // fit is each group's sample mean and (biased) sample covariance plus reg, weight 1/2.
  const Comm world = Comm::world();
  const std::int64_t n = 2000;
  std::mt19937_64 rng(3);
  std::normal_distribution<double> z(0, 1);
  MatrixRF X(n, 2);
  for (std::int64_t i = 0; i < n; ++i) {
    const double a = z(rng), b = z(rng);
    if (i % 2 == 0) {
      X(i, 0) = static_cast<float>(2 * a);  // covariance [[4, 2], [2, 2]]
      X(i, 1) = static_cast<float>(a + b);
    } else {
      X(i, 0) = static_cast<float>(60 + a);  // covariance [[1, 0], [0, 0.25]]
      X(i, 1) = static_cast<float>(-60 + 0.5 * b);
    }
  }
  std::vector<std::int32_t> init(n);
  for (std::int64_t i = 0; i < n; ++i) init[i] = static_cast<std::int32_t>(i % 2 ? 0 : 1);
  const Block b = block_partition(n, world.size(), world.rank());
  GmmOptions o;
  o.covariance = GmmCovariance::kFull;
  std::vector<std::int32_t> labels;
  const GmmFit fit = gmm_em(X.middleRows(b.begin, b.size()),
                            std::vector<std::int32_t>(init.begin() + b.begin, init.begin() + b.end),
                            2, o, world, labels);
  ASSERT_TRUE(fit.converged);
  for (std::int64_t i = 0; i < b.size(); ++i) EXPECT_EQ(labels[i], init[b.begin + i]);
  const MatrixXd Xd = X.cast<double>();
  for (int g = 0; g < 2; ++g) {  // component 0: the odd rows
    MatrixXd G(n / 2, 2);
    for (std::int64_t i = 0; i < n / 2; ++i) G.row(i) = Xd.row(2 * i + (g == 0 ? 1 : 0));
    const Eigen::RowVectorXd mean = G.colwise().mean();
    const MatrixXd D = G.rowwise() - mean;
    MatrixXd cov = D.transpose() * D / static_cast<double>(n / 2);
    cov.diagonal().array() += fit.reg;
    EXPECT_NEAR(fit.weights[g], 0.5, 1e-12);
    EXPECT_LE((fit.means.row(g) - mean).cwiseAbs().maxCoeff(), 1e-9);
    EXPECT_LE((fit.covariances[g] - cov).cwiseAbs().maxCoeff(), 1e-9);
  }
  // Against the true parameters, within sampling error (1,000 rows per group).
  EXPECT_NEAR(fit.means(1, 0), 0, 0.2);
  EXPECT_NEAR(fit.covariances[1](0, 0), 4 + fit.reg, 0.5);
  EXPECT_NEAR(fit.covariances[1](0, 1), 2, 0.3);
  EXPECT_NEAR(fit.means(0, 1), -60, 0.1);
  EXPECT_NEAR(fit.covariances[0](1, 1), 0.25 + fit.reg, 0.05);
}

TEST(GmmMpi, ClusterSweepMatchesSerial) {
  // The whole stage algorithm (K-means, EM from its labels, BIC pick) at any rank count.
  const Comm world = Comm::world(), serial;
  const MatrixRF X = elongated(1200, 5);
  const Block b = block_partition(X.rows(), world.size(), world.rank());
  KMeansParams p;
  p.k = "2:4";
  p.algorithm = "gmm";
  p.pick = "bic";
  p.covariance = "full";
  p.silhouette_sample = 0;
  p.gap_sample = 300;
  const ClusterRun d = cluster(X.middleRows(b.begin, b.size()), p, world);
  const ClusterRun s = cluster(X, p, serial);
  ASSERT_TRUE(d.gmm.fitted);
  EXPECT_EQ(d.result.k, s.result.k);
  EXPECT_EQ(d.result.labels, std::vector<std::int32_t>(s.result.labels.begin() + b.begin,
                                                       s.result.labels.begin() + b.end));
  EXPECT_EQ(d.result.sizes, s.result.sizes);
  EXPECT_LE(testing_ref::max_rel_diff(d.result.centroids, s.result.centroids), 1e-9);
  for (std::size_t i = 0; i < s.sweep.size(); ++i)
    EXPECT_NEAR(d.sweep[i].bic, s.sweep[i].bic, 1e-7 * std::abs(s.sweep[i].bic));
}

}  // namespace
}  // namespace segrec
