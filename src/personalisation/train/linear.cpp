#include "segrec/personalisation/train/linear.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "segrec/core/error.hpp"
#include "segrec/core/progress.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/personalisation/ease.hpp"
#include "segrec/personalisation/input_rows.hpp"
#include "segrec/personalisation/train/validation.hpp"
#include "trainer_impl.hpp"

namespace segrec {

namespace {

using train_impl::hash_keys;
using train_impl::kTagHoldout;
using train_impl::kTagValUser;
using train_impl::unit_uniform;

// The MLP's split: local training rows, and the validation users' fold-in and held-out items.
struct Split {
  std::vector<std::int64_t> train;
  EvalUsers val;
};

Split split_users(const TrainParams& p, const TrainData& d) {
  Split s;
  std::vector<std::pair<std::int32_t, float>> fold_in;
  std::vector<std::int32_t> held;
  for (std::int64_t i = 0; i < d.n_local(); ++i) {
    if (d.indptr[i + 1] == d.indptr[i]) continue;  // no history: nothing to learn or rank
    const auto g = static_cast<std::uint64_t>(d.user_begin + i);
    const bool val =
        p.val_users > 0 && unit_uniform(hash_keys(p.seed, kTagValUser, g)) < p.val_users;
    if (!val) {
      s.train.push_back(i);
      continue;
    }
    fold_in.clear();
    held.clear();
    for (std::int64_t k = d.indptr[i]; k < d.indptr[i + 1]; ++k) {
      const std::int32_t item = d.indices[k];
      if (unit_uniform(hash_keys(p.seed ^ kTagHoldout, g, static_cast<std::uint64_t>(item))) <
          p.val_holdout)
        held.push_back(item);
      else
        fold_in.emplace_back(item, d.weights[k]);
    }
    if (held.empty()) continue;
    std::sort(held.begin(), held.end());
    add_eval_user(s.val, d, false, i, fold_in, held, std::ssize(held));
  }
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TrainResult train_linear(const TrainParams& p, const TrainModes& modes, const TrainData& d,
                         const Comm& comm) {
  const std::int64_t n = d.n_items();
  Model m;
  m.kind = modes.model_kind;
  m.item_ids = d.item_ids;
  m.shape = ease::linear_shape(n);
  m.input = "history";
  m.history_weight = p.history_weight;
  m.config = p.config();
  m.ndcg_k = p.ndcg_k;
  m.recall_k = p.recall_k;
  if (m.kind == ModelKind::kEase) ease::check_memory(n, comm.size(), h5::memory_budget());

  const Split s = split_users(p, d);
  m.n_train_users = comm.allreduce_value(std::ssize(s.train));
  if (m.n_train_users == 0)
    throw DataError("train: no training users (every user is empty or held out)", true);
  const bool validate = comm.allreduce_value(s.val.rows()) > 0;
  const auto quality = [&](const Model& mm) {
    return quality_sums(mm, s.val, p.ndcg_k, p.recall_k, 0, false, comm);
  };

  if (m.kind == ModelKind::kPopularity) {
    std::vector<double> counts(static_cast<std::size_t>(n), 0.0);  // training users per item
    for (const std::int64_t i : s.train)
      for (std::int64_t k = d.indptr[i]; k < d.indptr[i + 1]; ++k) counts[d.indices[k]] += 1;
    comm.allreduce(counts);
    m.item_scores.assign(counts.begin(), counts.end());
  } else {
    const bool log_weight = modes.history_weight == TrainModes::HistoryWeight::kLog;
    std::vector<float> values(d.weights.size());
    for (std::size_t k = 0; k < values.size(); ++k)
      values[k] = history_value(d.weights[k], log_weight);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<double> G = ease::gram(n, d.indptr, d.indices, values, s.train, comm);
    const double gram_seconds = seconds_since(t0);
    const std::vector<double> grid = p.l2_values();
    progress::Task task("train", "ease", static_cast<double>(grid.size()), "lambda");
    double best = -std::numeric_limits<double>::infinity();
    Model probe = m;
    probe.kind = ModelKind::kEase;
    for (std::size_t g = 0; g < grid.size(); ++g) {
      const auto t1 = std::chrono::steady_clock::now();
      std::vector<float>().swap(probe.item_item);  // at most two B at a time (ease.hpp)
      // The last lambda factors G itself: no copy of n^2 doubles.
      probe.item_item = ease::solve(g + 1 < grid.size() ? G : std::move(G), n, grid[g], comm);
      m.seconds.push_back(seconds_since(t1) + (g == 0 ? gram_seconds : 0.0));
      double ndcg = std::numeric_limits<double>::quiet_NaN();
      if (validate) {
        const auto q = quality(probe);
        ndcg = q[2] > 0 ? q[0] / q[2] : 0.0;
      }
      m.l2_grid.push_back(grid[g]);
      m.l2_ndcg.push_back(ndcg);
      task.update(static_cast<double>(g + 1), {{"lambda", grid[g]}, {"val_ndcg", ndcg}}, true);
      // The best NDCG wins (ties: the smaller lambda); without validation, the one lambda.
      if (!validate || ndcg > best) {
        best = ndcg;
        m.l2 = grid[g];
        m.item_item.swap(probe.item_item);
      }
    }
    if (validate) m.best_ndcg = best;
  }
  if (validate) {
    const auto q = quality(m);
    m.n_val_users = static_cast<std::int64_t>(q[2]);
    QualityRow row;
    row.mode = to_string(m.kind);
    row.users = "validation";
    row.n_users = m.n_val_users;
    row.ndcg = q[2] > 0 ? q[0] / q[2] : 0.0;
    row.recall = q[2] > 0 ? q[1] / q[2] : 0.0;
    m.quality.push_back(row);
    if (m.kind == ModelKind::kPopularity) m.best_ndcg = row.ndcg;
  }
  TrainResult r;
  r.model = std::move(m);
  return r;
}

}  // namespace segrec
