// K-means on a serial communicator: differential checks against a naive double
// implementation, edge cases, initialisations, quality figures, parameters.
// GCC 12 false positives inside its AVX-512 intrinsics as inlined by Eigen (see kmeans.cpp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <tuple>

#include "../src/segmentation/kmeans/internal.hpp"  // sample_indices: the silhouette sample
#include "kmeans_reference.hpp"
#include "scratch_dir.hpp"
#include "segrec/core/error.hpp"
#include "segrec/segmentation/kmeans/init.hpp"
#include "segrec/segmentation/kmeans/kmeans.hpp"
#include "segrec/segmentation/kmeans/output.hpp"
#include "segrec/segmentation/kmeans/quality.hpp"

namespace segrec {
namespace {

using testing_ref::make_blobs;
using testing_ref::max_rel_diff;
using testing_ref::naive_kmeans;

std::string scratch_dir() { return testing_tmp::scratch_dir("kmeans_unit"); }

KMeansParams params(const std::string& k, const std::string& init = "k-means++") {
  KMeansParams p;
  p.k = k;
  p.init = init;
  p.threads = 1;
  return p;
}

MatrixRF first_rows(const MatrixRF& X, std::int64_t k) { return X.topRows(k); }

std::set<std::vector<float>> row_set(const MatrixRF& M) {
  std::set<std::vector<float>> s;
  for (Eigen::Index i = 0; i < M.rows(); ++i)
    s.insert(std::vector<float>(M.row(i).data(), M.row(i).data() + M.cols()));
  return s;
}

// ---- differential: fast float/GEMM Lloyd vs naive double Lloyd from the same init ----------

struct DiffCase {
  std::int64_t n, h;
  int blobs, k;
  double spread;
  std::uint64_t seed;
};

class Differential : public ::testing::TestWithParam<std::tuple<DiffCase, std::string /*kernel*/>> {
};

TEST_P(Differential, SameAssignmentsAndCentroidsAsNaiveDouble) {
  const auto& [c, kernel] = GetParam();
  const MatrixRF X = make_blobs(c.n, c.h, c.blobs, c.spread, c.seed);
  const MatrixRF init = first_rows(X, c.k);
  KMeansParams p = params(std::to_string(c.k));
  p.tol = 0;
  p.kernel = kernel;
  const Comm comm;
  const KMeansResult fast = lloyd(X, init, p, comm);
  const auto ref = naive_kmeans(X, init, p.max_iter, 0.0);
  EXPECT_EQ(fast.labels, ref.labels);
  EXPECT_EQ(fast.n_iter, ref.n_iter);
  EXPECT_LE(max_rel_diff(fast.centroids, ref.centroids), 1e-5);
  EXPECT_NEAR(fast.inertia, ref.inertia, 1e-5 * ref.inertia);
  EXPECT_TRUE(fast.converged);
  std::vector<std::int64_t> sizes(static_cast<std::size_t>(c.k), 0);
  for (const auto l : ref.labels) sizes[l] += 1;
  EXPECT_EQ(fast.sizes, sizes);
}

std::vector<std::string> kernels() {
#ifdef __AVX512F__
  return {"fused", "gemm"};
#else
  return {"gemm"};
#endif
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, Differential,
    ::testing::Combine(
        ::testing::Values(DiffCase{600, 5, 6, 6, 8.0, 1},        // separated blobs
                          DiffCase{500, 8, 3, 7, 2.0, 2},        // overlapping, k > blobs
                          DiffCase{1000, 17, 10, 10, 5.0, 3},    // h not a multiple of 16
                          DiffCase{700, 64, 40, 40, 3.0, 4},     // k > 16 lanes
                          DiffCase{300, 3, 4, 4, 1.0, 5},        // k < 16 lanes
                          DiffCase{2000, 32, 100, 100, 4.0, 6},  // k with a lane tail
                          DiffCase{1500, 10, 8, 37, 1.0, 7}),    // many small clusters
        ::testing::ValuesIn(kernels())));

TEST(KMeans, MaxIterStopsWithConsistentLabels) {
  const MatrixRF X = make_blobs(800, 6, 5, 1.5, 11);
  KMeansParams p = params("12");
  p.tol = 0;
  p.max_iter = 3;
  const Comm comm;
  const auto fast = lloyd(X, first_rows(X, 12), p, comm);
  const auto ref = naive_kmeans(X, first_rows(X, 12), 3, 0.0);
  EXPECT_EQ(fast.n_iter, 3);
  ASSERT_EQ(fast.iterations.size(), 3u);
  EXPECT_EQ(fast.labels, ref.labels);
  EXPECT_LE(max_rel_diff(fast.centroids, ref.centroids), 1e-5);
  EXPECT_NEAR(fast.inertia, ref.inertia, 1e-5 * ref.inertia);
  // Per-iteration statistics: all users change in the first iteration, inertia falls.
  EXPECT_EQ(fast.iterations[0].changed, 800);
  for (std::size_t i = 1; i < fast.iterations.size(); ++i)
    EXPECT_LE(fast.iterations[i].inertia, fast.iterations[i - 1].inertia * (1 + 1e-6));
}

TEST(KMeans, ToleranceRuleIsScaledByMeanVariance) {
  // Shift <= tol * mean variance: a huge tol stops after one iteration, converged.
  const MatrixRF X = make_blobs(400, 4, 3, 5.0, 12);
  KMeansParams p = params("3");
  p.tol = 1e6;
  const Comm comm;
  const auto r = lloyd(X, first_rows(X, 3), p, comm);
  EXPECT_EQ(r.n_iter, 1);
  EXPECT_TRUE(r.converged);
  // Scaling the data by 10 scales shifts and variance alike: same iteration count.
  KMeansParams q = params("3");
  q.tol = 1e-3;
  const auto a = lloyd(X, first_rows(X, 3), q, comm);
  const MatrixRF X10 = X * 10.0f;
  const auto b = lloyd(X10, first_rows(X10, 3), q, comm);
  EXPECT_EQ(a.n_iter, b.n_iter);
  EXPECT_EQ(a.labels, b.labels);
}

TEST(KMeans, ResultsDoNotDependOnThreadCount) {
  const MatrixRF X = make_blobs(5000, 24, 12, 3.0, 13);  // several row blocks and tasks
  const Comm comm;
  for (const auto& kernel : kernels()) {
    KMeansParams p = params("20");
    p.max_iter = 20;
    p.kernel = kernel;
    p.threads = 1;
    const auto a = kmeans(X, 20, p, comm);
    for (int t : {2, 3, 7}) {
      p.threads = t;
      const auto b = kmeans(X, 20, p, comm);
      EXPECT_EQ(a.labels, b.labels) << t << " threads, " << kernel;
      EXPECT_EQ(a.centroids, b.centroids) << t << " threads, " << kernel;  // bit-identical
      EXPECT_EQ(a.inertia, b.inertia) << t << " threads, " << kernel;
    }
  }
}

TEST(KMeans, KernelsAgree) {
  // Same labels from both assignment kernels on data without near-ties.
  const MatrixRF X = make_blobs(3001, 19, 7, 4.0, 14);
  const Comm comm;
  KMeansParams p = params("53");
  p.max_iter = 15;
  p.kernel = "gemm";
  const auto a = kmeans(X, 53, p, comm);
  for (const auto& kernel : kernels()) {
    p.kernel = kernel;
    const auto b = kmeans(X, 53, p, comm);
    EXPECT_EQ(a.labels, b.labels) << kernel;
    EXPECT_LE(max_rel_diff(a.centroids, b.centroids), 1e-12) << kernel;
  }
}

// ---- Hamerly's bounds: exact Lloyd with pruning --------------------------------------------

/// Runs Lloyd and Hamerly from the same init; both must agree exactly, every iteration.
/// Returns the users Hamerly compared with all centroids over all iterations.
std::int64_t expect_hamerly_equals_lloyd(const MatrixRF& X, const MatrixRF& init, KMeansParams p,
                                         const std::string& what) {
  const Comm comm;
  p.algorithm = "lloyd";
  const auto a = lloyd(X, init, p, comm);
  p.algorithm = "hamerly";
  const auto b = lloyd(X, init, p, comm);
  EXPECT_EQ(a.labels, b.labels) << what;
  EXPECT_EQ(a.n_iter, b.n_iter) << what;
  EXPECT_EQ(a.centroids, b.centroids) << what;  // same sums in the same order: bit-identical
  EXPECT_LE(max_rel_diff(a.centroids, b.centroids), 1e-6) << what;
  EXPECT_EQ(a.inertia, b.inertia) << what;
  EXPECT_EQ(a.sizes, b.sizes) << what;
  EXPECT_EQ(a.relocated, b.relocated) << what;
  EXPECT_EQ(a.converged, b.converged) << what;
  std::int64_t recomputed = 0;
  if (a.iterations.size() != b.iterations.size()) return -1;
  for (std::size_t i = 0; i < a.iterations.size(); ++i) {
    EXPECT_EQ(a.iterations[i].changed, b.iterations[i].changed) << what << " iteration " << i;
    EXPECT_EQ(a.iterations[i].inertia, b.iterations[i].inertia) << what << " iteration " << i;
    EXPECT_EQ(a.iterations[i].shift, b.iterations[i].shift) << what << " iteration " << i;
    EXPECT_EQ(a.iterations[i].recomputed, X.rows()) << what;
    recomputed += b.iterations[i].recomputed;
  }
  if (!b.iterations.empty()) {
    EXPECT_EQ(b.iterations[0].recomputed, X.rows()) << what;
  }
  return recomputed;
}

TEST(KMeansHamerly, SameLabelsCentroidsAndIterationsAsLloyd) {
  struct Case {
    std::int64_t n, h;
    int blobs, k;
    double spread;
    std::uint64_t seed;
  };
  for (const Case c : {Case{3000, 16, 20, 20, 4.0, 31}, Case{2500, 64, 40, 40, 3.0, 32},
                       Case{4000, 17, 10, 37, 1.0, 33}, Case{2000, 8, 6, 16, 0.5, 34},
                       Case{1500, 3, 30, 60, 2.0, 35}}) {
    const MatrixRF X = make_blobs(c.n, c.h, c.blobs, c.spread, c.seed);
    for (const auto& kernel : kernels())
      for (const int threads : {1, 2, 3}) {
        KMeansParams p = params(std::to_string(c.k));
        p.tol = 0;
        p.kernel = kernel;
        p.threads = threads;
        const std::string what = "seed " + std::to_string(c.seed) + " " + kernel + " " +
                                 std::to_string(threads) + " threads";
        const auto rec = expect_hamerly_equals_lloyd(X, first_rows(X, c.k), p, what);
        // The bounds must prune: far fewer full comparisons than Lloyd's n per iteration.
        const auto a = lloyd(X, first_rows(X, c.k), p, Comm());
        EXPECT_LT(rec, X.rows() * static_cast<std::int64_t>(a.n_iter)) << what;
        if (c.spread >= 3.0 && a.n_iter > 3) {
          EXPECT_LT(rec, X.rows() * static_cast<std::int64_t>(a.n_iter) / 2) << what;
        }
      }
  }
}

TEST(KMeansHamerly, DuplicatePointsAndTiedCentroids) {
  // Many exact duplicates and initial centroids that coincide (every user ties between
  // them): the smallest index must win exactly as in Lloyd.
  MatrixRF base = make_blobs(60, 5, 4, 3.0, 36);
  MatrixRF X(1200, 5);
  for (Eigen::Index i = 0; i < X.rows(); ++i) X.row(i) = base.row((i * 7) % 60);
  MatrixRF init(20, 5);
  for (Eigen::Index j = 0; j < 20; ++j) init.row(j) = X.row(j % 10);
  for (const auto& kernel : kernels())
    for (const int threads : {1, 4}) {
      KMeansParams p = params("20");
      p.tol = 0;
      p.kernel = kernel;
      p.threads = threads;
      expect_hamerly_equals_lloyd(X, init, p, "duplicates " + kernel);
    }
}

TEST(KMeansHamerly, EmptyClusterRelocationResetsTheBounds) {
  const MatrixRF X = make_blobs(2000, 6, 12, 4.0, 37);
  MatrixRF init = first_rows(X, 24);
  for (int j = 3; j < 24; j += 5) init.row(j).setConstant(800.0f + j);
  for (const auto& kernel : kernels()) {
    KMeansParams p = params("24");
    p.tol = 0;
    p.kernel = kernel;
    p.threads = 2;
    expect_hamerly_equals_lloyd(X, init, p, "relocation " + kernel);
    p.algorithm = "hamerly";
    EXPECT_GE(lloyd(X, init, p, Comm()).relocated, 5) << kernel;
  }
}

TEST(KMeansHamerly, SphericalAndRestarts) {
  const MatrixRF X = normalize_rows(make_blobs(2500, 12, 18, 2.0, 38));
  for (const auto& kernel : kernels()) {
    KMeansParams p = params("18");
    p.tol = 0;
    p.spherical = true;
    p.kernel = kernel;
    expect_hamerly_equals_lloyd(X, first_rows(X, 18), p, "spherical " + kernel);
    // Full runs with restarts (fresh bounds for each) and the default tolerance.
    KMeansParams q = params("18");
    q.n_init = 3;
    q.kernel = kernel;
    q.algorithm = "lloyd";
    const auto a = kmeans(X, 18, q, Comm());
    q.algorithm = "hamerly";
    const auto b = kmeans(X, 18, q, Comm());
    EXPECT_EQ(a.labels, b.labels) << kernel;
    EXPECT_EQ(a.centroids, b.centroids) << kernel;
    EXPECT_EQ(a.restart, b.restart) << kernel;
    EXPECT_EQ(a.n_iter, b.n_iter) << kernel;
  }
}

TEST(KMeansHamerly, AutoChoosesByKTimesDims) {
  KMeansParams p = params("4");
  EXPECT_FALSE(p.use_hamerly(16, 32));
  EXPECT_FALSE(p.use_hamerly(127, 32));
  EXPECT_TRUE(p.use_hamerly(128, 32));
  EXPECT_TRUE(p.use_hamerly(64, 64));
  p.algorithm = "lloyd";
  EXPECT_FALSE(p.use_hamerly(256, 64));
  p.algorithm = "hamerly";
  EXPECT_TRUE(p.use_hamerly(2, 2));
}

// ---- edge cases ------------------------------------------------------------------------

TEST(KMeansEdge, OneClusterIsTheMean) {
  const MatrixRF X = make_blobs(300, 5, 3, 4.0, 21);
  const Comm comm;
  const auto r = kmeans(X, 1, params("1"), comm);
  const Eigen::RowVectorXd mean = X.cast<double>().colwise().mean();
  EXPECT_LE((r.centroids.row(0) - mean).cwiseAbs().maxCoeff(), 1e-6);
  EXPECT_EQ(r.sizes, std::vector<std::int64_t>{300});
  double ss = 0;
  for (Eigen::Index i = 0; i < X.rows(); ++i) ss += (X.row(i).cast<double>() - mean).squaredNorm();
  EXPECT_NEAR(r.inertia, ss, 1e-6 * ss);
  EXPECT_TRUE(r.converged);
}

TEST(KMeansEdge, AsManyClustersAsUsers) {
  const MatrixRF X = make_blobs(40, 3, 4, 5.0, 22);
  const Comm comm;
  for (const std::string init : {"k-means++", "k-means||", "random"}) {
    const auto r = kmeans(X, 40, params("40", init), comm);
    EXPECT_EQ(r.inertia, 0.0) << init;
    EXPECT_EQ(r.sizes, std::vector<std::int64_t>(40, 1)) << init;
    std::set<std::int32_t> distinct(r.labels.begin(), r.labels.end());
    EXPECT_EQ(distinct.size(), 40u) << init;
  }
}

TEST(KMeansEdge, MoreClustersThanUsersIsADataError) {
  const MatrixRF X = make_blobs(10, 3, 2, 5.0, 23);
  const Comm comm;
  try {
    kmeans(X, 11, params("11"), comm);
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_EQ(e.code(), kExitData);
    EXPECT_TRUE(e.collective());
    EXPECT_NE(std::string(e.what()).find("11"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cluster(X, params("2:12"), comm), DataError);
}

TEST(KMeansEdge, DuplicatePointsFormTheirOwnClusters) {
  // 5 distinct points, each repeated a different number of times; k = 5.
  MatrixRF X(0, 2);
  const float pts[5][2] = {{0, 0}, {10, 0}, {0, 10}, {10, 10}, {5, 30}};
  std::vector<std::int64_t> reps = {3, 7, 1, 12, 5};
  for (int r = 0; r < 12; ++r)
    for (int p = 0; p < 5; ++p)
      if (r < reps[p]) {
        X.conservativeResize(X.rows() + 1, 2);
        X(X.rows() - 1, 0) = pts[p][0];
        X(X.rows() - 1, 1) = pts[p][1];
      }
  const Comm comm;
  for (const std::string init : {"k-means++", "k-means||"}) {
    const auto r = kmeans(X, 5, params("5", init), comm);
    EXPECT_EQ(r.inertia, 0.0) << init;
    std::vector<std::int64_t> sizes = r.sizes;
    std::sort(sizes.begin(), sizes.end());
    EXPECT_EQ(sizes, (std::vector<std::int64_t>{1, 3, 5, 7, 12})) << init;
  }
}

TEST(KMeansEdge, AllPointsIdentical) {
  MatrixRF X = MatrixRF::Constant(50, 4, 2.5f);
  const Comm comm;
  for (const std::string init : {"k-means++", "k-means||", "random"}) {
    const auto r = kmeans(X, 3, params("3", init), comm);
    EXPECT_EQ(r.inertia, 0.0) << init;
    EXPECT_TRUE(r.centroids.allFinite()) << init;
    EXPECT_LE((r.centroids.array() - 2.5).abs().maxCoeff(), 1e-12) << init;
    std::int64_t total = 0;
    for (const auto s : r.sizes) total += s;
    EXPECT_EQ(total, 50) << init;
    EXPECT_TRUE(r.converged) << init;
  }
}

TEST(KMeansEdge, EmptyClusterIsRelocatedToTheFarthestUser) {
  // One initial centroid far from all data: empty after the first assignment.
  const MatrixRF X = make_blobs(500, 3, 4, 6.0, 24);
  MatrixRF init = first_rows(X, 5);
  init.row(2).setConstant(1000.0f);
  KMeansParams p = params("5");
  p.tol = 0;
  const Comm comm;
  const auto fast = lloyd(X, init, p, comm);
  const auto ref = naive_kmeans(X, init, p.max_iter, 0.0);
  EXPECT_GE(ref.relocated, 1);
  EXPECT_EQ(fast.relocated, ref.relocated);
  EXPECT_EQ(fast.iterations[0].relocated, 1);
  EXPECT_EQ(fast.labels, ref.labels);
  EXPECT_LE(max_rel_diff(fast.centroids, ref.centroids), 1e-5);
  for (const auto s : fast.sizes) EXPECT_GT(s, 0);
  // After the first iteration the relocated centroid sits on the farthest user from its
  // assigned centroid.
  double far = -1;
  std::int64_t far_i = -1;
  for (Eigen::Index i = 0; i < X.rows(); ++i) {
    double best = 1e300;
    for (int j = 0; j < 5; ++j)
      best = std::min(best, (X.row(i) - init.row(j)).cast<double>().squaredNorm());
    if (best > far) {
      far = best;
      far_i = i;
    }
  }
  KMeansParams one = p;
  one.max_iter = 1;
  const auto r1 = lloyd(X, init, one, comm);
  EXPECT_LE((r1.centroids.row(2) - X.row(far_i).cast<double>()).cwiseAbs().maxCoeff(), 0.0);
}

TEST(KMeansEdge, SeveralEmptyClustersTakeDistinctUsers) {
  const MatrixRF X = make_blobs(300, 2, 3, 5.0, 25);
  MatrixRF init = first_rows(X, 6);
  for (int j = 2; j < 6; ++j) init.row(j).setConstant(500.0f + j);
  KMeansParams p = params("6");
  p.tol = 0;
  const Comm comm;
  const auto fast = lloyd(X, init, p, comm);
  const auto ref = naive_kmeans(X, init, p.max_iter, 0.0);
  EXPECT_EQ(fast.iterations[0].relocated, 4);
  EXPECT_EQ(fast.labels, ref.labels);
  EXPECT_LE(max_rel_diff(fast.centroids, ref.centroids), 1e-5);
}

// ---- initialisation -----------------------------------------------------------------------

TEST(KMeansInit, EveryMethodPicksDistinctDataRows) {
  const MatrixRF X = make_blobs(400, 6, 8, 3.0, 31);
  const auto data_rows = row_set(X);
  const Comm comm;
  for (const std::string init : {"k-means++", "k-means||", "random"}) {
    const MatrixRF C = init_centroids(X, 16, params("16", init), 0, comm);
    ASSERT_EQ(C.rows(), 16) << init;
    for (const auto& r : row_set(C)) EXPECT_TRUE(data_rows.count(r)) << init;
    EXPECT_EQ(row_set(C).size(), 16u) << init;
    // Same seed, same centroids; another seed or restart, others.
    EXPECT_EQ(C, init_centroids(X, 16, params("16", init), 0, comm)) << init;
    EXPECT_NE(C, init_centroids(X, 16, params("16", init), 1, comm)) << init;
  }
}

TEST(KMeansInit, SeedingFindsWellSeparatedBlobs) {
  // 6 tight blobs far apart: D^2 seeding puts one centre in each.
  const MatrixRF X = make_blobs(600, 4, 6, 200.0, 32);
  const Comm comm;
  for (const std::string init : {"k-means++", "k-means||"}) {
    const MatrixRF C = init_centroids(X, 6, params("6", init), 0, comm);
    std::set<int> blobs;
    for (Eigen::Index j = 0; j < C.rows(); ++j) {
      double best = 1e300;
      int bb = -1;
      for (int b = 0; b < 6; ++b) {
        const double d = (C.row(j) - X.row(b)).cast<double>().squaredNorm();
        if (d < best) {
          best = d;
          bb = b;
        }
      }
      blobs.insert(bb);
    }
    EXPECT_EQ(blobs.size(), 6u) << init;
  }
}

TEST(KMeansInit, WeightedPlusPlusIgnoresZeroWeightRows) {
  const MatrixRF X = make_blobs(60, 3, 6, 50.0, 33);
  std::vector<double> w(60, 0.0);
  for (int i = 0; i < 60; i += 6) w[i] = 1.0;  // only blob 0 counts
  w[1] = 5.0;                                  // and one point of blob 1
  const Comm comm;
  const MatrixRF C = kmeans_plus_plus(X, w, 2, 77, 1, comm);
  std::set<std::vector<float>> allowed;
  for (int i = 0; i < 60; ++i)
    if (w[i] > 0) allowed.insert(std::vector<float>(X.row(i).data(), X.row(i).data() + 3));
  for (const auto& r : row_set(C)) EXPECT_TRUE(allowed.count(r));
}

TEST(KMeansInit, ParallelTopsUpWhenTooFewCandidates) {
  const MatrixRF X = make_blobs(200, 3, 4, 5.0, 34);
  KMeansParams p = params("30", "k-means||");
  p.init_rounds = 1;
  p.oversampling_factor = 0.5;  // about one candidate
  const Comm comm;
  const MatrixRF C = init_centroids(X, 30, p, 0, comm);
  EXPECT_EQ(C.rows(), 30);
  EXPECT_EQ(row_set(C).size(), 30u);
}

TEST(KMeansInit, RestartsKeepTheLowestInertia) {
  const MatrixRF X = make_blobs(600, 5, 9, 2.0, 35);
  KMeansParams p = params("9", "random");
  p.swap_tries = 0;  // the restarts alone: no merge-split moves after the winner
  const Comm comm;
  const auto one = kmeans(X, 9, p, comm);
  p.n_init = 6;
  p.restart_iters = 0;  // every restart runs to the end
  const auto six = kmeans(X, 9, p, comm);
  EXPECT_LE(six.inertia, one.inertia);
  double best = 1e300;
  for (int r = 0; r < 6; ++r) {
    const auto c0 = init_centroids(X, 9, p, r, comm);
    best = std::min(best, lloyd(X, c0, p, comm).inertia);
  }
  EXPECT_EQ(six.inertia, best);
}

TEST(KMeansInit, AutoRestartsBySize) {
  KMeansParams p = params("4");
  p.n_init = 0;
  EXPECT_EQ(p.restarts(100000, 16, 32), 3);   // 5.1e7
  EXPECT_EQ(p.restarts(1000000, 16, 32), 1);  // 5.1e8
  EXPECT_EQ(p.restarts(300000, 256, 64), 1);
  p.n_init = 5;
  EXPECT_EQ(p.restarts(1000000, 16, 32), 5);
  // The auto rule on a small set: 3 restarts, one chosen.
  p.n_init = 0;
  const auto r = kmeans(make_blobs(500, 4, 4, 3.0, 37), 4, p, Comm());
  EXPECT_EQ(r.restart_inertia.size(), 3u);
}

TEST(KMeansInit, ScreenedRestartsGoOnAsTheWinnerAlone) {
  // n_init restarts of restart_iters iterations; the lowest inertia then goes on: the same
  // labels, centroids and iterations as that restart run alone to the end.
  const MatrixRF X = make_blobs(3000, 6, 12, 1.0, 36);
  const Comm comm;
  for (const std::string alg : {"lloyd", "hamerly"})
    for (const bool spherical : {false, true}) {
      KMeansParams p = params("12");
      p.algorithm = alg;
      p.spherical = spherical;
      p.n_init = 4;
      p.restart_iters = 3;
      p.swap_tries = 0;  // the winner alone: no merge-split moves after it
      p.tol = 0;
      const auto r = kmeans(X, 12, p, comm);
      ASSERT_EQ(r.restart_inertia.size(), 4u);
      // The winner had the lowest inertia after 3 iterations.
      for (const double v : r.restart_inertia) EXPECT_LE(r.restart_inertia[r.restart], v);
      const MatrixRF Xs = spherical ? normalize_rows(X) : X;
      const MatrixRF c0 = init_centroids(Xs, 12, p, r.restart, comm);
      const auto alone = lloyd(Xs, c0, p, comm);
      const std::string what = alg + (spherical ? " spherical" : "");
      EXPECT_GT(alone.n_iter, 3) << what;  // the screening stopped it early
      EXPECT_EQ(r.labels, alone.labels) << what;
      EXPECT_EQ(r.centroids, alone.centroids) << what;
      EXPECT_EQ(r.n_iter, alone.n_iter) << what;
      EXPECT_EQ(r.inertia, alone.inertia) << what;
      EXPECT_EQ(r.converged, alone.converged) << what;
      ASSERT_EQ(r.iterations.size(), alone.iterations.size()) << what;
      for (std::size_t i = 0; i < r.iterations.size(); ++i) {
        EXPECT_EQ(r.iterations[i].inertia, alone.iterations[i].inertia) << what << " " << i;
        EXPECT_EQ(r.iterations[i].changed, alone.iterations[i].changed) << what << " " << i;
      }
      // restart_iters 0: every restart to the end, the lowest final inertia wins.
      p.restart_iters = 0;
      const auto full = kmeans(X, 12, p, comm);
      for (int s = 0; s < 4; ++s)
        EXPECT_LE(full.inertia, lloyd(Xs, init_centroids(Xs, 12, p, s, comm), p, comm).inertia)
            << what;
    }
}

// Four blobs (row i in blob i % 4) fit from a trap and from the true centres, k = 4, serial;
// refine(trapped, tries) runs the moves.
struct SwapCase {
  testing_ref::LineBlobs b;
  Comm comm;
  KMeansParams p = params("4");
  KMeansModes m = p.validate();
  kmeans_detail::Layout L = kmeans_detail::make_layout(b.X.rows(), comm);
  kmeans_detail::Exec ex = kmeans_detail::exec_of(p, m);
  double tol = p.tol * kmeans_detail::mean_variance(b.X, L, comm);
  KMeansResult trapped = kmeans_detail::lloyd_impl(b.X, L, b.trap, p, m, tol, ex, comm);
  KMeansResult best = kmeans_detail::lloyd_impl(b.X, L, b.truth, p, m, tol, ex, comm);

  explicit SwapCase(testing_ref::LineBlobs blobs) : b(std::move(blobs)) {}
  KMeansResult refine(const KMeansResult& from, int tries) const {
    return kmeans_detail::swap_refine(b.X, L, from, tries, p, m, tol, ex, comm);
  }
  // One label per blob, four distinct.
  void expect_blobs(const KMeansResult& r) const {
    std::set<std::pair<int, std::int32_t>> pairs;
    for (std::int64_t i = 0; i < b.X.rows(); ++i)
      pairs.insert({static_cast<int>(i % 4), r.labels[static_cast<std::size_t>(i)]});
    EXPECT_EQ(pairs.size(), 4u);
    std::set<std::int32_t> labels(r.labels.begin(), r.labels.end());
    EXPECT_EQ(labels.size(), 4u);
  }
};

TEST(KMeansSwaps, LeaveALocalOptimum) {
  // Lloyd from the trap keeps blob 0 split and blobs 2 and 3 under one centroid; one move
  // (merge the halves of blob 0, cut blobs 2 and 3 in two by 2-means) reaches the blobs,
  // whose fit is Lloyd's from the true centres.
  const SwapCase c(testing_ref::line_blobs(200, 3));
  ASSERT_GT(c.trapped.inertia, 3 * c.best.inertia);  // the trap holds without moves
  const auto r = c.refine(c.trapped, 5);
  EXPECT_GE(r.swaps, 1);
  // Each pair's candidates: cut anew, then merged with the widest other cluster split.
  EXPECT_LE(r.swap_runs, 2 * 5 * (r.swaps + 1));
  EXPECT_GE(r.swap_runs, r.swaps + 2 * 5);  // each kept move, then 5 pairs that gain nothing
  EXPECT_NEAR(r.inertia, c.best.inertia, 1e-9 * c.best.inertia);
  EXPECT_GT(r.n_iter, c.trapped.n_iter);
  c.expect_blobs(r);
  // 0 tries, or a fit no move improves: unchanged.
  const auto off = c.refine(c.trapped, 0);
  EXPECT_EQ(off.labels, c.trapped.labels);
  EXPECT_EQ(off.inertia, c.trapped.inertia);
  EXPECT_EQ(off.swap_runs, 0);
  const auto kept = c.refine(c.best, 3);
  EXPECT_EQ(kept.labels, c.best.labels);
  EXPECT_EQ(kept.swaps, 0);
  EXPECT_EQ(kept.swap_runs, 2 * 3);
}

TEST(KMeansSwaps, CutAPairAnew) {
  // Two centroids cut bars 0 and 1 together across their long axis; no merge-split move
  // helps (every other cluster is one blob), but cutting the pair anew from the principal
  // axis of their union, the first candidate of the cheapest pair, reaches the bars.
  const SwapCase c(testing_ref::crossed_blobs(500, 5));
  ASSERT_GT(c.trapped.inertia, 1.3 * c.best.inertia);  // the trap holds without moves
  const auto r = c.refine(c.trapped, 1);
  EXPECT_EQ(r.swaps, 1);
  EXPECT_NEAR(r.inertia, c.best.inertia, 1e-9 * c.best.inertia);
  c.expect_blobs(r);
}

TEST(KMeansSwaps, AutoRuleAndDefaultPath) {
  KMeansParams p = params("4");
  EXPECT_EQ(p.swaps(1000, 2, 8), 0);  // no third segment to split
  EXPECT_EQ(p.swaps(1000, 16, 32), 5);
  EXPECT_EQ(p.swaps(1000000, 16, 32), 0);  // users * k * dims > 1e8
  p.swap_tries = 2;
  EXPECT_EQ(p.swaps(1000000, 16, 32), 2);
  // kmeans() with the defaults never ends above its own restarts' best, and a centroid file
  // (a warm start) is never moved.
  const auto b = testing_ref::line_blobs(150, 8);
  const Comm comm;
  KMeansParams q = params("4");
  const auto with = kmeans(b.X, 4, q, comm);
  q.swap_tries = 0;
  const auto without = kmeans(b.X, 4, q, comm);
  EXPECT_LE(with.inertia, without.inertia);
  q.swap_tries = -1;
  const MatrixRF trap = b.trap.cast<float>();
  const auto warm = kmeans(b.X, 4, q, comm, &trap);
  EXPECT_EQ(warm.swap_runs, 0);
  EXPECT_GT(warm.inertia, 3 * with.inertia);
}

TEST(KMeans, SphericalClustersByDirection) {
  // Two directions, magnitudes 1..100: Euclidean K-means splits by size, cosine by direction.
  MatrixRF X(200, 2);
  for (int i = 0; i < 200; ++i) {
    const float m = 1.0f + static_cast<float>(i / 2);
    const float eps = 0.01f * static_cast<float>(i % 7);
    if (i % 2 == 0) {
      X(i, 0) = m;
      X(i, 1) = eps * m;
    } else {
      X(i, 0) = eps * m;
      X(i, 1) = m;
    }
  }
  KMeansParams p = params("2");
  p.spherical = true;
  const Comm comm;
  const auto r = kmeans(X, 2, p, comm);
  for (int i = 2; i < 200; ++i) EXPECT_EQ(r.labels[i], r.labels[i % 2]) << i;
  EXPECT_NE(r.labels[0], r.labels[1]);
  for (int j = 0; j < 2; ++j) EXPECT_NEAR(r.centroids.row(j).norm(), 1.0, 1e-12);
}

// ---- quality figures: scikit-learn 1.2.1 values for this set ------------------------------

TEST(KMeansQuality, MatchesScikitLearnOnATinySet) {
  MatrixRF X(9, 2);
  X << 0, 0, 1, 0, 0, 2, 5, 5, 6, 5, 5, 7, 6, 7, 10, 0, 11, 1;
  const std::vector<std::int32_t> lab = {0, 0, 0, 1, 1, 1, 1, 2, 2};
  const Comm comm;
  // sklearn.metrics.silhouette_score(X, lab) = 0.7701850105707685
  EXPECT_NEAR(silhouette_score(X, lab, 3, 100, 1, 1, comm), 0.7701850105707685, 1e-6);
  // davies_bouldin_score = 0.2738767419678859
  EXPECT_NEAR(davies_bouldin_score(X, lab, 3, comm), 0.2738767419678859, 1e-12);
  // calinski_harabasz_score = 61.57142857142856
  EXPECT_NEAR(calinski_harabasz_score(X, lab, 3, comm), 61.57142857142856, 1e-9);
  // An unused label (k = 5) changes nothing.
  EXPECT_NEAR(davies_bouldin_score(X, lab, 5, comm), 0.2738767419678859, 1e-12);
  EXPECT_NEAR(calinski_harabasz_score(X, lab, 5, comm), 61.57142857142856, 1e-9);
}

TEST(KMeansQuality, HandComputedTwoByTwo) {
  // (0,0),(0,1) | (4,0),(4,1): a = 1, b = (4 + sqrt 17) / 2, s = 1 - a / b for every point;
  // DB = (0.5 + 0.5) / 4; CH = 16 * (4 - 2) / (1 * 1).
  MatrixRF X(4, 2);
  X << 0, 0, 0, 1, 4, 0, 4, 1;
  const std::vector<std::int32_t> lab = {0, 0, 1, 1};
  const Comm comm;
  const double b = (4.0 + std::sqrt(17.0)) / 2.0;
  std::int64_t used = 0;
  EXPECT_NEAR(silhouette_score(X, lab, 2, 10, 1, 2, comm, &used), 1.0 - 1.0 / b, 1e-6);
  EXPECT_EQ(used, 4);
  EXPECT_NEAR(davies_bouldin_score(X, lab, 2, comm), 0.25, 1e-12);
  EXPECT_NEAR(calinski_harabasz_score(X, lab, 2, comm), 32.0, 1e-9);
}

TEST(KMeansQuality, UndefinedCasesAreNaN) {
  MatrixRF X(3, 1);
  X << 0, 1, 2;
  const Comm comm;
  const std::vector<std::int32_t> one = {0, 0, 0}, each = {0, 1, 2};
  EXPECT_TRUE(std::isnan(silhouette_score(X, one, 1, 10, 1, 1, comm)));
  EXPECT_TRUE(std::isnan(davies_bouldin_score(X, one, 1, comm)));
  EXPECT_TRUE(std::isnan(calinski_harabasz_score(X, one, 1, comm)));
  EXPECT_TRUE(std::isnan(silhouette_score(X, each, 3, 10, 1, 1, comm)));
  const std::vector<std::int32_t> two = {0, 0, 1};
  EXPECT_FALSE(std::isnan(silhouette_score(X, two, 2, 10, 1, 1, comm)));
  EXPECT_TRUE(std::isnan(silhouette_score(X, two, 2, 0, 1, 1, comm)));  // disabled
}

TEST(KMeansQuality, SilhouetteSampleIsASubsetAverage) {
  const MatrixRF X = make_blobs(900, 4, 3, 6.0, 41);
  const Comm comm;
  const auto r = kmeans(X, 3, params("3"), comm);
  std::int64_t used = 0;
  const double full = silhouette_score(X, r.labels, 3, 100000, 5, 1, comm, &used);
  EXPECT_EQ(used, 900);
  // Direct O(n^2) silhouette in double.
  double total = 0;
  for (Eigen::Index i = 0; i < X.rows(); ++i) {
    std::vector<double> sum(3, 0.0), cnt(3, 0.0);
    for (Eigen::Index j = 0; j < X.rows(); ++j) {
      cnt[r.labels[j]] += 1;
      if (i != j) sum[r.labels[j]] += (X.row(i) - X.row(j)).cast<double>().norm();
    }
    const int own = r.labels[i];
    const double a = sum[own] / (cnt[own] - 1);
    double b = 1e300;
    for (int l = 0; l < 3; ++l)
      if (l != own) b = std::min(b, sum[l] / cnt[l]);
    total += (b - a) / std::max(a, b);
  }
  EXPECT_NEAR(full, total / 900, 1e-5);
  const double part = silhouette_score(X, r.labels, 3, 200, 5, 2, comm, &used);
  EXPECT_EQ(used, 200);
  EXPECT_NEAR(part, full, 0.05);
  EXPECT_EQ(part, silhouette_score(X, r.labels, 3, 200, 5, 1, comm));  // thread count
  EXPECT_NE(part, silhouette_score(X, r.labels, 3, 200, 6, 1, comm));  // seed picks sample
  // The sample is scored against itself: the exact silhouette of the sampled rows alone.
  const kmeans_detail::Layout L = kmeans_detail::make_layout(X.rows(), comm);
  auto ids = kmeans_detail::sample_indices(
      L, 200, kmeans_detail::key_of(5, kmeans_detail::kTagSilhouette), comm);
  std::sort(ids.begin(), ids.end());
  MatrixRF Xs(200, X.cols());
  std::vector<std::int32_t> ls;
  for (std::size_t s = 0; s < ids.size(); ++s) {
    Xs.row(static_cast<Eigen::Index>(s)) = X.row(ids[s]);
    ls.push_back(r.labels[ids[s]]);
  }
  EXPECT_NEAR(part, silhouette_score(Xs, ls, 3, 200, 5, 1, comm), 1e-9);
}

TEST(KMeansSweep, PicksTheTrueNumberOfBlobs) {
  const MatrixRF X = make_blobs(1200, 5, 5, 30.0, 51);
  const Comm comm;
  for (const std::string pick : {"silhouette", "db", "ch"}) {
    KMeansParams p = params("2:9");
    p.pick = pick;
    p.n_init = 3;
    const auto run = cluster(X, p, comm);
    ASSERT_EQ(run.sweep.size(), 8u);
    EXPECT_EQ(run.result.k, 5) << pick;
    for (std::size_t i = 0; i < run.sweep.size(); ++i)
      EXPECT_EQ(run.sweep[i].k, static_cast<std::int64_t>(2 + i));
  }
  KMeansParams p = params("3:9:3");
  const auto run = cluster(X, p, comm);
  ASSERT_EQ(run.sweep.size(), 3u);
  EXPECT_EQ(run.sweep[2].k, 9);
}

// ---- parameters and files ------------------------------------------------------------------

TEST(KMeansParamsTest, KValues) {
  EXPECT_EQ(params("7").k_values(), std::vector<std::int64_t>{7});
  EXPECT_EQ(params("4:12:4").k_values(), (std::vector<std::int64_t>{4, 8, 12}));
  EXPECT_EQ(params("2:4").k_values(), (std::vector<std::int64_t>{2, 3, 4}));
  EXPECT_EQ(params("4:13:4").k_values(), (std::vector<std::int64_t>{4, 8, 12}));
  EXPECT_FALSE(params("7").is_sweep());
  EXPECT_TRUE(params("2:3").is_sweep());
}

TEST(KMeansParamsTest, BadValuesAreUsageErrors) {
  const std::vector<std::string> bad_k = {"",      "0",    "-3",      "abc", "4:2",   "1:5",
                                          "4:8:0", "4::8", "4:8:2:1", "3.5", "4:8:x", "4,8"};
  for (const auto& k : bad_k) {
    KMeansParams p = params(k);
    try {
      p.validate();
      ADD_FAILURE() << "accepted --k '" << k << "'";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("--k"), std::string::npos) << e.what();
    }
  }
  auto expect_bad = [](const char* option, auto mutate) {
    KMeansParams p = params("4");
    mutate(p);
    try {
      p.validate();
      ADD_FAILURE() << "accepted bad --" << option;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("--") + option), std::string::npos)
          << e.what();
    }
  };
  expect_bad("init", [](KMeansParams& p) { p.init = "kmeans++"; });
  expect_bad("init", [](KMeansParams& p) { p.init = "/nonexistent/c.csv"; });
  expect_bad("init-rounds", [](KMeansParams& p) { p.init_rounds = 0; });
  expect_bad("oversampling-factor", [](KMeansParams& p) { p.oversampling_factor = -1; });
  expect_bad("n-init", [](KMeansParams& p) { p.n_init = -1; });
  expect_bad("max-iter", [](KMeansParams& p) { p.max_iter = 0; });
  expect_bad("tol", [](KMeansParams& p) { p.tol = -1e-3; });
  expect_bad("tol", [](KMeansParams& p) { p.tol = std::nan(""); });
  expect_bad("threads", [](KMeansParams& p) { p.threads = -1; });
  expect_bad("silhouette-sample", [](KMeansParams& p) { p.silhouette_sample = -5; });
  expect_bad("pick", [](KMeansParams& p) { p.pick = "knee"; });
  expect_bad("kernel", [](KMeansParams& p) { p.kernel = "blas"; });
  expect_bad("algorithm", [](KMeansParams& p) { p.algorithm = "elkan"; });
  expect_bad("shape", [](KMeansParams& p) { p.shape = "round"; });
  expect_bad("shape", [](KMeansParams& p) {
    p.shape = "tied";
    p.algorithm = "gmm";
  });
  expect_bad("shape", [](KMeansParams& p) {
    p.shape = "tied";
    p.spherical = true;
  });
  KMeansParams ok = params("4");
  EXPECT_NO_THROW(ok.validate());
}

TEST(KMeansParamsTest, ThreadsDefaultFromEnvironment) {
  KMeansParams p = params("2");
  p.threads = 0;
  setenv("OMP_NUM_THREADS", "3", 1);
  EXPECT_EQ(p.resolved_threads(), 3);
  setenv("OMP_NUM_THREADS", "junk", 1);
  EXPECT_EQ(p.resolved_threads(), 1);
  unsetenv("OMP_NUM_THREADS");
  EXPECT_EQ(p.resolved_threads(), 1);
  p.threads = 5;
  EXPECT_EQ(p.resolved_threads(), 5);
}

TEST(KMeansFiles, CentroidCsv) {
  const std::string dir = scratch_dir();
  const Comm comm;
  {
    std::ofstream(dir + "/c_ok.csv") << "c0,c1,c2\n1,2,3\n-4.5,5e-1,6\n\n";
    const MatrixRF C = read_centroid_file(dir + "/c_ok.csv", comm);
    ASSERT_EQ(C.rows(), 2);
    ASSERT_EQ(C.cols(), 3);
    EXPECT_EQ(C(1, 0), -4.5f);
    EXPECT_EQ(C(1, 1), 0.5f);
  }
  std::ofstream(dir + "/c_ragged.csv") << "1,2,3\n4,5\n";
  std::ofstream(dir + "/c_text.csv") << "1,2\n3,x\n";
  std::ofstream(dir + "/c_nan.csv") << "1,2\n3,nan\n";
  std::ofstream(dir + "/c_empty.csv") << "a,b\n";
  for (const char* f : {"/c_ragged.csv", "/c_text.csv", "/c_nan.csv", "/c_empty.csv"})
    EXPECT_THROW(read_centroid_file(dir + f, comm), Error) << f;
  // Wrong shape for k or h: a DataError.
  const MatrixRF X = make_blobs(50, 3, 2, 3.0, 61);
  const MatrixRF C = read_centroid_file(dir + "/c_ok.csv", comm);
  EXPECT_NO_THROW(kmeans(X, 2, params("2"), comm, &C));
  EXPECT_THROW(kmeans(X, 3, params("3"), comm, &C), DataError);
}

}  // namespace
}  // namespace segrec
