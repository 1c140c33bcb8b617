// `segrec profile` on tiny hand-made data sets, against closed-form values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "scratch_dir.hpp"
#include "segmentation_fixture.hpp"
#include "segrec/core/error.hpp"
#include "segrec/segmentation/profile.hpp"

using namespace segrec;
using segrec::test::Event;
using segrec::test::make_dataset;

namespace {

constexpr double t0 = 1704067200;  // 2024-01-01T00:00:00Z, a UTC day boundary
constexpr double day = 86400;
constexpr int kView = 0, kCart = 1, kBuy = 2;

const std::vector<std::string> kTypes = {"View", "add_to_cart", "purchase"};
const std::vector<double> kWeights = {1, 3, 5};
const std::vector<std::string> kItems = {"i0", "i1", "i2"};

// u0: four events on day 0 with a 31-minute gap before the fourth, a purchase on day 2;
// u1: one view; u2: one purchase at the last timestamp of the data set (no views).
std::vector<Event> tiny_events() {
  return {{0, 0, kView, t0, 10},         {0, 0, kView, t0 + 60, 20},
          {0, 0, kCart, t0 + 120, 0},    {0, 1, kView, t0 + 120 + 31 * 60, 30},
          {0, 0, kBuy, t0 + 2 * day, 0}, {1, 1, kView, t0 + 100, 5},
          {2, 2, kBuy, t0 + 3 * day, 0}};
}

Dataset tiny() { return make_dataset(3, kItems, kTypes, kWeights, tiny_events(), {0, 3}); }

std::int64_t col(const ProfileModel& m, const std::string& name) {
  for (std::size_t j = 0; j < m.dense_names.size(); ++j)
    if (m.dense_names[j] == name) return static_cast<std::int64_t>(j);
  ADD_FAILURE() << "no dense column " << name;
  return 0;
}

double raw(const ProfileBlock& b, const ProfileModel& m, int u, const std::string& name) {
  return b.dense_raw[u * m.n_dense() + col(m, name)];
}
double val(const ProfileBlock& b, const ProfileModel& m, int u, const std::string& name) {
  return b.dense_values[u * m.n_dense() + col(m, name)];
}

struct Fitted {
  ProfileModel m;
  ProfileBlock b;
};

Fitted fit_tiny(const ProfileParams& p, const Dataset& ds = tiny()) {
  Comm serial;
  Fitted f;
  f.m = fit_profile_model(ds, p, {}, {}, serial);
  f.b = profile_block(ds, f.m);
  return f;
}

ProfileParams params(double dense_weight = 1, double half_life = 0) {
  ProfileParams p;
  p.data = "in.h5";
  p.out = "out.h5";
  p.dense_weight = dense_weight;
  p.half_life_days = half_life;
  return p;
}

TEST(Profile, DenseNamesFollowTheEventTypes) {
  std::vector<std::uint8_t> log;
  const auto names = dense_statistic_names(kTypes, {"a"}, &log);
  const std::vector<std::string> want = {
      "events:View",         "events:add_to_cart", "events:purchase",     "distinct_items",
      "active_days",         "sessions",           "mean_value:View",     "mean_value:add_to_cart",
      "mean_value:purchase", "ratio:cart/view",    "ratio:purchase/view", "ratio:purchase/cart",
      "days_since_last",     "purchase_sessions",  "days_since_purchase", "category_share:a"};
  EXPECT_EQ(names, want);
  ASSERT_EQ(log.size(), names.size());
  EXPECT_EQ(log[0], 1);  // counts: log1p
  EXPECT_EQ(log[9], 0);  // ratios: linear
  EXPECT_EQ(log[11], 0);
  EXPECT_EQ(log[13], 1);           // purchase sessions: log1p
  EXPECT_EQ(log[15], kDenseSqrt);  // shares: square root
  // Blocks: shares 0; one volume (views), the ratios but purchase/view, the mean values and
  // the recency 1; the rest restates those: 2.
  const auto blocks = dense_blocks(names);
  const std::vector<std::uint8_t> want_blocks = {1, 2, 2, 2, 2, 2, 1, 1, 1, 1, 2, 1, 1, 2, 2, 0};
  EXPECT_EQ(blocks, want_blocks);
  // Prices add monetary and mean_price (log1p) before the shares, item positions
  // price_position (linear), which takes mean_price's place in the value block.
  const auto priced = dense_statistic_names(kTypes, {"a"}, &log, true);
  ASSERT_EQ(priced.size(), names.size() + 2);
  EXPECT_EQ(priced[15], "monetary");
  EXPECT_EQ(priced[16], "mean_price");
  EXPECT_EQ(log[15] + log[16], 2);
  EXPECT_EQ(priced[17], "category_share:a");
  EXPECT_EQ(dense_blocks(priced)[16], 1);
  const auto positioned = dense_statistic_names(kTypes, {"a"}, &log, true, true);
  ASSERT_EQ(positioned.size(), names.size() + 3);
  EXPECT_EQ(positioned[17], "price_position");
  EXPECT_EQ(log[17], 0);
  EXPECT_EQ(dense_blocks(positioned)[16], 2);
  EXPECT_EQ(dense_blocks(positioned)[17], 1);
  EXPECT_EQ(dense_statistic_names(kTypes, {"a"}, nullptr, false, true), names);  // needs prices
  // No view type: no view ratios, purchase/cart; the carts are the volume.
  // "pv" and "buy" are recognised case-insensitively.
  const auto cart_buy = dense_statistic_names({"cart", "buy"}, {});
  EXPECT_EQ(cart_buy.size(), 2u + 3u + 2u + 1u + 1u + 2u);
  EXPECT_EQ(dense_blocks(cart_buy), (std::vector<std::uint8_t>{1, 2, 2, 2, 2, 1, 1, 1, 1, 2, 2}));
  // One event type (ratings): its count, mean value and recency.
  EXPECT_EQ(dense_blocks(dense_statistic_names({"rating"}, {})),
            (std::vector<std::uint8_t>{1, 2, 2, 2, 1, 1}));
  EXPECT_EQ(dense_statistic_names({"view", "rate"}, {}).size(), 2u + 3u + 2u + 1u);
  const auto pv = dense_statistic_names({"PV", "Buy"}, {});
  EXPECT_NE(std::find(pv.begin(), pv.end(), "ratio:purchase/view"), pv.end());
  EXPECT_EQ(std::find(pv.begin(), pv.end(), "ratio:cart/view"), pv.end());
}

TEST(Profile, SparsePartIsIdfWeightedLog1pWithUnitRows) {
  const Fitted f = fit_tiny(params());
  // Users per item: i0 1, i1 2, i2 1 of N = 3.
  EXPECT_NEAR(f.m.idf[0], std::log(3.0), 1e-12);
  EXPECT_NEAR(f.m.idf[1], std::log(1.5), 1e-12);
  EXPECT_NEAR(f.m.idf[2], std::log(3.0), 1e-12);
  ASSERT_EQ(f.b.indptr, (std::vector<std::int64_t>{0, 2, 3, 4}));
  EXPECT_EQ(f.b.indices, (std::vector<std::int32_t>{0, 1, 1, 2}));
  // u0: i0 weight 1 + 1 + 3 + 5 = 10, i1 weight 1.
  const double a = std::log1p(10.0) * std::log(3.0), c = std::log1p(1.0) * std::log(1.5);
  const double norm = std::hypot(a, c);
  EXPECT_NEAR(f.b.values[0], a / norm, 1e-6);
  EXPECT_NEAR(f.b.values[1], c / norm, 1e-6);
  EXPECT_NEAR(f.b.values[2], 1.0, 1e-6);  // single-entry rows have norm 1
  EXPECT_NEAR(f.b.values[3], 1.0, 1e-6);
}

TEST(Profile, ItemEveryUserHasCarriesNoWeight) {
  // Both users touch i0 (idf 0): the entry is dropped, the rest normalised.
  const auto ds = make_dataset(2, {"i0", "i1"}, {"view"}, {1},
                               {{0, 0, 0, t0, 0}, {0, 1, 0, t0, 0}, {1, 0, 0, t0, 0}}, {0, 2});
  const Fitted f = fit_tiny(params(), ds);
  EXPECT_EQ(f.m.idf[0], 0.0);
  EXPECT_EQ(f.b.indptr, (std::vector<std::int64_t>{0, 1, 1}));
  EXPECT_EQ(f.b.indices, (std::vector<std::int32_t>{1}));
  EXPECT_NEAR(f.b.values[0], 1.0, 1e-7);
}

TEST(Profile, RawBehaviourStatistics) {
  const Fitted f = fit_tiny(params());
  const auto& m = f.m;
  const auto& b = f.b;
  EXPECT_EQ(raw(b, m, 0, "events:View"), 3);
  EXPECT_EQ(raw(b, m, 0, "events:add_to_cart"), 1);
  EXPECT_EQ(raw(b, m, 0, "events:purchase"), 1);
  EXPECT_EQ(raw(b, m, 0, "distinct_items"), 2);
  EXPECT_EQ(raw(b, m, 0, "active_days"), 2);  // day 0 and day 2
  EXPECT_EQ(raw(b, m, 0, "sessions"), 3);     // 31-minute gap, then two days
  EXPECT_EQ(raw(b, m, 1, "sessions"), 1);
  EXPECT_EQ(raw(b, m, 0, "mean_value:View"), 20);
  EXPECT_TRUE(std::isnan(raw(b, m, 1, "mean_value:add_to_cart")));
  EXPECT_NEAR(raw(b, m, 0, "ratio:cart/view"), 1.0 / 3, 1e-7);
  EXPECT_NEAR(raw(b, m, 0, "ratio:purchase/view"), 1.0 / 3, 1e-7);
  EXPECT_EQ(raw(b, m, 1, "ratio:cart/view"), 0);
  EXPECT_TRUE(std::isnan(raw(b, m, 2, "ratio:cart/view")));  // no views: undefined
  EXPECT_EQ(m.reference_time, t0 + 3 * day);
  EXPECT_NEAR(raw(b, m, 0, "days_since_last"), 1.0, 1e-7);
  EXPECT_NEAR(raw(b, m, 1, "days_since_last"), 3 - 100 / day, 1e-6);
  EXPECT_EQ(raw(b, m, 2, "days_since_last"), 0);
}

TEST(Profile, SessionGapOfExactlyThirtyMinutesDoesNotSplit) {
  const auto ds = make_dataset(
      1, {"i0"}, {"view"}, {1},
      {{0, 0, 0, t0, 0}, {0, 0, 0, t0 + 1800, 0}, {0, 0, 0, t0 + 1800 + 1801, 0}}, {0, 1});
  const Fitted f = fit_tiny(params(), ds);
  EXPECT_EQ(raw(f.b, f.m, 0, "sessions"), 2);
  EXPECT_EQ(raw(f.b, f.m, 0, "active_days"), 1);
}

TEST(Profile, StandardisationAndImputation) {
  const Fitted f = fit_tiny(params(/*dense_weight=*/2));
  const auto& m = f.m;
  // cart/view over users with views: 1/3 and 0 -> mean 1/6, std 1/6; u2 is imputed.
  const auto j = col(m, "ratio:cart/view");
  EXPECT_NEAR(m.dense_mean[j], 1.0 / 6, 1e-12);
  EXPECT_NEAR(m.dense_std[j], 1.0 / 6, 1e-12);
  EXPECT_NEAR(val(f.b, m, 0, "ratio:cart/view"), 2 * 1.0, 1e-6);
  EXPECT_NEAR(val(f.b, m, 1, "ratio:cart/view"), 2 * -1.0, 1e-6);
  EXPECT_EQ(val(f.b, m, 2, "ratio:cart/view"), 0.0f);
  // Views per user 3, 1, 0 through log1p, then population mean and std.
  const double x[3] = {std::log(4.0), std::log(2.0), 0.0};
  const double mean = (x[0] + x[1] + x[2]) / 3;
  double var = 0;
  for (double v : x) var += (v - mean) * (v - mean) / 3;
  const auto k = col(m, "events:View");
  EXPECT_NEAR(m.dense_mean[k], mean, 1e-12);
  EXPECT_NEAR(m.dense_std[k], std::sqrt(var), 1e-12);
  for (int u = 0; u < 3; ++u)
    EXPECT_NEAR(val(f.b, m, u, "events:View"), 2 * (x[u] - mean) / std::sqrt(var), 1e-5);
  // Every standardised column has mean 0 over all users (imputed ones included).
  for (std::int64_t c = 0; c < m.n_dense(); ++c) {
    double s = 0;
    for (int u = 0; u < 3; ++u) s += f.b.dense_values[u * m.n_dense() + c];
    EXPECT_NEAR(s, 0.0, 1e-5) << m.dense_names[c];
  }
}

TEST(Profile, ConstantColumnBecomesZero) {
  const auto ds = make_dataset(2, {"i0", "i1"}, {"view"}, {1},
                               {{0, 0, 0, t0, 0}, {1, 1, 0, t0 + 10, 0}}, {0, 2});
  const Fitted f = fit_tiny(params(), ds);
  const auto j = col(f.m, "sessions");
  EXPECT_EQ(f.m.dense_std[j], 1.0);
  EXPECT_EQ(val(f.b, f.m, 0, "sessions"), 0.0f);
  EXPECT_EQ(val(f.b, f.m, 1, "sessions"), 0.0f);
}

TEST(Profile, AutomaticDenseWeight) {
  const Fitted f = fit_tiny(params(/*dense_weight=*/-1));
  EXPECT_NEAR(f.m.dense_weight, 0.5 / std::sqrt(static_cast<double>(f.m.n_dense())), 1e-15);
  const Fitted g = fit_tiny(params(/*dense_weight=*/0));
  EXPECT_EQ(g.m.dense_weight, 0.0);
  for (float v : g.b.dense_values) EXPECT_EQ(v, 0.0f);
}

TEST(Profile, TimeDecayHalvesTheWeightAtOneHalfLife) {
  // u0 viewed i0 at the reference time and i1 one half-life (2 days) earlier;
  // u1 viewed both at the reference time, u2 only i2: i0 and i1 share one idf.
  const double tr = t0 + 10 * day;
  const std::vector<Event> ev = {{0, 0, 0, tr, 0},
                                 {0, 1, 0, tr - 2 * day, 0},
                                 {1, 0, 0, tr, 0},
                                 {1, 1, 0, tr, 0},
                                 {2, 2, 0, tr - 100 * day, 0}};
  const auto ds = make_dataset(3, kItems, {"view"}, {2}, ev, {0, 3});
  const Fitted f = fit_tiny(params(1, /*half_life=*/2), ds);
  ASSERT_EQ(f.b.indices[0], 0);
  ASSERT_EQ(f.b.indices[1], 1);
  // Weights 2 and 2 * 1/2 = 1: entries in the ratio log1p(1) / log1p(2).
  EXPECT_NEAR(f.b.values[1] / f.b.values[0], std::log1p(1.0) / std::log1p(2.0), 1e-6);
  // u1's equal weights give equal entries; without decay u0's entries are equal too.
  EXPECT_NEAR(f.b.values[2], f.b.values[3], 1e-7);
  const Fitted g = fit_tiny(params(1, 0), ds);
  EXPECT_NEAR(g.b.values[0], g.b.values[1], 1e-7);
}

TEST(Profile, CategoryShares) {
  Comm serial;
  const Dataset ds = tiny();
  const std::vector<std::int32_t> cat = {1, 0, -1};  // i0 -> "a", i1 -> "b", i2 none
  const ProfileModel m = fit_profile_model(ds, params(), {"b", "a"}, cat, serial);
  const ProfileBlock b = profile_block(ds, m);
  // u0: 4 events on i0 (category index 1 = "a"), 1 on i1 ("b").
  EXPECT_NEAR(raw(b, m, 0, "category_share:a"), 0.8, 1e-7);
  EXPECT_NEAR(raw(b, m, 0, "category_share:b"), 0.2, 1e-7);
  EXPECT_EQ(raw(b, m, 1, "category_share:b"), 1.0);
  EXPECT_TRUE(std::isnan(raw(b, m, 2, "category_share:a")));  // only uncategorised items
  EXPECT_EQ(val(b, m, 2, "category_share:a"), 0.0f);
  // The shares enter standardisation as their square roots: a is sqrt(0.8) and 0 over the
  // users with categorised events, b sqrt(0.2) and 1; each is centred by its own mean, and
  // all are divided by one std, the root mean of their variances.
  const auto ja = col(m, "category_share:a"), jb = col(m, "category_share:b");
  EXPECT_NEAR(m.dense_mean[ja], std::sqrt(0.8) / 2, 1e-12);
  EXPECT_NEAR(m.dense_mean[jb], (std::sqrt(0.2) + 1) / 2, 1e-12);
  const double sa = std::sqrt(0.8) / 2, sb = (1 - std::sqrt(0.2)) / 2;
  const double pooled = std::sqrt((sa * sa + sb * sb) / 2);
  EXPECT_NEAR(m.dense_std[ja], pooled, 1e-12);
  EXPECT_NEAR(m.dense_std[jb], pooled, 1e-12);
  EXPECT_NEAR(val(b, m, 0, "category_share:a"), m.dense_weight * sa / pooled, 1e-6);
  EXPECT_NEAR(val(b, m, 1, "category_share:b"), m.dense_weight * sb / pooled, 1e-6);
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = testing_tmp::scratch_dir("profile") + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(Profile, ItemCategoryFile) {
  Comm serial;
  std::vector<std::string> cats;
  const auto path = write_temp("items.csv", "category,item_id\nz,i2\na,i0\nz,unknown\n\na,i0\n");
  const auto c = read_item_categories(path, {"i0", "i1", "i2"}, cats, serial);
  EXPECT_EQ(cats, (std::vector<std::string>{"a", "z"}));
  EXPECT_EQ(c, (std::vector<std::int32_t>{0, -1, 1}));
  EXPECT_THROW(read_item_categories(write_temp("c.csv", "item_id,category\ni0,a\ni0,b\n"), {"i0"},
                                    cats, serial),
               DataError);
  EXPECT_THROW(
      read_item_categories(write_temp("h.csv", "id,cat_name\ni0,a\n"), {"i0"}, cats, serial),
      DataError);
  EXPECT_THROW(read_item_categories("/nonexistent/items.csv", {"i0"}, cats, serial), Error);
}

TEST(Profile, NewUsersReuseTheStoredConstants) {
  const Fitted f = fit_tiny(params());
  // The same users in a data set with another item order and an extra item and
  // event type the model does not know: the known part profiles identically.
  std::vector<Event> ev = tiny_events();
  for (auto& e : ev) e.item = 2 - e.item;  // items reversed: "i2", "i1", "i0"
  ev.push_back({1, 3, 0, t0 + 50, 0});     // unknown item: behaviour only
  ev.push_back({2, 0, 3, t0 + 60, 0});     // unknown event type: ignored
  const auto ds =
      make_dataset(3, {"i2", "i1", "i0", "new"}, {"View", "add_to_cart", "purchase", "odd"},
                   {1, 3, 5, 1}, ev, {0, 3});
  const ProfileBlock b = profile_block(ds, f.m);
  EXPECT_EQ(b.indptr, f.b.indptr);
  EXPECT_EQ(b.indices, f.b.indices);
  for (std::size_t i = 0; i < b.values.size(); ++i) EXPECT_FLOAT_EQ(b.values[i], f.b.values[i]);
  EXPECT_EQ(raw(b, f.m, 1, "events:View"), 2);
  EXPECT_EQ(raw(b, f.m, 1, "distinct_items"), 2);
  EXPECT_EQ(raw(b, f.m, 2, "events:View"), 0);
  EXPECT_EQ(b.dense_values[0], f.b.dense_values[0]);
}

TEST(Profile, BadParameters) {
  const auto bad = [](auto mutate) {
    ProfileParams p = params();
    mutate(p);
    EXPECT_THROW(p.validate(), UsageError);
  };
  bad([](ProfileParams& p) { p.data.clear(); });
  bad([](ProfileParams& p) { p.out.clear(); });
  bad([](ProfileParams& p) { p.half_life_days = -1; });
  bad([](ProfileParams& p) { p.half_life_days = std::nan(""); });
  bad([](ProfileParams& p) { p.dense_weight = INFINITY; });
  EXPECT_NO_THROW(params().validate());
}

TEST(Profile, MissingEventLogIsAnError) {
  Dataset ds = tiny();
  ds.log_ptr.clear();
  EXPECT_THROW(fit_tiny(params(), ds), DataError);
}

}  // namespace

namespace {

// u0: a view and a purchase of 2 x i0 in one session, a purchase of 1 x i1 a day later;
// u1: one view of i1; u2: a purchase of 3 x i2 at the last timestamp. Event prices 10, 10,
// unknown (i1's item price 4), unknown (4), unknown (i2 has none).
Dataset priced_tiny(const std::vector<std::string>& types) {
  Dataset ds = make_dataset(3, kItems, types, {1, 5},
                            {{0, 0, 0, t0, 1},
                             {0, 0, 1, t0 + 60, 2},
                             {0, 1, 1, t0 + day, 1},
                             {1, 1, 0, t0, 5},
                             {2, 2, 1, t0 + 3 * day, 3}},
                            {0, 3});
  const float unknown = std::numeric_limits<float>::quiet_NaN();
  ds.log_price = {10, 10, unknown, unknown, unknown};
  ds.item_price = {std::nan(""), 4, std::nan("")};
  return ds;
}

}  // namespace

TEST(Profile, PricePositionIsTheMidPercentileWithinTheCategory) {
  const double nan = std::nan("");
  // Category 0: prices 5, 1, 5, 3 -> below/equal (2,2), (0,1), (2,2), (1,1) of 4;
  // category 1: one priced item; item 5 has no price, item 6 no category.
  const std::vector<double> price = {5, 1, 5, 3, 7, nan, 2};
  const std::vector<std::int32_t> cat = {0, 0, 0, 0, 1, 1, -1};
  const auto pos = item_price_positions(price, cat);
  ASSERT_EQ(pos.size(), price.size());
  EXPECT_DOUBLE_EQ(pos[0], 3.0 / 4);  // (2 + 2/2) / 4
  EXPECT_DOUBLE_EQ(pos[1], 0.5 / 4);
  EXPECT_DOUBLE_EQ(pos[2], 3.0 / 4);
  EXPECT_DOUBLE_EQ(pos[3], 1.5 / 4);
  EXPECT_DOUBLE_EQ(pos[4], 0.5);  // alone in its category
  EXPECT_TRUE(std::isnan(pos[5]));
  EXPECT_TRUE(std::isnan(pos[6]));
}

TEST(Profile, PricePositionAndPurchaseCartInClosedForm) {
  // priced_tiny's item prices (NaN, 4, NaN) give positions only with a second priced
  // item: with item prices (2, 4, 8) in categories (a, a, b) the positions are
  // (0.25, 0.75, 0.5).
  auto ds = priced_tiny({"view", "purchase"});
  ds.item_price = {2, 4, 8};
  const std::vector<std::int32_t> cats = {0, 0, 1};
  Comm serial;
  const ProfileModel m = fit_profile_model(ds, params(), {"a", "b"}, cats, serial);
  const ProfileBlock b = profile_block(ds, m);
  EXPECT_EQ(m.item_price_position, (std::vector<double>{0.25, 0.75, 0.5}));
  double want[3] = {0, 0, 0}, n[3] = {0, 0, 0};
  for (std::int64_t u = 0; u < ds.n_local(); ++u)
    for (std::int64_t e = ds.log_ptr[u]; e < ds.log_ptr[u + 1]; ++e) {
      want[u] += m.item_price_position[static_cast<std::size_t>(ds.log_item[e])];
      n[u] += 1;
    }
  for (int u = 0; u < 3; ++u) EXPECT_NEAR(raw(b, m, u, "price_position"), want[u] / n[u], 1e-6);
  const auto it = std::find(m.dense_names.begin(), m.dense_names.end(), "price_position");
  EXPECT_EQ(m.dense_block[static_cast<std::size_t>(it - m.dense_names.begin())], kBlockValue);
  // Without categories: no positions, no column.
  const ProfileModel plain = fit_profile_model(ds, params(), {}, {}, serial);
  EXPECT_TRUE(plain.item_price_position.empty());
  EXPECT_EQ(std::find(plain.dense_names.begin(), plain.dense_names.end(), "price_position"),
            plain.dense_names.end());
  // Cart and purchase types: (purchases + 0.5) / (carts + 1).
  const auto cart_ds = priced_tiny({"cart", "purchase"});
  const Fitted f = fit_tiny(params(), cart_ds);
  for (std::int64_t u = 0; u < cart_ds.n_local(); ++u) {
    double carts = 0, buys = 0;
    for (std::int64_t e = cart_ds.log_ptr[u]; e < cart_ds.log_ptr[u + 1]; ++e)
      (cart_ds.log_type[e] == 0 ? carts : buys) += 1;
    EXPECT_NEAR(raw(f.b, f.m, u, "ratio:purchase/cart"), (buys + 0.5) / (carts + 1), 1e-6) << u;
  }
}

TEST(Profile, MonetaryAndMeanPriceInClosedForm) {
  const auto ds = priced_tiny({"view", "purchase"});
  const Fitted f = fit_tiny(params(), ds);
  const auto& m = f.m;
  const auto& b = f.b;
  EXPECT_TRUE(m.prices);
  EXPECT_EQ(raw(b, m, 0, "monetary"), 10 * 2 + 4 * 1);  // purchases only: price x quantity
  EXPECT_EQ(raw(b, m, 1, "monetary"), 0);               // no purchase
  EXPECT_EQ(raw(b, m, 2, "monetary"), 0);               // price unknown
  EXPECT_EQ(raw(b, m, 0, "mean_price"), (10 + 10 + 4) / 3.0f);
  EXPECT_EQ(raw(b, m, 1, "mean_price"), 4);             // a view with the item's price
  EXPECT_TRUE(std::isnan(raw(b, m, 2, "mean_price")));  // no known price
  EXPECT_EQ(raw(b, m, 0, "purchase_sessions"), 2);
  EXPECT_EQ(raw(b, m, 1, "purchase_sessions"), 0);
  EXPECT_EQ(raw(b, m, 2, "purchase_sessions"), 1);
  EXPECT_NEAR(raw(b, m, 0, "days_since_purchase"), 2, 1e-7);
  EXPECT_TRUE(std::isnan(raw(b, m, 1, "days_since_purchase")));
  EXPECT_EQ(raw(b, m, 2, "days_since_purchase"), 0);
  // Standardised after log1p: monetary of u0 = (log1p(24) - mean) / std.
  const double l = std::log1p(24.0), mean = l / 3, sd = std::sqrt(l * l / 3 - mean * mean);
  EXPECT_NEAR(val(b, m, 0, "monetary"), (l - mean) / sd, 1e-5);
  for (auto blk : m.dense_block) EXPECT_NE(blk, 0);  // no categories: no interest columns
  EXPECT_TRUE(m.item_price_position.empty());        // nor price positions

  // RFM: R = (2, -, 0) days, F = (2, 0, 1), M = (24, 0, 0). Quintile cut points
  // (x_(ceil(qn)-1)): R over 2 users (0, 0, 2, 2), F (0, 1, 1, 2), M (0, 0, 0, 24).
  const std::vector<double> edges = {0, 0, 2, 2, 0, 1, 1, 2, 0, 0, 0, 24};
  EXPECT_EQ(m.rfm_edges, edges);
  const std::vector<std::uint8_t> scores = {3, 4, 4, 1, 1, 1, 5, 2, 1};
  EXPECT_EQ(b.rfm_scores, scores);
  EXPECT_EQ(b.rfm_values[2], 24);
  EXPECT_TRUE(std::isnan(b.rfm_values[3]));

  // No purchase type: every event counts, price x value; R and F from all events.
  const auto ds2 = priced_tiny({"view", "like"});
  const Fitted g = fit_tiny(params(), ds2);
  EXPECT_EQ(raw(g.b, g.m, 0, "monetary"), 10 * 1 + 10 * 2 + 4 * 1);
  EXPECT_EQ(raw(g.b, g.m, 1, "monetary"), 4 * 5);
  EXPECT_EQ(std::find(g.m.dense_names.begin(), g.m.dense_names.end(), "purchase_sessions"),
            g.m.dense_names.end());
  EXPECT_EQ(g.b.rfm_values[1], 2);  // u0: two sessions
  EXPECT_EQ(g.b.rfm_values[0], 2);  // u0: last event two days before the end

  // Without prices: no monetary column, M scores 0.
  const Fitted h = fit_tiny(params());
  EXPECT_FALSE(h.m.prices);
  EXPECT_TRUE(std::isnan(h.m.rfm_edges[8]));
  for (int u = 0; u < 3; ++u) EXPECT_EQ(h.b.rfm_scores[u * 3 + 2], 0);
}
