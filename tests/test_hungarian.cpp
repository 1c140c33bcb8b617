// The optimal assignment against brute force over every injection on small matrices, and the
// segment matching rule of `cluster --previous` (stable_ids.hpp) on hand-made overlaps.
// GCC 12 false positives inside its AVX-512 intrinsics as inlined by Eigen (see kmeans.cpp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>

#include "segrec/segmentation/hungarian.hpp"
#include "segrec/segmentation/kmeans/init.hpp"
#include "segrec/segmentation/stable_ids.hpp"

namespace segrec {
namespace {

/// Smallest total cost over every assignment of min(rows, cols) rows to distinct columns
/// (every row when rows <= cols, every column otherwise).
double brute_force(const std::vector<double>& c, int rows, int cols) {
  double best = std::numeric_limits<double>::infinity();
  if (rows <= cols) {
    // choose the columns of rows 0..rows-1: permutations of cols taken rows at a time
    std::vector<int> perm(static_cast<std::size_t>(cols));
    std::iota(perm.begin(), perm.end(), 0);
    do {
      double s = 0;
      for (int r = 0; r < rows; ++r) s += c[r * cols + perm[r]];
      best = std::min(best, s);
    } while (std::next_permutation(perm.begin(), perm.end()));
  } else {
    std::vector<int> perm(static_cast<std::size_t>(rows));
    std::iota(perm.begin(), perm.end(), 0);
    do {
      double s = 0;
      for (int col = 0; col < cols; ++col) s += c[perm[col] * cols + col];
      best = std::min(best, s);
    } while (std::next_permutation(perm.begin(), perm.end()));
  }
  return best;
}

TEST(Hungarian, MatchesBruteForceOnRandomMatrices) {
  std::mt19937_64 gen(7);
  for (int rows = 1; rows <= 6; ++rows)
    for (int cols = 1; cols <= 6; ++cols)
      for (int trial = 0; trial < 12; ++trial) {
        std::vector<double> c(static_cast<std::size_t>(rows * cols));
        // Integer costs with many ties (trial even) or continuous ones, some negative.
        std::uniform_int_distribution<int> small(-3, 3);
        std::uniform_real_distribution<double> real(-10, 10);
        for (auto& x : c) x = trial % 2 ? real(gen) : small(gen);
        const auto a = min_cost_assignment(c, rows, cols);
        ASSERT_EQ(a.size(), static_cast<std::size_t>(rows));
        std::set<std::int64_t> used;
        int assigned = 0;
        for (const auto j : a) {
          if (j < 0) continue;
          ASSERT_LT(j, cols);
          EXPECT_TRUE(used.insert(j).second) << "column " << j << " used twice";
          ++assigned;
        }
        EXPECT_EQ(assigned, std::min(rows, cols));
        EXPECT_NEAR(assignment_cost(c, cols, a), brute_force(c, rows, cols), 1e-9)
            << rows << " x " << cols << " trial " << trial;
      }
}

TEST(Hungarian, KnownMatrixAndEdges) {
  // Classic 3 x 3: the optimum 1 + 2 + 2 = 5 is off the greedy path.
  const std::vector<double> c = {4, 1, 3, 2, 0, 5, 3, 2, 2};
  const auto a = min_cost_assignment(c, 3, 3);
  EXPECT_EQ(assignment_cost(c, 3, a), 5);
  EXPECT_EQ(a, (std::vector<std::int64_t>{1, 0, 2}));
  EXPECT_TRUE(min_cost_assignment({}, 0, 3).empty());
  EXPECT_EQ(min_cost_assignment({}, 2, 0), (std::vector<std::int64_t>{-1, -1}));
}

// ---- the matching rule ---------------------------------------------------------------------

UserOverlap overlap(std::int64_t ko, std::int64_t kn, std::vector<std::int64_t> counts) {
  UserOverlap o;
  o.k_old = ko;
  o.k_new = kn;
  o.counts = std::move(counts);
  return o;
}

/// k centroids on a line at the given positions (1 dim).
template <class M>
M line(std::initializer_list<double> xs) {
  M c(static_cast<Eigen::Index>(xs.size()), 1);
  Eigen::Index i = 0;
  for (const double x : xs) c(i++, 0) = static_cast<typename M::Scalar>(x);
  return c;
}

TEST(StableIds, PermutationIsUndone) {
  // New cluster b holds old segment perm[b]'s users.
  const std::vector<std::int32_t> perm = {2, 0, 3, 1};
  std::vector<std::int64_t> counts(16, 0);
  for (int b = 0; b < 4; ++b) counts[perm[b] * 4 + b] = 100 + b;
  counts[0 * 4 + 1] += 3;  // a few movers
  const auto m = match_segments(overlap(4, 4, counts), line<MatrixRF>({0, 1, 2, 3}),
                                line<MatrixRD>({9, 9, 9, 9}));
  EXPECT_EQ(m.id_of, perm);
  EXPECT_EQ(m.previous_id, perm);
  for (const auto& by : m.matched_by) EXPECT_EQ(by, "users");
}

TEST(StableIds, OverlapBeatsDistanceAndDistanceFillsTheRest) {
  // 3 old, 3 new; new 0 overlaps old 2 only; new 1 and 2 have no overlap (new users): paired
  // with old 0 and 1 by centroid distance (new 1 near old 1, new 2 near old 0).
  std::vector<std::int64_t> counts(9, 0);
  counts[2 * 3 + 0] = 50;
  const auto m = match_segments(overlap(3, 3, counts), line<MatrixRF>({0, 10, 20}),
                                line<MatrixRD>({0.5, 10.5, 1.0}));
  EXPECT_EQ(m.previous_id, (std::vector<std::int32_t>{2, 1, 0}));
  EXPECT_EQ(m.id_of, (std::vector<std::int32_t>{2, 1, 0}));
  EXPECT_EQ(m.matched_by, (std::vector<std::string>{"users", "centroid", "centroid"}));
}

TEST(StableIds, GrowingKAddsNewIdsAtTheEnd) {
  // 2 old, 4 new: new 1 and 3 split old segments 1 and 0; new 0 and 2 are brand new.
  std::vector<std::int64_t> counts(8, 0);
  counts[0 * 4 + 3] = 40;
  counts[0 * 4 + 2] = 5;
  counts[1 * 4 + 1] = 30;
  const auto m =
      match_segments(overlap(2, 4, counts), line<MatrixRF>({0, 10}), line<MatrixRD>({5, 10, 1, 0}));
  EXPECT_EQ(m.previous_id, (std::vector<std::int32_t>{-1, 1, -1, 0}));
  EXPECT_EQ(m.id_of, (std::vector<std::int32_t>{2, 1, 3, 0}));
}

TEST(StableIds, ShrinkingKRenumbersIntoRange) {
  // 4 old, 2 new: new 0 continues old 3, new 1 continues old 1; old 0 and 2 retire. Old id 3
  // does not fit in [0, 2): it takes the free id 0.
  std::vector<std::int64_t> counts(8, 0);
  counts[3 * 2 + 0] = 60;
  counts[0 * 2 + 0] = 10;
  counts[1 * 2 + 1] = 50;
  counts[2 * 2 + 1] = 20;
  const auto m =
      match_segments(overlap(4, 2, counts), line<MatrixRF>({0, 1, 2, 3}), line<MatrixRD>({3, 1}));
  EXPECT_EQ(m.previous_id, (std::vector<std::int32_t>{3, 1}));
  EXPECT_EQ(m.id_of, (std::vector<std::int32_t>{0, 1}));
}

TEST(StableIds, InitialCentroidsFromAnEarlierRun) {
  const Comm comm;
  MatrixRF X(40, 1);
  for (int i = 0; i < 40; ++i) X(i, 0) = static_cast<float>(i % 4 * 10 + i % 3);
  PreviousCentroids prev;
  prev.centroids = line<MatrixRF>({0, 10, 11, 30});
  prev.sizes = {5, 9, 4, 7};
  KMeansParams p;
  p.k = "4";
  EXPECT_EQ(centroids_from_previous(X, prev, 4, p, comm), prev.centroids);
  // k = 3: the closest pair (10, 11) loses the smaller segment (id 2).
  EXPECT_EQ(centroids_from_previous(X, prev, 3, p, comm), line<MatrixRF>({0, 10, 30}));
  // k = 6: the old four first, then two k-means++ picks among the users.
  const MatrixRF six = centroids_from_previous(X, prev, 6, p, comm);
  ASSERT_EQ(six.rows(), 6);
  EXPECT_EQ(six.topRows(4), prev.centroids);
  for (int r = 4; r < 6; ++r) {
    bool is_user = false;
    for (int i = 0; i < 40; ++i) is_user |= X(i, 0) == six(r, 0);
    EXPECT_TRUE(is_user) << six(r, 0);
  }
  EXPECT_EQ(six, centroids_from_previous(X, prev, 6, p, comm));  // deterministic
}

}  // namespace
}  // namespace segrec
