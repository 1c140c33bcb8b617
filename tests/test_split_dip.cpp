// Hartigan's dip and the split dip of segments (split_dip.hpp): closed forms (an even grid, two
// equal atoms), the values of an independent linear program, invariance under affine maps and
// reflection, the uniform's calibration, the 2-means axis on one Gaussian cloud and on two
// groups, and the table of the skip rule.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <utility>
#include <vector>

#include "segrec/core/random.hpp"
#include "segrec/segmentation/kmeans/split_dip.hpp"

namespace segrec {
namespace {

double uniform(std::uint64_t a, std::uint64_t b) { return rng::unit_uniform(rng::fold_keys(a, b)); }

double gauss(std::uint64_t a, std::uint64_t b) {
  const double u1 = 1.0 - uniform(a, 2 * b), u2 = uniform(a, 2 * b + 1);
  return std::sqrt(-2 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2);
}

TEST(Dip, AnEvenGridHasTheSmallestDip) {
  // The empirical CDF of an even grid is the uniform's at its points: 1 / (2 n).
  for (const int n : {2, 3, 10, 257}) {
    std::vector<double> x(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) x[i] = i;
    EXPECT_NEAR(dip_statistic(x), 1.0 / (2 * n), 1e-12) << "n = " << n;
  }
}

TEST(Dip, TwoEqualAtomsHaveTheLargest) {
  // Half the values at 0 and half at 1: 1 / 4 less a step (the ties become steep ramps).
  for (const int n : {100, 1000}) {
    std::vector<double> x(static_cast<std::size_t>(n), 0.0);
    std::fill(x.begin() + n / 2, x.end(), 1.0);
    EXPECT_NEAR(dip_statistic(x), 0.25, 1.0 / n) << "n = " << n;
  }
  EXPECT_EQ(dip_statistic({}), 0);
  EXPECT_EQ(dip_statistic({3, 3, 3}), 0);
}

TEST(Dip, MatchesALinearProgram) {
  // Small samples against the dip found by linear programming over unimodal CDFs
  // (tests/tools/dip_lp.py, which printed these values; 40 random samples of 3 to 12 values
  // agreed to 1e-12).
  const std::vector<std::pair<std::vector<double>, double>> cases = {
      {{-1.303, 0.446, 0.822, 3.330, 3.905}, 0.162698670},
      {{-0.482, 2.264, 2.837, 3.040, 3.547, 3.599}, 0.119014085},
      {{-1.112, -0.514, -0.378, 0.663, 2.043, 2.877, 3.647, 5.118}, 0.087872671},
      {{3.732, 0.321, 2.494, 0.594, 3.036, 0.891, 2.182}, 0.129833560},
      {{0.05, 0.1, 0.2, 0.22, 0.9, 1.7, 1.75, 1.8, 1.82, 3.0}, 0.174242424}};
  for (const auto& [x, dip] : cases) EXPECT_NEAR(dip_statistic(x), dip, 1e-8) << x.size();
}

TEST(Dip, AffineMapsAndReflectionLeaveItUnchanged) {
  // A skewed two-group sample; the dip reads only the order and the CDF's shape.
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    std::vector<double> x, y, z;
    for (std::uint64_t i = 0; i < 700; ++i) {
      const double v = i % 3 == 0 ? 4 + gauss(seed, i) : std::exp(0.7 * gauss(seed + 100, i));
      x.push_back(v);
      y.push_back(-v);
      z.push_back(3 * v + 5);
    }
    const double d = dip_statistic(x);
    EXPECT_NEAR(dip_statistic(y), d, 1e-12) << "seed " << seed;
    EXPECT_NEAR(dip_statistic(z), d, 1e-12) << "seed " << seed;
    EXPECT_GT(d, 1.0 / 1400);
    EXPECT_LE(d, 0.25);
  }
}

TEST(Dip, UniformSamplesAndTwoModes) {
  // sqrt(n) dip of uniform samples: about 0.35 at the median (Hartigan's table gives about 0.011
  // for the dip at n = 1000); Gaussian samples lower; two Gaussians 4 apart far above.
  constexpr int n = 1000, reps = 60;
  std::vector<double> u, g;
  for (int r = 0; r < reps; ++r) {
    std::vector<double> a, b;
    for (int i = 0; i < n; ++i) {
      a.push_back(uniform(1000 + r, i));
      b.push_back(gauss(2000 + r, i));
    }
    u.push_back(std::sqrt(n) * dip_statistic(a));
    g.push_back(std::sqrt(n) * dip_statistic(b));
  }
  std::sort(u.begin(), u.end());
  std::sort(g.begin(), g.end());
  EXPECT_GT(u[reps / 2], 0.28);
  EXPECT_LT(u[reps / 2], 0.42);
  EXPECT_LT(u.back(), 0.75);
  EXPECT_LT(g[reps / 2], u[reps / 2]);
  std::vector<double> two;
  for (int i = 0; i < n; ++i) two.push_back(gauss(3000, i) + (i % 2 == 0 ? 4 : 0));
  EXPECT_GT(std::sqrt(n) * dip_statistic(two), 1.2);
}

// n rows in 4 dims: unit Gaussian noise around centre (row i in group i % groups), scaled.
MatrixRF cloud(std::int64_t n, int groups, double apart, float scale) {
  MatrixRF X(n, 4);
  for (std::int64_t i = 0; i < n; ++i)
    for (int j = 0; j < 4; ++j)
      X(i, j) = scale * static_cast<float>(gauss(50 + j, static_cast<std::uint64_t>(i)) +
                                           (j == 0 ? apart * static_cast<double>(i % groups) : 0));
  return X;
}

TEST(SplitDip, OneCloudIsUnimodalTwoGroupsAreNot) {
  const std::vector<std::int64_t> one(2000, 0);
  EXPECT_LT(split_dip(cloud(2000, 1, 0, 1), one, 1), 0.7);
  const double two = split_dip(cloud(2000, 2, 5, 1), one, 1);
  EXPECT_GT(two, 3.0);
  // The same rows scaled: the same axis and the same dip.
  EXPECT_NEAR(split_dip(cloud(2000, 2, 5, 10), one, 1), two, 1e-6 * two);
  // Two segments, each one of the groups: both unimodal.
  std::vector<std::int64_t> own(2000);
  for (std::size_t i = 0; i < own.size(); ++i) own[i] = static_cast<std::int64_t>(i % 2);
  EXPECT_LT(split_dip(cloud(2000, 2, 5, 1), own, 2), 0.8);
  // Segments of fewer than kSplitDipMinUsers sampled users are not tested.
  const std::vector<std::int64_t> small(kSplitDipMinUsers - 1, 0);
  EXPECT_TRUE(std::isnan(split_dip(cloud(kSplitDipMinUsers - 1, 2, 5, 1), small, 1)));
}

// Rows k = 2.. with the given split dips and gaps.
std::vector<SweepRow> curve(const std::vector<double>& dip, const std::vector<double>& gap) {
  std::vector<SweepRow> rows;
  for (std::size_t i = 0; i < dip.size(); ++i) {
    SweepRow r;
    r.k = static_cast<std::int64_t>(i) + 2;
    r.quality.split_dip = dip[i];
    r.quality.gap = gap[i];
    rows.push_back(r);
  }
  return rows;
}

TEST(SplitDip, ABimodalSegmentIsSkippedWhenALaterKResolvesItForGood) {
  // k = 2..7: bimodal segments until k = 4, then every dip below half; the gap rises 0.3 per
  // segment up to k = 4.
  const auto c = curve({3.0, 2.4, 0.5, 0.4, 0.45, 0.5}, {1.0, 1.3, 1.6, 1.6, 1.6, 1.6});
  EXPECT_TRUE(split_resolved_later(c, 0));
  EXPECT_TRUE(split_resolved_later(c, 1));
  for (std::size_t i = 2; i < c.size(); ++i) EXPECT_FALSE(split_resolved_later(c, i)) << i;
  // Not for good: a dip of 1.5 after the low one (above half of 2.4).
  EXPECT_FALSE(split_resolved_later(curve({2.4, 0.6, 1.5, 1.4}, {0, 1, 2, 3}), 0));
  // No rise of the gap beyond 0.25 per added segment: the finer fits only cut a segment.
  EXPECT_FALSE(split_resolved_later(curve({2.4, 0.5, 0.5}, {1, 1.2, 1.4}), 0));
  EXPECT_TRUE(split_resolved_later(curve({2.4, 0.5, 0.5}, {1, 1.3, 1.4}), 0));
  // A dip of 1 or less is not bimodal; a NaN later never resolves.
  EXPECT_FALSE(split_resolved_later(curve({1.0, 0.1, 0.1}, {0, 5, 10}), 0));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_FALSE(split_resolved_later(curve({2.4, 0.5, nan}, {0, 1, 2}), 0));
  // The last k has nothing after it.
  EXPECT_FALSE(split_resolved_later(c, c.size() - 1));
}

}  // namespace
}  // namespace segrec
