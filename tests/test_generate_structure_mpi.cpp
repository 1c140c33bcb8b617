// segrec generate --structure: byte-identical output at any rank count for each
// structure; under taste the segments differ only in categories, under
// behaviour only in activity, funnel, price tier, quantity and recency (measured
// on the written files against the planted levels); 16 behaviour segments are
// recoverable from per-user statistics, taste segments are not; prices and names; the items
// file read by the item-attribute and profile readers; the --structure error.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "generate_helpers.hpp"
#include "segrec/core/comm.hpp"
#include "segrec/core/error.hpp"
#include "segrec/ingest/generate.hpp"
#include "segrec/io/items.hpp"
#include "segrec/segmentation/profile.hpp"

namespace segrec {
namespace {

using namespace gen_test;

GenerateParams structured(const std::string& structure, const std::string& tag,
                          std::int64_t users) {
  auto p = base_params(tag, users);
  p.structure = structure;
  return p;
}

TEST(GenerateStructure, ByteIdenticalToSerialRunForEachStructure) {
  for (const char* s : {"taste", "behaviour", "both"}) {
    auto p = structured(s, std::string("ident_") + s, 801);
    p.noise = 0.1;
    check_matches_serial(p, std::string("ident_") + s);
  }
}

// ---- per-segment statistics of a written log -------------------------------------------------

struct SegmentStats {
  double users = 0, events = 0, views = 0, carts = 0, purchases = 0;
  double units = 0;           // quantity summed over carts
  double rel_price_paid = 0;  // sum over purchases of price / the category's median price
  double rel_price_seen = 0;  // the same over views
  double idle_days = 0;       // sum over users of days from the last event to the period's end
  std::vector<double> category_views;
  double per_user() const { return events / users; }
  double buy_per_view() const { return purchases / views; }
  double paid() const { return rel_price_paid / purchases; }
  double seen() const { return rel_price_seen / views; }
  double idle() const { return idle_days / users; }
  double share(std::size_t c) const { return category_views[c] / views; }
};

std::vector<SegmentStats> segment_stats(const GenerateParams& p) {
  // Item -> (category, price relative to the category's median).
  std::map<std::string, std::vector<double>> prices;  // category -> prices
  const auto items = read_csv(p.items_out, kItemsHeader);
  for (const auto& r : items) prices[r[1]].push_back(std::stod(r[3]));
  std::map<std::string, double> median;
  for (auto& [c, v] : prices) {
    std::sort(v.begin(), v.end());
    median[c] = v[v.size() / 2];
  }
  std::map<std::string, double> rel;
  for (const auto& r : items) rel[r[0]] = std::stod(r[3]) / median.at(r[1]);

  const auto truth = read_csv(p.truth_out, "user_id,segment");
  std::vector<SegmentStats> out(static_cast<std::size_t>(p.segments));
  for (auto& s : out) s.category_views.assign(static_cast<std::size_t>(p.categories), 0);
  for (const auto& t : truth) ++out[static_cast<std::size_t>(std::stoi(t[1]))].users;
  std::vector<std::int64_t> last(truth.size(), 0);
  for (const auto& r : read_csv(p.events_out, kEventsHeader)) {
    const auto u = static_cast<std::size_t>(id_number(r[0], 'u'));
    SegmentStats& s = out[static_cast<std::size_t>(std::stoi(truth[u][1]))];
    ++s.events;
    last[u] = std::max<std::int64_t>(last[u], std::stoll(r[4]));
    if (r[3] == "view") {
      ++s.views;
      s.rel_price_seen += rel.at(r[1]);
      s.category_views[static_cast<std::size_t>(id_number(r[2], 'c'))] += 1;
    } else if (r[3] == "cart") {
      ++s.carts;
      s.units += std::stod(r[5]);
    } else {
      ++s.purchases;
      s.rel_price_paid += rel.at(r[1]);
    }
  }
  const double end = p.start + p.days * 86400;
  for (std::size_t u = 0; u < truth.size(); ++u)
    out[static_cast<std::size_t>(std::stoi(truth[u][1]))].idle_days +=
        (end - static_cast<double>(last[u])) / 86400;
  return out;
}

// max / min of f over the segments.
template <class F>
double spread(const std::vector<SegmentStats>& s, F f) {
  double lo = 1e300, hi = -1e300;
  for (const auto& x : s) {
    lo = std::min(lo, f(x));
    hi = std::max(hi, f(x));
  }
  return hi / lo;
}

TEST(GenerateStructure, TasteSegmentsDifferOnlyInCategories) {
  const Comm world = Comm::world();
  auto p = structured("taste", "taste", 4000);
  generate(p, world);
  if (world.is_root()) {
    const auto planted = planted_segments(p, p.validate());
    for (const auto& s : planted) {
      EXPECT_EQ(s.activity_level, -1);
      EXPECT_EQ(s.funnel_level, -1);
      EXPECT_EQ(s.price_tier, -1);
      EXPECT_EQ(s.recency_level, -1);
      EXPECT_FALSE(s.categories.empty());
    }
    const auto st = segment_stats(p);
    // Behaviour is segment-independent: ~670 users per segment.
    EXPECT_LT(spread(st, [](const auto& s) { return s.per_user(); }), 1.15);
    EXPECT_LT(spread(st, [](const auto& s) { return s.buy_per_view(); }), 1.2);
    EXPECT_LT(spread(st, [](const auto& s) { return s.paid(); }), 1.15);
    EXPECT_LT(spread(st, [](const auto& s) { return s.seen(); }), 1.1);
    EXPECT_LT(spread(st, [](const auto& s) { return s.units / s.carts; }), 1.15);
    EXPECT_LT(spread(st, [](const auto& s) { return s.idle(); }), 1.25);
    // Taste is not: each segment's views sit in its preferred categories.
    for (std::size_t a = 0; a < st.size(); ++a) {
      double mine = 0;
      for (int c : planted[a].categories) mine += st[a].share(static_cast<std::size_t>(c));
      EXPECT_NEAR(mine, p.affinity, 0.03) << "segment " << a;
      for (std::size_t b = 0; b < a; ++b) {
        double l1 = 0;
        for (std::size_t c = 0; c < st[a].category_views.size(); ++c)
          l1 += std::abs(st[a].share(c) - st[b].share(c));
        EXPECT_GT(l1, 0.8) << "segments " << a << " and " << b;
      }
    }
  }
  world.barrier();
}

TEST(GenerateStructure, BehaviourSegmentsDifferOnlyInBehaviour) {
  const Comm world = Comm::world();
  auto p = structured("behaviour", "behaviour", 4000);
  generate(p, world);
  if (world.is_root()) {
    const auto planted = planted_segments(p, p.validate());
    const auto st = segment_stats(p);
    double activity = 0;
    for (std::size_t s = 0; s < st.size(); ++s) {
      const auto& x = st[s];
      const auto& g = planted[s];
      EXPECT_TRUE(g.categories.empty());
      activity += g.activity;
      // The measured behaviour follows the planted levels.
      EXPECT_NEAR(x.per_user(), g.activity * p.events_per_user,
                  0.12 * g.activity * p.events_per_user)
          << "segment " << s;
      EXPECT_NEAR(x.carts / x.views, g.cart_rate, 0.15 * g.cart_rate) << "segment " << s;
      EXPECT_NEAR(x.purchases / x.carts, g.purchase_rate, 0.07) << "segment " << s;
      EXPECT_NEAR(x.units / x.carts - 1, g.quantity_extra, 0.25 * g.quantity_extra + 0.05)
          << "segment " << s;
      // Tier: budget below the category median, premium above.
      if (g.price_tier == 0) {
        EXPECT_LT(x.seen(), 0.85) << "segment " << s;
      }
      if (g.price_tier == 2) {
        EXPECT_GT(x.seen(), 1.25) << "segment " << s;
      }
      // Lapsed users stop after 25%-55% of the 90 days; recent ones run to the end.
      if (g.recency_level == 0) {
        EXPECT_GT(x.idle(), 35) << "segment " << s;
      }
      if (g.recency_level == 1) {
        EXPECT_LT(x.idle(), 12) << "segment " << s;
      }
      // Taste is shared: every category's share agrees with the other segments'.
      for (std::size_t c = 0; c < x.category_views.size(); ++c)
        EXPECT_NEAR(x.share(c), st[0].share(c), 0.025) << "segment " << s << " category " << c;
    }
    EXPECT_NEAR(activity / static_cast<double>(planted.size()), 1.0, 1e-12);
    // Any two segments differ clearly in at least one dimension.
    for (std::size_t a = 0; a < st.size(); ++a)
      for (std::size_t b = 0; b < a; ++b) {
        const auto ratio = [](double x, double y) { return std::max(x / y, y / x); };
        const bool differ = ratio(st[a].per_user(), st[b].per_user()) > 1.8 ||
                            ratio(st[a].buy_per_view(), st[b].buy_per_view()) > 2 ||
                            ratio(st[a].seen(), st[b].seen()) > 1.3 ||
                            ratio(st[a].units / st[a].carts, st[b].units / st[b].carts) > 1.5 ||
                            std::abs(st[a].idle() - st[b].idle()) > 25;
        EXPECT_TRUE(differ) << "segments " << a << " and " << b;
      }
  }
  world.barrier();
}

// ---- recoverability from per-user behaviour statistics ----------------------------------------

constexpr int kFeatures = 6;
using Features = std::array<double, kFeatures>;

// Per user: log events, log carts per view, log purchases per cart (smoothed),
// log mean relative price of the viewed items, log mean units per cart line
// (1.8 without carts), idle days at the end of the period / 30.
std::vector<Features> user_features(const GenerateParams& p) {
  std::map<std::string, std::vector<double>> prices;
  const auto items = read_csv(p.items_out, kItemsHeader);
  for (const auto& r : items) prices[r[1]].push_back(std::stod(r[3]));
  std::map<std::string, double> median;
  for (auto& [c, v] : prices) {
    std::sort(v.begin(), v.end());
    median[c] = v[v.size() / 2];
  }
  std::map<std::string, double> rel;
  for (const auto& r : items) rel[r[0]] = std::stod(r[3]) / median.at(r[1]);
  struct Acc {
    double events = 0, views = 0, carts = 0, buys = 0, price = 0, units = 0, last = 0;
  };
  std::vector<Acc> acc(static_cast<std::size_t>(p.users));
  for (const auto& r : read_csv(p.events_out, kEventsHeader)) {
    Acc& a = acc[static_cast<std::size_t>(id_number(r[0], 'u'))];
    ++a.events;
    a.last = std::max(a.last, std::stod(r[4]));
    if (r[3] == "view") {
      ++a.views;
      a.price += rel.at(r[1]);
    } else if (r[3] == "cart") {
      ++a.carts;
      a.units += std::stod(r[5]);
    } else {
      ++a.buys;
    }
  }
  const double end = p.start + p.days * 86400;
  std::vector<Features> out;
  for (const Acc& a : acc)
    out.push_back({std::log(a.events), std::log((a.carts + 0.5) / (a.views + 1)),
                   std::log((a.buys + 0.5) / (a.carts + 1)), std::log(a.price / a.views),
                   std::log(a.carts > 0 ? a.units / a.carts : 1.8), (end - a.last) / 86400 / 30});
  return out;
}

// Share of users whose segment is the most likely one under a diagonal
// Gaussian per segment fitted to the segment's users (an upper bound on what a
// clustering of these statistics can recover; chance is 1 / segments).
double recoverable_share(const GenerateParams& p) {
  const auto x = user_features(p);
  const auto truth = read_csv(p.truth_out, "user_id,segment");
  const auto S = static_cast<std::size_t>(p.segments);
  std::vector<Features> mean(S), var(S);
  std::vector<double> n(S);
  for (std::size_t u = 0; u < x.size(); ++u) {
    const auto s = static_cast<std::size_t>(std::stoi(truth[u][1]));
    ++n[s];
    for (int d = 0; d < kFeatures; ++d) mean[s][d] += x[u][d];
  }
  for (std::size_t s = 0; s < S; ++s)
    for (int d = 0; d < kFeatures; ++d) mean[s][d] /= n[s];
  for (std::size_t u = 0; u < x.size(); ++u) {
    const auto s = static_cast<std::size_t>(std::stoi(truth[u][1]));
    for (int d = 0; d < kFeatures; ++d) var[s][d] += std::pow(x[u][d] - mean[s][d], 2) / n[s];
  }
  double right = 0;
  for (std::size_t u = 0; u < x.size(); ++u) {
    std::size_t best = 0;
    double best_ll = -1e300;
    for (std::size_t s = 0; s < S; ++s) {
      double ll = 0;
      for (int d = 0; d < kFeatures; ++d)
        ll -= std::pow(x[u][d] - mean[s][d], 2) / (2 * var[s][d] + 1e-12) +
              0.5 * std::log(var[s][d] + 1e-12);
      if (ll > best_ll) {
        best_ll = ll;
        best = s;
      }
    }
    right += best == static_cast<std::size_t>(std::stoi(truth[u][1]));
  }
  return right / static_cast<double>(x.size());
}

TEST(GenerateStructure, SixteenBehaviourSegmentsRecoverableFromUserStatistics) {
  const Comm world = Comm::world();
  auto p = structured("behaviour", "recover", 8000);
  p.segments = 16;
  generate(p, world);
  auto q = with_paths(p, "recover_taste");
  q.structure = "taste";
  generate(q, world);
  if (world.is_root()) {
    const double behaviour = recoverable_share(p), taste = recoverable_share(q);
    EXPECT_GT(behaviour, 0.8);
    EXPECT_LT(taste, 0.15);  // chance 1/16 plus the fit's own optimism
    std::printf(
        "[          ] recoverable share of users, 16 segments: behaviour %.3f, taste %.3f\n",
        behaviour, taste);
  }
  world.barrier();
}

TEST(GenerateStructure, PlantedBehaviourCodesAreDistinct) {
  GenerateParams p;
  p.structure = "behaviour";
  GenerateModes m;
  m.structure = GenerateStructure::kBehaviour;
  for (int S : {2, 8, 16, 108}) {
    for (std::uint64_t seed : {1, 7, 42, 1234}) {
      p.segments = S;
      p.seed = seed;
      const auto segs = planted_segments(p, m);
      std::set<std::vector<int>> codes;
      int min_distance = 5;
      for (std::size_t a = 0; a < segs.size(); ++a) {
        const auto& x = segs[a];
        codes.insert(
            {x.activity_level, x.funnel_level, x.price_tier, x.quantity_level, x.recency_level});
        for (std::size_t b = 0; b < a; ++b) {
          const auto& y = segs[b];
          min_distance =
              std::min(min_distance,
                       (x.activity_level != y.activity_level) + (x.funnel_level != y.funnel_level) +
                           (x.price_tier != y.price_tier) + (x.quantity_level != y.quantity_level) +
                           (x.recency_level != y.recency_level));
        }
      }
      EXPECT_EQ(static_cast<int>(codes.size()), S);
      // The first segments differ in several dimensions at once.
      if (S <= 16) {
        EXPECT_GE(min_distance, 2) << S << " segments";
      }
      if (S == 2) {
        EXPECT_EQ(min_distance, 5);
      }
    }
  }
  // Past 108 segments the codes repeat.
  p.segments = 110;
  const auto segs = planted_segments(p, m);
  EXPECT_EQ(segs[108].price_tier, segs[0].price_tier);
  EXPECT_EQ(segs[109].funnel_level, segs[1].funnel_level);
}

// ---- items: prices and names, read back by the item readers --------------------------------

TEST(GenerateStructure, ItemsFileReadsBackAndPricesSpread) {
  const Comm world = Comm::world();
  auto p = base_params("items", 20);
  p.categories = 45;  // past the 40 category words
  p.items = 900;
  generate(p, world);
  const ItemAttributes a = read_items(p.items_out, ItemsFormat::kCsv, world);
  ASSERT_EQ(a.size(), p.items);
  std::map<std::string, std::vector<double>> by_category;
  for (std::int64_t i = 0; i < a.size(); ++i) {
    const auto k = static_cast<std::size_t>(i);
    EXPECT_EQ(id_number(a.ids[k], 'i'), i);
    EXPECT_EQ(a.names[k].find(','), std::string::npos) << a.names[k];
    EXPECT_GT(a.prices[k], 0) << a.ids[k];
    EXPECT_NEAR(a.prices[k] * 100, std::round(a.prices[k] * 100), 1e-6) << a.prices[k];
    by_category[a.categories[k]].push_back(a.prices[k]);
  }
  EXPECT_EQ(static_cast<int>(by_category.size()), p.categories);
  // Base prices spread over categories (median prices over a factor 20 apart).
  double lo = 1e300, hi = 0;
  for (auto& [c, v] : by_category) {
    std::sort(v.begin(), v.end());
    lo = std::min(lo, v[v.size() / 2]);
    hi = std::max(hi, v[v.size() / 2]);
  }
  EXPECT_GT(hi / lo, 20);
  EXPECT_GE(lo, 1);
  EXPECT_LE(hi, 800);
  // A name past the 40th category repeats a word with a number.
  EXPECT_NE(a.names[0].find(" #"), std::string::npos) << a.names[0];
  bool cycled = false;
  for (const auto& n : a.names) cycled |= n.find("Books 2 #") != std::string::npos;
  EXPECT_TRUE(cycled);

  // The profile stage's category reader accepts the file.
  std::vector<std::string> cats;
  const auto idx = read_item_categories(p.items_out, a.ids, cats, world);
  EXPECT_EQ(static_cast<int>(cats.size()), p.categories);
  for (std::size_t i = 0; i < idx.size(); ++i)
    EXPECT_EQ(cats.at(static_cast<std::size_t>(idx[i])), a.categories[i]);
}

TEST(GenerateStructure, BadStructureNamesOptionAndValue) {
  GenerateParams p;
  p.events_out = "e.csv";
  for (const char* bad : {"tastes", "Behaviour", ""}) {
    p.structure = bad;
    try {
      p.validate();
      ADD_FAILURE() << bad << ": accepted";
    } catch (const UsageError& e) {
      EXPECT_EQ(std::string(e.what()), std::string("invalid value '") + bad +
                                           "' for --structure: use taste, behaviour or both");
    }
  }
  for (const auto& [text, mode] : {std::pair{"taste", GenerateStructure::kTaste},
                                   std::pair{"behaviour", GenerateStructure::kBehaviour},
                                   std::pair{"both", GenerateStructure::kBoth}}) {
    p.structure = text;
    EXPECT_EQ(p.validate().structure, mode) << text;
  }
  EXPECT_EQ(GenerateParams{}.structure, "both");
}

}  // namespace
}  // namespace segrec
