// Top-N metrics against hand-computed cases, the seeded split hash, and the
// serving bundle's projection and nearest-centroid rule in closed form.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "segrec/personalisation/bundle.hpp"
#include "segrec/serving/evaluate.hpp"
#include "segrec/serving/split.hpp"

namespace segrec {
namespace {

// sums layout: recall, ndcg, hit per K, then reciprocal rank and users.
std::vector<double> metrics(const std::vector<std::int32_t>& ranked,
                            const std::vector<std::int32_t>& test, std::int64_t n_test,
                            const std::vector<std::int64_t>& k) {
  std::vector<double> s(3 * k.size() + 2, 0.0);
  add_list_metrics(ranked, test, n_test, k, s.data());
  return s;
}

TEST(Evaluate, HandComputedList) {
  // Ranked 7 3 9 1 5; test {1, 3, 4} (|test| 3). Hits at ranks 2 and 4 (1-based).
  const auto s = metrics({7, 3, 9, 1, 5}, {1, 3, 4}, 3, {2, 5});
  const double l2 = 1.0 / std::log2(3.0), l4 = 1.0 / std::log2(5.0);
  // K = 2: one hit, recall 1 / min(2, 3); IDCG = 1 + 1/log2(3).
  EXPECT_NEAR(s[0], 0.5, 1e-12);
  EXPECT_NEAR(s[2], l2 / (1.0 + l2), 1e-12);
  EXPECT_NEAR(s[4], 1.0, 1e-12);
  // K = 5: two hits, recall 2 / 3; IDCG over 3 hits.
  EXPECT_NEAR(s[1], 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(s[3], (l2 + l4) / (1.0 + l2 + 1.0 / std::log2(4.0)), 1e-12);
  EXPECT_NEAR(s[5], 1.0, 1e-12);
  EXPECT_NEAR(s[6], 0.5, 1e-12);  // first hit at rank 2
  EXPECT_NEAR(s[7], 1.0, 1e-12);  // one user
}

TEST(Evaluate, UnknownTestItemsCountButNeverHit) {
  // One known test item found at rank 1; two more test items the model does not know.
  const auto s = metrics({4, 2}, {4}, 3, {1, 10});
  EXPECT_NEAR(s[0], 1.0, 1e-12);        // recall@1 = 1 / min(1, 3)
  EXPECT_NEAR(s[1], 1.0 / 3.0, 1e-12);  // recall@10 = 1 / min(10, 3)
  EXPECT_NEAR(s[3], 1.0 / (1.0 + 1.0 / std::log2(3.0) + 0.5), 1e-12);
  EXPECT_NEAR(s[6], 1.0, 1e-12);
}

TEST(Evaluate, EmptyAndPaddedLists) {
  const auto s = metrics({}, {}, 2, {5});
  EXPECT_EQ(s[0], 0.0);
  EXPECT_EQ(s[1], 0.0);
  EXPECT_EQ(s[2], 0.0);
  EXPECT_EQ(s[3], 0.0);
  EXPECT_EQ(s[4], 1.0);
  const auto t = metrics({-1, -1, 3}, {3}, 1, {2, 3});
  EXPECT_EQ(t[0], 0.0);  // padding never hits
  EXPECT_NEAR(t[1], 1.0, 1e-12);
  EXPECT_NEAR(t[3], 1.0 / std::log2(4.0), 1e-12);
  EXPECT_NEAR(t[6], 1.0 / 3.0, 1e-12);
}

TEST(Evaluate, KListParsing) {
  EvaluateParams p;
  p.k = "20, 10,20,5";
  EXPECT_EQ(p.k_list(), (std::vector<std::int64_t>{5, 10, 20}));
  for (const char* bad : {"0", "10,x", "", "-3", "5.5"}) {
    p.k = bad;
    EXPECT_THROW(p.k_list(), UsageError) << bad;
  }
}

TEST(Evaluate, FullRankingClosedForm) {
  // One target per user at full ranks 1, 4 and 11 (1-based), one user whose target is unranked.
  const std::vector<std::int32_t> ranking = {20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
  double s[3] = {0, 0, 0};
  add_full_rank_metrics(ranking, {20}, 10, s);
  add_full_rank_metrics(ranking, {23}, 10, s);
  add_full_rank_metrics(ranking, {30}, 10, s);
  add_full_rank_metrics(ranking, {99}, 10, s);
  EXPECT_EQ(s[0], 2.0);                                  // HR@10: ranks 1 and 4
  EXPECT_NEAR(s[1], 1.0 + 1.0 / std::log2(5.0), 1e-12);  // NDCG@10: 1/log2(r + 1)
  EXPECT_NEAR(s[2], 1.0 + 0.25 + 1.0 / 11.0, 1e-12);     // MRR over the full ranking
  // Several test items: the first one ranked counts; rank 11 is past K = 10 but in the MRR.
  double t[3] = {0, 0, 0};
  add_full_rank_metrics(ranking, {30, 31}, 10, t);
  EXPECT_EQ(t[0], 0.0);
  EXPECT_EQ(t[1], 0.0);
  EXPECT_NEAR(t[2], 1.0 / 11.0, 1e-12);
  // With one target NDCG@K equals add_list_metrics' NDCG@K and HR@K its HitRate@K.
  const auto l = metrics(ranking, {23}, 1, {10});
  double u[3] = {0, 0, 0};
  add_full_rank_metrics(ranking, {23}, 10, u);
  EXPECT_NEAR(u[1], l[1], 1e-12);
  EXPECT_NEAR(u[0], l[2], 1e-12);
}

TEST(Split, LeaveLastOutClosedForm) {
  using V = std::vector<std::int32_t>;
  const auto cut = [](const V& v) { return leave_last_out(std::span<const std::int32_t>(v)); };
  // First events: 5 at 0, 3 at 1, 7 at 3, 9 at 5: test = 9 (position 5), valid = 7 (3).
  auto r = cut({5, 3, 5, 7, 3, 9, 7});
  EXPECT_EQ(r.distinct, 4);
  EXPECT_EQ(r.test, 5);
  EXPECT_EQ(r.valid, 3);
  // A repeat after the last new item does not move the targets.
  r = cut({4, 2, 4, 2, 9, 4});
  EXPECT_EQ(r.test, 4);
  EXPECT_EQ(r.valid, 1);
  // Fewer than 3 distinct items: no targets.
  r = cut({1, 1, 2, 2});
  EXPECT_EQ(r.distinct, 2);
  EXPECT_EQ(r.test, -1);
  EXPECT_EQ(r.valid, -1);
  r = cut({});
  EXPECT_EQ(r.distinct, 0);
  EXPECT_EQ(r.test, -1);
  r = cut({8, 6, 7});
  EXPECT_EQ(r.test, 2);
  EXPECT_EQ(r.valid, 1);
}

TEST(Split, TemporalLastOptions) {
  SplitParams p;
  p.protocol = "temporal-last";
  p.out = "/tmp/x";
  EXPECT_THROW(p.validate(), UsageError);  // no --data
  p.data = "ds.h5";
  EXPECT_EQ(p.validate().protocol, SplitProtocol::kTemporalLast);
  p.input.events = {"ev.csv"};
  EXPECT_THROW(p.validate(), UsageError);  // an event file too
  p.protocol = "weak";
  EXPECT_THROW(p.validate(), UsageError);  // --data with another protocol
}

TEST(Split, SeededHashIsStableAndKeyed) {
  EXPECT_EQ(seeded_hash(42, "user-1"), seeded_hash(42, "user-1"));
  EXPECT_NE(seeded_hash(42, "user-1"), seeded_hash(43, "user-1"));
  EXPECT_NE(seeded_hash(42, "user-1"), seeded_hash(42, "user-2"));
  EXPECT_NE(seeded_hash(42, ""), seeded_hash(42, std::string_view("\0", 1)));
}

TEST(Bundle, ProjectionAndNearestCentroid) {
  ServingParts s;
  s.profile.item_ids = {"a", "b"};
  s.profile.idf = {1, 1};
  s.profile.dense_names = {"d"};
  s.dims = 2;
  // W rows: a -> (1, 0), b -> (0, 1), d -> (1, 1); mean (0.5, 0, 1).
  s.W = {1, 0, 0, 1, 1, 1};
  s.mean = {0.5, 0, 1};
  ProfileBlock b;
  b.user_ids = {"u", "v"};
  b.indptr = {0, 2, 2};
  b.indices = {0, 1};
  b.values = {2.0f, 3.0f};
  b.dense_values = {0.5f, 1.0f};
  const auto h = project_profiles(s, b);
  // u: x = (2, 3, 0.5) - mean = (1.5, 3, -0.5) -> (1.5 - 0.5, 3 - 0.5) = (1, 2.5).
  // v: x = (0, 0, 1) - mean = (-0.5, 0, 0) -> (-0.5, 0).
  ASSERT_EQ(h.size(), 4u);
  EXPECT_NEAR(h[0], 1.0, 1e-6);
  EXPECT_NEAR(h[1], 2.5, 1e-6);
  EXPECT_NEAR(h[2], -0.5, 1e-6);
  EXPECT_NEAR(h[3], 0.0, 1e-6);
  s.k = 3;
  s.centroids = {0, 0, 1, 2, 1, 2};  // segments 1 and 2 tie for u: the smaller wins
  EXPECT_EQ(nearest_segments(s, h), (std::vector<std::int32_t>{1, 0}));
  s.spherical = true;
  s.centroids = {1, 0, 0, 1, -1, 0};
  EXPECT_EQ(nearest_segments(s, h), (std::vector<std::int32_t>{1, 2}));
}

TEST(Bundle, CountsAndCooccurrence) {
  ServingParts s;
  s.profile.item_ids = {"a", "b", "c", "d"};
  s.k = 2;
  // Users: {a, b} in 0, {a, b, c} in 1, {b, d} in 1.
  const std::vector<std::int64_t> indptr{0, 2, 5, 7};
  const std::vector<std::int32_t> indices{0, 1, 0, 1, 2, 1, 3};
  count_training_items(s, indptr, indices, {0, 1, 1}, Comm());
  EXPECT_EQ(s.sizes, (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(s.item_users, (std::vector<std::int64_t>{1, 1, 0, 0, 1, 2, 1, 1}));
  EXPECT_EQ(s.item_total(1), 3);
  EXPECT_EQ(s.n_users(), 3);
  ASSERT_EQ(s.cooc_width, 3);
  // b co-occurs with a twice, then c and d once (ties: smaller index first).
  EXPECT_EQ(std::vector<std::int32_t>(s.cooc_items.begin() + 3, s.cooc_items.begin() + 6),
            (std::vector<std::int32_t>{0, 2, 3}));
  EXPECT_EQ(std::vector<std::int32_t>(s.cooc_counts.begin() + 3, s.cooc_counts.begin() + 6),
            (std::vector<std::int32_t>{2, 1, 1}));
  // d co-occurs with b only: padding follows.
  EXPECT_EQ(std::vector<std::int32_t>(s.cooc_items.begin() + 9, s.cooc_items.end()),
            (std::vector<std::int32_t>{1, -1, -1}));
}

}  // namespace
}  // namespace segrec

namespace segrec {
namespace {

TEST(Bundle, ReportDescriptions) {
  const std::string json =
      "{\"k\": 3, \"notes\": [], \"segments\": [\n"
      "    {\"id\": 0, \"size\": 5, \"share\": 0.5, \"described\": true, \"description\": "
      "\"high \\\"sessions\\\"; item a over-represented\",\n     \"items\": []},\n"
      "    {\"id\": 1, \"size\": 1, \"share\": 0.1, \"described\": false},\n"
      "    {\"id\": 2, \"size\": 4, \"share\": 0.4, \"described\": true, \"description\": "
      "\"low days\"}]}";
  EXPECT_EQ(
      report_descriptions(json, 3),
      (std::vector<std::string>{"high \"sessions\"; item a over-represented", "", "low days"}));
  EXPECT_EQ(report_descriptions("", 2), (std::vector<std::string>{"", ""}));
  EXPECT_EQ(report_descriptions(json, 1),
            (std::vector<std::string>{"high \"sessions\"; item a over-represented"}));
}

}  // namespace
}  // namespace segrec
