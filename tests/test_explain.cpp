// Leave-one-out explanations against a naive rescoring (the user's input rebuilt
// without the item, a full forward pass through score_users, score and rank compared),
// for history-only, dense + embedding, linear and segment-head models, with excluded
// items; a planted item that drives a recommendation is named first.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <ostream>
#include <string>
#include <vector>

#include "segrec/core/random.hpp"
#include "segrec/serving/explain.hpp"

namespace segrec {
namespace {

constexpr std::int64_t kItems = 40;

struct Case {
  const char* name;
  std::vector<std::int64_t> hidden;
  std::int64_t dense = 0, embed = 0, segments = 0;
  bool heads = false;
  const char* weight = "binary";
  mlp::Activation act = mlp::Activation::kRelu;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

Model make_model(const Case& c, std::uint64_t seed) {
  Model m;
  auto& s = m.shape;
  s.sparse_in = s.n_out = kItems;
  s.hidden = c.hidden;
  s.dense_in = c.dense;
  s.embed_dim = c.embed;
  s.n_segments = c.segments;
  s.activation = c.act;
  m.history_weight = c.weight;
  for (std::int64_t i = 0; i < kItems; ++i) {
    std::string id(1, 'i');
    id += std::to_string(i);
    m.item_ids.push_back(id);
  }
  mlp::Network<float> net(s);
  net.init(seed);
  m.params = net.params();
  const mlp::Layout lay(s);  // small random biases: ties are not what is tested
  for (int l = 0; l < s.n_layers(); ++l)
    for (std::int64_t j = 0; j < s.fan_out(l); ++j)
      m.params[lay.b[l] + j] =
          0.1f * static_cast<float>(rng::unit_uniform(rng::hash_keys(seed, lay.b[l] + j)) - 0.5);
  if (c.heads) {
    m.head_layers = 1;
    m.head_segments = {0, 2};
    m.heads.resize(2 * m.head_size());
    for (std::size_t k = 0; k < m.heads.size(); ++k)
      m.heads[k] = 0.3f * static_cast<float>(rng::unit_uniform(rng::hash_keys(seed + 7, k)) - 0.5);
  }
  return m;
}

// Users with 1..12 distinct items, a projection row and a segment each.
UserInputs make_users(const Model& m, std::int64_t n, std::uint64_t seed) {
  UserInputs u;
  for (std::int64_t r = 0; r < n; ++r) {
    std::vector<std::int32_t> row;
    const std::int64_t len = 1 + r % 12;
    for (std::int64_t k = 0; row.size() < static_cast<std::size_t>(len); ++k) {
      const auto i = static_cast<std::int32_t>(rng::hash_keys(seed, r, k) % kItems);
      if (std::find(row.begin(), row.end(), i) == row.end()) row.push_back(i);
    }
    std::sort(row.begin(), row.end());
    for (auto i : row) {
      u.indices.push_back(i);
      u.weights.push_back(1.0f + static_cast<float>(rng::hash_keys(seed, r, i) % 5));
    }
    u.indptr.push_back(std::ssize(u.indices));
    for (std::int64_t d = 0; d < m.shape.dense_in; ++d)
      u.dense.push_back(static_cast<float>(rng::unit_uniform(rng::hash_keys(seed, r, 1000 + d))) -
                        0.5f);
    u.segments.push_back(static_cast<std::int32_t>(r % 3));
  }
  return u;
}

// Row r of u without history position `drop` (-1: none).
UserInputs one_user(const Model& m, const UserInputs& u, std::int64_t r, std::int64_t drop) {
  UserInputs v;
  for (std::int64_t q = u.indptr[r]; q < u.indptr[r + 1]; ++q) {
    if (q - u.indptr[r] == drop) continue;
    v.indices.push_back(u.indices[q]);
    v.weights.push_back(u.weights[q]);
  }
  v.indptr.push_back(std::ssize(v.indices));
  const auto d = m.shape.dense_in;
  v.dense.assign(u.dense.begin() + r * d, u.dense.begin() + (r + 1) * d);
  v.segments = {u.segments[r]};
  return v;
}

// Naive: every item's score for the rebuilt input, by a full forward pass.
std::vector<float> naive_scores(const Model& m, const UserInputs& v) {
  const TopN all = score_users(m, v, kItems, /*exclude_history=*/false);
  std::vector<float> z(kItems);
  for (std::int64_t q = 0; q < kItems; ++q) z[all.items[q]] = all.scores[q];
  return z;
}

// Naive rank of `item` among the items not in `history` (history and excluded items):
// by sorting.
std::int64_t naive_rank(const std::vector<float>& z, const std::vector<std::int32_t>& history,
                        std::int32_t item) {
  std::vector<std::int32_t> cand;
  for (std::int32_t i = 0; i < kItems; ++i)
    if (std::find(history.begin(), history.end(), i) == history.end()) cand.push_back(i);
  std::stable_sort(cand.begin(), cand.end(),
                   [&](std::int32_t a, std::int32_t b) { return z[a] > z[b]; });
  return std::find(cand.begin(), cand.end(), item) - cand.begin() + 1;
}

// The listed items, then the best other items outside the history, `size` in all.
std::vector<std::int32_t> naive_shortlist(const std::vector<float>& z,
                                          const std::vector<std::int32_t>& history,
                                          std::span<const std::int32_t> list, std::int64_t size) {
  std::vector<std::int32_t> sl(list.begin(), list.end());
  std::vector<std::int32_t> rest;
  for (std::int32_t i = 0; i < kItems; ++i)
    if (std::find(history.begin(), history.end(), i) == history.end() &&
        std::find(sl.begin(), sl.end(), i) == sl.end())
      rest.push_back(i);
  std::stable_sort(rest.begin(), rest.end(),
                   [&](std::int32_t a, std::int32_t b) { return z[a] > z[b]; });
  for (std::int32_t i : rest)
    if (std::ssize(sl) < size) sl.push_back(i);
  return sl;
}

// logit(item) - log sum over the shortlist of exp(logit), in double.
double relative(const std::vector<float>& z, const std::vector<std::int32_t>& sl,
                std::int32_t item) {
  double sum = 0;
  for (std::int32_t i : sl) sum += std::exp(static_cast<double>(z[i]));
  return z[item] - std::log(sum);
}

class ExplainVsNaive : public ::testing::TestWithParam<Case> {};

TEST_P(ExplainVsNaive, EffectsScoresAndRanks) {
  const Case& c = GetParam();
  const Model m = make_model(c, 11);
  const UserInputs u = make_users(m, 24, 3);
  const std::int64_t top = 5;
  const TopN all = score_users(m, u, kItems);
  const std::int64_t shortlist = 8;
  // Every item with a positive effect named; histories of up to 12 items in batches of 5.
  const Explainer ex(m, /*named=*/kItems, shortlist, /*chunk=*/5);
  std::vector<std::uint8_t> excluded(kItems, 0);  // never candidates
  for (std::int32_t i = 3; i < kItems; i += 7) excluded[i] = 1;
  std::int64_t named_total = 0;
  std::vector<std::int32_t> flat;                    // every user's list, for explain_rows
  std::vector<std::vector<ItemExplanation>> single;  // explain, user by user
  for (std::int64_t r = 0; r < u.rows(); ++r) {
    std::vector<std::int32_t> list;  // the best `top` items outside history and exclusions
    for (std::int64_t q = 0; q < kItems && std::ssize(list) < top; ++q) {
      const std::int32_t i = all.items[r * kItems + q];
      if (i >= 0 && !excluded[i]) list.push_back(i);
    }
    const auto got = ex.explain(u, r, list, excluded);
    ASSERT_EQ(std::ssize(got), top);
    flat.insert(flat.end(), list.begin(), list.end());
    single.push_back(got);
    const std::vector<std::int32_t> history(u.indices.begin() + u.indptr[r],
                                            u.indices.begin() + u.indptr[r + 1]);
    std::vector<std::int32_t> blocked = history;  // not candidates
    for (std::int32_t i = 0; i < kItems; ++i)
      if (excluded[i] && std::find(history.begin(), history.end(), i) == history.end())
        blocked.push_back(i);
    const auto full = naive_scores(m, one_user(m, u, r, -1));
    std::vector<std::vector<float>> without;
    for (std::size_t k = 0; k < history.size(); ++k)
      without.push_back(naive_scores(m, one_user(m, u, r, static_cast<std::int64_t>(k))));
    for (std::int64_t j = 0; j < top; ++j) {
      const ItemExplanation& e = got[j];
      const std::int32_t item = list[j];
      EXPECT_EQ(e.item, item);
      EXPECT_EQ(e.rank, j + 1);
      EXPECT_NEAR(e.score, full[item], 1e-4);
      // Naive effects on the relative score, largest first; the positive ones are named.
      const auto sl = naive_shortlist(full, blocked, list, shortlist);
      std::vector<std::pair<float, std::int32_t>> naive;
      for (std::size_t k = 0; k < history.size(); ++k)
        naive.emplace_back(relative(full, sl, item) - relative(without[k], sl, item), history[k]);
      std::sort(naive.begin(), naive.end(), [](auto a, auto b) { return a.first > b.first; });
      std::size_t positive = 0;  // clearly positive effects: all must be named
      while (positive < naive.size() && naive[positive].first > 1e-4f) ++positive;
      ASSERT_GE(e.named.size(), positive) << c.name << " user " << r;
      for (std::size_t k = e.named.size(); k < naive.size(); ++k)
        EXPECT_LT(naive[k].first, 1e-4f) << c.name << " user " << r;
      for (std::size_t k = 0; k < e.named.size(); ++k) {
        EXPECT_NEAR(e.named[k].effect, naive[k].first, 1e-4) << c.name << " user " << r;
        if (k + 1 < naive.size() && naive[k].first - naive[k + 1].first > 1e-4) {
          EXPECT_EQ(e.named[k].item, naive[k].second) << c.name << " user " << r;
        }
      }
      named_total += std::ssize(e.named);
      if (e.named.empty()) continue;
      // Rank without the strongest item, from the naive full pass.
      const auto k0 = std::find(history.begin(), history.end(), e.named[0].item) - history.begin();
      EXPECT_EQ(e.rank_without, naive_rank(without[k0], blocked, item))
          << c.name << " user " << r << " item " << item;
      EXPECT_EQ(naive_rank(full, blocked, item), j + 1);
    }
  }
  EXPECT_GT(named_total, 50) << "the comparison must cover named items";
  // Rows 2..21 together (ranks of many users in one product), every third skipped.
  std::vector<std::uint8_t> skip(20);
  for (std::size_t q = 0; q < skip.size(); q += 3) skip[q] = 1;
  const auto rows = ex.explain_rows(u, 2, 22, std::span<const std::int32_t>(flat).subspan(2 * top),
                                    top, skip, excluded);
  ASSERT_EQ(rows.size(), 20u);
  for (std::size_t q = 0; q < rows.size(); ++q) {
    if (skip[q]) {
      EXPECT_TRUE(rows[q].empty());
      continue;
    }
    const auto& want = single[q + 2];
    ASSERT_EQ(rows[q].size(), want.size());
    for (std::size_t j = 0; j < want.size(); ++j) {
      EXPECT_EQ(rows[q][j].item, want[j].item);
      EXPECT_EQ(rows[q][j].rank_without, want[j].rank_without) << c.name << " row " << q + 2;
      ASSERT_EQ(rows[q][j].named.size(), want[j].named.size());
      for (std::size_t k = 0; k < want[j].named.size(); ++k) {
        EXPECT_EQ(rows[q][j].named[k].item, want[j].named[k].item);
        EXPECT_EQ(rows[q][j].named[k].effect, want[j].named[k].effect);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, ExplainVsNaive,
    ::testing::Values(
        Case{"history", {16, 8}},
        Case{"dense_embedding_log", {12}, 3, 4, 3, false, "log", mlp::Activation::kTanh},
        Case{"linear", {}, 2}, Case{"heads", {10}, 0, 2, 3, true}),
    [](const ::testing::TestParamInfo<Case>& p) { return std::string(p.param.name); });

TEST(Explain, PlantedItemIsNamedFirst) {
  // Item 7 alone drives hidden unit 0, which alone drives item 30: a user holding 7
  // gets 30 first, and the explanation must name 7 and drop 30 far down without it.
  Case c{"planted", {6}};
  Model m = make_model(c, 5);
  const mlp::Layout lay(m.shape);
  const std::int64_t h = 6;
  for (std::int64_t i = 0; i < kItems; ++i) m.params[lay.w[0] + i * h] = 0.0f;
  m.params[lay.w[0] + 7 * h] = 8.0f;
  m.params[lay.b[0]] = 0.0f;
  for (std::int64_t i = 0; i < kItems; ++i) m.params[lay.w[1] + i] = 0.0f;  // row 0 of W1
  m.params[lay.w[1] + 30] = 3.0f;
  m.params[lay.b[1] + 30] = -2.0f;  // without item 7, item 30 sinks
  UserInputs u;
  for (std::int32_t i : {2, 7, 11, 19, 25, 33}) {
    u.indices.push_back(i);
    u.weights.push_back(1.0f);
  }
  u.indptr.push_back(6);
  const TopN lists = score_users(m, u, 10);
  ASSERT_EQ(lists.items[0], 30);
  const Explainer ex(m);
  const auto got = ex.explain(u, 0, std::span<const std::int32_t>(lists.items),
                              std::vector<std::uint8_t>(kItems, 0));
  ASSERT_FALSE(got[0].named.empty());
  EXPECT_EQ(got[0].named[0].item, 7);
  EXPECT_GT(got[0].named[0].effect, 5.0f);
  EXPECT_GT(got[0].rank_without, 10);
  EXPECT_LE(std::ssize(got[0].named), 3);
  const std::vector<std::string> names = item_display_names(m, nullptr);
  const std::string text = describe(got[0], names);
  EXPECT_EQ(text.rfind("ranked 1st; without i7 it would be " + ordinal(got[0].rank_without) +
                           " (relative score -",
                       0),
            0u)
      << text;
}

TEST(Explain, Ordinals) {
  const std::vector<std::pair<std::int64_t, std::string>> want = {
      {1, "1st"},   {2, "2nd"},   {3, "3rd"},   {4, "4th"},     {11, "11th"},  {12, "12th"},
      {13, "13th"}, {21, "21st"}, {22, "22nd"}, {101, "101st"}, {111, "111th"}};
  for (const auto& [n, s] : want) EXPECT_EQ(ordinal(n), s);
}

}  // namespace
}  // namespace segrec
