// Tied (Mahalanobis) K-means under mpirun (1, 2 and 4 ranks): the distributed rounds equal a
// naive single-process reference (two-pass pooled covariance, explicit inverse Cholesky
// factor, naive Lloyd in the whitened space) from the same K-means labels; slabs that
// Euclidean K-means cuts across are recovered; a merge-split move leaves a fit with two slabs
// in one segment; a row whitened by the stored view lands on its own segment's centroid, as
// serving assigns new users.
#include <gtest/gtest.h>

#include <Eigen/Cholesky>
#include <Eigen/LU>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <numbers>

#include "kmeans_reference.hpp"
#include "scratch_dir.hpp"
#include "segrec/core/random.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/segmentation/kmeans/tied.hpp"
#include "segrec/segmentation/view.hpp"

namespace segrec {
namespace {

using Eigen::MatrixXd;
using testing_ref::ari;

double gauss(std::uint64_t key) {
  const double u1 = 1.0 - rng::unit_uniform(rng::splitmix64(key));
  const double u2 = rng::unit_uniform(rng::splitmix64(key ^ 0x9e37ULL));
  return std::sqrt(-2 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2);
}

// Three parallel slabs (segment i % 3) 4 apart along y, long (sd 5) along x, z correlated
// with x: the shared within-segment covariance is far from spherical, so Euclidean K-means
// cuts the slabs across x.
MatrixRF slabs(std::int64_t n) {
  MatrixRF X(n, 3);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto key = [i](int j) { return rng::fold_keys(11, static_cast<std::uint64_t>(i), j); };
    const double a = gauss(key(0)), b = gauss(key(1)), c = gauss(key(2));
    X(i, 0) = static_cast<float>(5 * a);
    X(i, 1) = static_cast<float>(4.0 * static_cast<double>(i % 3) + 0.6 * b);
    X(i, 2) = static_cast<float>(2 * a + c);
  }
  return X;
}

// log det of the pooled within-segment covariance of `labels` (with tied.hpp's ridge).
double naive_log_det(const MatrixRF& Xf, const std::vector<std::int32_t>& labels, int k) {
  const MatrixXd X = Xf.cast<double>();
  MatrixXd mu = MatrixXd::Zero(k, X.cols());
  std::vector<double> cnt(static_cast<std::size_t>(k), 0);
  for (Eigen::Index i = 0; i < X.rows(); ++i) {
    mu.row(labels[i]) += X.row(i);
    cnt[labels[i]] += 1;
  }
  for (int j = 0; j < k; ++j)
    if (cnt[j] > 0) mu.row(j) /= cnt[j];
  MatrixXd S = MatrixXd::Zero(X.cols(), X.cols());
  for (Eigen::Index i = 0; i < X.rows(); ++i) {
    const Eigen::VectorXd d = (X.row(i) - mu.row(labels[i])).transpose();
    S += d * d.transpose();
  }
  S /= static_cast<double>(X.rows());
  S.diagonal().array() += kTiedRidge * S.trace() / static_cast<double>(X.cols());
  return std::log(S.determinant());
}

// k clusters, n_init restarts, seed; tol 0 (every run to a fixed point).
KMeansParams exact_params(int k, int n_init, std::uint64_t seed) {
  KMeansParams p;
  p.k = std::to_string(k);
  p.tol = 0;
  p.n_init = n_init;
  p.seed = seed;
  p.swap_tries = 0;  // the K-means start the slabs test is built on (no merge-split moves)
  return p;
}

struct NaiveTied {
  std::vector<std::int32_t> labels;
  MatrixXd W;
  int rounds = 0;
  double log_det = 0;  // of the last round's S (with the ridge)
};

// tied.hpp's rounds on all rows, written plainly.
NaiveTied naive_tied(const MatrixRF& Xf, std::vector<std::int32_t> labels, int k) {
  const MatrixXd X = Xf.cast<double>();
  const auto n = X.rows(), h = X.cols();
  NaiveTied r;
  for (int round = 0; round < kMaxTiedRounds; ++round) {
    MatrixXd mu = MatrixXd::Zero(k, h);
    std::vector<double> cnt(static_cast<std::size_t>(k), 0);
    for (Eigen::Index i = 0; i < n; ++i) {
      mu.row(labels[i]) += X.row(i);
      cnt[labels[i]] += 1;
    }
    for (int j = 0; j < k; ++j) mu.row(j) /= cnt[j];
    MatrixXd S = MatrixXd::Zero(h, h);
    for (Eigen::Index i = 0; i < n; ++i) {
      const Eigen::VectorXd d = (X.row(i) - mu.row(labels[i])).transpose();
      S += d * d.transpose();
    }
    S /= static_cast<double>(n);
    S.diagonal().array() += kTiedRidge * S.trace() / static_cast<double>(h);
    r.log_det = naive_log_det(Xf, labels, k);
    const MatrixXd L = S.llt().matrixL();
    r.W = L.inverse();
    const MatrixRF Z = (X * r.W.transpose()).cast<float>();
    const MatrixRF C = (mu * r.W.transpose()).cast<float>();
    const auto km = testing_ref::naive_kmeans(Z, C, 300, 0.0);
    r.rounds = round + 1;
    const bool same = km.labels == labels;
    labels = km.labels;
    if (same) break;
  }
  r.labels = labels;
  return r;
}

TEST(TiedKMeans, DistributedEqualsNaiveReference) {
  const Comm world = Comm::world(), serial;
  const std::int64_t n = 900;
  const int k = 3;
  const MatrixRF X = slabs(n);
  std::vector<std::int32_t> truth(n);
  for (std::int64_t i = 0; i < n; ++i) truth[i] = static_cast<std::int32_t>(i % 3);
  const KMeansParams p = exact_params(k, 1, 5);
  const KMeansModes modes = p.validate();
  // The same K-means start everywhere (labels do not depend on the rank count).
  const KMeansResult start = kmeans(X, k, p, serial);
  EXPECT_LT(ari(start.labels, truth), 0.5) << "Euclidean K-means should cut the slabs";
  const NaiveTied ref = naive_tied(X, start.labels, k);
  EXPECT_GT(ref.rounds, 1);

  const Block b = block_partition(n, world.size(), world.rank());
  const MatrixRF local = X.middleRows(b.begin, b.size());
  KMeansResult res = kmeans(local, k, p, world);
  ASSERT_EQ(res.labels, std::vector<std::int32_t>(start.labels.begin() + b.begin,
                                                  start.labels.begin() + b.end));
  const TiedFit fit = tied_kmeans(local, res, p, modes, world);
  EXPECT_TRUE(fit.converged);
  EXPECT_EQ(fit.rounds, ref.rounds);
  EXPECT_EQ(res.labels,
            std::vector<std::int32_t>(ref.labels.begin() + b.begin, ref.labels.begin() + b.end));
  EXPECT_LE((fit.whitening - ref.W).cwiseAbs().maxCoeff(), 1e-9);
  EXPECT_NEAR(fit.log_det, ref.log_det, 1e-9 * std::abs(ref.log_det) + 1e-12);
  EXPECT_GT(ari(ref.labels, truth), 0.99);
  std::int64_t sum = 0;
  for (auto s : res.sizes) sum += s;
  EXPECT_EQ(sum, n);

  // Serving: the view with the whitening maps a row next to its own segment's centroid.
  ViewTransform v;
  v.interest_dims = 3;
  v.whitening = fit.whitening;
  MatrixRF Y = local;
  v.apply(Y);
  EXPECT_LE((Y - fit.Z).cwiseAbs().maxCoeff(), 1e-5);
  for (Eigen::Index i = 0; i < Y.rows(); ++i) {
    Eigen::Index best = 0;
    (res.centroids.rowwise() - Y.row(i).cast<double>()).rowwise().squaredNorm().minCoeff(&best);
    ASSERT_EQ(best, res.labels[i]) << "row " << b.begin + i;
  }
  // Centroids mapped back to the view's space are the segments' plain means.
  const MatrixRD back = unwhiten_rows(res.centroids, fit.whitening);
  MatrixRD mu = MatrixRD::Zero(k, 3);
  std::vector<double> cnt(k, 0);
  for (std::int64_t i = 0; i < n; ++i) {
    mu.row(ref.labels[i]) += X.row(i).cast<double>();
    cnt[ref.labels[i]] += 1;
  }
  for (int j = 0; j < k; ++j) mu.row(j) /= cnt[j];
  EXPECT_LE((back - mu).cwiseAbs().maxCoeff(), 1e-4);
}

TEST(TiedKMeans, RestartsKeepTheLowestLogDet) {
  // Every restart is refined, then the fit with the lowest log det S wins: the winner is a
  // converged tied fit (the naive rounds from its labels change nothing and give its log det),
  // it is the minimum of the compared values, and it is the same at any rank count.
  const Comm world = Comm::world(), serial;
  const std::int64_t n = 900;
  const int k = 5;  // more segments than slabs: the restarts' optima differ
  const MatrixRF X = slabs(n);
  const KMeansParams p = exact_params(k, 4, 3);
  const KMeansModes modes = p.validate();
  KMeansResult whole;
  const TiedFit one = tied_kmeans_restarts(X, tied_input(X, serial), k, whole, p, modes, serial);
  ASSERT_EQ(whole.restart_inertia.size(), 4u);
  EXPECT_EQ(one.log_det,
            *std::min_element(whole.restart_inertia.begin(), whole.restart_inertia.end()));
  EXPECT_EQ(one.log_det, whole.restart_inertia[static_cast<std::size_t>(whole.restart)]);
  EXPECT_NEAR(one.log_det, naive_log_det(X, whole.labels, k), 1e-9);
  if (one.converged) {
    const NaiveTied ref = naive_tied(X, whole.labels, k);
    EXPECT_EQ(ref.rounds, 1);
    EXPECT_EQ(ref.labels, whole.labels);
  }
  // The restarts were not all alike (else the comparison proves nothing).
  EXPECT_GT(*std::max_element(whole.restart_inertia.begin(), whole.restart_inertia.end()),
            one.log_det + 1e-6);

  const Block b = block_partition(n, world.size(), world.rank());
  const MatrixRF local = X.middleRows(b.begin, b.size());
  KMeansResult res;
  int calls = 0;
  const TiedFit fit = tied_kmeans_restarts(local, tied_input(local, world), k, res, p, modes, world,
                                           [&] { ++calls; });
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(res.restart, whole.restart);
  EXPECT_EQ(res.labels, std::vector<std::int32_t>(whole.labels.begin() + b.begin,
                                                  whole.labels.begin() + b.end));
  EXPECT_NEAR(fit.log_det, one.log_det, 1e-12 * std::abs(one.log_det) + 1e-12);
}

TEST(TiedKMeans, ZeroColumnsStayOutOfTheWhitening) {
  // A view's unused block is all zero: it is left alone (identity), the rest is whitened.
  const Comm world = Comm::world();
  const std::int64_t n = 600;
  MatrixRF X = MatrixRF::Zero(n, 5);
  X.rightCols(3) = slabs(n);
  const Block b = block_partition(n, world.size(), world.rank());
  const MatrixRF local = X.middleRows(b.begin, b.size());
  KMeansParams p;
  p.k = "3";
  p.n_init = 1;
  KMeansResult res = kmeans(local, 3, p, world);
  const TiedFit fit = tied_kmeans(local, res, p, p.validate(), world);
  EXPECT_TRUE(fit.whitening.topLeftCorner(2, 2).isIdentity(0));
  EXPECT_TRUE(fit.whitening.topRightCorner(2, 3).isZero(0));
  EXPECT_TRUE(fit.whitening.bottomLeftCorner(3, 2).isZero(0));
  EXPECT_TRUE(fit.Z.leftCols(2).isZero(0));
  EXPECT_TRUE(fit.whitening.allFinite());
}

// `slabs` with m slabs (segment i % m), 4 apart along y.
MatrixRF slabs_of(std::int64_t n, int m) {
  MatrixRF X = slabs(n);
  for (std::int64_t i = 0; i < n; ++i)
    X(i, 1) += static_cast<float>(4.0 * static_cast<double>(i % m - i % 3));
  return X;
}

TEST(TiedSwaps, LeaveALocalOptimum) {
  // Four slabs, started with slabs 0 and 1 as one segment and slab 3 cut in two along its
  // length: whitening rounds keep that fit, one merge-split move reaches the slabs. The same
  // moves, labels and log det at any rank count; 0 tries leave the fit as it was.
  const Comm world = Comm::world(), serial;
  const std::int64_t n = 1200;
  const int k = 4;
  const MatrixRF X = slabs_of(n, k);
  std::vector<std::int32_t> truth(n), stuck(n);
  for (std::int64_t i = 0; i < n; ++i) {
    truth[i] = static_cast<std::int32_t>(i % k);
    const int slab = static_cast<int>(i % k);
    stuck[i] = slab <= 1 ? 0 : slab == 2 ? 1 : X(i, 0) < 0 ? 2 : 3;
  }
  KMeansParams p = exact_params(k, 1, 5);
  const KMeansModes modes = p.validate();
  const auto fit_from = [&](const Comm& c, const MatrixRF& rows,
                            const std::vector<std::int32_t>& labels, int tries, KMeansResult& res) {
    res = KMeansResult();
    res.k = k;
    res.labels = labels;
    const TiedInput in = tied_input(rows, c);
    TiedFit fit = tied_kmeans(rows, in, res, p, modes, c);
    tied_swap_refine(rows, in, res, fit, tries, p, modes, c);
    return fit;
  };
  KMeansResult before, after, planted;
  const TiedFit f0 = fit_from(serial, X, stuck, 0, before);
  EXPECT_EQ(before.swaps, 0);
  EXPECT_EQ(before.swap_runs, 0);
  EXPECT_LT(ari(before.labels, truth), 0.8) << "the start should be a local optimum";
  const TiedFit f1 = fit_from(serial, X, stuck, 5, after);
  const TiedFit ft = fit_from(serial, X, truth, 0, planted);
  EXPECT_GE(after.swaps, 1);
  EXPECT_GE(after.swap_runs, after.swaps);
  EXPECT_GT(ari(after.labels, truth), 0.99);
  EXPECT_LT(f1.log_det, f0.log_det - 0.1);
  EXPECT_NEAR(f1.log_det, ft.log_det, 1e-9);
  EXPECT_NEAR(f1.log_det, naive_log_det(X, after.labels, k), 1e-9);
  // Already at the planted fit: every move is tried and none is kept.
  KMeansResult again = after;
  TiedFit f2 = f1;
  const int runs = again.swap_runs;
  tied_swap_refine(X, tied_input(X, serial), again, f2, 5, p, modes, serial);
  EXPECT_EQ(again.swaps, after.swaps);
  EXPECT_GT(again.swap_runs, runs);
  EXPECT_EQ(again.labels, after.labels);
  EXPECT_EQ(f2.log_det, f1.log_det);

  const Block b = block_partition(n, world.size(), world.rank());
  const auto part = [&](const std::vector<std::int32_t>& v) {
    return std::vector<std::int32_t>(v.begin() + b.begin, v.begin() + b.end);
  };
  KMeansResult res;
  const TiedFit fit = fit_from(world, X.middleRows(b.begin, b.size()), part(stuck), 5, res);
  EXPECT_EQ(res.swaps, after.swaps);
  EXPECT_EQ(res.swap_runs, after.swap_runs);
  EXPECT_EQ(res.labels, part(after.labels));
  EXPECT_NEAR(fit.log_det, f1.log_det, 1e-9 * std::abs(f1.log_det) + 1e-12);
}

TEST(TiedKMeans, TheWhiteningTravelsWithTheView) {
  // segments.h5 (and the serving bundle, through the same calls) keeps the whitening; a file
  // without one reads back as unwhitened.
  const Comm world = Comm::world();
  const std::string dir = testing_tmp::scratch_dir("tied", world);
  ViewTransform v;
  v.view = ClusterView::kValue;
  v.interest_dims = 2;
  v.value_dims = 3;
  v.interest_weight = 0;
  v.whitening = MatrixRD::Identity(5, 5);
  v.whitening.bottomRightCorner(3, 3) << 0.5, 0, 0, -0.25, 2, 0, 0.125, 1, 4;
  for (const bool whitened : {true, false}) {
    ViewTransform w = v;
    if (!whitened) w.whitening.resize(0, 0);
    const std::string path = dir + "/view" + std::to_string(whitened) + ".h5";
    {
      h5::File f = h5::File::create(path, world, kSegmentsFormat);
      write_view(f, "/", w);
      f.commit();
    }
    const h5::File f = h5::File::open(path, world, kSegmentsFormat);
    const ViewTransform back = read_view(f, "/");
    EXPECT_EQ(back.name(), "value");
    ASSERT_EQ(back.whitened(), whitened);
    if (whitened) {
      EXPECT_EQ(back.whitening, v.whitening);
    }
    float row[5] = {1, 2, 3, 4, 5};
    back.apply(row, 5);
    const Eigen::Vector3d want =
        whitened ? Eigen::Vector3d(v.whitening.bottomRightCorner(3, 3) * Eigen::Vector3d(3, 4, 5))
                 : Eigen::Vector3d(3, 4, 5);
    EXPECT_FLOAT_EQ(row[0], 0);
    EXPECT_FLOAT_EQ(row[2], static_cast<float>(want(0)));
    EXPECT_FLOAT_EQ(row[3], static_cast<float>(want(1)));
    EXPECT_FLOAT_EQ(row[4], static_cast<float>(want(2)));
  }
}

}  // namespace
}  // namespace segrec
