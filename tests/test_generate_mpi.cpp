// segrec generate under MPI: byte-identical output for any rank count (against a
// serial run on rank 0), file layout, funnel and session invariants, planted
// structure, noise accounting, and parameter validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "generate_helpers.hpp"
#include "segrec/core/comm.hpp"
#include "segrec/core/error.hpp"
#include "segrec/ingest/generate.hpp"
#include "segrec/io/parse.hpp"

namespace segrec {
namespace {

using namespace gen_test;

// ---- rank-count invariance -----------------------------------------------------------------

TEST(GenerateMpi, ByteIdenticalToSerialRun) {
  auto p = base_params("ident", 1237);  // not a multiple of 2, 3 or 4
  p.noise = 0.1;
  check_matches_serial(p, "ident");
}

TEST(GenerateMpi, ByteIdenticalWithManySmallRounds) {
  // 5 users per rank per round: many rounds, uneven last rounds, idle ranks.
  auto p = base_params("rounds", 203);
  p.round_users = 5;
  p.noise = 0.05;
  check_matches_serial(p, "rounds");
  // The round size does not change the output either.
  const Comm world = Comm::world();
  auto q = with_paths(p, "rounds_auto");
  q.round_users = 0;
  generate(q, world);
  if (world.is_root()) {
    EXPECT_EQ(slurp(p.events_out), slurp(q.events_out));
    EXPECT_EQ(slurp(p.truth_out), slurp(q.truth_out));
  }
  world.barrier();
}

TEST(GenerateMpi, FewerUsersThanRanks) {
  auto p = base_params("few", 3);
  check_matches_serial(p, "few");
}

TEST(GenerateMpi, SeedChangesOutputAndRepeatsIt) {
  const Comm world = Comm::world();
  auto p = base_params("seed_a", 300);
  auto q = with_paths(p, "seed_b");
  q.seed = p.seed + 1;
  auto r = with_paths(p, "seed_c");
  generate(p, world);
  generate(q, world);
  generate(r, world);
  if (world.is_root()) {
    EXPECT_NE(slurp(p.events_out), slurp(q.events_out));
    EXPECT_NE(slurp(p.truth_out), slurp(q.truth_out));
    EXPECT_EQ(slurp(p.events_out), slurp(r.events_out));
  }
  world.barrier();
}

// ---- layout --------------------------------------------------------------------------------

void check_layout(const GenerateParams& p, const GenerateSummary& s) {
  const auto ev = read_csv(p.events_out, kEventsHeader);
  const auto truth = read_csv(p.truth_out, "user_id,segment");
  const auto items = read_csv(p.items_out, kItemsHeader);
  ASSERT_EQ(static_cast<std::int64_t>(ev.size()), s.rows);
  EXPECT_EQ(s.events, s.rows);  // no noise
  EXPECT_EQ(s.users, p.users);
  EXPECT_EQ(s.items, p.items);
  const std::int64_t bytes = static_cast<std::int64_t>(
      fs::file_size(p.events_out) + fs::file_size(p.truth_out) + fs::file_size(p.items_out));
  EXPECT_EQ(s.bytes, bytes);

  // Items: every item once, in index order, categories all used.
  ASSERT_EQ(static_cast<std::int64_t>(items.size()), p.items);
  std::map<std::string, std::string> category_of, price_of;
  std::set<std::string> names_seen;
  std::map<std::string, int> items_per_category;
  for (std::size_t i = 0; i < items.size(); ++i) {
    ASSERT_EQ(items[i].size(), 4u);
    EXPECT_EQ(items[i][0].size(), 7u) << items[i][0];  // "i" + 6 digits
    EXPECT_EQ(id_number(items[i][0], 'i'), static_cast<std::int64_t>(i));
    EXPECT_EQ(id_number(items[i][1], 'c') < p.categories, true) << items[i][1];
    category_of[items[i][0]] = items[i][1];
    price_of[items[i][0]] = items[i][3];
    // Name "<adjective> <category word> #<ordinal in the category>".
    const std::string& name = items[i][2];
    EXPECT_EQ(name.find('"'), std::string::npos) << name;
    const auto hash = name.rfind(" #");
    ASSERT_NE(hash, std::string::npos) << name;
    EXPECT_EQ(std::stoi(name.substr(hash + 2)), items_per_category[items[i][1]] + 1) << name;
    EXPECT_GT(hash, name.find(' ')) << name;
    EXPECT_TRUE(names_seen.insert(name).second) << name << " twice";
    // Price: digits, '.', two digits; positive.
    const std::string& price = items[i][3];
    ASSERT_GE(price.size(), 4u) << price;
    EXPECT_EQ(price[price.size() - 3], '.') << price;
    EXPECT_EQ(price.find_first_not_of("0123456789."), std::string::npos) << price;
    EXPECT_GT(std::stod(price), 0) << price;
    ++items_per_category[items[i][1]];
  }
  EXPECT_EQ(static_cast<int>(items_per_category.size()), p.categories);
  for (const auto& [c, n] : items_per_category) {
    EXPECT_GE(n, p.items / p.categories) << c;
    EXPECT_LE(n, p.items / p.categories + 1) << c;
  }

  // Truth: every user once, in order.
  ASSERT_EQ(static_cast<std::int64_t>(truth.size()), p.users);
  for (std::size_t u = 0; u < truth.size(); ++u) {
    ASSERT_EQ(truth[u].size(), 2u);
    EXPECT_EQ(truth[u][0].size(), 8u) << truth[u][0];  // "u" + 7 digits
    EXPECT_EQ(id_number(truth[u][0], 'u'), static_cast<std::int64_t>(u));
    const int seg = std::stoi(truth[u][1]);
    EXPECT_TRUE(seg >= 0 && seg < p.segments) << truth[u][1];
  }

  // Events: users contiguous, in index order, times strictly increasing within a user.
  const auto t0 = static_cast<std::int64_t>(p.start);
  const auto t1 = t0 + static_cast<std::int64_t>(p.days * 86400);
  std::int64_t prev_user = -1, prev_time = 0, users_seen = 0;
  const std::set<std::string> names = {"view", "cart", "purchase"};
  for (const auto& r : ev) {
    ASSERT_EQ(r.size(), 7u);
    const std::int64_t u = id_number(r[0], 'u');
    const std::int64_t t = std::stoll(r[4]);
    ASSERT_GE(u, prev_user) << "users out of order at " << r[0];
    if (u != prev_user) {
      ++users_seen;
    } else {
      EXPECT_GT(t, prev_time) << r[0] << " events not time-ordered";
    }
    prev_user = u;
    prev_time = t;
    EXPECT_LT(u, p.users);
    EXPECT_GE(t, t0);
    EXPECT_LT(t, t1);
    EXPECT_EQ(category_of.at(r[1]), r[2]) << r[1];
    EXPECT_EQ(price_of.at(r[1]), r[6]) << r[1];
    EXPECT_TRUE(names.count(r[3])) << r[3];
    const int v = std::stoi(r[5]);
    EXPECT_GE(v, 1);
    EXPECT_LE(v, r[3] == "view" ? 900 : 12);
  }
  EXPECT_EQ(users_seen, p.users);  // every user has at least one view
  const double mean = static_cast<double>(ev.size()) / static_cast<double>(p.users);
  EXPECT_NEAR(mean, p.events_per_user, 0.05 * p.events_per_user);
}

TEST(GenerateMpi, FileLayout) {
  const Comm world = Comm::world();
  const auto p = base_params("layout", 2000);
  const GenerateSummary s = generate(p, world);
  if (world.is_root()) check_layout(p, s);
  world.barrier();
}

// ---- behaviour -----------------------------------------------------------------------------

struct UserLog {
  int segment = 0;
  std::vector<Row> rows;
};

std::vector<UserLog> load_users(const GenerateParams& p) {
  const auto truth = read_csv(p.truth_out, "user_id,segment");
  std::vector<UserLog> users(truth.size());
  for (std::size_t u = 0; u < truth.size(); ++u) users[u].segment = std::stoi(truth[u][1]);
  for (auto& r : read_csv(p.events_out, kEventsHeader))
    users[static_cast<std::size_t>(id_number(r[0], 'u'))].rows.push_back(std::move(r));
  return users;
}

void check_funnel(const GenerateParams& p) {
  const auto users = load_users(p);
  const auto planted = planted_segments(p, p.validate());
  std::vector<double> views(planted.size()), carts(planted.size()), buys(planted.size());
  for (const auto& u : users) {
    std::map<std::string, int> viewed;                 // item -> views so far
    std::map<std::string, std::multiset<int>> carted;  // item -> open cart quantities
    for (const auto& r : u.rows) {
      const auto seg = static_cast<std::size_t>(u.segment);
      if (r[3] == "view") {
        ++viewed[r[1]];
        ++views[seg];
      } else if (r[3] == "cart") {
        EXPECT_GT(viewed[r[1]], 0) << r[0] << " carts unviewed " << r[1];
        carted[r[1]].insert(std::stoi(r[5]));
        ++carts[seg];
      } else {
        auto& open = carted[r[1]];
        const auto it = open.find(std::stoi(r[5]));
        EXPECT_TRUE(it != open.end()) << r[0] << " buys " << r[1] << " x" << r[5] << " uncarted";
        if (it != open.end()) open.erase(it);
        ++buys[seg];
      }
    }
  }
  // Funnel rates follow the planted ones (thousands of views and hundreds of carts per segment).
  double lo = 1, hi = 0;
  for (std::size_t s = 0; s < planted.size(); ++s) {
    ASSERT_GT(carts[s], 100) << s;
    EXPECT_NEAR(carts[s] / views[s], planted[s].cart_rate, 0.02) << "segment " << s;
    EXPECT_NEAR(buys[s] / carts[s], planted[s].purchase_rate, 0.1) << "segment " << s;
    lo = std::min(lo, buys[s] / views[s]);
    hi = std::max(hi, buys[s] / views[s]);
  }
  EXPECT_GT(hi, 5 * lo) << "some segments must be heavy buyers";
}

TEST(GenerateMpi, FunnelInvariantsAndConversionBySegment) {
  const Comm world = Comm::world();
  const auto p = base_params("funnel", 3000);
  generate(p, world);
  if (world.is_root()) check_funnel(p);
  world.barrier();
}

void check_segments_and_sessions(const GenerateParams& p, bool exact_affinity) {
  const auto users = load_users(p);
  const auto planted = planted_segments(p, p.validate());
  std::vector<std::int64_t> per_segment(planted.size());
  std::int64_t in_segment = 0, views = 0, sessions = 0, events = 0;
  for (const auto& u : users) {
    const auto& mine = planted[static_cast<std::size_t>(u.segment)].categories;
    ++per_segment[static_cast<std::size_t>(u.segment)];
    std::int64_t prev = -1;
    for (const auto& r : u.rows) {
      const std::int64_t t = std::stoll(r[4]);
      // Inside a session events are at most 930 s apart; sessions at least 31 min.
      if (prev >= 0) {
        EXPECT_TRUE(t - prev <= 930 || t - prev >= 1860) << r[0] << " gap " << t - prev;
        if (t - prev > 1800) ++sessions;
      } else {
        ++sessions;
      }
      prev = t;
      ++events;
      if (r[3] != "view") continue;
      ++views;
      const int c = static_cast<int>(id_number(r[2], 'c'));
      in_segment += std::find(mine.begin(), mine.end(), c) != mine.end();
    }
  }
  const double share = static_cast<double>(in_segment) / static_cast<double>(views);
  if (exact_affinity)
    EXPECT_EQ(in_segment, views);
  else
    EXPECT_NEAR(share, p.affinity, 0.015);
  const double per_session = static_cast<double>(events) / static_cast<double>(sessions);
  EXPECT_GT(per_session, 3);
  EXPECT_LT(per_session, 12);
  // Segments are uniform: each count within 20% of users / segments (> 5 sd here).
  const double expect = static_cast<double>(p.users) / p.segments;
  for (std::size_t s = 0; s < per_segment.size(); ++s)
    EXPECT_NEAR(static_cast<double>(per_segment[s]), expect, 0.2 * expect) << "segment " << s;
}

TEST(GenerateMpi, PlantedAffinitySessionsAndBalancedSegments) {
  const Comm world = Comm::world();
  auto p = base_params("affinity", 3000);
  p.affinity = 0.7;
  generate(p, world);
  auto q = with_paths(p, "affinity1");
  q.affinity = 1;
  generate(q, world);
  if (world.is_root()) {
    check_segments_and_sessions(p, false);
    check_segments_and_sessions(q, true);
  }
  world.barrier();
}

TEST(GenerateMpi, ZipfPopularityWithinCategories) {
  const Comm world = Comm::world();
  // Structure taste: price tiers are drawn per user, so no tier's items gain
  // views from an unbalanced mix of segment tiers.
  auto p = base_params("zipf", 2000);
  p.structure = "taste";
  generate(p, world);
  auto q = with_paths(p, "zipf0");
  q.zipf = 0;
  generate(q, world);
  if (world.is_root()) {
    // Ratio of the most viewed item to the median item, averaged over categories.
    const auto skew = [](const GenerateParams& g) {
      std::map<std::string, std::map<std::string, int>> views;  // category -> item -> views
      for (const auto& r : read_csv(g.events_out, kEventsHeader))
        if (r[3] == "view") ++views[r[2]][r[1]];
      double sum = 0;
      for (const auto& [c, counts] : views) {
        std::vector<int> v;
        for (const auto& [i, n] : counts) v.push_back(n);
        std::sort(v.begin(), v.end());
        sum += static_cast<double>(v.back()) / v[v.size() / 2];
      }
      return sum / static_cast<double>(views.size());
    };
    EXPECT_GT(skew(p), 8.0);
    EXPECT_LT(skew(q), 3.0);
  }
  world.barrier();
}

// ---- noise ---------------------------------------------------------------------------------

bool is_broken(const std::string& line) {
  const Row f = fields_of(line);
  return f.size() != 7 || f[0].empty() || f[4] == "n/a";
}

// The row with an empty value (the second last field).
std::string without_value(const std::string& line) {
  const auto last = line.rfind(',');
  const auto value = line.rfind(',', last - 1);
  return line.substr(0, value + 1) + line.substr(last);
}

void check_noise(const GenerateParams& clean_p, const GenerateParams& noisy_p,
                 const GenerateSummary& clean_s, const GenerateSummary& noisy_s) {
  const auto clean = lines_of(clean_p.events_out);
  const auto noisy = lines_of(noisy_p.events_out);
  ASSERT_EQ(clean[0], noisy[0]);
  EXPECT_EQ(static_cast<std::int64_t>(noisy.size()) - 1, noisy_s.rows);
  EXPECT_EQ(slurp(clean_p.truth_out), slurp(noisy_p.truth_out));  // same users, same segments
  // Walk both files: each clean row appears as itself, twice, without its
  // value, or as one broken row; nothing else is in the noisy file.
  std::int64_t dup = 0, empty = 0, broken = 0;
  std::size_t j = 1;
  for (std::size_t i = 1; i < clean.size(); ++i) {
    ASSERT_LT(j, noisy.size()) << "noisy file ends early at clean row " << i;
    const std::string& c = clean[i];
    const std::string& n = noisy[j];
    if (n == c) {
      ++j;
      if (j < noisy.size() && noisy[j] == c) {
        ++dup;
        ++j;
      }
    } else if (n == without_value(c)) {
      ++empty;
      ++j;
    } else {
      ASSERT_TRUE(is_broken(n)) << "row " << j << " '" << n << "' for clean row '" << c << "'";
      ++broken;
      ++j;
    }
  }
  EXPECT_EQ(j, noisy.size());
  EXPECT_EQ(dup, noisy_s.duplicates);
  EXPECT_EQ(empty, noisy_s.missing_values);
  EXPECT_EQ(broken, noisy_s.broken);
  EXPECT_EQ(noisy_s.events, clean_s.events - broken);
  EXPECT_EQ(noisy_s.rows, clean_s.rows + dup);
  const double rows = static_cast<double>(clean_s.rows);
  const double f = noisy_p.noise;
  EXPECT_NEAR(static_cast<double>(dup) / rows, f / 2, 0.01);
  EXPECT_NEAR(static_cast<double>(empty) / rows, f / 4, 0.01);
  EXPECT_NEAR(static_cast<double>(broken) / rows, f / 4, 0.01);
  // All three kinds of broken row occur.
  int no_field = 0, bad_time = 0, no_user = 0;
  for (std::size_t k = 1; k < noisy.size(); ++k) {
    const Row r = fields_of(noisy[k]);
    no_field += r.size() == 6;
    bad_time += r.size() >= 6 && r[4] == "n/a";
    no_user += r[0].empty();
  }
  EXPECT_GT(no_field, 0);
  EXPECT_GT(bad_time, 0);
  EXPECT_GT(no_user, 0);
  EXPECT_EQ(no_field + bad_time + no_user, broken);

  // The ingest parser sees exactly these faults.
  std::vector<std::string_view> fields;
  std::string scratch;
  ASSERT_TRUE(parse::split(noisy[0], ",", fields, scratch));
  const parse::Layout layout = parse::layout_from_header(fields, ",", {});
  std::map<parse::Bad, int> why;
  int no_value = 0;
  for (std::size_t k = 1; k < noisy.size(); ++k) {
    parse::Row row;
    const parse::Bad b = parse::parse_row(noisy[k], layout, 0, fields, scratch, row, nullptr);
    ++why[b];
    if (b == parse::Bad::kNone && !row.has_value) ++no_value;
  }
  EXPECT_EQ(why[parse::Bad::kFieldCount], no_field);
  EXPECT_EQ(why[parse::Bad::kBadTime], bad_time);
  EXPECT_EQ(why[parse::Bad::kEmptyUser], no_user);
  EXPECT_EQ(why[parse::Bad::kNone], static_cast<int>(noisy.size()) - 1 - broken);
  EXPECT_EQ(no_value, empty);
}

TEST(GenerateMpi, NoiseIsAccountedAndKeepsTheCleanRows) {
  const Comm world = Comm::world();
  auto p = base_params("clean", 1500);
  auto q = with_paths(p, "noisy");
  q.noise = 0.2;
  const auto s = generate(p, world);
  const auto t = generate(q, world);
  EXPECT_EQ(s.duplicates + s.missing_values + s.broken, 0);
  if (world.is_root()) check_noise(p, q, s, t);
  world.barrier();
}

// ---- errors --------------------------------------------------------------------------------

TEST(GenerateMpi, UnwritablePathIsACollectiveIoError) {
  const Comm world = Comm::world();
  auto p = base_params("unwritable", 50);
  if (world.is_root()) {
    fs::remove(p.truth_out);
    fs::remove(p.items_out);
  }
  world.barrier();
  p.events_out = tmp_path("no_such_dir/sub/events.csv");
  try {
    generate(p, world);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitIo) << e.what();
    EXPECT_TRUE(e.collective());
  }
  // Nothing was written: outputs are opened before any is filled.
  EXPECT_FALSE(fs::exists(p.truth_out));
  EXPECT_FALSE(fs::exists(p.items_out));
  world.barrier();
}

TEST(GenerateParams, ValidateNamesTheOption) {
  GenerateParams ok;
  ok.events_out = "e.csv";
  EXPECT_NO_THROW(ok.validate());
  struct Case {
    const char* option;
    void (*mutate)(GenerateParams&);
  };
  const Case cases[] = {
      {"--users", [](GenerateParams& p) { p.users = 0; }},
      {"--items", [](GenerateParams& p) { p.items = p.categories - 1; }},
      {"--items", [](GenerateParams& p) { p.items = std::int64_t{1} << 31; }},
      {"--segments", [](GenerateParams& p) { p.segments = 0; }},
      {"--categories", [](GenerateParams& p) { p.categories = 0; }},
      {"--events-per-user", [](GenerateParams& p) { p.events_per_user = 0; }},
      {"--events-per-user", [](GenerateParams& p) { p.events_per_user = NAN; }},
      {"--zipf", [](GenerateParams& p) { p.zipf = -0.1; }},
      {"--affinity", [](GenerateParams& p) { p.affinity = 1.01; }},
      {"--days", [](GenerateParams& p) { p.days = 0; }},
      {"--days", [](GenerateParams& p) { p.days = 1e9; }},
      {"--start", [](GenerateParams& p) { p.start = -1; }},
      {"--noise", [](GenerateParams& p) { p.noise = 0.6; }},
      {"--events", [](GenerateParams& p) { p.events_out.clear(); }},
      {"--truth", [](GenerateParams& p) { p.truth_out = p.events_out; }},
      {"--items-out", [](GenerateParams& p) { p.items_out = p.events_out; }},
      {"--items-out", [](GenerateParams& p) { p.items_out = p.truth_out = "t.csv"; }},
      {"--round-users", [](GenerateParams& p) { p.round_users = -1; }},
      {"--structure", [](GenerateParams& p) { p.structure = "tastes"; }},
      {"--structure", [](GenerateParams& p) { p.structure = ""; }},
  };
  for (const auto& c : cases) {
    GenerateParams p = ok;
    c.mutate(p);
    try {
      p.validate();
      ADD_FAILURE() << c.option << ": accepted";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(c.option), std::string::npos)
          << c.option << ": " << e.what();
    }
  }
}

TEST(GenerateParams, PlantedSegmentsSpreadOverCategories) {
  GenerateParams p;
  p.segments = 8;
  p.categories = 20;
  const auto segs = planted_segments(p, GenerateModes{});
  ASSERT_EQ(segs.size(), 8u);
  std::set<int> used;
  std::size_t slots = 0;
  double lo = 1, hi = 0;
  for (const auto& s : segs) {
    EXPECT_TRUE(s.categories.size() == 2 || s.categories.size() == 3);
    EXPECT_EQ(s.categories.size(), s.shares.size());
    EXPECT_EQ(std::set<int>(s.categories.begin(), s.categories.end()).size(), s.categories.size());
    double total = 0;
    for (double w : s.shares) total += w;
    EXPECT_NEAR(total, 1.0, 1e-12);
    used.insert(s.categories.begin(), s.categories.end());
    slots += s.categories.size();
    EXPECT_TRUE(s.cart_rate >= 0.03 && s.cart_rate <= 0.30);
    EXPECT_TRUE(s.purchase_rate >= 0.2 && s.purchase_rate <= 0.8);
    lo = std::min(lo, s.cart_rate * s.purchase_rate);
    hi = std::max(hi, s.cart_rate * s.purchase_rate);
  }
  // No category is shared before every category is taken.
  EXPECT_EQ(used.size(), std::min<std::size_t>(slots, 20));
  EXPECT_GT(hi, 5 * lo);
  // Two segments share at most one category while the categories allow it: 16 segments in
  // 20 categories, over several seeds (a second deck could repeat a pair before).
  for (std::uint64_t seed : {1, 7, 42, 99}) {
    p.segments = 16;
    p.seed = seed;
    const auto many = planted_segments(p, GenerateModes{});
    std::set<int> all;
    for (std::size_t a = 0; a < many.size(); ++a) {
      all.insert(many[a].categories.begin(), many[a].categories.end());
      for (std::size_t b = 0; b < a; ++b) {
        int shared = 0;
        for (int c : many[a].categories)
          shared +=
              static_cast<int>(std::count(many[b].categories.begin(), many[b].categories.end(), c));
        EXPECT_LE(shared, 1) << "seed " << seed << ": segments " << b << " and " << a;
      }
    }
    EXPECT_EQ(all.size(), 20u) << "seed " << seed;
  }
  // Few categories: segments take what there is, repeating pairs when they must.
  p.segments = 8;
  p.categories = 3;
  for (const auto& s : planted_segments(p, GenerateModes{})) {
    EXPECT_TRUE(s.categories.size() == 2 || s.categories.size() == 3);
    EXPECT_EQ(std::set<int>(s.categories.begin(), s.categories.end()).size(), s.categories.size());
  }
  p.categories = 1;
  for (const auto& s : planted_segments(p, GenerateModes{}))
    EXPECT_EQ(s.categories, std::vector<int>{0});
}

}  // namespace
}  // namespace segrec
