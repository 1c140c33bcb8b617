// Randomized PCA and random projection against an exact SVD (Eigen BDCSVD of the
// dense centred matrix), CholeskyQR2, and bad inputs.
#include <gtest/gtest.h>

#include <cmath>

#include "segmentation_fixture.hpp"
#include "segrec/core/error.hpp"
#include "segrec/segmentation/project.hpp"

using namespace segrec;
using namespace segrec::test;

namespace {

PcaOptions opts(std::int64_t dims, std::int64_t p, std::int64_t q, bool dbl) {
  PcaOptions o;
  o.dims = dims;
  o.oversampling = p;
  o.power_iterations = q;
  o.seed = 7;
  o.double_precision = dbl;
  return o;
}

// Checks the model against the exact decomposition: subspace, singular values,
// orthonormal components, explained variance and the projected rows.
void expect_matches_exact(Matrix& mx, const ProjectionModel& m, double tol) {
  const Eigen::MatrixXd X = mx.to_dense();
  Eigen::MatrixXd V;
  Eigen::VectorXd s;
  exact_pca(X, V, s);
  const auto H = m.components.cols();
  EXPECT_LT(subspace_sin(V.leftCols(H), m.components), tol);
  for (Eigen::Index i = 0; i < H; ++i) {
    EXPECT_NEAR(m.singular_values[i], s[i], tol * s[i]) << "component " << i;
    // Each component matches its exact one up to sign (distinct singular values).
    EXPECT_NEAR(std::fabs(V.col(i).dot(m.components.col(i))), 1.0, tol) << "component " << i;
  }
  EXPECT_LT((m.components.transpose() * m.components - Eigen::MatrixXd::Identity(H, H))
                .cwiseAbs()
                .maxCoeff(),
            1e-10);
  const Eigen::MatrixXd Xc = X.rowwise() - X.colwise().mean();
  EXPECT_NEAR(m.total_variance, Xc.squaredNorm(), 1e-9 * Xc.squaredNorm());
  EXPECT_LT((m.mean - X.colwise().mean().transpose()).cwiseAbs().maxCoeff(), 1e-12);
  for (Eigen::Index i = 0; i < H; ++i)
    EXPECT_NEAR(m.explained_variance_ratio[i], s[i] * s[i] / Xc.squaredNorm(), 2 * tol);
  // h_u = W^T (x_u - mean), computed sparse with the rank-1 correction.
  const std::vector<float> h = project_rows(mx.all(), m);
  const Eigen::MatrixXd Hd = Xc * m.components;
  for (Eigen::Index u = 0; u < X.rows(); ++u)
    for (Eigen::Index c = 0; c < H; ++c)
      EXPECT_NEAR(h[u * H + c], Hd(u, c), 1e-5 * (1 + std::fabs(Hd(u, c))));
}

TEST(Pca, DenseMatrixMatchesExactSvd) {
  Matrix mx = dense_spectrum_matrix(300, 30, 0.7, 1);
  Comm serial;
  const ProjectionModel m = randomized_pca(mx.all(), opts(5, 10, 4, true), serial);
  EXPECT_EQ(m.components.rows(), 30);
  EXPECT_EQ(m.components.cols(), 5);
  EXPECT_TRUE(m.warnings.empty());
  expect_matches_exact(mx, m, 1e-4);
}

TEST(Pca, SparseMatrixMatchesExactSvd) {
  Matrix mx = decaying_matrix(400, 60, 0, 0.2, 0.85, 2);
  Comm serial;
  const ProjectionModel m = randomized_pca(mx.all(), opts(6, 12, 6, true), serial);
  expect_matches_exact(mx, m, 1e-4);
}

TEST(Pca, SparsePlusDenseMatchesExactSvd) {
  Matrix mx = decaying_matrix(500, 40, 6, 0.25, 0.8, 3);
  Comm serial;
  const ProjectionModel m = randomized_pca(mx.all(), opts(5, 12, 6, true), serial);
  expect_matches_exact(mx, m, 1e-4);
}

TEST(Pca, FloatProductsAreAccurateToSinglePrecision) {
  Matrix mx = decaying_matrix(500, 40, 6, 0.25, 0.8, 3);
  Comm serial;
  const ProjectionModel m = randomized_pca(mx.all(), opts(5, 12, 6, false), serial);
  expect_matches_exact(mx, m, 1e-3);
}

TEST(Pca, FewIterationsAreLessAccurate) {
  // The tests above would pass with any subspace only if tol were loose: with no
  // power iteration and no oversampling on a flat spectrum the error is visible.
  Matrix mx = decaying_matrix(400, 60, 0, 0.2, 0.98, 4);
  Comm serial;
  Eigen::MatrixXd V;
  Eigen::VectorXd s;
  exact_pca(mx.to_dense(), V, s);
  const auto rough = randomized_pca(mx.all(), opts(6, 0, 0, true), serial);
  const auto fine = randomized_pca(mx.all(), opts(6, 20, 10, true), serial);
  EXPECT_GT(subspace_sin(V.leftCols(6), rough.components), 1e-2);
  EXPECT_LT(subspace_sin(V.leftCols(6), fine.components),
            subspace_sin(V.leftCols(6), rough.components));
}

TEST(Pca, SignConventionAndDeterminism) {
  Matrix mx = decaying_matrix(200, 30, 4, 0.3, 0.8, 5);
  Comm serial;
  const auto a = randomized_pca(mx.all(), opts(4, 10, 2, false), serial);
  const auto b = randomized_pca(mx.all(), opts(4, 10, 2, false), serial);
  EXPECT_EQ(a.components, b.components);
  for (Eigen::Index c = 0; c < a.components.cols(); ++c) {
    Eigen::Index j;
    a.components.col(c).cwiseAbs().maxCoeff(&j);
    EXPECT_GT(a.components(j, c), 0);
  }
  // Another seed gives the same leading subspace (well-separated spectrum).
  PcaOptions o = opts(4, 10, 2, false);
  o.seed = 99;
  const auto c = randomized_pca(mx.all(), o, serial);
  EXPECT_LT(subspace_sin(a.components, c.components), 1e-3);
}

TEST(Pca, DimsAboveFeaturesAreClampedWithAWarning) {
  Matrix mx = decaying_matrix(100, 7, 2, 0.5, 0.9, 6);
  Comm serial;
  const auto m = randomized_pca(mx.all(), opts(20, 10, 2, true), serial);
  EXPECT_EQ(m.components.cols(), 9);
  ASSERT_EQ(m.warnings.size(), 1u);
  EXPECT_NE(m.warnings[0].find("--dims 20"), std::string::npos);
  // All directions: the explained variance adds up to 1.
  EXPECT_NEAR(m.explained_variance_ratio.sum(), 1.0, 1e-9);
  expect_matches_exact(mx, m, 1e-6);
}

TEST(Pca, MoreDirectionsThanUsers) {
  // k > n: the sketch is rank-deficient; CholeskyQR must shift, not fail.
  Matrix mx = decaying_matrix(6, 40, 0, 0.5, 0.9, 8);
  Comm serial;
  const auto m = randomized_pca(mx.all(), opts(3, 10, 2, true), serial);
  EXPECT_GE(m.stats.shifted, 1);
  Eigen::MatrixXd V;
  Eigen::VectorXd s;
  exact_pca(mx.to_dense(), V, s);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(m.singular_values[i], s[i], 1e-6 * s[0]);
  EXPECT_LT(subspace_sin(V.leftCols(3), m.components), 1e-6);
}

TEST(Pca, BadInputs) {
  Matrix mx = decaying_matrix(50, 10, 0, 0.5, 0.9, 9);
  Comm serial;
  EXPECT_THROW(randomized_pca(mx.all(), opts(0, 10, 2, false), serial), UsageError);
  EXPECT_THROW(random_projection(mx.all(), 0, 1, serial), UsageError);
  Matrix empty = decaying_matrix(50, 0, 0, 0.5, 0.9, 9);
  EXPECT_THROW(randomized_pca(empty.all(), opts(2, 10, 2, false), serial), DataError);

  const auto bad = [](auto mutate) {
    ProjectParams p;
    p.profiles = "p.h5";
    p.out = "o.h5";
    EXPECT_NO_THROW(p.validate());
    mutate(p);
    EXPECT_THROW(p.validate(), UsageError);
  };
  bad([](ProjectParams& p) { p.dims = 0; });
  bad([](ProjectParams& p) { p.dims = -3; });
  bad([](ProjectParams& p) { p.method = "svd"; });
  bad([](ProjectParams& p) { p.oversampling = -1; });
  bad([](ProjectParams& p) { p.power_iterations = -1; });
  bad([](ProjectParams& p) { p.precision = "half"; });
  bad([](ProjectParams& p) { p.profiles.clear(); });
  bad([](ProjectParams& p) { p.out.clear(); });
}

TEST(CholeskyQr2, OrthonormalisesIllConditionedBlocks) {
  Comm serial;
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal(0, 1);
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> Y(500, 8);
  for (auto& x : Y.reshaped()) x = normal(rng);
  for (int c = 0; c < 8; ++c) Y.col(c) *= std::pow(10.0, -c);  // condition ~1e7
  const Eigen::MatrixXd Y0 = Y;
  EXPECT_EQ(cholesky_qr2(Y, serial), 0);
  const Eigen::MatrixXd Q = Y;
  EXPECT_LT((Q.transpose() * Q - Eigen::MatrixXd::Identity(8, 8)).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_LT((Y0 - Q * (Q.transpose() * Y0)).norm(), 1e-10 * Y0.norm());  // same range
}

TEST(CholeskyQr2, ShiftsRankDeficientBlocks) {
  Comm serial;
  std::mt19937_64 rng(4);
  std::normal_distribution<float> normal(0, 1);
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> Y(300, 6);
  for (auto& x : Y.reshaped()) x = normal(rng);
  Y.col(3) = Y.col(1);  // dependent column
  Y.col(5).setZero();   // zero column stays zero
  PcaStats st;
  EXPECT_GE(cholesky_qr2(Y, serial, &st), 1);
  EXPECT_EQ(st.gram_allreduces, 3);
  EXPECT_TRUE(Y.allFinite());
  EXPECT_EQ(Y.col(5).norm(), 0.0f);
  const Eigen::MatrixXf Q = Y.leftCols(3);
  EXPECT_LT((Q.transpose() * Q - Eigen::MatrixXf::Identity(3, 3)).cwiseAbs().maxCoeff(), 1e-4);
}

TEST(RandomProjection, VerySparseSignsScaledToKeepNorms) {
  Matrix mx = decaying_matrix(300, 400, 0, 0.05, 1.0, 10);
  Comm serial;
  const std::int64_t H = 50;
  const auto m = random_projection(mx.all(), H, 11, serial);
  EXPECT_EQ(m.method, "random");
  const double s = std::sqrt(400.0), v = std::sqrt(s / H);
  std::int64_t nz = 0;
  for (double x : m.components.reshaped()) {
    EXPECT_TRUE(x == 0 || std::fabs(std::fabs(x) - v) < 1e-12) << x;
    nz += x != 0;
  }
  // Density 1/s = 5%: 20000 entries, so 1000 +- a few sigma (sigma ~ 31).
  EXPECT_NEAR(static_cast<double>(nz), 400.0 * H / s, 150);
  // Same seed, same matrix; another seed, another one.
  EXPECT_EQ(random_projection(mx.all(), H, 11, serial).components, m.components);
  EXPECT_NE(random_projection(mx.all(), H, 12, serial).components, m.components);
  // ||W^T xc|| ~ ||xc|| on average over users.
  const Eigen::MatrixXd Xc = mx.to_dense().rowwise() - mx.to_dense().colwise().mean();
  const double ratio = (Xc * m.components).squaredNorm() / Xc.squaredNorm();
  EXPECT_NEAR(ratio, 1.0, 0.3);
  // Explained variance per direction: ||Xc w||^2 / (||w||^2 ||Xc||_F^2).
  for (int c = 0; c < 3; ++c) {
    const double w2 = m.components.col(c).squaredNorm();
    EXPECT_NEAR(m.explained_variance_ratio[c],
                (Xc * m.components.col(c)).squaredNorm() / w2 / Xc.squaredNorm(), 1e-5);
  }
}

}  // namespace
