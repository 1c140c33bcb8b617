// Exact global quantiles and RFM scores under mpirun (1, 2 and 4 ranks): identical to a
// single-process run and to a naive computation on the gathered data (std::nth_element).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include "scratch_dir.hpp"
#include "segmentation_fixture.hpp"
#include "segrec/core/quantiles.hpp"
#include "segrec/segmentation/profile.hpp"
#include "segrec/segmentation/rfm.hpp"

namespace segrec {
namespace {

namespace fs = std::filesystem;
using test::make_dataset;
using test::random_events;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Global value i: heavy ties, both zeros, NaN and an infinity.
double value_at(std::int64_t i) {
  if (i % 13 == 0) return kNaN;
  if (i == 50) return std::numeric_limits<double>::infinity();
  if (i % 17 == 0) return -0.0;
  return static_cast<double>((i * 37) % 11) - 5.0 + (i % 3 == 0 ? 0.25 : 0.0);
}

// The naive quantile: nth_element on every value, NaN dropped.
double naive_quantile(std::vector<double> v, double q) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return std::isnan(x); }), v.end());
  if (v.empty()) return kNaN;
  const auto n = static_cast<std::int64_t>(v.size());
  auto r = static_cast<std::int64_t>(std::ceil(q * static_cast<double>(n))) - 1;
  r = std::clamp<std::int64_t>(r, 0, n - 1);
  std::nth_element(v.begin(), v.begin() + r, v.end());
  return v[static_cast<std::size_t>(r)];
}

TEST(QuantilesMpi, ExactWithTiesAgainstNthElement) {
  const Comm world = Comm::world();
  const std::vector<double> probs = {0, 0.01, 0.2, 0.25, 0.5, 0.8, 0.999, 1};
  for (std::int64_t n : {1, 3, 103, 1000}) {
    std::vector<double> all, local;
    for (std::int64_t i = 0; i < n; ++i) all.push_back(value_at(i + 1));
    const Block b = block_partition(n, world.size(), world.rank());  // ranks may hold none
    for (std::int64_t i = b.begin; i < b.end; ++i) local.push_back(all[i]);
    const auto q = exact_quantiles(local, probs, world);
    ASSERT_EQ(q.size(), probs.size());
    for (std::size_t j = 0; j < probs.size(); ++j) {
      const double want = naive_quantile(all, probs[j]);
      EXPECT_EQ(q[j], want) << "n " << n << " q " << probs[j];
      EXPECT_FALSE(std::signbit(q[j]) && q[j] == 0) << "-0.0 returned as 0.0";
    }
  }
  // No value anywhere: NaN.
  const std::vector<double> none = {kNaN};
  const auto q = exact_quantiles(world.is_root() ? none : std::vector<double>{}, probs, world);
  for (double x : q) EXPECT_TRUE(std::isnan(x));
}

TEST(QuantilesMpi, OrderKeysPreserveOrder) {
  const std::vector<double> v = {
      -std::numeric_limits<double>::infinity(), -1e300, -1, -1e-300, 0.0, 1e-300, 1, 1e300,
      std::numeric_limits<double>::infinity()};
  for (std::size_t i = 0; i + 1 < v.size(); ++i) EXPECT_LT(order_key(v[i]), order_key(v[i + 1]));
  for (double x : v) EXPECT_EQ(from_order_key(order_key(x)), x);
  EXPECT_EQ(order_key(-0.0), order_key(0.0));
}

const std::vector<std::string> kTypes = {"view", "cart", "purchase"};
const std::vector<double> kWeights = {1, 3, 5};
constexpr int kUsers = 53, kItems = 20;

double item_price(int item) { return item % 11 == 0 ? kNaN : 1 + (item % 5) * 2.5; }

// Events priced per item and time (some unknown: the item's price is the fallback).
Dataset priced(Block b, bool prices) {
  std::vector<std::string> items;
  for (int i = 0; i < kItems; ++i) items.push_back("item" + std::to_string(i));
  Dataset ds = make_dataset(kUsers, items, kTypes, kWeights, random_events(kUsers, kItems, 9), b);
  if (prices) {
    for (int i = 0; i < kItems; ++i) ds.item_price.push_back(item_price(i));
    for (std::size_t e = 0; e < ds.log_item.size(); ++e) {
      const auto t = static_cast<std::int64_t>(ds.log_time[e]);
      ds.log_price.push_back(t % 4 == 0 ? std::numeric_limits<float>::quiet_NaN()
                                        : static_cast<float>(0.5 + (t % 97) * 0.1));
    }
  }
  return ds;
}

std::string tmp_dir(const Comm& c) { return testing_tmp::scratch_dir("rfm", c); }

ProfileParams params() {
  ProfileParams p;
  p.data = "dataset.h5";
  p.out = "profiles.h5";
  return p;
}

void same_float(float a, float b) {
  EXPECT_TRUE((std::isnan(a) && std::isnan(b)) || a == b) << a << " vs " << b;
}

TEST(RfmMpi, ScoresAreRankInvariantAndMatchNaiveQuintiles) {
  const Comm world = Comm::world();
  const Comm serial;
  for (bool prices : {true, false}) {
    const Block b = block_partition(kUsers, world.size(), world.rank());
    const Dataset ds = priced(b, prices);
    const ProfileModel m = fit_profile_model(ds, params(), {}, {}, world);
    const ProfileBlock pb = profile_block(ds, m);
    const Dataset full = priced({0, kUsers}, prices);
    const ProfileModel m1 = fit_profile_model(full, params(), {}, {}, serial);
    const ProfileBlock pb1 = profile_block(full, m1);
    EXPECT_EQ(m.prices, prices);
    EXPECT_EQ(m.rfm_edges.size(), 12u);
    for (std::size_t j = 0; j < 12; ++j)
      same_float(static_cast<float>(m.rfm_edges[j]), static_cast<float>(m1.rfm_edges[j]));
    const std::size_t n = static_cast<std::size_t>(b.size()) * 3;
    ASSERT_EQ(pb.rfm_values.size(), n);
    ASSERT_EQ(pb.rfm_scores.size(), n);
    for (std::size_t i = 0; i < n; ++i) {
      same_float(pb.rfm_values[i], pb1.rfm_values[b.begin * 3 + i]);
      EXPECT_EQ(pb.rfm_scores[i], pb1.rfm_scores[b.begin * 3 + i]) << i;
    }
    // Naive: quintiles by nth_element on all users' values, scores by the documented rule.
    for (int j = 0; j < 3; ++j) {
      std::vector<double> col;
      for (int u = 0; u < kUsers; ++u) col.push_back(pb1.rfm_values[u * 3 + j]);
      double e[4];
      for (int i = 0; i < 4; ++i) e[i] = naive_quantile(col, 0.2 * (i + 1));
      for (int u = 0; u < kUsers; ++u) {
        const double v = col[static_cast<std::size_t>(u)];
        int c = 0;
        for (double x : e) c += v > x;
        int want = j == 0 ? 5 - c : 1 + c;
        if (std::isnan(v)) want = 1;
        if (std::isnan(e[0])) want = 0;
        EXPECT_EQ(pb1.rfm_scores[u * 3 + j], want) << "user " << u << " column " << j;
      }
    }
    // The M column exists only with prices; F with purchases has ties at 0.
    EXPECT_EQ(std::isnan(m1.rfm_edges[8]), !prices);
    EXPECT_EQ(m1.rfm_edges[4], 0.0);

    // Round trip through profiles.h5 at this rank count.
    const std::string path = tmp_dir(world) + "/profiles.h5";
    write_profiles(path, m, pb, "dataset.h5", world);
    const Profiles back = read_profiles(path, world);
    EXPECT_EQ(back.model.dense_block, m.dense_block);
    EXPECT_EQ(back.model.prices, prices);
    ASSERT_EQ(back.model.rfm_edges.size(), 12u);
    for (std::size_t j = 0; j < 12; ++j)
      same_float(static_cast<float>(back.model.rfm_edges[j]), static_cast<float>(m.rfm_edges[j]));
    ASSERT_EQ(back.rows.user_begin, b.begin);
    EXPECT_EQ(back.rows.rfm_scores, pb.rfm_scores);
    ASSERT_EQ(back.rows.rfm_values.size(), n);
    for (std::size_t i = 0; i < n; ++i) same_float(back.rows.rfm_values[i], pb.rfm_values[i]);
  }
}

// price_position and ratio:purchase/cart: every dense statistic, raw and standardised,
// is the same at any rank count, and the item positions are the serial ones.
TEST(RfmMpi, PricePositionIsRankInvariant) {
  const Comm world = Comm::world();
  const Comm serial;
  const std::vector<std::string> cats = {"a", "b", "c"};
  std::vector<std::int32_t> item_cat;
  for (int i = 0; i < kItems; ++i) item_cat.push_back(i % 7 == 0 ? -1 : i % 3);
  const Block b = block_partition(kUsers, world.size(), world.rank());
  const ProfileModel m = fit_profile_model(priced(b, true), params(), cats, item_cat, world);
  const ProfileBlock pb = profile_block(priced(b, true), m);
  const Dataset full = priced({0, kUsers}, true);
  const ProfileModel m1 = fit_profile_model(full, params(), cats, item_cat, serial);
  const ProfileBlock pb1 = profile_block(full, m1);
  ASSERT_EQ(m.item_price_position.size(), static_cast<std::size_t>(kItems));
  for (int i = 0; i < kItems; ++i)
    same_float(static_cast<float>(m.item_price_position[i]),
               static_cast<float>(m1.item_price_position[i]));
  ASSERT_EQ(m.dense_names, m1.dense_names);
  const auto pos = std::find(m.dense_names.begin(), m.dense_names.end(), "price_position");
  ASSERT_NE(pos, m.dense_names.end());
  EXPECT_NE(std::find(m.dense_names.begin(), m.dense_names.end(), "ratio:purchase/cart"),
            m.dense_names.end());
  const std::size_t d = m.dense_names.size();
  ASSERT_EQ(pb.dense_raw.size(), static_cast<std::size_t>(b.size()) * d);
  for (std::size_t i = 0; i < pb.dense_raw.size(); ++i) {
    same_float(pb.dense_raw[i], pb1.dense_raw[static_cast<std::size_t>(b.begin) * d + i]);
    EXPECT_NEAR(pb.dense_values[i], pb1.dense_values[static_cast<std::size_t>(b.begin) * d + i],
                1e-6);
  }
  // Round trip: the positions are part of the model.
  const std::string path = tmp_dir(world) + "/positions.h5";
  write_profiles(path, m, pb, "dataset.h5", world);
  const Profiles back = read_profiles(path, world);
  EXPECT_EQ(back.model.item_price_position.size(), m.item_price_position.size());
  EXPECT_EQ(back.model.dense_block, m.dense_block);
}

}  // namespace
}  // namespace segrec
