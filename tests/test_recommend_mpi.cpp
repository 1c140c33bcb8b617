// The serving bundle's training counts at the world size against a
// single-process count of the same users (exact: integer sums), and the
// top-N lists of recommend_rows against a naive reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "segrec/personalisation/bundle.hpp"
#include "segrec/serving/recommend.hpp"

namespace segrec {
namespace {

struct Users {
  std::vector<std::int64_t> indptr{0};
  std::vector<std::int32_t> indices;
  std::vector<std::int32_t> labels;
};

// User u holds items {(u * j * 7 + u) % n : j < 1 + u % 5}, sorted and distinct; label u % k.
Users make_users(std::int64_t begin, std::int64_t end, std::int64_t n_items, std::int64_t k) {
  Users u;
  for (std::int64_t i = begin; i < end; ++i) {
    std::vector<std::int32_t> row;
    for (std::int64_t j = 0; j < 1 + i % 5; ++j)
      row.push_back(static_cast<std::int32_t>((i * j * 7 + i) % n_items));
    std::sort(row.begin(), row.end());
    row.erase(std::unique(row.begin(), row.end()), row.end());
    u.indices.insert(u.indices.end(), row.begin(), row.end());
    u.indptr.push_back(static_cast<std::int64_t>(u.indices.size()));
    u.labels.push_back(static_cast<std::int32_t>(i % k));
  }
  return u;
}

ServingParts empty_parts(std::int64_t n_items, std::int64_t k) {
  ServingParts s;
  for (std::int64_t i = 0; i < n_items; ++i) {
    char id[24];
    std::snprintf(id, sizeof id, "i%lld", static_cast<long long>(i));
    s.profile.item_ids.emplace_back(id);
  }
  s.k = k;
  return s;
}

TEST(RecommendMpi, TrainingCountsMatchASingleProcess) {
  const Comm world = Comm::world();
  const std::int64_t n_users = 53, n_items = 17, k = 3;
  const Block b = block_partition(n_users, world.size(), world.rank());
  const Users local = make_users(b.begin, b.end, n_items, k);
  ServingParts dist = empty_parts(n_items, k);
  count_training_items(dist, local.indptr, local.indices, local.labels, world);

  const Users all = make_users(0, n_users, n_items, k);
  ServingParts ref = empty_parts(n_items, k);
  count_training_items(ref, all.indptr, all.indices, all.labels, Comm());
  EXPECT_EQ(dist.sizes, ref.sizes);
  EXPECT_EQ(dist.item_users, ref.item_users);
  EXPECT_EQ(dist.cooc_items, ref.cooc_items);
  EXPECT_EQ(dist.cooc_counts, ref.cooc_counts);
  EXPECT_EQ(ref.n_users(), n_users);

  // Naive co-occurrence counts: every anchor's best partner (ties: smaller index).
  std::int64_t with_partner = 0;
  for (std::int32_t a = 0; a < n_items; ++a) {
    std::vector<std::int32_t> c(n_items, 0);
    for (std::int64_t u = 0; u < n_users; ++u) {
      const auto bgn = all.indices.begin() + all.indptr[u];
      const auto e = all.indices.begin() + all.indptr[u + 1];
      if (!std::binary_search(bgn, e, a)) continue;
      for (auto it = bgn; it != e; ++it)
        if (*it != a) ++c[*it];
    }
    const auto best = std::max_element(c.begin(), c.end()) - c.begin();
    const auto C = ref.cooc_width;
    EXPECT_EQ(ref.cooc_items[a * C], c[best] > 0 ? best : -1) << "item " << a;
    EXPECT_EQ(ref.cooc_counts[a * C], c[best]) << "item " << a;
    with_partner += c[best] > 0;
  }
  EXPECT_GT(with_partner, n_items / 2);  // the case is not trivial
}

TEST(RecommendMpi, PopularListsSkipHistoryAndExclusions) {
  const std::int64_t n_items = 17, k = 3;
  const Users all = make_users(0, 40, n_items, k);
  Model m;
  m.item_ids = empty_parts(n_items, k).profile.item_ids;
  m.serving = empty_parts(n_items, k);
  count_training_items(*m.serving, all.indptr, all.indices, all.labels, Comm());
  ServingUsers u;
  u.ids = {"a", "b"};
  u.inputs.indptr = {0, 2, 2};
  u.inputs.indices = {3, 5};
  u.inputs.weights = {1, 1};
  u.segment = {1, -1};
  u.known_events = {2, 0};
  std::vector<std::uint8_t> excluded(n_items, 0);
  excluded[7] = 1;
  const Popularity pop = Popularity::from(m);
  const RecLists L = recommend_rows(m, u, 0, 2, 4, Source::kSegmentPopular, 0, excluded, pop);
  ASSERT_EQ(L.rows(), 2);
  EXPECT_EQ(L.source[0], Source::kSegmentPopular);
  EXPECT_EQ(L.source[1], Source::kPopular);  // no segment: global popularity
  // Reference: segment 1's items by count (ties: smaller index), minus history and exclusions.
  std::vector<std::int32_t> want;
  std::vector<std::int32_t> order(n_items);
  for (std::int32_t i = 0; i < n_items; ++i) order[i] = i;
  const auto& c = m.serving->item_users;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int32_t x, std::int32_t y) { return c[n_items + x] > c[n_items + y]; });
  for (auto i : order)
    if (i != 3 && i != 5 && i != 7 && want.size() < 4) want.push_back(i);
  EXPECT_EQ(std::vector<std::int32_t>(L.items.begin(), L.items.begin() + 4), want);
  EXPECT_FLOAT_EQ(L.scores[0], static_cast<float>(c[n_items + want[0]]) /
                                   static_cast<float>(m.serving->sizes[1]));
  for (std::int64_t j = 4; j < 8; ++j) EXPECT_NE(L.items[j], 7);
}

}  // namespace
}  // namespace segrec
