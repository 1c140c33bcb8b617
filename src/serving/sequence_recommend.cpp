#include "segrec/serving/sequence_recommend.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <unordered_map>

#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/ingest/ingest.hpp"
#include "segrec/io/textio.hpp"
#include "segrec/personalisation/sequence/gru.hpp"

namespace segrec {

namespace {

constexpr std::int64_t kBlock = 1024;  // windows scored per pass
constexpr int kReasons = 3;            // events named per reason

std::string fmt_value(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::unordered_map<std::string, std::int32_t> index_of(const std::vector<std::string>& ids) {
  std::unordered_map<std::string, std::int32_t> out;
  for (std::size_t i = 0; i < ids.size(); ++i) out.emplace(ids[i], static_cast<std::int32_t>(i));
  return out;
}

std::vector<std::uint8_t> read_excluded(const std::string& path, const SeqModel& m,
                                        std::int64_t& known, std::int64_t& unknown) {
  std::vector<std::uint8_t> out;
  if (path.empty()) return out;
  std::ifstream in(path);
  if (!in) throw IoError("cannot read --exclude '" + path + "'");
  out.assign(m.item_ids.size(), 0);
  const auto idx = index_of(m.item_ids);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const auto it = idx.find(line);
    if (it == idx.end()) {
      ++unknown;
    } else if (!out[static_cast<std::size_t>(it->second)]) {
      out[static_cast<std::size_t>(it->second)] = 1;
      ++known;
    }
  }
  return out;
}

// The best n of row `s` (scores of all items), skipping `skip` (sorted) and excluded.
template <class Row>
void top_of(const Row& s, const std::vector<std::int32_t>& skip,
            const std::vector<std::uint8_t>& excluded, std::int64_t n, SeqRecs& out) {
  std::vector<std::int32_t> cand;
  for (std::int32_t j = 0; j < static_cast<std::int32_t>(s.size()); ++j) {
    if (!excluded.empty() && excluded[static_cast<std::size_t>(j)]) continue;
    if (std::binary_search(skip.begin(), skip.end(), j)) continue;
    cand.push_back(j);
  }
  const auto better = [&](std::int32_t a, std::int32_t b) {
    return s(a) > s(b) || (s(a) == s(b) && a < b);
  };
  const auto k = static_cast<std::size_t>(std::min<std::int64_t>(n, std::ssize(cand)));
  std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(k), cand.end(),
                    better);
  for (std::size_t q = 0; q < k; ++q) {
    out.items.push_back(cand[q]);
    out.scores.push_back(static_cast<float>(s(cand[q])));
  }
}

}  // namespace

std::vector<SeqRecs> recommend_windows(const SeqModel& m,
                                       const std::vector<std::vector<std::int32_t>>& items,
                                       const std::vector<std::vector<std::uint8_t>>& types,
                                       const std::vector<std::vector<double>>& times,
                                       const std::vector<std::vector<std::int32_t>>& seen,
                                       const std::vector<std::uint8_t>& excluded, std::int64_t n,
                                       bool explain) {
  seq::GruNet<float> net(m.shape);
  net.params() = m.params;
  const bool gaps = m.shape.n_gaps > 0;
  std::vector<SeqRecs> out(items.size());
  for (std::size_t r0 = 0; r0 < items.size(); r0 += kBlock) {
    const std::size_t r1 = std::min(items.size(), r0 + kBlock);
    const std::vector<std::vector<std::int32_t>> wi(
        items.begin() + static_cast<std::ptrdiff_t>(r0),
        items.begin() + static_cast<std::ptrdiff_t>(r1));
    const std::vector<std::vector<std::uint8_t>> wt(
        types.begin() + static_cast<std::ptrdiff_t>(r0),
        types.begin() + static_cast<std::ptrdiff_t>(r1));
    std::vector<std::vector<double>> wtm;
    if (gaps)
      wtm.assign(times.begin() + static_cast<std::ptrdiff_t>(r0),
                 times.begin() + static_cast<std::ptrdiff_t>(r1));
    const auto S = net.scores(net.final_states(seq::Batch::from(wi, wt, false, wtm)));
    for (std::size_t r = r0; r < r1; ++r) {
      std::vector<std::int32_t> skip = seen[r];
      std::sort(skip.begin(), skip.end());
      top_of(S.row(static_cast<std::int64_t>(r - r0)), skip, excluded, n, out[r]);
    }
  }
  if (!explain) return out;
  // Leave-one-out: window r without event j, for every j, in one batch per window.
  for (std::size_t r = 0; r < items.size(); ++r) {
    const auto len = items[r].size();
    if (len == 0 || out[r].items.empty()) continue;
    std::vector<std::vector<std::int32_t>> wi(len);
    std::vector<std::vector<std::uint8_t>> wt(len);
    std::vector<std::vector<double>> wtm(gaps ? len : 0);
    for (std::size_t j = 0; j < len; ++j) {
      for (std::size_t q = 0; q < len; ++q)
        if (q != j) {
          wi[j].push_back(items[r][q]);
          wt[j].push_back(types[r][q]);
        }
      if (gaps) {  // the gap after a left-out event spans it
        wtm[j] = times[r];
        wtm[j].erase(wtm[j].begin() + static_cast<std::ptrdiff_t>(j) + 1);
      }
    }
    const auto S = net.scores(net.final_states(seq::Batch::from(wi, wt, false, wtm)));
    for (std::size_t k = 0; k < out[r].items.size(); ++k) {
      std::vector<float> d(len);
      for (std::size_t j = 0; j < len; ++j)
        d[j] = out[r].scores[k] - S(static_cast<std::int64_t>(j), out[r].items[k]);
      out[r].drops.push_back(std::move(d));
    }
  }
  return out;
}

RecommendSummary recommend_sequence(const RecommendParams& p, const Comm& comm) {
  p.validate();
  const SeqModel m = read_sequence_model(p.model, comm);
  require(p.out.size() < 3 || p.out.compare(p.out.size() - 3, 3, ".h5") != 0, "out", p.out,
          "a sequence model writes CSV recommendations (.csv)");
  RecommendSummary sum;
  Dataset ds;
  if (p.new_users()) {
    IngestParams ip = p.events;
    ip.out = p.out;
    ds = ingest(ip, comm);
  } else {
    ds = read_dataset(p.data, comm, /*with_log=*/true);
  }
  const std::vector<std::int32_t> item_map = map_ids(ds.item_ids, m.item_ids);
  std::vector<std::int32_t> type_map = map_ids(ds.event_types, m.event_types);
  for (auto& t : type_map) t = std::max(t, 0);
  sum.unknown_items = std::count(item_map.begin(), item_map.end(), -1);
  // Sessions need their order: without a timestamp column every time reads 0 and ingest
  // orders a session's events by item.
  if (p.new_users()) {
    std::int64_t flags[2] = {0, 0};  // events with a time != 0, sessions of >= 2 events
    for (double t : ds.log_time) flags[0] += t != 0;
    for (std::int64_t i = 0; i < ds.n_local(); ++i)
      flags[1] += ds.log_ptr[i + 1] - ds.log_ptr[i] > 1;
    comm.allreduce(std::span<std::int64_t>(flags, 2));
    if (flags[0] == 0 && flags[1] > 0)
      throw DataError(
          "--events: the sequence model reads each session in time order; give a "
          "timestamp column (a row number will do)",
          true);
  }
  std::vector<std::vector<std::int32_t>> wi, seen;
  std::vector<std::vector<std::uint8_t>> wt;
  std::vector<std::vector<double>> wtm;
  std::vector<std::string> ids;
  std::string bad;  // the first session with no known item (--events)
  for (std::int64_t u = 0; u < ds.n_local(); ++u) {
    std::vector<std::int32_t> it, all;
    std::vector<std::uint8_t> ty;
    std::vector<double> tm;
    for (std::int64_t k = ds.log_ptr[u]; k < ds.log_ptr[u + 1]; ++k) {
      const std::int32_t i = item_map[static_cast<std::size_t>(ds.log_item[k])];
      if (i < 0) {
        ++sum.unknown_events;
        continue;
      }
      it.push_back(i);
      ty.push_back(static_cast<std::uint8_t>(type_map[ds.log_type[k]]));
      tm.push_back(ds.log_time[static_cast<std::size_t>(k)]);
    }
    if (it.empty()) {
      if (p.new_users() && bad.empty())
        bad = "session '" + ds.user_ids[static_cast<std::size_t>(u)] + "' has " +
              std::to_string(ds.log_ptr[u + 1] - ds.log_ptr[u]) +
              " events, none on an item the model knows";
      continue;
    }
    all = it;
    const std::size_t keep = std::min<std::size_t>(it.size(), static_cast<std::size_t>(m.max_len));
    it.erase(it.begin(), it.end() - static_cast<std::ptrdiff_t>(keep));
    ty.erase(ty.begin(), ty.end() - static_cast<std::ptrdiff_t>(keep));
    wi.push_back(std::move(it));
    wt.push_back(std::move(ty));
    wtm.push_back(seq::window_times(tm, keep));
    seen.push_back(std::move(all));
    ids.push_back(ds.user_ids[static_cast<std::size_t>(u)]);
  }
  comm.check_all(bad.empty() ? "" : "--events: " + bad, kExitData);
  const std::vector<std::uint8_t> excluded =
      read_excluded(p.exclude, m, sum.excluded_items, sum.exclude_unknown);
  const auto recs = recommend_windows(m, wi, wt, wtm, seen, excluded, p.top, p.explain);

  std::string text;
  if (comm.is_root())
    text =
        std::string("user_id,rank,item_id,score,segment,source") + (p.explain ? ",reason\n" : "\n");
  std::int64_t rows = 0;
  for (std::size_t r = 0; r < recs.size(); ++r) {
    for (std::size_t k = 0; k < recs[r].items.size(); ++k) {
      append_csv_field(text, ids[r]);
      text += ',' + std::to_string(k + 1) + ',';
      append_csv_field(text, m.item_ids[static_cast<std::size_t>(recs[r].items[k])]);
      text += ',' + fmt_value(recs[r].scores[k]) + ",-1,model";
      if (p.explain) {
        const auto& d = recs[r].drops[k];
        std::vector<std::size_t> order(d.size());
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(),
                         [&](std::size_t a, std::size_t b) { return d[a] > d[b]; });
        std::string reason;
        for (std::size_t q = 0; q < order.size() && q < kReasons; ++q) {
          const std::size_t j = order[q];
          if (!(d[j] > 0)) break;
          if (!reason.empty()) reason += "; ";
          reason += "after " + m.item_ids[static_cast<std::size_t>(wi[r][j])] + " (" +
                    std::to_string(d.size() - j) + " back; without it the score drops " +
                    fmt_value(d[j]) + ")";
        }
        if (reason.empty()) reason = "no single recent event raised it (the sequence as a whole)";
        text += ',';
        append_csv_field(text, reason);
      }
      text += '\n';
      ++rows;
    }
  }
  OrderedWriter csv(p.out, comm);
  csv.append(text);
  csv.commit();
  std::int64_t figures[3] = {static_cast<std::int64_t>(recs.size()), rows, sum.unknown_events};
  comm.allreduce(std::span<std::int64_t>(figures, 3));
  sum.users = figures[0];
  sum.rows = figures[1];
  sum.unknown_events = figures[2];
  return sum;
}

}  // namespace segrec
