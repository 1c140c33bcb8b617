// Views of a projection (interest / value / combined) and the gap statistic that picks the
// view and k: closed-form checks, planted blocks, and the same answer at any rank count as
// a serial run.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wrestrict"  // GCC 12 false positive on short string assignment
#endif

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "kmeans_reference.hpp"
#include "segrec/core/error.hpp"
#include "segrec/core/random.hpp"
#include "segrec/segmentation/kmeans/gap.hpp"
#include "segrec/segmentation/view.hpp"

namespace segrec {
namespace {

using testing_ref::ari;

constexpr std::int64_t kRows = 1200;
constexpr int kGroups = 4;
constexpr std::int64_t kInterest = 6, kValue = 3;

double gauss(std::uint64_t key) {
  const double u1 = 1.0 - rng::unit_uniform(rng::splitmix64(key));
  const double u2 = rng::unit_uniform(rng::splitmix64(key ^ 0x9e37ULL));
  return std::sqrt(-2 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2);
}

// Row g of a projection: one block holds kGroups tight groups (group g % kGroups, each
// along its own direction), the other skewed, large, group-free noise.
void fill_row(std::int64_t g, bool groups_in_interest, float* row) {
  const int grp = static_cast<int>(g % kGroups);
  auto noise = [&](int j) { return gauss(rng::fold_keys(7, static_cast<std::uint64_t>(g), j)); };
  const std::int64_t ng = groups_in_interest ? kInterest : kValue;
  float* grouped = groups_in_interest ? row : row + kInterest;
  float* free = groups_in_interest ? row + kInterest : row;
  for (std::int64_t j = 0; j < ng; ++j)
    grouped[j] =
        static_cast<float>((j == grp % ng ? 4.0 : 0.0) + (grp >= ng && j == 0 ? -4.0 : 0.0) +
                           0.4 * noise(static_cast<int>(j)));
  const std::int64_t nf = groups_in_interest ? kValue : kInterest;
  for (std::int64_t j = 0; j < nf; ++j)
    free[j] = static_cast<float>(6.0 * std::exp(0.8 * noise(static_cast<int>(100 + j))));
}

MatrixRF rows(std::int64_t begin, std::int64_t end, bool groups_in_interest) {
  MatrixRF X(end - begin, kInterest + kValue);
  for (std::int64_t g = begin; g < end; ++g)
    fill_row(g, groups_in_interest, X.row(g - begin).data());
  return X;
}

struct Outcome {
  ViewTransform view;
  std::vector<std::int32_t> labels;  // all users, gathered
  std::int64_t k = 0;
};

Outcome run(bool groups_in_interest, const Comm& comm, const std::string& k = "2:8") {
  const Block b = block_partition(kRows, comm.size(), comm.rank());
  MatrixRF X = rows(b.begin, b.end, groups_in_interest);
  KMeansParams p;
  p.k = k;
  p.silhouette_sample = 0;
  p.gap_sample = 600;
  const KMeansModes m = p.validate();
  ViewParams vp;
  Outcome o;
  o.view = resolve_view(vp.validate(), vp, X, kInterest, kValue, 4, p, m, comm);
  o.view.apply(X);
  const ClusterRun r = cluster(X, p, m, comm);
  o.k = r.result.k;
  o.labels = comm.allgatherv(r.result.labels);
  return o;
}

std::vector<std::int32_t> truth() {
  std::vector<std::int32_t> t(kRows);
  for (std::int64_t g = 0; g < kRows; ++g) t[g] = static_cast<std::int32_t>(g % kGroups);
  return t;
}

TEST(GapPick, KneeOfTheCurve) {
  // Steep rise to k = 4, then flat: the knee is 4.
  const std::vector<std::int64_t> ks{2, 3, 4, 5, 6, 7};
  std::vector<GapValue> g;
  for (double v : {0.3, 0.6, 0.9, 0.92, 0.94, 0.96}) g.push_back({v, 0.01});
  EXPECT_EQ(ks[gap_pick(ks, g)], 4);
  // With a step of 2 the slopes are per unit of k.
  const std::vector<std::int64_t> ks2{2, 4, 6, 8, 10};
  std::vector<GapValue> g2;
  for (double v : {0.2, 0.6, 1.0, 1.4, 1.42}) g2.push_back({v, 0.01});
  EXPECT_EQ(ks2[gap_pick(ks2, g2)], 8);
  // k = 2 is a knee when the curve flattens right after it (gap(1) = 0).
  std::vector<GapValue> g3;
  for (double v : {1.0, 1.01, 1.02, 1.03, 1.04, 1.05}) g3.push_back({v, 0.01});
  EXPECT_EQ(ks[gap_pick(ks, g3)], 2);
  // 16 groups, the curve rising 0.05 a step up to 16 and 0.02 after, with one uneven pair of
  // steps inside (0.01 into 10, 0.08 into 11): the knee is 16, not 9 (a one-step knee's pick:
  // 0.05 - 0.01 there against 0.05 - 0.02 at 16).
  std::vector<std::int64_t> ks4;
  std::vector<GapValue> g4;
  double v4 = 0;
  for (std::int64_t k = 2; k <= 20; ++k) {
    v4 += k == 10 ? 0.01 : k == 11 ? 0.08 : k <= 16 ? 0.05 : 0.02;
    ks4.push_back(k);
    g4.push_back({v4, 0.01});
  }
  EXPECT_EQ(ks4[gap_pick(ks4, g4)], 16);
}

TEST(Gap, NearZeroWithoutGroupsLargeWithGroups) {
  const Comm comm = Comm::world();
  const Block b = block_partition(kRows, comm.size(), comm.rank());
  KMeansParams p;
  p.k = "4";
  const KMeansModes m = p.validate();
  // Correlated Gaussian: no groups whatever the covariance.
  MatrixRF G(b.size(), 3);
  for (std::int64_t g = b.begin; g < b.end; ++g) {
    const double z0 = gauss(rng::fold_keys(3, g, 0)), z1 = gauss(rng::fold_keys(3, g, 1));
    G.row(g - b.begin) << static_cast<float>(10 * z0), static_cast<float>(3 * z0 + z1),
        static_cast<float>(0.1 * gauss(rng::fold_keys(3, g, 2)));
  }
  const auto gap_of = [&](const MatrixRF& X) {
    const KMeansResult r = kmeans(X, 4, p, comm);
    const GapReference ref = gap_reference(X, 2000, 3, 42, comm);
    return gap_statistic(ref, r.inertia, kRows, 4, p, m, comm).gap;
  };
  EXPECT_LT(std::fabs(gap_of(G)), 0.08);
  const MatrixRF B = rows(b.begin, b.end, true).leftCols(kInterest);
  EXPECT_GT(gap_of(B), 0.8);
}

TEST(View, AutoFindsTheBlockWithGroups) {
  const Comm comm = Comm::world();
  const auto t = truth();
  for (bool in_interest : {true, false}) {
    const Outcome o = run(in_interest, comm);
    EXPECT_EQ(o.view.name(), in_interest ? "interest" : "value");
    EXPECT_GT(in_interest ? o.view.gap_interest : o.view.gap_value,
              2 * (in_interest ? o.view.gap_value : o.view.gap_interest));
    EXPECT_EQ(o.k, kGroups) << "gap knee";
    EXPECT_GT(ari(o.labels, t), 0.95);
    // Without the view, K-means splits the large group-free block instead.
    ViewParams all;
    all.view = "combined";
    all.value_share = in_interest ? 0.9 : 0.1;
    const Block b = block_partition(kRows, comm.size(), comm.rank());
    MatrixRF X = rows(b.begin, b.end, in_interest);
    KMeansParams p;
    p.k = "4";
    const ViewTransform v =
        resolve_view(all.validate(), all, X, kInterest, kValue, 4, p, p.validate(), comm);
    v.apply(X);
    const auto labels = comm.allgatherv(kmeans(X, 4, p, comm).labels);
    EXPECT_LT(ari(labels, t), 0.5) << "the planted block must not be findable by weight alone";
  }
}

TEST(View, SameAnswerAtAnyRankCount) {
  const Comm comm = Comm::world();
  const Outcome dist = run(false, comm);
  const Outcome serial = run(false, Comm());
  EXPECT_EQ(dist.view.name(), serial.view.name());
  EXPECT_EQ(dist.k, serial.k);
  EXPECT_EQ(dist.labels, serial.labels);
}

TEST(View, TransformShapes) {
  ViewTransform v;
  v.view = ClusterView::kCombined;
  v.interest_dims = 2;
  v.value_dims = 1;
  v.normalise_interest = true;
  v.value_weight = 0.5;
  float row[3] = {3, 4, 2};
  v.apply(row, 3);
  EXPECT_FLOAT_EQ(row[0], 0.6f);
  EXPECT_FLOAT_EQ(row[1], 0.8f);
  EXPECT_FLOAT_EQ(row[2], 1.0f);
  float zero[3] = {0, 0, 2};
  v.apply(zero, 3);
  EXPECT_EQ(zero[0], 0.0f);
  ViewParams bad;
  bad.view = "taste";
  EXPECT_THROW(bad.validate(), UsageError);
  bad.view = "value";
  bad.value_share = 1;
  EXPECT_THROW(bad.validate(), UsageError);
}

}  // namespace
}  // namespace segrec
