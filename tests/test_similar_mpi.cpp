// `segrec similar`'s ring of blocks at the world size against a naive single-process
// reference (all pairs in double, sorted; ties to the smaller row), and against the same
// search in one process (bitwise: the answer does not depend on the rank count).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "segrec/serving/similar.hpp"

namespace segrec {
namespace {

constexpr std::int64_t kDims = 12;

// Row g: values in [-1, 1) from a hash of (g, d); rows with g % 7 == 3 repeat row g - 1
// (exact ties), row 5 is zero (cosine 0 with everything).
std::vector<float> make_rows(std::int64_t begin, std::int64_t end) {
  std::vector<float> X;
  for (std::int64_t g = begin; g < end; ++g) {
    const std::int64_t src = g % 7 == 3 ? g - 1 : g;
    for (std::int64_t d = 0; d < kDims; ++d) {
      std::uint64_t h = static_cast<std::uint64_t>(src * 131 + d) * 0x9E3779B97F4A7C15ull;
      h ^= h >> 29;
      h *= 0xBF58476D1CE4E5B9ull;
      h ^= h >> 32;
      X.push_back(src == 5 ? 0.0f : static_cast<float>((h >> 40) % 2000) / 1000.0f - 1.0f);
    }
  }
  return X;
}

// All pairs, in double, best first; ties to the smaller row; self excluded.
Neighbours naive(const std::vector<float>& all, const std::vector<std::int64_t>& queries,
                 std::int64_t k, SimilarMetric metric) {
  const std::int64_t n = static_cast<std::int64_t>(all.size()) / kDims;
  std::vector<double> norm(static_cast<std::size_t>(n), 1.0);
  if (metric == SimilarMetric::kCosine)
    for (std::int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (std::int64_t d = 0; d < kDims; ++d) s += double(all[i * kDims + d]) * all[i * kDims + d];
      norm[i] = s > 0 ? std::sqrt(s) : 1.0;
    }
  Neighbours out;
  out.k = k;
  for (std::int64_t q : queries) {
    std::vector<std::pair<double, std::int64_t>> c;
    for (std::int64_t j = 0; j < n; ++j) {
      if (j == q) continue;
      double s = 0;
      for (std::int64_t d = 0; d < kDims; ++d) {
        const double x = all[q * kDims + d], y = all[j * kDims + d];
        s += metric == SimilarMetric::kL2 ? -(x - y) * (x - y) : x * y;
      }
      if (metric == SimilarMetric::kCosine) s /= norm[q] * norm[j];
      c.emplace_back(s, j);
    }
    std::sort(c.begin(), c.end(), [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    for (std::int64_t j = 0; j < k; ++j) {
      out.index.push_back(c[j].second);
      out.score.push_back(metric == SimilarMetric::kL2 ? -c[j].first : c[j].first);
    }
  }
  return out;
}

struct Case {
  SimilarMetric metric;
  std::int64_t n, k, tile_rows, tile_cols;
  bool every_third;  // queries: every third row, else all
  bool empty_rank1;  // rank 1 holds no rows
};

void check_case(const Case& t) {
  const Comm world = Comm::world();
  const int P = world.size(), r = world.rank();
  // Layout: even blocks, or rank 1 empty and its rows to rank 0.
  std::vector<std::int64_t> begin(static_cast<std::size_t>(P) + 1, 0), count(P);
  for (int q = 0; q < P; ++q) count[q] = block_partition(t.n, P, q).size();
  if (t.empty_rank1 && P > 1) {
    count[0] += count[1];
    count[1] = 0;
  }
  for (int q = 0; q < P; ++q) begin[q + 1] = begin[q] + count[q];
  const std::vector<float> mine = make_rows(begin[r], begin[r + 1]);
  std::vector<std::int64_t> local_q, global_q;
  for (std::int64_t i = 0; i < begin[r + 1] - begin[r]; ++i)
    if (!t.every_third || (begin[r] + i) % 3 == 0) local_q.push_back(i);
  const Neighbours got =
      similar_rows(mine, kDims, local_q, t.k, t.metric, world, t.tile_rows, t.tile_cols);

  const std::vector<float> all = make_rows(0, t.n);
  for (std::int64_t g = 0; g < t.n; ++g)
    if (!t.every_third || g % 3 == 0) global_q.push_back(g);
  std::vector<std::int64_t> all_q(global_q.size());
  for (std::size_t i = 0; i < all_q.size(); ++i) all_q[i] = global_q[i];
  const Neighbours one = similar_rows(all, kDims, all_q, t.k, t.metric, Comm(), 64, 64);
  const Neighbours ref = naive(all, global_q, t.k, t.metric);

  // This rank's queries are a contiguous run of the global ones.
  const std::size_t first = static_cast<std::size_t>(
      std::lower_bound(global_q.begin(), global_q.end(), begin[r]) - global_q.begin());
  ASSERT_EQ(got.index.size(), local_q.size() * static_cast<std::size_t>(t.k));
  for (std::size_t i = 0; i < got.index.size(); ++i) {
    const std::size_t at = first * static_cast<std::size_t>(t.k) + i;
    EXPECT_EQ(got.index[i], ref.index[at]) << "row " << i / t.k << " rank " << i % t.k;
    // Cosine: the rows are scaled to unit length in float first.
    const double tol = t.metric == SimilarMetric::kCosine ? 1e-6 : 1e-12;
    EXPECT_NEAR(got.score[i], ref.score[at], tol * (1 + std::abs(ref.score[at])));
    EXPECT_EQ(got.index[i], one.index[at]);
    EXPECT_EQ(got.score[i], one.score[at]);  // bitwise: the rank count changes nothing
  }
}

TEST(SimilarMpi, InnerProductMatchesNaiveAllPairs) {
  check_case({SimilarMetric::kIp, 61, 5, 7, 13, false, false});
}

TEST(SimilarMpi, SquaredDistanceMatchesNaiveAllPairs) {
  check_case({SimilarMetric::kL2, 61, 5, 256, 1024, false, false});
}

TEST(SimilarMpi, CosineMatchesNaiveAllPairs) {
  check_case({SimilarMetric::kCosine, 47, 3, 5, 16, true, false});
}

TEST(SimilarMpi, EveryOtherUserAndAnEmptyRank) {
  // k = n - 1: every other row, in order; rank 1 holds no rows.
  check_case({SimilarMetric::kIp, 23, 22, 4, 6, false, true});
  check_case({SimilarMetric::kL2, 23, 1, 3, 5, true, true});
}

}  // namespace
}  // namespace segrec
