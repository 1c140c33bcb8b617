#include "segrec/serving/evaluate_sequence.hpp"

#include <algorithm>
#include <unordered_map>

#include "segrec/core/error.hpp"
#include "segrec/ingest/ingest.hpp"
#include "segrec/personalisation/sequence/model.hpp"
#include "segrec/serving/sequence_recommend.hpp"

namespace segrec {

EvaluateResult evaluate_sequence(const EvaluateParams& p, const Comm& comm) {
  const std::vector<std::int64_t> ks = p.k_list();
  const std::size_t nk = ks.size();
  const std::int64_t kmax = ks.back();
  const SeqModel m = read_sequence_model(p.model, comm);
  const EvaluateData data = read_evaluate_data(p, comm);
  const Dataset& fi = data.foldin;
  const Dataset& te = data.test;
  const std::int64_t n_items = std::ssize(m.item_ids);
  const std::vector<std::int32_t> fmap = map_ids(fi.item_ids, m.item_ids);
  const std::vector<std::int32_t> tmap = map_ids(te.item_ids, m.item_ids);
  std::vector<std::int32_t> type_map = map_ids(fi.event_types, m.event_types);
  for (auto& t : type_map) t = std::max(t, 0);

  // The model reads histories in time order: without a timestamp column ingest orders
  // a user's events by item.
  std::int64_t flags[2] = {0, 0};  // events with a time != 0, users with >= 2 events
  for (double t : fi.log_time) flags[0] += t != 0;
  for (std::int64_t i = 0; i < fi.n_local(); ++i) flags[1] += fi.log_ptr[i + 1] - fi.log_ptr[i] > 1;
  comm.allreduce(std::span<std::int64_t>(flags, 2));
  if (flags[0] == 0 && flags[1] > 0)
    throw DataError(
        "--foldin: the sequence model reads each history in time order; give a timestamp "
        "column",
        true);

  std::unordered_map<std::string, std::int64_t> foldin_row;
  for (std::int64_t r = 0; r < fi.n_local(); ++r) foldin_row.emplace(fi.user_ids[r], r);
  std::int64_t unknown_test = 0, no_foldin = 0;
  for (auto i : te.indices) unknown_test += tmap[static_cast<std::size_t>(i)] < 0;

  std::vector<double> sums(metric_sums_size(nk), 0.0);
  std::vector<std::uint8_t> covered(nk * static_cast<std::size_t>(n_items), 0);
  const auto add = [&](const std::vector<std::int32_t>& ranked,
                       const std::vector<std::int32_t>& test, std::int64_t n_test) {
    const std::vector<std::int32_t> top(
        ranked.begin(), ranked.begin() + std::min<std::int64_t>(std::ssize(ranked), kmax));
    add_list_metrics(top, test, n_test, ks, sums.data());
    if (p.rank_k > 0) add_full_rank_metrics(ranked, test, p.rank_k, sums.data() + 3 * nk + 2);
    for (std::size_t j = 0; j < nk; ++j)
      for (std::int64_t c = 0; c < ks[j] && c < std::ssize(top); ++c)
        covered[j * static_cast<std::size_t>(n_items) + static_cast<std::size_t>(top[c])] = 1;
  };

  // Test users (with test events), in this rank's order, scored a block at a time.
  std::vector<std::int64_t> users;
  for (std::int64_t t = 0; t < te.n_local(); ++t)
    if (te.indptr[t + 1] > te.indptr[t]) users.push_back(t);
  const std::int64_t n_full = p.rank_k > 0 ? std::max<std::int64_t>(kmax, n_items) : kmax;
  const std::int64_t block =
      std::min(p.block_users, std::max<std::int64_t>(1, kFullListCells / n_full));
  const std::vector<std::uint8_t> none;
  std::vector<std::int32_t> test;
  for (std::size_t b0 = 0; b0 < users.size(); b0 += static_cast<std::size_t>(block)) {
    const std::size_t b1 = std::min(users.size(), b0 + static_cast<std::size_t>(block));
    std::vector<std::vector<std::int32_t>> wi, seen;
    std::vector<std::vector<std::uint8_t>> wt;
    std::vector<std::vector<double>> wtm;
    std::vector<std::int64_t> who;  // test rows with a window
    for (std::size_t q = b0; q < b1; ++q) {
      const std::int64_t t = users[q];
      const std::int64_t n_test = te.indptr[t + 1] - te.indptr[t];
      const auto f = foldin_row.find(te.user_ids[static_cast<std::size_t>(t)]);
      std::vector<std::int32_t> it;
      std::vector<std::uint8_t> ty;
      std::vector<double> tm;
      if (f != foldin_row.end())
        for (std::int64_t k = fi.log_ptr[f->second]; k < fi.log_ptr[f->second + 1]; ++k) {
          const std::int32_t i = fmap[static_cast<std::size_t>(fi.log_item[k])];
          if (i < 0) continue;
          it.push_back(i);
          ty.push_back(static_cast<std::uint8_t>(type_map[fi.log_type[k]]));
          tm.push_back(fi.log_time[static_cast<std::size_t>(k)]);
        }
      if (f == foldin_row.end() || fi.log_ptr[f->second + 1] == fi.log_ptr[f->second]) ++no_foldin;
      if (it.empty()) {  // nothing to read: an empty list, a miss
        add({}, {}, n_test);
        continue;
      }
      seen.push_back(it);
      const auto keep = static_cast<std::ptrdiff_t>(
          std::min<std::size_t>(it.size(), static_cast<std::size_t>(m.max_len)));
      it.erase(it.begin(), it.end() - keep);
      ty.erase(ty.begin(), ty.end() - keep);
      wi.push_back(std::move(it));
      wt.push_back(std::move(ty));
      wtm.push_back(seq::window_times(tm, static_cast<std::size_t>(keep)));
      who.push_back(t);
    }
    const auto recs = recommend_windows(m, wi, wt, wtm, seen, none, n_full, false);
    for (std::size_t r = 0; r < recs.size(); ++r) {
      const std::int64_t t = who[r];
      test.clear();
      for (std::int64_t q = te.indptr[t]; q < te.indptr[t + 1]; ++q)
        if (tmap[te.indices[q]] >= 0) test.push_back(tmap[te.indices[q]]);
      std::sort(test.begin(), test.end());
      add(recs[r].items, test, te.indptr[t + 1] - te.indptr[t]);
    }
  }
  comm.allreduce(sums);
  comm.allreduce(covered, Op::kMax);

  EvaluateResult res;
  res.k = ks;
  res.rank_k = p.rank_k;
  res.n_items = n_items;
  res.users_without_foldin = comm.allreduce_value(no_foldin);
  res.unknown_test_items = comm.allreduce_value(unknown_test);
  SystemMetrics s = metrics_from("model", sums.data(), nk);
  for (std::size_t j = 0; j < nk; ++j) {
    const auto c0 = covered.begin() + static_cast<std::ptrdiff_t>(j * n_items);
    const auto c = std::count(c0, c0 + n_items, std::uint8_t{1});
    s.coverage.push_back(n_items > 0 ? static_cast<double>(c) / static_cast<double>(n_items) : 0);
    s.novelty.push_back(0.0);
  }
  res.users = s.users;
  res.systems.push_back(std::move(s));
  return res;
}

}  // namespace segrec
