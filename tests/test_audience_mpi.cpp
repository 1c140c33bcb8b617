// segrec audience at the world size against a naive single-process reference: every
// user scored on every item with score_users, the item's column sorted (ties to the
// smaller user index), filters applied by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "segrec/serving/audience.hpp"

namespace segrec {
namespace {

constexpr std::int64_t kUsers = 61, kItems = 23, kSegments = 3;

std::vector<std::string> item_ids() {
  std::vector<std::string> v;
  for (std::int64_t i = 0; i < kItems; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "i%lld", static_cast<long long>(i));
    v.emplace_back(id);
  }
  return v;
}

// A network reading history, projection and segment embedding, with segment heads
// on its top layer for segments 0 and 2; random weights.
Model make_model() {
  Model m;
  m.shape.sparse_in = kItems;
  m.shape.dense_in = 3;
  m.shape.n_segments = kSegments;
  m.shape.embed_dim = 2;
  m.shape.hidden = {8, 5};
  m.shape.n_out = kItems;
  m.history_weight = "log";
  m.item_ids = item_ids();
  mlp::Network<float> net(m.shape);
  net.init(11);
  m.params = net.params();
  m.head_layers = 1;
  m.head_segments = {0, 2};
  std::mt19937 rng(3);
  std::normal_distribution<float> N(0, 0.5f);
  m.heads.resize(static_cast<std::size_t>(2 * m.head_size()));
  for (auto& v : m.heads) v = N(rng);
  return m;
}

// Users [begin, end): user i holds items {(i j 7 + i) mod kItems : j <= i mod 5} with weight
// 1 + i mod 3, projection row sin(i + d), segment i mod 3, known events 2 x history size (odd
// users) or the size.
ServingUsers make_users(std::int64_t begin, std::int64_t end) {
  ServingUsers u;
  u.first = begin;
  u.n_users = kUsers;
  for (std::int64_t i = begin; i < end; ++i) {
    std::vector<std::int32_t> row;
    for (std::int64_t j = 0; j <= i % 5; ++j)
      row.push_back(static_cast<std::int32_t>((i * j * 7 + i) % kItems));
    std::sort(row.begin(), row.end());
    row.erase(std::unique(row.begin(), row.end()), row.end());
    for (auto x : row) {
      u.inputs.indices.push_back(x);
      u.inputs.weights.push_back(static_cast<float>(1 + i % 3));
    }
    u.inputs.indptr.push_back(static_cast<std::int64_t>(u.inputs.indices.size()));
    for (int d = 0; d < 3; ++d) u.inputs.dense.push_back(static_cast<float>(std::sin(i + d)));
    u.segment.push_back(static_cast<std::int32_t>(i % kSegments));
    u.known_events.push_back(static_cast<std::int64_t>(row.size()) * (i % 2 ? 2 : 1));
    char id[32];
    std::snprintf(id, sizeof id, "u%03lld", static_cast<long long>(i));
    u.ids.emplace_back(id);
  }
  u.inputs.segments = u.segment;
  return u;
}

// The reference: every user's logits from score_users (all items, history kept), filtered.
std::vector<std::vector<AudienceMember>> reference(const Model& m,
                                                   const std::vector<std::int32_t>& items,
                                                   std::int64_t n, const AudienceFilter& f,
                                                   std::vector<std::int64_t>& eligible) {
  const ServingUsers all = make_users(0, kUsers);
  const TopN t = score_users(m, all.inputs, kItems, /*exclude_history=*/false);
  std::vector<std::vector<AudienceMember>> out(items.size());
  eligible.assign(items.size(), 0);
  for (std::size_t c = 0; c < items.size(); ++c) {
    for (std::int64_t r = 0; r < kUsers; ++r) {
      const auto hb = all.inputs.indices.begin() + all.inputs.indptr[r];
      const auto he = all.inputs.indices.begin() + all.inputs.indptr[r + 1];
      const bool owned = std::find(hb, he, items[c]) != he;
      const bool seg_ok = f.segments.empty() ||
                          std::count(f.segments.begin(), f.segments.end(), all.segment[r]) > 0;
      if (all.known_events[r] < f.min_events || !seg_ok || (f.exclude_owned && owned)) continue;
      ++eligible[c];
      for (std::int64_t q = 0; q < kItems; ++q)
        if (t.items[r * kItems + q] == items[c])
          out[c].push_back({t.scores[r * kItems + q], all.segment[r], r});
    }
    std::stable_sort(out[c].begin(), out[c].end(), [](const auto& a, const auto& b) {
      return a.score > b.score;  // stable: ties keep the smaller user first
    });
    if (std::ssize(out[c]) > n) out[c].resize(n);
  }
  return out;
}

void expect_same(const std::vector<std::vector<AudienceMember>>& got,
                 const std::vector<std::vector<AudienceMember>>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t c = 0; c < got.size(); ++c) {
    ASSERT_EQ(got[c].size(), want[c].size()) << "item slot " << c;
    for (std::size_t j = 0; j < got[c].size(); ++j) {
      EXPECT_EQ(got[c][j].user, want[c][j].user) << "item slot " << c << " rank " << j;
      EXPECT_EQ(got[c][j].segment, want[c][j].segment);
      EXPECT_NEAR(got[c][j].score, want[c][j].score, 1e-5f);
    }
  }
}

struct Case {
  const char* name;
  std::int64_t n;
  AudienceFilter f;
};

TEST(AudienceMpi, MatchesANaiveSingleProcessReference) {
  const Comm world = Comm::world();
  const Model m = make_model();
  const Block b = block_partition(kUsers, world.size(), world.rank());
  const ServingUsers u = make_users(b.begin, b.end);
  const std::vector<std::int32_t> items = {3, 0, 22, 11};
  const Case cases[] = {
      {"plain", 7, {}},
      {"history kept", 9, {0, false, {}}},
      {"min events and segments", 5, {4, true, {0, 2}}},
      {"top over the eligible", 100, {0, true, {1}}},
  };
  for (const auto& cs : cases) {
    SCOPED_TRACE(cs.name);
    std::vector<std::int64_t> eligible, want_eligible;
    // Blocks of 5 users: several forward passes per head group.
    const auto local = local_audiences(m, u, items, cs.n, cs.f, 5, eligible);
    const auto got = merge_audiences(local, cs.n, world);
    world.allreduce(eligible);
    const auto want = reference(m, items, cs.n, cs.f, want_eligible);
    expect_same(got, want);
    // Bit for bit the scores of one process holding every user (blocks aligned to the
    // global user index).
    std::vector<std::int64_t> unused;
    const auto one = local_audiences(m, make_users(0, kUsers), items, cs.n, cs.f, 5, unused);
    for (std::size_t c = 0; c < items.size(); ++c)
      for (std::size_t j = 0; j < one[c].size(); ++j) {
        EXPECT_EQ(got[c][j].user, one[c][j].user);
        EXPECT_EQ(got[c][j].score, one[c][j].score);
      }
    EXPECT_EQ(eligible, want_eligible);
    // The cases are not trivial: a filter leaves someone out, and the audiences differ.
    const bool filtered = cs.f.exclude_owned || cs.f.min_events > 0 || !cs.f.segments.empty();
    EXPECT_EQ(*std::min_element(want_eligible.begin(), want_eligible.end()) < kUsers, filtered);
    EXPECT_NE(want[0][0].user, want[1][0].user);
  }
}

TEST(AudienceMpi, TiesGoToTheSmallerUserIndex) {
  // Every logit is the output bias: all users tie, so the audience is users 0..n-1.
  const Comm world = Comm::world();
  Model m;
  m.shape.sparse_in = kItems;
  m.shape.n_out = kItems;
  m.item_ids = item_ids();
  mlp::Network<float> net(m.shape);
  net.b(0).setConstant(0.5f);
  m.params = net.params();
  const Block b = block_partition(kUsers, world.size(), world.rank());
  ServingUsers u = make_users(b.begin, b.end);
  u.inputs.dense.clear();
  u.inputs.segments.clear();
  std::vector<std::int64_t> eligible;
  const std::vector<std::int32_t> items = {5};
  const auto got =
      merge_audiences(local_audiences(m, u, items, 6, {0, false, {}}, 4, eligible), 6, world);
  ASSERT_EQ(got[0].size(), 6u);
  for (std::int64_t j = 0; j < 6; ++j) {
    EXPECT_EQ(got[0][j].user, j);
    EXPECT_EQ(got[0][j].score, 0.5f);
  }
}

}  // namespace
}  // namespace segrec
