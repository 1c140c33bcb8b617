// EASE and popularity (train --model-kind): B at the world size against a dense
// single-process closed form (Eigen's inverse), the lambda chosen on the validation users
// against a serial run, the Gram matrix against a dense product, model.h5 round trip and scoring,
// exact explanations, the inverse's panels over the ranks, the distributed Cholesky against
// Eigen's, and the bad inputs with their messages.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <set>

#include "scratch_dir.hpp"
#include "segrec/core/cholesky.hpp"
#include "segrec/core/error.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/personalisation/ease.hpp"
#include "segrec/personalisation/train.hpp"
#include "segrec/serving/explain.hpp"

namespace segrec {
namespace {

namespace fs = std::filesystem;

std::string tmp_dir(const Comm& c) { return testing_tmp::scratch_dir("ease_mpi", c); }

// Users with planted tastes: user u likes a block of items by u % 3, plus one random item;
// weights 1..4; every 23rd user has no history.
TrainData global_data(std::int64_t n_users, std::int64_t n_items) {
  TrainData d;
  d.n_users = n_users;
  for (std::int64_t i = 0; i < n_items; ++i) {
    std::string id = "i";  // (not "i" + ...: GCC 12 warns -Wrestrict on that)
    id += std::to_string(i);
    d.item_ids.push_back(id);
  }
  for (std::int64_t u = 0; u < n_users; ++u) {
    std::set<std::int32_t> items;
    const auto h = [&](std::uint64_t j) {
      return mlp::hash_keys(29, static_cast<std::uint64_t>(u), j);
    };
    const std::int64_t base = (u % 3) * (n_items / 3);
    const auto k = 2 + static_cast<int>(h(999) % 7);
    for (int j = 0; j < k; ++j)
      items.insert(
          static_cast<std::int32_t>(base + static_cast<std::int64_t>(h(j) % (n_items / 3))));
    items.insert(static_cast<std::int32_t>(h(1000) % n_items));
    if (u % 23 == 4) items.clear();
    for (auto i : items) {
      d.indices.push_back(i);
      d.weights.push_back(static_cast<float>(1 + h(2000 + i) % 4));
    }
    d.indptr.push_back(static_cast<std::int64_t>(d.indices.size()));
  }
  return d;
}

TrainData block_of(const TrainData& g, const Comm& c) {
  const Block b = block_partition(g.n_users, c.size(), c.rank());
  TrainData d;
  d.n_users = g.n_users;
  d.user_begin = b.begin;
  d.item_ids = g.item_ids;
  const auto lo = g.indptr[b.begin], hi = g.indptr[b.end];
  for (std::int64_t u = b.begin; u < b.end; ++u) d.indptr.push_back(g.indptr[u + 1] - lo);
  d.indices.assign(g.indices.begin() + lo, g.indices.begin() + hi);
  d.weights.assign(g.weights.begin() + lo, g.weights.begin() + hi);
  return d;
}

TrainParams ease_params(const std::string& l2, double val_users) {
  TrainParams p;
  p.model_kind = "ease";
  p.l2 = l2;
  p.val_users = val_users;
  p.ndcg_k = 10;
  p.seed = 3;
  return p;
}

// The closed form on one process: B = I - P diag(1 / diag P), P = (X^T X + lambda I)^-1.
Eigen::MatrixXd reference_b(const TrainData& g, double lambda, bool log_weight) {
  const std::int64_t n = g.n_items();
  Eigen::MatrixXd X = Eigen::MatrixXd::Zero(g.n_users, n);
  for (std::int64_t u = 0; u < g.n_users; ++u)
    for (std::int64_t k = g.indptr[u]; k < g.indptr[u + 1]; ++k)
      X(u, g.indices[k]) = log_weight ? std::log1p(static_cast<double>(g.weights[k])) : 1.0;
  const Eigen::MatrixXd P =
      (X.transpose() * X + lambda * Eigen::MatrixXd::Identity(n, n)).inverse();
  Eigen::MatrixXd B(n, n);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) B(i, j) = i == j ? 0.0 : -P(i, j) / P(j, j);
  return B;
}

double max_diff(const std::vector<float>& b, const Eigen::MatrixXd& ref) {
  double worst = 0;
  const auto n = ref.rows();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      worst = std::max(
          worst, std::abs(static_cast<double>(b[static_cast<std::size_t>(i * n + j)]) - ref(i, j)));
  return worst;
}

TEST(EaseMpi, MatchesDenseClosedForm) {
  const Comm c = Comm::world();
  for (const std::int64_t n_items : {37, 6, 120, 400}) {  // 400: several panels per rank
    const TrainData g = global_data(150, n_items);
    for (const bool log_weight : {false, true}) {
      TrainParams p = ease_params("7.5", 0);
      p.history_weight = log_weight ? "log" : "binary";
      const TrainResult r = train(p, block_of(g, c), c);
      ASSERT_EQ(r.model.kind, ModelKind::kEase);
      EXPECT_EQ(r.model.l2, 7.5);
      ASSERT_EQ(std::ssize(r.model.item_item), n_items * n_items);
      EXPECT_LT(max_diff(r.model.item_item, reference_b(g, 7.5, log_weight)), 2e-6)
          << n_items << " items, " << c.size() << " ranks, log " << log_weight;
      for (std::int64_t i = 0; i < n_items; ++i)
        EXPECT_EQ(r.model.item_item[static_cast<std::size_t>(i * n_items + i)], 0.0f);
    }
  }
}

// The Gram matrix's upper triangle against the dense X^T X, with each user's items in
// descending order and one item repeated (its values summed, as one entry of X).
TEST(EaseMpi, GramMatchesDenseProductWhateverTheItemOrder) {
  const Comm c = Comm::world();
  const std::int64_t n_users = 40, n = 23;
  Eigen::MatrixXd X = Eigen::MatrixXd::Zero(n_users, n);
  std::vector<std::int64_t> indptr{0}, rows;
  std::vector<std::int32_t> indices;
  std::vector<float> values;
  const Block mine = block_partition(n_users, c.size(), c.rank());
  for (std::int64_t u = 0; u < n_users; ++u) {
    const auto h = [&](std::uint64_t j) {
      return mlp::hash_keys(5, static_cast<std::uint64_t>(u), j);
    };
    std::set<std::int32_t> items;
    for (int j = 0; j < 2 + static_cast<int>(h(99) % 6); ++j)
      items.insert(static_cast<std::int32_t>(h(j) % n));
    std::vector<std::pair<std::int32_t, float>> row;
    for (auto it = items.rbegin(); it != items.rend(); ++it)
      row.emplace_back(*it, static_cast<float>(1 + h(500 + *it) % 3));
    row.emplace_back(row.front().first, 0.5f);  // the first item again
    for (const auto& [i, v] : row) X(u, i) += v;
    if (u < mine.begin || u >= mine.end) continue;
    rows.push_back(std::ssize(indptr) - 1);
    for (const auto& [i, v] : row) {
      indices.push_back(i);
      values.push_back(v);
    }
    indptr.push_back(std::ssize(indices));
  }
  const std::vector<double> G = ease::gram(n, indptr, indices, values, rows, c);
  const Eigen::MatrixXd ref = X.transpose() * X;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      EXPECT_NEAR(G[static_cast<std::size_t>(i * n + j)], j >= i ? ref(i, j) : 0.0, 1e-9)
          << i << "," << j << " at " << c.size() << " ranks";
}

TEST(EaseMpi, LambdaChosenOnValidationAsOnOneProcess) {
  const Comm c = Comm::world();
  const TrainData g = global_data(300, 30);
  const TrainParams p = ease_params("1,10,100,1000", 0.25);
  const TrainResult r = train(p, block_of(g, c), c);
  const Comm serial;
  const TrainResult s = train(p, g, serial);
  const Model& m = r.model;
  ASSERT_EQ(m.l2_grid, (std::vector<double>{1, 10, 100, 1000}));
  ASSERT_EQ(m.l2_ndcg.size(), 4u);
  for (std::size_t j = 0; j < 4; ++j) EXPECT_NEAR(m.l2_ndcg[j], s.model.l2_ndcg[j], 1e-9);
  const auto best = std::max_element(m.l2_ndcg.begin(), m.l2_ndcg.end()) - m.l2_ndcg.begin();
  EXPECT_EQ(m.l2, m.l2_grid[static_cast<std::size_t>(best)]);
  EXPECT_EQ(m.l2, s.model.l2);
  EXPECT_NEAR(m.best_ndcg, m.l2_ndcg[static_cast<std::size_t>(best)], 1e-12);
  EXPECT_EQ(m.n_val_users, s.model.n_val_users);
  EXPECT_GT(m.n_val_users, 0);
  EXPECT_EQ(m.n_train_users, s.model.n_train_users);
  ASSERT_EQ(m.quality.size(), 1u);
  EXPECT_EQ(m.quality[0].mode, "ease");
  // B from the training users only (the validation users left out of G).
  EXPECT_LT(max_diff(m.item_item, Eigen::Map<const Eigen::Matrix<float, -1, -1, Eigen::RowMajor>>(
                                      s.model.item_item.data(), 30, 30)
                                      .cast<double>()),
            1e-6);
}

TEST(EaseMpi, ModelFileRoundTripAndScores) {
  const Comm c = Comm::world();
  const TrainData g = global_data(120, 25);
  TrainParams p = ease_params("4", 0);
  const std::string path = tmp_dir(c) + "/ease_np" + std::to_string(c.size()) + ".h5";
  p.out = path;
  const TrainResult r = train(p, block_of(g, c), c);
  write_model(path, r.model, c);
  const Model m = read_model(path, c);
  EXPECT_EQ(m.kind, ModelKind::kEase);
  EXPECT_EQ(m.item_ids, r.model.item_ids);
  EXPECT_EQ(m.item_item, r.model.item_item);
  EXPECT_EQ(m.l2, 4.0);
  EXPECT_EQ(m.shape.n_out, 25);
  // score = x_u B, history excluded, ties to the smaller item.
  UserInputs u;
  u.indices = {1, 4, 9};
  u.weights = {2, 1, 5};
  u.indptr = {0, 3};
  const TopN top = score_users(m, u, 5);
  std::vector<float> z(25, 0.0f);
  for (int i : {1, 4, 9})
    for (int j = 0; j < 25; ++j)
      z[static_cast<std::size_t>(j)] += m.item_item[static_cast<std::size_t>(i * 25 + j)];
  for (int i : {1, 4, 9}) z[static_cast<std::size_t>(i)] = -INFINITY;
  std::vector<int> order(25);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return z[a] > z[b]; });
  for (int q = 0; q < 5; ++q) {
    EXPECT_EQ(top.items[static_cast<std::size_t>(q)], order[static_cast<std::size_t>(q)]);
    EXPECT_FLOAT_EQ(top.scores[static_cast<std::size_t>(q)], z[order[static_cast<std::size_t>(q)]]);
  }
}

TEST(EaseMpi, PopularityCountsTrainingUsers) {
  const Comm c = Comm::world();
  const TrainData g = global_data(200, 18);
  TrainParams p = ease_params("auto", 0);
  p.model_kind = "popularity";
  const TrainResult r = train(p, block_of(g, c), c);
  std::vector<float> counts(18, 0.0f);
  for (auto i : g.indices) counts[static_cast<std::size_t>(i)] += 1;
  EXPECT_EQ(r.model.item_scores, counts);
  EXPECT_EQ(r.model.kind, ModelKind::kPopularity);
  const std::string path = tmp_dir(c) + "/pop_np" + std::to_string(c.size()) + ".h5";
  write_model(path, r.model, c);
  const Model m = read_model(path, c);
  EXPECT_EQ(m.kind, ModelKind::kPopularity);
  EXPECT_EQ(m.item_scores, counts);
  UserInputs u;  // the most counted items not in the history
  u.indices = {0};
  u.weights = {1};
  u.indptr = {0, 1};
  const TopN top = score_users(m, u, 3);
  std::vector<int> order(18);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return counts[a] > counts[b]; });
  order.erase(std::find(order.begin(), order.end(), 0));
  for (int q = 0; q < 3; ++q)
    EXPECT_EQ(top.items[static_cast<std::size_t>(q)], order[static_cast<std::size_t>(q)]);
}

TEST(EaseMpi, ExplanationsAreExactLeaveOneOut) {
  const Comm c = Comm::world();
  const TrainData g = global_data(150, 21);
  const TrainResult r = train(ease_params("3", 0), block_of(g, c), c);
  const Model& m = r.model;
  UserInputs u;
  u.indices = {2, 5, 11, 17};
  u.weights = {1, 1, 1, 1};
  u.indptr = {0, 4};
  const TopN top = score_users(m, u, 4);
  const std::vector<std::uint8_t> excluded(21, 0);
  const Explainer ex(m, 2);
  const auto why = ex.explain(u, 0, top.items, excluded);
  ASSERT_EQ(why.size(), 4u);
  // Brute force: drop each history item, rescore, compare the score change and the rank.
  const auto scores_without = [&](int drop) {
    UserInputs v;
    for (int k = 0; k < 4; ++k)
      if (k != drop) v.indices.push_back(u.indices[static_cast<std::size_t>(k)]);
    v.weights.assign(v.indices.size(), 1.0f);
    v.indptr = {0, static_cast<std::int64_t>(v.indices.size())};
    std::vector<float> z(21, 0.0f);
    for (auto i : v.indices)
      for (int j = 0; j < 21; ++j)
        z[static_cast<std::size_t>(j)] += m.item_item[static_cast<std::size_t>(i * 21 + j)];
    return z;
  };
  const std::vector<float> z0 = scores_without(-1);
  for (const auto& e : why) {
    ASSERT_FALSE(e.named.empty());
    EXPECT_TRUE(e.linear);
    EXPECT_LE(e.named.size(), 2u);
    for (const auto& h : e.named) {
      const int k = static_cast<int>(std::find(u.indices.begin(), u.indices.end(), h.item) -
                                     u.indices.begin());
      const auto z = scores_without(k);
      EXPECT_NEAR(h.effect,
                  z0[static_cast<std::size_t>(e.item)] - z[static_cast<std::size_t>(e.item)], 1e-6);
    }
    const int k0 = static_cast<int>(std::find(u.indices.begin(), u.indices.end(), e.named[0].item) -
                                    u.indices.begin());
    const auto z = scores_without(k0);
    std::int64_t above = 0;
    for (int i = 0; i < 21; ++i) {
      if (std::find(u.indices.begin(), u.indices.end(), i) != u.indices.end()) continue;
      const float zi = z[static_cast<std::size_t>(i)], zc = z[static_cast<std::size_t>(e.item)];
      if (zi > zc || (zi == zc && i < e.item)) ++above;
    }
    EXPECT_EQ(e.rank_without, above + 1);
  }
}

TEST(EaseMpi, PanelsCoverAndBalance) {
  for (const std::int64_t n : {1, 5, 100, 1682, 20000})
    for (const int p : {1, 2, 3, 4, 8}) {
      for (std::int64_t q = 0; q * 128 < n; ++q) {
        const int r = ease::panel_owner(q, p);
        ASSERT_TRUE(r >= 0 && r < p) << q << " of " << n << ", " << p << " ranks";
      }
      double lo = 1e300, hi = 0, all = 0;
      for (int r = 0; r < p; ++r) {
        const double f = ease::rank_flops(n, p, r);
        lo = std::min(lo, f);
        hi = std::max(hi, f);
        all += f;
      }
      const auto nd = static_cast<double>(n);
      // 2 n^3 / 3 as dpotri, plus the panels' discretisation (about n^2 x 128)
      EXPECT_NEAR(all, 2 * nd * nd * nd / 3 + nd * nd * 128, 0.2 * nd * nd * 128 + 1e7) << n;
      if (n >= 1000 * p) {  // the ranks' triangular-solve flops within 5% of each other
        EXPECT_LT(hi / lo, 1.05) << n << " items, " << p << " ranks";
      }
    }
}

// The block factor at the world size equals Eigen's single-process LLT; uneven last blocks,
// more blocks than ranks and fewer; a matrix that is not positive definite is refused on
// every rank (the failing pivot's owner varies with the rank count).
TEST(EaseMpi, BlockCholeskyMatchesOneProcess) {
  const Comm c = Comm::world();
  for (const std::int64_t n : {1, 5, 16, 37, 130}) {
    Eigen::MatrixXd R(n, n);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        R(i, j) = std::sin(0.7 * static_cast<double>(i * n + j) + 1.3);
    const Eigen::MatrixXd A = R * R.transpose() + 0.5 * Eigen::MatrixXd::Identity(n, n);
    const Eigen::MatrixXd ref = A.llt().matrixL();
    for (const std::int64_t panel : {4, 16, 256}) {
      Eigen::MatrixXd F = A;
      ASSERT_TRUE(linalg::cholesky_blocks(F.data(), n, c, panel));
      const Eigen::MatrixXd L = F.triangularView<Eigen::Lower>();
      EXPECT_LT((L - ref).cwiseAbs().maxCoeff(), 1e-9 * ref.cwiseAbs().maxCoeff())
          << n << " columns, panel " << panel << ", " << c.size() << " ranks";
      Eigen::MatrixXd bad = A;
      bad(n - 1, n - 1) = -1.0;             // the last pivot turns negative
      if (n > 1) bad(n / 2, n / 2) -= 1e6;  // or one half way
      EXPECT_FALSE(linalg::cholesky_blocks(bad.data(), n, c, panel)) << n << ", " << panel;
    }
  }
  EXPECT_EQ(linalg::cholesky_scratch_bytes(1000, 1), 0);
  EXPECT_EQ(linalg::cholesky_scratch_bytes(1000, 2, 256), 2 * 8 * (1000 * 256 + 1));
}

TEST(EaseMpi, BadInputsOneClearLine) {
  const Comm c = Comm::world();
  struct Case {
    std::string kind, l2;
    double val_users;
    std::string message;
  };
  const Case cases[] = {
      {"ease", "0", 0.1, "invalid value '0' for --l2: lambda must be > 0"},
      {"ease", "-5", 0.1, "invalid value '-5' for --l2: lambda must be > 0"},
      {"ease", "100,0", 0.1, "invalid value '100,0' for --l2: lambda must be > 0"},
      {"ease", "x", 0.1, "invalid value 'x' for --l2: lambda must be > 0"},
      {"ease", "auto", 0,
       "invalid value 'auto' for --l2: choosing lambda needs validation users (--val-users > 0); "
       "or give one lambda"},
      {"knn", "auto", 0.1,
       "invalid value 'knn' for --model-kind: use mlp (or bag), sequence, ease or popularity"},
  };
  for (const auto& k : cases) {
    TrainParams p = ease_params(k.l2, k.val_users);
    p.model_kind = k.kind;
    try {
      p.validate();
      ADD_FAILURE() << "no error for " << k.kind << " " << k.l2;
    } catch (const UsageError& e) {
      EXPECT_EQ(std::string(e.what()), k.message);
    }
  }
  {
    TrainParams p = ease_params("10", 0);
    p.personalize = "segment-heads";
    EXPECT_THROW(p.validate(), UsageError);
  }
  // Too many items for the memory limit: refused before anything is allocated, every rank.
  try {
    ease::check_memory(100000, 1, std::int64_t{8} << 30);
    ADD_FAILURE() << "no error";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()),
              "ease: 100000 items need 224 GiB per rank (the Gram matrix, its Cholesky factor "
              "and two B: about 24 x 100000^2 bytes), over the 8 GiB allowed per rank "
              "(--max-memory-per-rank); keep fewer items");
  }
  const std::int64_t budget = h5::memory_budget();
  h5::set_memory_budget(24 * 40 * 40 - 1);  // 40 items need at least 24 x 40^2 bytes
  const TrainData g = global_data(60, 40);
  EXPECT_THROW(train(ease_params("5", 0), block_of(g, c), c), DataError);
  h5::set_memory_budget(budget);
}

}  // namespace
}  // namespace segrec
