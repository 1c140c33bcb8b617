// `segrec evaluate`: Recall/NDCG/HitRate@K, MRR, coverage and novelty of a model
// and of the popularity baselines on fold-in / test files.
#include "segrec/serving/evaluate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/core/progress.hpp"
#include "segrec/personalisation/sequence/model.hpp"
#include "segrec/serving/evaluate_sequence.hpp"
#include "segrec/serving/memory.hpp"
#include "segrec/serving/recommend.hpp"

namespace segrec {
namespace {

std::string num(double v, int digits = 4) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

EvaluateData read_evaluate_data(const EvaluateParams& p, const Comm& comm) {
  IngestParams fp = p.foldin;
  fp.out = p.model;  // not written
  EvaluateData d{ingest(fp, comm), {}};
  IngestParams tp = fp;
  tp.events = {p.test};
  d.test = ingest(tp, comm);
  return d;
}

SystemMetrics metrics_from(const std::string& name, const double* sums, std::size_t nk) {
  SystemMetrics s;
  s.name = name;
  s.users = static_cast<std::int64_t>(sums[3 * nk + 1]);
  const double n = s.users > 0 ? static_cast<double>(s.users) : 1.0;
  for (std::size_t j = 0; j < nk; ++j) {
    s.recall.push_back(sums[j] / n);
    s.ndcg.push_back(sums[nk + j] / n);
    s.hitrate.push_back(sums[2 * nk + j] / n);
  }
  s.mrr = sums[3 * nk] / n;
  s.full_hr = sums[3 * nk + 2] / n;
  s.full_ndcg = sums[3 * nk + 3] / n;
  s.full_mrr = sums[3 * nk + 4] / n;
  return s;
}

void EvaluateParams::validate() const {
  require(!model.empty(), "model", model, "give the model.h5 to evaluate");
  require(foldin.events.size() == 1, "foldin", foldin.events.size(),
          "give exactly one fold-in event file");
  require(!test.empty(), "test", test, "give the test event file");
  require(block_users >= 1, "block-users", block_users, "must be >= 1");
  require(min_events >= 0, "min-events", min_events, "must be >= 0");
  require(rank_k >= 0, "rank-k", rank_k, "must be >= 1 (0 = no full ranking)");
  (void)k_list();
  IngestParams ip = foldin;
  ip.out = model;  // not written; ingest checks that it is set
  ip.validate();
}

std::vector<std::int64_t> EvaluateParams::k_list() const {
  std::vector<std::int64_t> out;
  for (const auto& part : split_list(k)) {
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    require(used == part.size() && v >= 1, "k", k, "give cut-offs >= 1, e.g. 10,20,50,100");
    out.push_back(v);
  }
  require(!out.empty(), "k", k, "give at least one cut-off, e.g. 10,20,50,100");
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<std::string> model_modes(const Model& m) {
  if (m.head_layers > 0 && !m.head_segments.empty()) return {"model", "model-global-head"};
  return {"model"};
}

void add_list_metrics(const std::vector<std::int32_t>& ranked,
                      const std::vector<std::int32_t>& test, std::int64_t n_test,
                      const std::vector<std::int64_t>& k, double* sums) {
  const std::size_t nk = k.size();
  std::vector<double> dcg_at;  // cumulative DCG and hits by rank
  double dcg = 0, hits = 0, rr = 0;
  std::size_t j = 0;
  const auto close = [&](std::int64_t rank) {  // ranks [0, rank) done
    while (j < nk && k[j] <= rank) {
      const std::int64_t m = std::min<std::int64_t>(k[j], n_test);
      double idcg = 0;
      for (std::int64_t r = 0; r < m; ++r) idcg += 1.0 / std::log2(static_cast<double>(r) + 2.0);
      sums[j] += m > 0 ? hits / static_cast<double>(m) : 0.0;
      sums[nk + j] += idcg > 0 ? dcg / idcg : 0.0;
      sums[2 * nk + j] += hits > 0 ? 1.0 : 0.0;
      ++j;
    }
  };
  const std::int64_t len = static_cast<std::int64_t>(ranked.size());
  for (std::int64_t r = 0; r < len; ++r) {
    close(r);
    const std::int32_t i = ranked[r];
    if (i >= 0 && std::binary_search(test.begin(), test.end(), i)) {
      hits += 1;
      dcg += 1.0 / std::log2(static_cast<double>(r) + 2.0);
      if (rr == 0) rr = 1.0 / static_cast<double>(r + 1);
    }
  }
  close(std::numeric_limits<std::int64_t>::max());
  sums[3 * nk] += rr;
  sums[3 * nk + 1] += 1;
}

void add_full_rank_metrics(const std::vector<std::int32_t>& ranked,
                           const std::vector<std::int32_t>& test, std::int64_t k, double* sums) {
  const std::int64_t len = std::ssize(ranked);
  for (std::int64_t r = 0; r < len; ++r) {
    const std::int32_t i = ranked[r];
    if (i < 0 || !std::binary_search(test.begin(), test.end(), i)) continue;
    if (r < k) {
      sums[0] += 1;
      sums[1] += 1.0 / std::log2(static_cast<double>(r) + 2.0);
    }
    sums[2] += 1.0 / static_cast<double>(r + 1);
    return;
  }
}

namespace {

EvaluateResult evaluate_bag(const EvaluateParams& p, const Comm& comm) {
  const std::vector<std::int64_t> ks = p.k_list();
  const std::size_t nk = ks.size();
  const std::int64_t kmax = ks.back();
  const Model m = read_model(p.model, comm);
  const EvaluateData data = read_evaluate_data(p, comm);
  const Dataset& fi = data.foldin;
  const Dataset& te = data.test;

  const ServingUsers u = prepare_new_users(m, fi, map_items(m, fi.item_ids));
  // Models with segment heads are also scored with their global layers only.
  ServingUsers u_global;
  if (m.head_layers > 0 && !m.head_segments.empty()) {
    u_global = u;
    u_global.inputs.segment_heads = false;
  }
  check_score_memory("evaluate", m, u.n_local(), p.block_users, 0, comm);
  const std::vector<std::int32_t> tmap = map_items(m, te.item_ids);
  const Popularity pop = Popularity::from(m);
  const std::int64_t n_items = std::ssize(m.item_ids);
  const std::int64_t kseg = m.serving ? m.serving->k : 0;

  // Systems: the baselines (with a bundle), then the model's modes.
  std::vector<std::string> names;
  std::vector<Source> how;
  if (!pop.empty()) {
    names = {"popularity", "segment-popularity"};
    how = {Source::kPopular, Source::kSegmentPopular};
  }
  std::vector<std::int64_t> min_events;
  for (const auto& mode : model_modes(m)) {
    names.push_back(mode);
    how.push_back(Source::kModel);
    min_events.push_back(0);
  }
  min_events.insert(min_events.begin(), names.size() - min_events.size(), 0);
  if (!pop.empty() && p.min_events > 0) {
    names.push_back("served");
    how.push_back(Source::kModel);
    min_events.push_back(p.min_events);
  }
  const std::size_t ns = names.size(), nb = static_cast<std::size_t>(kseg) + 2;
  // sums[(bucket * ns + system) * stride]: bucket 0 = all users, 1 + g = segment g, last = none.
  std::vector<double> sums(nb * ns * metric_sums_size(nk), 0.0);
  std::vector<double> novelty(ns * nk * 2, 0.0);  // rank sum, items
  std::vector<std::uint8_t> covered(ns * nk * static_cast<std::size_t>(n_items), 0);
  const std::vector<std::uint8_t> none(static_cast<std::size_t>(n_items), 0);

  // Test sets of this rank's users, by id.
  std::unordered_map<std::string, std::int64_t> test_row;
  for (std::int64_t r = 0; r < te.n_local(); ++r) test_row.emplace(te.user_ids[r], r);
  std::vector<std::uint8_t> test_seen(static_cast<std::size_t>(te.n_local()), 0);
  std::int64_t unknown_test = 0;
  for (auto i : te.indices) unknown_test += tmap[static_cast<std::size_t>(i)] < 0;

  const auto add = [&](std::size_t bucket, std::size_t s, const std::vector<std::int32_t>& ranked,
                       const std::vector<std::int32_t>& test, std::int64_t n_test) {
    double* out = sums.data() + (bucket * ns + s) * metric_sums_size(nk);
    // The top kmax for the cut-off metrics, the whole ranking for the full-ranking ones.
    const std::vector<std::int32_t> top(
        ranked.begin(), ranked.begin() + std::min<std::int64_t>(std::ssize(ranked), kmax));
    add_list_metrics(top, test, n_test, ks, out);
    if (p.rank_k > 0) add_full_rank_metrics(ranked, test, p.rank_k, out + 3 * nk + 2);
  };
  const std::int64_t rows = u.n_local();
  std::vector<std::int32_t> test, ranked;
  // Every list ranks all items (history excluded): the full-ranking metrics need the
  // target's rank wherever it falls. --rank-k 0: the top max K only.
  const std::int64_t n_full = p.rank_k > 0 ? std::max<std::int64_t>(kmax, n_items) : kmax;
  const std::int64_t block =
      std::min(p.block_users, std::max<std::int64_t>(1, kFullListCells / n_full));
  progress::Task task("evaluate", "users scored", static_cast<double>((rows + block - 1) / block),
                      "block");
  for (std::int64_t r0 = 0; r0 < rows; r0 += block) {
    const std::int64_t r1 = std::min(rows, r0 + block);
    for (std::size_t s = 0; s < ns; ++s) {
      const ServingUsers& us = names[s] == "model-global-head" ? u_global : u;
      const RecLists L = recommend_rows(m, us, r0, r1, n_full, how[s], min_events[s], none, pop);
      for (std::int64_t r = r0; r < r1; ++r) {
        const auto it = test_row.find(u.ids[r]);
        if (it == test_row.end()) continue;
        const std::int64_t t = it->second;
        test.clear();
        for (std::int64_t q = te.indptr[t]; q < te.indptr[t + 1]; ++q)
          if (tmap[te.indices[q]] >= 0) test.push_back(tmap[te.indices[q]]);
        std::sort(test.begin(), test.end());
        const std::int64_t n_test = te.indptr[t + 1] - te.indptr[t];
        if (n_test == 0) continue;
        test_seen[t] = 1;
        ranked.assign(L.items.begin() + (r - r0) * n_full, L.items.begin() + (r - r0 + 1) * n_full);
        const std::int32_t g = u.segment[r];
        add(0, s, ranked, test, n_test);
        add(g >= 0 && g < kseg ? 1 + g : nb - 1, s, ranked, test, n_test);
        for (std::size_t j = 0; j < nk; ++j)
          for (std::int64_t c = 0; c < ks[j] && c < kmax; ++c) {
            const std::int32_t i = ranked[c];
            if (i < 0) continue;
            covered[(s * nk + j) * n_items + i] = 1;
            if (!pop.empty()) {
              novelty[(s * nk + j) * 2] += static_cast<double>(pop.rank[i]);
              novelty[(s * nk + j) * 2 + 1] += 1;
            }
          }
      }
    }
    task.update(static_cast<double>((r1 + block - 1) / block));
  }
  // Test users without fold-in events: empty lists, counted as misses.
  std::int64_t no_foldin = 0;
  for (std::int64_t t = 0; t < te.n_local(); ++t) {
    if (test_seen[t] || te.indptr[t + 1] == te.indptr[t]) continue;
    ++no_foldin;
    const std::int64_t n_test = te.indptr[t + 1] - te.indptr[t];
    for (std::size_t s = 0; s < ns; ++s) {
      add(0, s, {}, {}, n_test);
      add(nb - 1, s, {}, {}, n_test);
    }
  }
  comm.allreduce(sums);
  comm.allreduce(novelty);
  comm.allreduce(covered, Op::kMax);

  EvaluateResult res;
  res.k = ks;
  res.rank_k = p.rank_k;
  res.n_items = n_items;
  res.users_without_foldin = comm.allreduce_value(no_foldin);
  res.unknown_test_items = comm.allreduce_value(unknown_test);
  for (std::size_t s = 0; s < ns; ++s) {
    SystemMetrics sm = metrics_from(names[s], sums.data() + s * metric_sums_size(nk), nk);
    for (std::size_t j = 0; j < nk; ++j) {
      const auto b = covered.begin() + static_cast<std::ptrdiff_t>((s * nk + j) * n_items);
      const auto c = std::count(b, b + n_items, std::uint8_t{1});
      sm.coverage.push_back(n_items > 0 ? static_cast<double>(c) / static_cast<double>(n_items)
                                        : 0);
      const double cnt = novelty[(s * nk + j) * 2 + 1];
      sm.novelty.push_back(cnt > 0 ? novelty[(s * nk + j) * 2] / cnt : 0.0);
    }
    res.systems.push_back(std::move(sm));
  }
  res.users = res.systems.empty() ? 0 : res.systems.front().users;
  for (std::size_t bkt = 1; bkt < nb; ++bkt) {
    std::vector<SystemMetrics> row;
    for (std::size_t s = 0; s < ns; ++s)
      row.push_back(
          metrics_from(names[s], sums.data() + (bkt * ns + s) * metric_sums_size(nk), nk));
    res.per_segment.push_back(std::move(row));
  }
  return res;
}

}  // namespace

EvaluateResult run_evaluate(const EvaluateParams& p, const Comm& comm) {
  p.validate();
  EvaluateResult res =
      is_sequence_model(p.model, comm) ? evaluate_sequence(p, comm) : evaluate_bag(p, comm);
  if (!p.json.empty()) {
    std::string err;
    if (comm.is_root()) {
      std::ofstream os(p.json);
      os << res.to_json();
      os.close();
      if (!os) err = "cannot write '" + p.json + "'";
    }
    comm.check_all(err, kExitIo);
  }
  return res;
}

std::string EvaluateResult::table() const {
  std::ostringstream os;
  os << users << " test users (" << users_without_foldin << " without fold-in events), "
     << unknown_test_items << " test items unknown to the model, " << n_items << " items\n";
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-20s %5s %8s %8s %8s %9s %9s\n", "system", "K", "recall", "ndcg",
                "hitrate", "coverage", "pop-rank");
  os << buf;
  for (const auto& s : systems) {
    for (std::size_t j = 0; j < k.size(); ++j) {
      std::snprintf(buf, sizeof buf, "%-20s %5lld %8.4f %8.4f %8.4f %9.4f %9.1f\n", s.name.c_str(),
                    static_cast<long long>(k[j]), s.recall[j], s.ndcg[j], s.hitrate[j],
                    s.coverage[j], s.novelty[j]);
      os << buf;
    }
    std::snprintf(buf, sizeof buf, "%-20s   MRR %8.4f\n", s.name.c_str(), s.mrr);
    os << buf;
    if (rank_k <= 0) continue;
    std::snprintf(buf, sizeof buf, "%-20s  full ranking: HR@%lld %.4f  NDCG@%lld %.4f  MRR %.4f\n",
                  s.name.c_str(), static_cast<long long>(rank_k), s.full_hr,
                  static_cast<long long>(rank_k), s.full_ndcg, s.full_mrr);
    os << buf;
  }
  if (!per_segment.empty() && !k.empty()) {
    const std::size_t j = 0;
    os << "per segment (recall@" << k[j] << " / ndcg@" << k[j] << "):\n";
    std::snprintf(buf, sizeof buf, "%-8s %7s", "segment", "users");
    os << buf;
    for (const auto& s : systems) {
      std::snprintf(buf, sizeof buf, "  %20s", s.name.c_str());
      os << buf;
    }
    os << "\n";
    for (std::size_t g = 0; g < per_segment.size(); ++g) {
      const auto& row = per_segment[g];
      if (row.empty() || row.front().users == 0) continue;
      const std::string name = g + 1 == per_segment.size() ? "none" : std::to_string(g);
      std::snprintf(buf, sizeof buf, "%-8s %7lld", name.c_str(),
                    static_cast<long long>(row.front().users));
      os << buf;
      for (const auto& s : row) {
        std::snprintf(buf, sizeof buf, "  %9.4f / %8.4f", s.recall[j], s.ndcg[j]);
        os << buf;
      }
      os << "\n";
    }
  }
  return os.str();
}

std::string EvaluateResult::to_json() const {
  std::ostringstream os;
  const auto sys = [&](const SystemMetrics& s, bool full) {
    std::ostringstream o;
    o << "{\"users\": " << s.users;
    for (std::size_t j = 0; j < k.size(); ++j) {
      const std::string K = std::to_string(k[j]);
      o << ", \"recall@" << K << "\": " << num(s.recall[j], 6) << ", \"ndcg@" << K
        << "\": " << num(s.ndcg[j], 6) << ", \"hitrate@" << K << "\": " << num(s.hitrate[j], 6);
      if (full)
        o << ", \"coverage@" << K << "\": " << num(s.coverage[j], 6) << ", \"pop_rank@" << K
          << "\": " << num(s.novelty[j], 3);
    }
    const std::string R = std::to_string(rank_k);
    o << ", \"mrr\": " << num(s.mrr, 6);
    if (rank_k > 0)
      o << ", \"full_hr@" << R << "\": " << num(s.full_hr, 6) << ", \"full_ndcg@" << R
        << "\": " << num(s.full_ndcg, 6) << ", \"full_mrr\": " << num(s.full_mrr, 6);
    o << "}";
    return o.str();
  };
  os << "{\n \"users\": " << users << ",\n \"users_without_foldin\": " << users_without_foldin
     << ",\n \"unknown_test_items\": " << unknown_test_items << ",\n \"n_items\": " << n_items
     << ",\n \"k\": [";
  for (std::size_t j = 0; j < k.size(); ++j) os << (j ? ", " : "") << k[j];
  os << "],\n \"systems\": {";
  for (std::size_t s = 0; s < systems.size(); ++s)
    os << (s ? ",\n  " : "\n  ") << "\"" << systems[s].name << "\": " << sys(systems[s], true);
  os << "\n },\n \"segments\": [";
  bool first = true;
  for (std::size_t g = 0; g < per_segment.size(); ++g) {
    if (per_segment[g].empty() || per_segment[g].front().users == 0) continue;
    os << (first ? "\n  " : ",\n  ") << "{\"segment\": "
       << (g + 1 == per_segment.size() ? std::string("null") : std::to_string(g))
       << ", \"users\": " << per_segment[g].front().users;
    for (const auto& s : per_segment[g]) os << ", \"" << s.name << "\": " << sys(s, false);
    os << "}";
    first = false;
  }
  os << "\n ]\n}\n";
  return os.str();
}

}  // namespace segrec
