// The gap statistic of tied segments under mpirun (1, 2 and 4 ranks): about 0 on rows without
// groups; unchanged by an invertible linear map of the rows (log det against the rows' own);
// the same at any rank count as in one process; and the silhouette of a tied sweep skipping the
// k that merges groups, on two pairs of groups where each k's own whitening makes the merged
// pairs look compact (the silhouette alone prefers 2); and its skipping a k whose bimodal segment
// a later k resolves, on six pairs of groups whose splits the gap reads as small.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "kmeans_reference.hpp"
#include "segrec/core/random.hpp"
#include "segrec/segmentation/kmeans/split_dip.hpp"
#include "segrec/segmentation/kmeans/tied_gap.hpp"

namespace segrec {
namespace {

double gauss(std::uint64_t key) {
  const double u1 = 1.0 - rng::unit_uniform(rng::splitmix64(key));
  const double u2 = rng::unit_uniform(rng::splitmix64(key ^ 0x9e37ULL));
  return std::sqrt(-2 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2);
}

// n x 3 rows: groups of unit-variance noise around `centres` (row i in group i % groups),
// mapped by A (3 x 3).
MatrixRF grouped(std::int64_t n, const Eigen::MatrixXd& centres, const Eigen::Matrix3d& A) {
  MatrixRF X(n, 3);
  for (std::int64_t i = 0; i < n; ++i) {
    Eigen::Vector3d x = centres.row(i % centres.rows()).transpose();
    for (int j = 0; j < 3; ++j) x[j] += gauss(rng::fold_keys(23, static_cast<std::uint64_t>(i), j));
    X.row(i) = (A * x).cast<float>().transpose();
  }
  return X;
}

Eigen::Matrix3d skew() {
  Eigen::Matrix3d A;
  A << 3, 0, 0, 1.5, 0.5, 0, -2, 1, 4;  // det 6: stretched and sheared
  return A;
}

KMeansParams sweep_params(const std::string& k) {
  KMeansParams p;
  p.k = k;
  p.seed = 7;
  p.gap_sample = 3000;
  return p;
}

// The sweep of X's rows split over the world's ranks, as tied segments.
ClusterRun tied_sweep(const MatrixRF& X, const std::string& k, const Comm& comm) {
  const KMeansParams p = sweep_params(k);
  KMeansModes modes = p.validate();
  modes.tied = true;
  const Block b = block_partition(X.rows(), comm.size(), comm.rank());
  return cluster(X.middleRows(b.begin, b.size()), p, modes, comm);
}

std::vector<double> gaps(const ClusterRun& run) {
  std::vector<double> g;
  for (const auto& r : run.sweep) g.push_back(r.quality.gap);
  return g;
}

TEST(TiedGap, NearZeroWithoutGroups) {
  // One correlated Gaussian cloud: every k only cuts it, as the reference's cuts do (the
  // reference's by K-means alone, the data's refined by the tied rounds, which lower log det
  // a little more: 0.18 at most here).
  const Comm world = Comm::world();
  const MatrixRF X = grouped(4000, Eigen::MatrixXd::Zero(1, 3), skew());
  const ClusterRun run = tied_sweep(X, "2:5", world);
  for (const auto& r : run.sweep) {
    EXPECT_LT(std::abs(r.quality.gap), 0.3) << "k = " << r.k;
    EXPECT_GT(r.quality.gap_se, 0) << "k = " << r.k;
  }
}

TEST(TiedGap, LinearMapsAndRankCountsLeaveItUnchanged) {
  // Four groups 6 apart: the tied fits at k = 4 find them whatever the map, and log det
  // against the rows' own cancels the map's 2 log |det A| (log 36 = 3.6, if it did not).
  const Comm world = Comm::world(), serial;
  Eigen::MatrixXd c(4, 3);
  c << 0, 0, 0, 6, 0, 0, 0, 6, 0, 0, 0, 6;
  const MatrixRF X = grouped(2000, c, Eigen::Matrix3d::Identity());
  const MatrixRF Y = grouped(2000, c, skew());
  const ClusterRun rx = tied_sweep(X, "2:6", world), ry = tied_sweep(Y, "2:6", world);
  const std::vector<double> gx = gaps(rx), gy = gaps(ry);
  // At k = 4 both fits are the groups (at other k the K-means starts, Euclidean, differ).
  ASSERT_EQ(rx.sweep[2].k, 4);
  EXPECT_NEAR(gx[2], gy[2], 1e-4);
  // The gap climbs until the 4 groups are apart, then barely.
  EXPECT_GT(gx[2] - gx[0], 2.0);
  EXPECT_LT(std::abs(gx[4] - gx[2]), 0.5);
  EXPECT_EQ(rx.result.k, 4);
  // The reference rows and fits are keyed by global row index: one process gives the same.
  const ClusterRun one = tied_sweep(Y, "2:6", serial);
  const std::vector<double> g1 = gaps(one);
  for (std::size_t i = 0; i < g1.size(); ++i)
    EXPECT_NEAR(g1[i], gy[i], 1e-9 * (1 + std::abs(g1[i]))) << "k = " << one.sweep[i].k;
}

TEST(TiedGap, SilhouetteSkipsAKThatMergesGroups) {
  // Two pairs of groups: the pairs 20 apart along x, each pair's groups 8 apart along y.
  // At k = 2 each segment holds a pair, its whitening shrinks y by the pair's spread (sd 4.1),
  // and the two segments look far apart and compact: a higher silhouette than the 4 groups'.
  // Splitting the pairs shrinks the determinant 17-fold, which no cut of a Gaussian does.
  const Comm world = Comm::world();
  Eigen::MatrixXd c(4, 3);
  c << -10, -4, 0, -10, 4, 0, 10, -4, 0, 10, 4, 0;
  const MatrixRF X = grouped(2400, c, Eigen::Matrix3d::Identity());
  const ClusterRun run = tied_sweep(X, "2:6", world);
  ASSERT_EQ(run.sweep.size(), 5u);
  std::size_t top = 0;
  for (std::size_t i = 1; i < run.sweep.size(); ++i)
    if (run.sweep[i].quality.silhouette > run.sweep[top].quality.silhouette) top = i;
  EXPECT_EQ(run.sweep[top].k, 2) << "the silhouette alone should prefer the merged pairs";
  EXPECT_TRUE(tied_merges_groups(run.sweep, 0));
  EXPECT_FALSE(tied_merges_groups(run.sweep, 2));
  EXPECT_EQ(run.pick, Criterion::kSilhouette);
  EXPECT_EQ(run.result.k, 4);
  std::vector<std::int32_t> truth(static_cast<std::size_t>(X.rows()));
  for (std::size_t i = 0; i < truth.size(); ++i) truth[i] = static_cast<std::int32_t>(i % 4);
  const Block b = block_partition(X.rows(), world.size(), world.rank());
  const std::vector<std::int32_t> mine(truth.begin() + b.begin, truth.begin() + b.end);
  EXPECT_GT(testing_ref::ari(run.result.labels, mine), 0.99);
}

// n x 8 rows: 12 Gaussian groups sharing one covariance, in 6 pairs (pair centres sd 6, each
// pair's groups 5 apart in a random direction), group sizes 1 : 2 : 3 in turn, mapped by a
// random 8 x 8 matrix plus 2 I. labels: each row's group.
MatrixRF paired_groups(std::int64_t n, std::vector<std::int32_t>& labels) {
  constexpr int d = 8, pairs = 6;
  const auto g = [](std::uint64_t a, std::uint64_t b) { return gauss(rng::fold_keys(a, b)); };
  Eigen::MatrixXd A(d, d), C(2 * pairs, d);
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) A(i, j) = g(1, i * d + j) + (i == j ? 2 : 0);
  for (int p = 0; p < pairs; ++p) {
    Eigen::RowVectorXd centre(d), off(d);
    for (int j = 0; j < d; ++j) centre[j] = 6 * g(2, p * d + j), off[j] = g(3, p * d + j);
    off *= 2.5 / off.norm();
    C.row(2 * p) = centre + off;
    C.row(2 * p + 1) = centre - off;
  }
  // Rows cycle through 24 slots: group j takes 1, 2 or 3 of them (j % 3 + 1): 24 = 12 * 2.
  std::vector<std::int32_t> slot;
  for (int j = 0; j < 2 * pairs; ++j) slot.insert(slot.end(), j % 3 + 1, j);
  MatrixRF X(n, d);
  labels.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int32_t j = slot[static_cast<std::size_t>(i) % slot.size()];
    labels[i] = j;
    Eigen::VectorXd z(d);
    for (int f = 0; f < d; ++f) z[f] = g(4, static_cast<std::uint64_t>(i * d + f));
    X.row(i) = (A * (z + C.row(j).transpose())).cast<float>().transpose();
  }
  return X;
}

TEST(TiedGap, SilhouetteSkipsAKWhoseBimodalSegmentALaterKResolves) {
  // The pairs' splits each lower the determinant too little for the gap's rise (below 1 within
  // two steps), and the silhouette alone stops short of 12; the segments below 12 hold pairs,
  // bimodal along their 2-means axes, until 12 resolves them all.
  const Comm world = Comm::world(), serial;
  std::vector<std::int32_t> truth;
  const MatrixRF X = paired_groups(4800, truth);
  const ClusterRun run = tied_sweep(X, "6:13", world);
  ASSERT_EQ(run.sweep.size(), 8u);
  std::size_t top = 0;  // the silhouette with only the gap's skip
  for (std::size_t i = 1; i < run.sweep.size(); ++i)
    if (!tied_merges_groups(run.sweep, i) &&
        (tied_merges_groups(run.sweep, top) ||
         run.sweep[i].quality.silhouette > run.sweep[top].quality.silhouette))
      top = i;
  EXPECT_LT(run.sweep[top].k, 12) << "the silhouette and the gap's skip alone should stop short";
  EXPECT_TRUE(split_resolved_later(run.sweep, top));
  for (std::size_t i = 6; i < run.sweep.size(); ++i)
    EXPECT_LT(run.sweep[i].quality.split_dip, kSplitDipBimodal) << "k = " << run.sweep[i].k;
  EXPECT_EQ(run.result.k, 12);
  const Block b = block_partition(X.rows(), world.size(), world.rank());
  const std::vector<std::int32_t> mine(truth.begin() + b.begin, truth.begin() + b.end);
  EXPECT_GT(testing_ref::ari(run.result.labels, mine), 0.95);
  // The sample, its labels and the dips are the same in one process (k = 11 and 12).
  const ClusterRun one = tied_sweep(X, "11:12", serial);
  for (std::size_t i = 0; i < one.sweep.size(); ++i)
    EXPECT_NEAR(one.sweep[i].quality.split_dip, run.sweep[i + 5].quality.split_dip, 1e-9)
        << "k = " << one.sweep[i].k;
}

// Rows k = 2.. with the given gap curve.
std::vector<SweepRow> curve(const std::vector<double>& gap) {
  std::vector<SweepRow> rows;
  for (std::size_t i = 0; i < gap.size(); ++i) {
    SweepRow r;
    r.k = static_cast<std::int64_t>(i) + 2;
    r.quality.gap = gap[i];
    r.log_det = 0;
    rows.push_back(r);
  }
  return rows;
}

TEST(TiedGap, MergingIsARiseOfMoreThanOneWithinTwoSteps) {
  // k = 2..8. From k = 2: +0.6 then +1.2 over two steps: merges. From k = 3: +0.6, +1.05:
  // merges. From k = 4: +0.45, +0.95: not. The later k: small rises.
  const auto c = curve({1, 1.6, 2.2, 2.65, 3.15, 3.2, 3.25});
  EXPECT_TRUE(tied_merges_groups(c, 0));
  EXPECT_TRUE(tied_merges_groups(c, 1));
  for (std::size_t i = 2; i < c.size(); ++i) EXPECT_FALSE(tied_merges_groups(c, i)) << i;
  // A rise of 2 three steps on is outside the window; the last k has no step after it.
  const auto late = curve({0, 0.1, 0.2, 2.0});
  EXPECT_FALSE(tied_merges_groups(late, 0));
  EXPECT_TRUE(tied_merges_groups(late, 1));
  EXPECT_FALSE(tied_merges_groups(late, late.size() - 1));
}

}  // namespace
}  // namespace segrec
