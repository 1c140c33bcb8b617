// The segment report: item lifts and behavioural contrasts per segment.
//
// Item lifts are aggregated sparsely: each rank counts its (segment, item) user
// pairs, sends them to the item's owner rank (item mod ranks) with one all-to-all,
// the owner computes lifts for its items and keeps each segment's best few, and an
// allgather merges those short lists. Behavioural statistics need one allreduce of
// k x d sums and counts.
#include "segrec/segmentation/segment_report.hpp"
#include "segrec/segmentation/profile.hpp"
#include "segrec/segmentation/report_value.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <map>
#include <numeric>
#include <sstream>

#include "segrec/core/error.hpp"
#include "segrec/core/json.hpp"
#include "segrec/core/params.hpp"
#include "segrec/core/tempfile.hpp"

namespace segrec {
namespace {

struct PairCount {
  std::int64_t key;  // segment * n_items + item
  std::int64_t users;
};

struct LiftRecord {
  std::int64_t segment;
  std::int64_t item;
  std::int64_t users;
  std::int64_t item_users;  // global users with the item
  double lift;
};

bool better(const LiftRecord& a, const LiftRecord& b) {
  if (a.lift != b.lift) return a.lift > b.lift;
  if (a.users != b.users) return a.users > b.users;
  return a.item < b.item;
}

std::string fmt(double v, int prec) {
  if (!std::isfinite(v)) return "n/a";
  std::ostringstream os;
  os << std::fixed << std::setprecision(prec) << v;
  return os.str();
}

std::string md_cell(std::string s) {
  std::string out;
  for (const char c : s) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n' || c == '\r')
      out += ' ';
    else
      out += c;
  }
  return out;
}

/// Item lifts of the described segments (collective).
void item_lifts(std::span<const std::int32_t> labels, const std::vector<std::int64_t>& sizes,
                const Dataset& data, const SegmentReportParams& p, const Comm& comm,
                std::vector<SegmentSummary>& segs) {
  const std::int64_t n_items = data.n_items(), k = static_cast<std::int64_t>(sizes.size());
  const std::int64_t n = std::accumulate(sizes.begin(), sizes.end(), std::int64_t{0});
  const int P = comm.size();
  // Local (segment, item) user counts; an item appears once per user row.
  std::vector<std::int64_t> keys;
  keys.reserve(data.indices.size());
  for (std::int64_t u = 0; u < data.n_local(); ++u)
    if (labels[u] >= 0)  // -1: no segment
      for (std::int64_t e = data.indptr[u]; e < data.indptr[u + 1]; ++e)
        keys.push_back(labels[u] * n_items + data.indices[e]);
  std::sort(keys.begin(), keys.end());
  std::vector<std::vector<PairCount>> send(static_cast<std::size_t>(P));
  for (std::size_t i = 0; i < keys.size();) {
    std::size_t j = i;
    while (j < keys.size() && keys[j] == keys[i]) ++j;
    const std::int64_t item = keys[i] % n_items;
    send[static_cast<std::size_t>(item % P)].push_back({keys[i], static_cast<std::int64_t>(j - i)});
    i = j;
  }
  keys.clear();
  keys.shrink_to_fit();
  const auto recv = comm.alltoallv(send);
  send.clear();
  // Owner side: totals per (segment, item) and per item.
  std::vector<PairCount> mine;
  for (const auto& v : recv) mine.insert(mine.end(), v.begin(), v.end());
  std::sort(mine.begin(), mine.end(),
            [](const PairCount& a, const PairCount& b) { return a.key < b.key; });
  std::vector<PairCount> merged;
  for (const auto& pc : mine) {
    if (!merged.empty() && merged.back().key == pc.key)
      merged.back().users += pc.users;
    else
      merged.push_back(pc);
  }
  mine.clear();
  std::map<std::int64_t, std::int64_t> item_total;  // owned items only
  for (const auto& pc : merged) item_total[pc.key % n_items] += pc.users;
  std::vector<std::vector<LiftRecord>> best(static_cast<std::size_t>(k));
  for (const auto& pc : merged) {
    const std::int64_t s = pc.key / n_items, item = pc.key % n_items;
    if (!segs[s].described || pc.users < p.min_item_users) continue;
    const double rate = static_cast<double>(pc.users) / static_cast<double>(sizes[s]);
    const double grate = static_cast<double>(item_total[item]) / static_cast<double>(n);
    best[s].push_back({s, item, pc.users, item_total[item], rate / grate});
  }
  std::vector<LiftRecord> local;
  for (auto& b : best) {
    const auto keep = std::min<std::size_t>(b.size(), static_cast<std::size_t>(p.top_items));
    std::partial_sort(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(keep), b.end(), better);
    local.insert(local.end(), b.begin(), b.begin() + static_cast<std::ptrdiff_t>(keep));
  }
  auto all = comm.allgatherv(local);
  std::sort(all.begin(), all.end(), [](const LiftRecord& a, const LiftRecord& b) {
    return a.segment != b.segment ? a.segment < b.segment : better(a, b);
  });
  for (const auto& r : all) {
    auto& seg = segs[r.segment];
    if (static_cast<int>(seg.items.size()) >= p.top_items) continue;
    ItemLift il;
    il.item_id = data.item_ids[r.item];
    if (data.item_names.size() == data.item_ids.size()) il.name = data.item_names[r.item];
    il.users = r.users;
    il.rate = static_cast<double>(r.users) / static_cast<double>(sizes[r.segment]);
    il.global_rate = static_cast<double>(r.item_users) / static_cast<double>(n);
    il.lift = r.lift;
    seg.items.push_back(il);
  }
}

/// Behavioural contrasts of the described segments (collective).
void stat_contrasts(std::span<const std::int32_t> labels, std::int64_t k, const LocalStats& st,
                    const Comm& comm, std::vector<SegmentSummary>& segs) {
  const auto d = static_cast<std::int64_t>(st.names.size());
  // [k*d sums | k*d counts | d sums of squares]
  std::vector<double> buf(static_cast<std::size_t>(2 * k * d + d), 0.0);
  for (Eigen::Index i = 0; i < st.raw.rows(); ++i) {
    const std::int64_t s = labels[i];
    if (s < 0) continue;  // no segment
    for (std::int64_t f = 0; f < d; ++f) {
      const double x = st.raw(i, f);
      if (!std::isfinite(x)) continue;
      buf[s * d + f] += x;
      buf[k * d + s * d + f] += 1;
      buf[2 * k * d + f] += x * x;
    }
  }
  comm.allreduce(buf);
  for (std::int64_t f = 0; f < d; ++f) {
    double sum = 0, cnt = 0;
    for (std::int64_t s = 0; s < k; ++s) {
      sum += buf[s * d + f];
      cnt += buf[k * d + s * d + f];
    }
    if (cnt == 0) continue;
    const double mean = sum / cnt;
    const double var = std::max(0.0, buf[2 * k * d + f] / cnt - mean * mean);
    const double sd = std::sqrt(var);
    for (std::int64_t s = 0; s < k; ++s) {
      const double c = buf[k * d + s * d + f];
      if (!segs[s].described || c == 0) continue;
      StatContrast sc;
      sc.name = st.names[f];
      sc.mean = buf[s * d + f] / c;
      sc.global_mean = mean;
      sc.z = sd > 0 ? (sc.mean - mean) / sd : 0.0;
      segs[s].stats.push_back(sc);
    }
  }
}

std::string describe(const SegmentSummary& s) {
  std::vector<const StatContrast*> by_z;
  for (const auto& c : s.stats)
    if (std::fabs(c.z) >= 0.5) by_z.push_back(&c);
  std::stable_sort(by_z.begin(), by_z.end(), [](const StatContrast* a, const StatContrast* b) {
    return std::fabs(a->z) > std::fabs(b->z);
  });
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < by_z.size() && i < 2; ++i) {
    const double z = by_z[i]->z;
    parts.push_back(std::string(std::fabs(z) >= 1 ? "very " : "") + (z > 0 ? "high " : "low ") +
                    by_z[i]->name);
  }
  const auto label = [](const ItemLift& it) {
    return it.name.empty() ? it.item_id : it.name + " (" + it.item_id + ")";
  };
  if (!s.items.empty() && s.items[0].lift >= 1.5) {
    std::string it = "item " + label(s.items[0]);
    if (s.items.size() > 1 && s.items[1].lift >= 1.5) it += ", " + label(s.items[1]);
    parts.push_back(it + " over-represented (lift " + fmt(s.items[0].lift, 1) + ")");
  }
  std::string cats;
  for (std::size_t i = 0; i < s.categories.size() && i < 2; ++i)
    if (s.categories[i].lift > 1) cats += (cats.empty() ? "" : ", ") + s.categories[i].name;
  if (!cats.empty()) parts.push_back("top categories " + cats);
  if (std::isfinite(s.value.revenue_share))
    parts.push_back(fmt(100 * s.value.revenue_share, 1) + "% of revenue from " +
                    fmt(100 * s.share, 1) + "% of users");
  if (parts.empty())
    return s.stats.empty() && s.items.empty() && s.categories.empty() ? ""
                                                                      : "close to the average user";
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? "; " : "") + parts[i];
  return out;
}

}  // namespace

void SegmentReportParams::validate() const {
  require(min_report_users >= 1, "min-report-users", min_report_users, "must be at least 1");
  require(top_items >= 0 && top_items <= 1000, "report-items", top_items,
          "must be between 0 and 1000");
  require(min_item_users >= 1, "min-item-users", min_item_users, "must be at least 1");
}

SegmentReport build_segment_report(std::span<const std::int32_t> labels,
                                   const std::vector<std::int64_t>& sizes, const Dataset* data,
                                   const LocalStats* stats, const SegmentReportParams& p,
                                   const Comm& comm) {
  SegmentReport rep;
  rep.k = static_cast<std::int64_t>(sizes.size());
  rep.n_users = std::accumulate(sizes.begin(), sizes.end(), std::int64_t{0});
  rep.min_report_users = p.min_report_users;
  rep.unsegmented = comm.allreduce_value(static_cast<std::int64_t>(
      std::count_if(labels.begin(), labels.end(), [](std::int32_t l) { return l < 0; })));
  for (std::int64_t s = 0; s < rep.k; ++s) {
    SegmentSummary seg;
    seg.id = s;
    seg.size = sizes[s];
    seg.share = rep.n_users > 0 ? static_cast<double>(seg.size) / rep.n_users : 0.0;
    seg.described = seg.size >= p.min_report_users;
    rep.segments.push_back(seg);
  }
  if (data) {
    SEGREC_ASSERT(data->n_local() == static_cast<std::int64_t>(labels.size()),
                  "dataset block and labels differ");
    if (data->n_items() > 0 && p.top_items > 0)
      item_lifts(labels, sizes, *data, p, comm, rep.segments);
    category_lifts(labels, *data, rep.segments, comm);
  } else {
    rep.notes.push_back("no dataset: item lifts omitted (give --data)");
  }
  if (stats) {
    stat_contrasts(labels, rep.k, *stats, comm, rep.segments);
    // RFM in every rank's block or in none (the same file).
    rep.has_rfm = comm.allreduce_value(stats->rfm_values.empty() ? 0 : 1, Op::kMin) > 0;
    if (rep.has_rfm) segment_values(labels, *stats, rep.segments, rep.overall, comm);
  } else {
    rep.notes.push_back("no profiles: behavioural statistics omitted (give --profiles)");
  }
  for (auto& s : rep.segments)
    if (s.described) s.description = describe(s);
  return rep;
}

void SegmentReport::value_markdown(std::ostream& os, const SegmentSummary& s) const {
  if (!s.categories.empty()) {
    os << "\nMost over-represented categories (lift = share of the segment's events in the "
          "category / share of all users' events):\n\n"
       << "| category | segment share | overall share | lift |\n|---|---:|---:|---:|\n";
    for (const auto& c : s.categories)
      os << "| " << md_cell(c.name) << " | " << fmt(100 * c.share, 1) << "% | "
         << fmt(100 * c.global_share, 1) << "% | " << fmt(c.lift, 2) << " |\n";
  }
  if (!has_rfm) return;
  os << "\nValue (RFM: recency = days since the last purchase, frequency = sessions with a "
        "purchase (without purchase events: the last event, all sessions), monetary = spend; "
        "scores 1..5 by global quintiles, 5 best):\n\n";
  if (std::isfinite(s.value.revenue_share))
    os << "Revenue share " << fmt(100 * s.value.revenue_share, 1) << "% (users "
       << fmt(100 * s.share, 1) << "%).\n\n";
  os << "| | segment mean | overall mean | segment score | overall score |\n"
     << "|---|---:|---:|---:|---:|\n";
  const char* names[3] = {"recency (days)", "frequency", "monetary"};
  for (int j = 0; j < 3; ++j)
    if (j < 2 || std::isfinite(overall.mean[j]))  // no monetary row without prices
      os << "| " << names[j] << " | " << fmt(s.value.mean[j], 2) << " | " << fmt(overall.mean[j], 2)
         << " | " << fmt(s.value.mean_score[j], 2) << " | " << fmt(overall.mean_score[j], 2)
         << " |\n";
}

std::string SegmentReport::markdown() const {
  std::ostringstream os;
  os << "# Segments\n\n" << n_users << " users in " << k << " segments.";
  if (unsegmented > 0) os << " " << unsegmented << " users are unsegmented (in no segment).";
  if (!method_markdown.empty()) os << " " << method_markdown;
  if (std::isfinite(quality.silhouette))
    os << " Silhouette " << fmt(quality.silhouette, 3) << " (sample of "
       << quality.silhouette_sample << " users; -1 worst, 1 best).";
  if (std::isfinite(quality.davies_bouldin))
    os << " Davies-Bouldin " << fmt(quality.davies_bouldin, 3) << " (lower is better).";
  if (std::isfinite(quality.calinski_harabasz))
    os << " Calinski-Harabasz " << fmt(quality.calinski_harabasz, 1) << " (higher is better).";
  os << "\n\nSegments with fewer than " << min_report_users
     << " users are counted but not described, so that no small group of people can be "
        "singled out.\n";
  for (const auto& n : notes) os << "\n_Note: " << n << "._\n";
  const bool revenue = std::isfinite(overall.revenue_share);
  os << "\n| segment | users | share |" << (revenue ? " revenue share |" : "")
     << " description |\n|---:|---:|---:|" << (revenue ? "---:|" : "") << "---|\n";
  for (const auto& s : segments) {
    os << "| " << s.id << " | " << s.size << " | " << fmt(100 * s.share, 1) << "% | ";
    if (revenue) os << fmt(100 * s.value.revenue_share, 1) << "% | ";
    os << md_cell(s.described ? s.description : "(not described: too few users)") << " |\n";
  }
  if (unsegmented > 0) os << "| unsegmented | " << unsegmented << " | | " << (revenue ? "| " : "")
     << "noise: in no segment |\n";
  for (const auto& s : segments) {
    if (!s.described) continue;
    os << "\n## Segment " << s.id << ": " << s.size << " users (" << fmt(100 * s.share, 1)
       << "%)\n\n";
    if (!s.description.empty()) os << md_cell(s.description) << "\n\n";
    if (!s.items.empty()) {
      os << "Most over-represented items (lift = share of the segment's users with the item / "
            "share of all users with it):\n\n"
         << "| item | segment users | segment rate | overall rate | lift |\n"
         << "|---|---:|---:|---:|---:|\n";
      for (const auto& it : s.items)
        os << "| " << md_cell(it.name.empty() ? it.item_id : it.name + " (" + it.item_id + ")")
           << " | " << it.users << " | " << fmt(100 * it.rate, 1) << "% | "
           << fmt(100 * it.global_rate, 2) << "% | " << fmt(it.lift, 2) << " |\n";
      os << "\n";
    }
    if (!s.stats.empty()) {
      os << "Behaviour against all users (difference in standard deviations):\n\n"
         << "| statistic | segment mean | overall mean | difference |\n|---|---:|---:|---:|\n";
      for (const auto& c : s.stats)
        os << "| " << md_cell(c.name) << " | " << fmt(c.mean, 3) << " | " << fmt(c.global_mean, 3)
           << " | " << (c.z >= 0 ? "+" : "") << fmt(c.z, 2) << " sd |\n";
    }
    value_markdown(os, s);
  }
  os << extra_markdown;
  return os.str();
}

std::string SegmentReport::value_json(const SegmentValue& v) {
  std::ostringstream os;
  os << "{\"revenue\": " << json::num(v.revenue)
     << ", \"revenue_share\": " << json::num(v.revenue_share);
  const char* names[3] = {"recency_days", "frequency", "monetary"};
  for (int j = 0; j < 3; ++j)
    os << ", \"" << names[j] << "\": " << json::num(v.mean[j]) << ", \"" << names[j]
       << "_score\": " << json::num(v.mean_score[j]);
  os << "}";
  return os.str();
}

std::string SegmentReport::json() const {
  std::ostringstream os;
  os << "{\n  \"n_users\": " << n_users << ",\n  \"k\": " << k
     << ",\n  \"min_report_users\": " << min_report_users
     << ",\n  \"inertia\": " << json::num(inertia)
     << ",\n  \"silhouette\": " << json::num(quality.silhouette)
     << ",\n  \"silhouette_sample\": " << quality.silhouette_sample
     << ",\n  \"davies_bouldin\": " << json::num(quality.davies_bouldin)
     << ",\n  \"calinski_harabasz\": " << json::num(quality.calinski_harabasz)
     << ",\n  \"unsegmented\": " << unsegmented;
  if (!method_json.empty()) os << ",\n  " << method_json;
  if (!timings.empty()) {
    os << ",\n  \"timings_s\": {";
    for (std::size_t i = 0; i < timings.size(); ++i)
      os << (i ? ", " : "") << json::str(timings[i].first) << ": " << json::num(timings[i].second);
    os << "}";
  }
  os << ",\n  \"rfm\": " << (has_rfm ? value_json(overall) : "null") << ",\n  \"notes\": [";
  for (std::size_t i = 0; i < notes.size(); ++i) os << (i ? ", " : "") << json::str(notes[i]);
  os << "],\n  \"segments\": [";
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const auto& s = segments[i];
    os << (i ? "," : "") << "\n    {\"id\": " << s.id << ", \"size\": " << s.size
       << ", \"share\": " << json::num(s.share);
    if (std::isfinite(s.value.revenue_share))
      os << ", \"revenue_share\": " << json::num(s.value.revenue_share);
    os << ", \"described\": " << (s.described ? "true" : "false");
    if (s.described) {
      os << ", \"description\": " << json::str(s.description) << ",\n     \"items\": [";
      for (std::size_t j = 0; j < s.items.size(); ++j) {
        const auto& it = s.items[j];
        os << (j ? ", " : "") << "{\"item_id\": " << json::str(it.item_id)
           << ", \"name\": " << json::str(it.name) << ", \"users\": " << it.users
           << ", \"rate\": " << json::num(it.rate)
           << ", \"global_rate\": " << json::num(it.global_rate)
           << ", \"lift\": " << json::num(it.lift) << "}";
      }
      os << "],\n     \"stats\": [";
      for (std::size_t j = 0; j < s.stats.size(); ++j) {
        const auto& c = s.stats[j];
        os << (j ? ", " : "") << "{\"name\": " << json::str(c.name)
           << ", \"mean\": " << json::num(c.mean)
           << ", \"global_mean\": " << json::num(c.global_mean) << ", \"z\": " << json::num(c.z)
           << "}";
      }
      os << "],\n     \"categories\": [";
      for (std::size_t j = 0; j < s.categories.size(); ++j) {
        const auto& c = s.categories[j];
        os << (j ? ", " : "") << "{\"name\": " << json::str(c.name)
           << ", \"share\": " << json::num(c.share)
           << ", \"global_share\": " << json::num(c.global_share)
           << ", \"lift\": " << json::num(c.lift) << "}";
      }
      os << "],\n     \"rfm\": " << (has_rfm ? value_json(s.value) : "null");
    }
    os << "}";
  }
  os << "\n  ]";
  for (const auto& [name, value] : extra_json) os << ",\n  " << json::str(name) << ": " << value;
  os << "\n}\n";
  return os.str();
}

void write_segment_report(const SegmentReport& report, const std::string& md_path,
                          const std::string& json_path, const Comm& comm) {
  std::string err;
  if (comm.is_root()) {
    try {
      write_file_atomically(md_path, report.markdown());
      write_file_atomically(json_path, report.json());
    } catch (const Error& e) {
      err = e.what();
    }
  }
  comm.check_all(err, kExitIo);
}

LocalStats read_profile_stats(const std::string& path, std::int64_t n_users, std::int64_t begin,
                              const std::vector<std::string>& ids, const Comm& comm) {
  // Problems are raised once the file is closed (an open handle is not closed while an
  // error unwinds a parallel job).
  LocalStats st;
  std::string err;
  {
    const h5::File f = h5::File::open(path, comm, kProfilesFormat);
    const auto count = static_cast<std::int64_t>(ids.size());
    const auto n = f.shape("/users/ids")[0];
    const auto d = f.shape("/dense/names")[0];
    const auto s = f.shape("/dense/raw");
    if (n != n_users) {
      err = "'" + path + "' holds " + std::to_string(n) + " users, the projection " +
            std::to_string(n_users);
    } else if (s.size() != 2 || s[0] != n_users || s[1] != d) {
      err = "'" + path + "': /dense/raw is not n_users x " + std::to_string(d);
    } else {
      const auto theirs = f.read_strings("/users/ids", begin, count);
      for (std::int64_t i = 0; i < count && err.empty(); ++i)
        if (theirs[i] != ids[i])
          err = "'" + path + "': user " + std::to_string(begin + i) + " is '" + theirs[i] +
                "', the projection has '" + ids[i] + "' (files from different runs?)";
      st.names = f.read_strings("/dense/names", 0, d);
      const auto raw = f.read_rows<float>("/dense/raw", begin, count);
      st.raw = Eigen::Map<const MatrixRF>(raw.data(), count, d);
      if (f.exists("/rfm")) {  // older files have none
        st.rfm_values = f.read_rows<float>("/rfm/values", begin, count);
        st.rfm_scores = f.read_rows<std::uint8_t>("/rfm/scores", begin, count);
      }
    }
  }
  comm.check_all(err, kExitData);
  return st;
}

}  // namespace segrec
